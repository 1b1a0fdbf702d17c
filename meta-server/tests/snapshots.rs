//! Snapshots at the state-machine level: a crash between saving a
//! snapshot and swapping it in is repaired at start-up; a corrupt or
//! mislabelled snapshot is refused and changes nothing; a peer's snapshot
//! id never becomes a path.

// openraft's StorageError is large; the storage traits return it.
#![allow(clippy::result_large_err)]

mod snap;

use std::io::Cursor;

use hamster_meta::raft::SnapshotMeta;
use hamster_meta::raft::state_machine::{StateDb, StateMachine};
use hamster_meta::state::reads as q;
use openraft::storage::RaftStateMachine;
use snap::{entry, snapshot};

async fn has_bucket(db: &StateDb, name: &str) -> bool {
    let mut c = db.acquire().await.expect("conn");
    q::bucket(&mut c, name).await.expect("query").is_some()
}

#[tokio::test]
async fn a_saved_snapshot_newer_than_the_db_restores_it_at_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let old_copy = dir.path().join("old.db");
    {
        let db = StateDb::open(dir.path()).await.expect("open");
        let mut sm = StateMachine::new(db.clone());
        sm.apply(vec![entry(1, "bucket-a")]).await.expect("apply");
        // Keep a consistent copy of the DB as it was at index 1.
        let mut c = db.acquire().await.expect("conn");
        sqlx::query("VACUUM INTO ?")
            .bind(old_copy.to_string_lossy().to_string())
            .execute(&mut *c)
            .await
            .expect("vacuum");
        drop(c);
        sm.apply(vec![entry(2, "bucket-b")]).await.expect("apply");
        let snap = snapshot(&mut sm).await;
        assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(2));
        // Closed before the files are swapped: a pool connection still
        // open would checkpoint its WAL into the copied-in file.
        db.close().await;
    }
    // A crash left state.db behind the saved snapshot.
    for ext in ["db-wal", "db-shm"] {
        let _ = std::fs::remove_file(dir.path().join("state").with_extension(ext));
    }
    std::fs::copy(&old_copy, dir.path().join("state.db")).expect("roll back");
    let db = StateDb::open(dir.path()).await.expect("reopen");
    assert!(
        has_bucket(&db, "bucket-b").await,
        "restored from the snapshot"
    );
    let (applied, _) = StateMachine::new(db)
        .applied_state()
        .await
        .expect("applied");
    assert_eq!(applied.map(|l| l.index), Some(2));
}

#[tokio::test]
async fn bad_snapshots_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = StateDb::open(dir.path()).await.expect("open");
    let mut sm = StateMachine::new(db.clone());
    sm.apply(vec![entry(1, "bucket-a")]).await.expect("apply");
    let good = snapshot(&mut sm).await;

    let meta = |id: &str, index: u64| SnapshotMeta {
        last_log_id: Some(openraft::testing::log_id(1, 1, index)),
        last_membership: Default::default(),
        snapshot_id: id.into(),
    };
    // Garbage bytes.
    let err = sm
        .install_snapshot(
            &meta("garbage", 5),
            Box::new(Cursor::new(b"not a database".to_vec())),
        )
        .await;
    assert!(err.is_err());
    // A real DB whose contents do not match the meta it came with.
    let data = good.snapshot.into_inner();
    let err = sm
        .install_snapshot(&meta("mislabelled", 9), Box::new(Cursor::new(data.clone())))
        .await;
    assert!(err.is_err());
    assert!(has_bucket(&db, "bucket-a").await);
    let (applied, _) = sm.applied_state().await.expect("applied");
    assert_eq!(applied.map(|l| l.index), Some(1));

    // A hostile snapshot id never becomes a path.
    let evil = SnapshotMeta {
        snapshot_id: "../../../escaped".into(),
        ..good.meta.clone()
    };
    sm.install_snapshot(&evil, Box::new(Cursor::new(data)))
        .await
        .expect("valid snapshot installs");
    assert!(!dir.path().join("../../../escaped").exists());
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains("escaped")), "{names:?}");
    assert!(has_bucket(&db, "bucket-a").await);
}

/// A snapshot carries the blob-server lifecycle: a follower that installs
/// it sees the same drained and removed servers, stores and drain targets.
#[tokio::test]
async fn a_snapshot_carries_the_blob_server_lifecycle() {
    use hamster_meta::state::commands::{Command, Op};
    use hamster_meta::state::model::BlobServer;
    use openraft::EntryPayload;

    let op_entry = |index: u64, op: Op| hamster_meta::raft::Entry {
        log_id: openraft::testing::log_id(1, 1, index),
        payload: EntryPayload::Normal(Command::new(format!("cmd-{index}"), 1_700_000_000_000, op)),
    };
    let mut entries = Vec::new();
    for i in 0..4 {
        entries.push(op_entry(
            i + 1,
            Op::RegisterBlob {
                server: BlobServer {
                    id: format!("blob-{i}"),
                    address: format!("10.0.0.{i}:7000"),
                    ..BlobServer::default()
                },
            },
        ));
    }
    entries.push(op_entry(
        5,
        Op::BlobHeartbeat {
            id: "blob-0".into(),
            capacity_bytes: 100,
            free_bytes: 50,
            shards_stored: 7,
            bytes_stored: 70,
        },
    ));
    entries.push(op_entry(
        6,
        Op::DrainBlob {
            id: "blob-0".into(),
            to: "blob-1".into(),
        },
    ));
    entries.push(op_entry(
        7,
        Op::DrainBlob {
            id: "blob-2".into(),
            to: String::new(),
        },
    ));
    entries.push(op_entry(
        8,
        Op::FinishDrain {
            id: "blob-2".into(),
        },
    ));
    entries.push(op_entry(
        9,
        Op::RemoveBlob {
            id: "blob-3".into(),
            force: false,
        },
    ));

    let dir = tempfile::tempdir().expect("tmp");
    let db = StateDb::open(dir.path()).await.expect("open");
    let mut sm = StateMachine::new(db.clone());
    sm.apply(entries).await.expect("apply");
    let servers = {
        let mut c = db.acquire().await.expect("conn");
        q::blob_servers(&mut c).await.expect("servers")
    };
    let states: Vec<_> = servers.iter().map(|s| s.display_state()).collect();
    assert_eq!(states, ["draining", "active", "drained", "removed"]);
    let snap = snapshot(&mut sm).await;

    let other = tempfile::tempdir().expect("tmp");
    let follower = StateDb::open(other.path()).await.expect("open");
    let mut fsm = StateMachine::new(follower.clone());
    fsm.install_snapshot(
        &snap.meta,
        Box::new(Cursor::new(snap.snapshot.into_inner())),
    )
    .await
    .expect("install");
    let mut c = follower.acquire().await.expect("conn");
    assert_eq!(q::blob_servers(&mut c).await.expect("servers"), servers);
    assert_eq!(
        q::revoked_identities(&mut c).await.expect("revoked"),
        vec!["hamster://blob/blob-3"]
    );
}

/// The state DB, its WAL, the Raft log, snapshots (built and installed),
/// backup copies and files from before this rule: all 0600 (issue 20).
#[tokio::test]
async fn every_file_the_meta_server_writes_in_its_data_dir_is_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    // A DB file from before the rule, 0644: narrowed at open.
    let old = dir.path().join("state.db");
    std::fs::write(&old, b"").expect("old db");
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let db = StateDb::open(dir.path()).await.expect("open");
    let log = hamster_meta::raft::log_store::LogStore::open(&dir.path().join("raft-log.db"))
        .await
        .expect("log");
    let mut sm = StateMachine::new(db.clone());
    sm.apply(vec![entry(1, "bucket-a")]).await.expect("apply");
    let snap = snapshot(&mut sm).await;
    sm.install_snapshot(&snap.meta, snap.snapshot)
        .await
        .expect("install");
    sm.apply(vec![entry(2, "bucket-b")]).await.expect("apply");
    let out = dir.path().join("backup.hbk");
    hamster_meta::backup::take::write_file(&db, 1, &out)
        .await
        .expect("backup");
    let mut seen = Vec::new();
    for e in std::fs::read_dir(dir.path()).expect("list") {
        let e = e.expect("entry");
        let mode = e.metadata().expect("stat").permissions().mode() & 0o777;
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().expect("type").is_file() {
            assert_eq!(mode, 0o600, "{name} is {mode:o}");
        }
        seen.push(name);
    }
    seen.sort();
    for expected in [
        "state.db",
        "state.db-wal",
        "raft-log.db",
        "snapshot.json",
        "backup.hbk",
    ] {
        assert!(
            seen.iter().any(|n| n == expected),
            "{expected} not in {seen:?}"
        );
    }
    drop(log);
}
