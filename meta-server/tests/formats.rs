//! Format versions (ADR 0020): what is written carries this binary's
//! version, what was written before versions existed reads as version 0,
//! and anything newer than the binary is refused clearly and left as it
//! was — a Raft command, the Raft log DB, snapshot.json, a snapshot DB.

// openraft's StorageError is large; the storage traits return it.
#![allow(clippy::result_large_err)]

mod samples;
mod snap;

use std::path::Path;

use hamster_meta::raft::log_store::{self, LogStore, OpenError};
use hamster_meta::raft::state_machine::{SNAPSHOT_FORMAT, StateDb, StateMachine};
use hamster_meta::raft::{Entry, SnapshotMeta};
use hamster_meta::state::commands::{Command, Op};
use hamster_meta::state::format::{self, TooNew};
use hamster_meta::state::schema::{self, SchemaError};
use openraft::RaftLogReader;
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use sqlx::{Connection, SqliteConnection};

use samples as s;
use snap::{entry, snapshot};

fn create_bucket(name: &str) -> Op {
    Op::CreateBucket {
        name: name.into(),
        object_lock_enabled: false,
        owner: None,
    }
}

/// A plain connection (no WAL switch), creating the file if needed.
async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true),
    )
    .await
    .expect("connect")
}

async fn set_user_version(path: &Path, v: i64) {
    let mut c = raw(path).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PRAGMA user_version = {v}")))
        .execute(&mut c)
        .await
        .expect("pragma");
    c.close().await.expect("close");
}

async fn user_version(path: &Path) -> i64 {
    log_store::user_version(path)
        .await
        .expect("read")
        .expect("exists")
}

// ---------- commands ----------

#[test]
fn commands_are_written_with_the_version_first_batches_included() {
    let cmd = s::command("c1", Op::Batch(vec![s::command("c2", create_bucket("b"))]));
    let json = String::from_utf8(serde_json::to_vec(&cmd).expect("encode")).expect("utf-8");
    assert_eq!(format::COMMAND_WITHOUT_ACTOR, 1);
    assert!(json.starts_with(r#"{"v":1,"id":"c1","#), "{json}");
    assert!(json.contains(r#"{"Batch":[{"v":1,"id":"c2","#), "{json}");
}

#[test]
fn a_command_without_a_version_is_version_0_and_reads_the_same() {
    let v0 = r#"{"id":"c1","at_ms":5,"op":{"DeleteBucket":{"name":"b"}}}"#;
    let v1 = r#"{"v":1,"id":"c1","at_ms":5,"op":{"DeleteBucket":{"name":"b"}}}"#;
    let a: Command = serde_json::from_str(v0).expect("v0");
    let b: Command = serde_json::from_str(v1).expect("v1");
    assert_eq!(a, b);
    assert_eq!(
        a,
        Command::new(
            "c1",
            5,
            Op::DeleteBucket {
                name: "b".into(),
                abort_uploads: false,
            }
        )
    );
    // As before versions: a missing id means no de-duplication.
    let no_id: Command =
        serde_json::from_str(r#"{"at_ms":5,"op":"FinishKeyRotation"}"#).expect("no id");
    assert_eq!(no_id.id, "");
}

#[test]
fn a_newer_command_is_refused_before_its_op_is_read() {
    // An op this binary has never heard of: the version speaks first.
    let newer = r#"{"v":4,"id":"c1","at_ms":5,"op":{"SomeFutureOp":{"x":1}}}"#;
    let err = serde_json::from_str::<Command>(newer).expect_err("refused");
    assert!(
        err.to_string()
            .contains("command format version 4 is newer than this binary's 3; upgrade"),
        "{err}"
    );
    // Inside a batch too.
    let nested = r#"{"v":1,"id":"c1","at_ms":5,"op":{"Batch":[{"v":7,"at_ms":5,"op":{"X":{}}}]}}"#;
    let err = serde_json::from_str::<Command>(nested).expect_err("refused");
    assert!(err.to_string().contains("version 7 is newer"), "{err}");
    // And inside a log entry, as the log store and the wire read it.
    let entry = format!(
        r#"{{"log_id":{{"leader_id":{{"term":1,"node_id":1}},"index":3}},"payload":{{"Normal":{newer}}}}}"#
    );
    let err = serde_json::from_str::<Entry>(&entry).expect_err("refused");
    assert!(err.to_string().contains("version 4 is newer"), "{err}");
}

#[test]
fn too_new_names_what_and_both_versions() {
    assert_eq!(format::check("command", 1, 1), Ok(()));
    assert_eq!(format::check("command", 0, 1), Ok(()));
    let e = format::check("raft-log.db", 3, 1).expect_err("newer");
    assert_eq!(
        e.to_string(),
        "raft-log.db format version 3 is newer than this binary's 1; upgrade"
    );
}

// ---------- the Raft log DB ----------

#[tokio::test]
async fn a_new_raft_log_is_stamped_with_its_layout() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("raft-log.db");
    drop(LogStore::open(&path).await.expect("open"));
    assert_eq!(user_version(&path).await, log_store::LAYOUT);
    assert_eq!(log_store::LAYOUT, 1);
}

#[tokio::test]
async fn a_raft_log_from_before_the_stamp_is_todays_layout_and_gets_stamped() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("raft-log.db");
    {
        // The file as the first release wrote it: tables, user_version 0,
        // a v0 entry (no command version) and a vote.
        let mut c = raw(&path).await;
        sqlx::raw_sql(
            "CREATE TABLE log (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL);
             CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);",
        )
        .execute(&mut c)
        .await
        .expect("schema");
        let golden = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/log/entry-normal-v0.json"),
        )
        .expect("golden");
        sqlx::query("INSERT INTO log (idx, entry) VALUES (42, ?)")
            .bind(golden)
            .execute(&mut c)
            .await
            .expect("entry");
        sqlx::query("INSERT INTO kv (key, value) VALUES ('vote', ?)")
            .bind(serde_json::to_vec(&openraft::Vote::<u64>::new_committed(7, 2)).expect("json"))
            .execute(&mut c)
            .await
            .expect("vote");
        c.close().await.expect("close");
    }
    assert_eq!(user_version(&path).await, 0);
    let mut log = LogStore::open(&path).await.expect("open");
    let entries = log.try_get_log_entries(42..43).await.expect("read");
    assert_eq!(entries, vec![s::entry_normal()]);
    assert_eq!(
        log.read_vote().await.expect("vote"),
        Some(openraft::Vote::new_committed(7, 2))
    );
    drop(log);
    assert_eq!(user_version(&path).await, 1);
}

#[tokio::test]
async fn a_raft_log_newer_than_the_binary_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("raft-log.db");
    {
        let mut c = raw(&path).await;
        sqlx::raw_sql("CREATE TABLE log2 (idx INTEGER PRIMARY KEY); PRAGMA user_version = 2;")
            .execute(&mut c)
            .await
            .expect("newer");
        c.close().await.expect("close");
    }
    let before = std::fs::read(&path).expect("read");
    match LogStore::open(&path).await {
        Err(OpenError::TooNew(e)) => {
            assert_eq!(
                e,
                TooNew {
                    what: "raft-log.db",
                    found: 2,
                    known: 1
                }
            );
            assert!(e.to_string().contains("upgrade"));
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a newer raft log was opened"),
    }
    assert_eq!(std::fs::read(&path).expect("read"), before);
    assert!(!dir.path().join("raft-log.db-wal").exists());
}

// ---------- snapshots ----------

/// A state dir with two entries applied and a snapshot of them.
async fn dir_with_snapshot() -> (tempfile::TempDir, SnapshotMeta, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tmp");
    let db = StateDb::open(dir.path()).await.expect("open");
    let mut sm = StateMachine::new(db.clone());
    sm.apply(vec![entry(1, "a"), entry(2, "b")])
        .await
        .expect("apply");
    let snap = snapshot(&mut sm).await;
    (dir, snap.meta, snap.snapshot.into_inner())
}

#[tokio::test]
async fn snapshot_json_carries_its_version_and_a_v0_one_still_reads() {
    let (dir, meta, _) = dir_with_snapshot().await;
    let json_path = dir.path().join("snapshot.json");
    let json = std::fs::read_to_string(&json_path).expect("json");
    assert!(
        json.starts_with(&format!("{{\"v\":{SNAPSHOT_FORMAT},")),
        "{json}"
    );
    // As written before versions: no tag.
    std::fs::write(&json_path, json.replacen("\"v\":1,", "", 1)).expect("write");
    let db = StateDb::open(dir.path()).await.expect("reopen");
    let mut sm = StateMachine::new(db);
    let current = sm
        .get_current_snapshot()
        .await
        .expect("read")
        .expect("some");
    assert_eq!(current.meta, meta);
}

#[tokio::test]
async fn a_snapshot_json_newer_than_the_binary_is_refused() {
    let (dir, _, _) = dir_with_snapshot().await;
    let json_path = dir.path().join("snapshot.json");
    let json = std::fs::read_to_string(&json_path).expect("json");
    // A future layout this binary cannot even parse.
    let newer = json.replacen("\"v\":1,", "\"v\":2,\"future\":true,", 1);
    let newer = newer.replacen("\"meta\"", "\"meta_v2\"", 1);
    std::fs::write(&json_path, &newer).expect("write");
    match StateDb::open(dir.path()).await {
        Err(SchemaError::Format(e)) => {
            assert_eq!((e.what, e.found, e.known), ("snapshot.json", 2, 1));
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a newer snapshot.json was accepted"),
    }
    assert_eq!(std::fs::read_to_string(&json_path).expect("json"), newer);
}

#[tokio::test]
async fn a_saved_snapshot_db_newer_than_the_binary_is_not_restored() {
    let (dir, meta, _) = dir_with_snapshot().await;
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("snapshot.json")).expect("json"))
            .expect("parse");
    let file = dir.path().join(stored["file"].as_str().expect("file"));
    let newer = schema::current_version() + 1;
    set_user_version(&file, newer).await;
    let snapshot_bytes = std::fs::read(&file).expect("read");
    // state.db lost: the saved snapshot is ahead of it and would restore it.
    for f in ["state.db", "state.db-wal", "state.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(f));
    }
    match StateDb::open(dir.path()).await {
        Err(SchemaError::TooNew { found, known }) => {
            assert_eq!((found, known), (newer, schema::current_version()));
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a newer snapshot was restored"),
    }
    assert_eq!(std::fs::read(&file).expect("read"), snapshot_bytes);
    assert!(meta.last_log_id.is_some());
}

#[tokio::test]
async fn a_received_snapshot_db_newer_than_the_binary_is_refused() {
    let (src, meta, data) = dir_with_snapshot().await;
    let newer_file = src.path().join("newer.db");
    std::fs::write(&newer_file, &data).expect("write");
    set_user_version(&newer_file, schema::current_version() + 1).await;
    let newer = std::fs::read(&newer_file).expect("read");

    let dir = tempfile::tempdir().expect("tmp");
    let db = StateDb::open(dir.path()).await.expect("open");
    let err = db.save_received(&meta, &newer).await.expect_err("refused");
    assert!(
        err.to_string().contains("is newer than this binary"),
        "{err}"
    );
    assert!(!dir.path().join("snapshot.json").exists());
    let mut sm = StateMachine::new(db.clone());
    assert!(
        sm.install_snapshot(&meta, Box::new(std::io::Cursor::new(newer)))
            .await
            .is_err()
    );
    assert_eq!(sm.applied_state().await.expect("state").0, None);
    // The same snapshot at this binary's version installs.
    sm.install_snapshot(&meta, Box::new(std::io::Cursor::new(data)))
        .await
        .expect("install");
    assert_eq!(sm.applied_state().await.expect("state").0, meta.last_log_id);
}

// ---------- actors (ADR 0027) ----------

/// A command naming its actor is version 2, so a node that does not know
/// actors refuses it (TooNew) instead of applying it unchecked; one
/// without keeps version 1, readable by every node.
#[test]
fn a_command_naming_its_actor_is_version_2() {
    use hamster_meta::state::commands::Actor;
    assert_eq!(format::COMMAND_WITH_ACTOR, 2);
    let by = s::command("c1", create_bucket("b")).by(Actor::Key("AK1".into()));
    let json = String::from_utf8(serde_json::to_vec(&by).expect("encode")).expect("utf-8");
    assert!(
        json.starts_with(r#"{"v":2,"id":"c1","at_ms":"#)
            && json.contains(r#","by":{"key":"AK1"},"op":"#),
        "{json}"
    );
    let back: Command = serde_json::from_str(&json).expect("decode");
    assert_eq!(back, by);
    // A batch takes its newest command's version (ADR 0034), so its
    // first key tells a reader that does not know actors to refuse it.
    let batch = s::command("c0", Op::Batch(vec![by]));
    let json = String::from_utf8(serde_json::to_vec(&batch).expect("encode")).expect("utf-8");
    assert!(json.starts_with(r#"{"v":2,"id":"c0","#), "{json}");
    assert!(json.contains(r#"{"Batch":[{"v":2,"id":"c1","#), "{json}");
}

#[test]
fn an_actor_in_a_version_1_or_unversioned_command_is_refused() {
    for json in [
        r#"{"v":1,"id":"c1","at_ms":5,"by":{"key":"AK1"},"op":{"DeleteBucket":{"name":"b"}}}"#,
        r#"{"id":"c1","at_ms":5,"by":{"key":"AK1"},"op":{"DeleteBucket":{"name":"b"}}}"#,
    ] {
        let e = serde_json::from_str::<Command>(json).expect_err("refused");
        assert!(e.to_string().contains("version 2"), "{e}");
    }
    let too_new = r#"{"v":4,"id":"c1","at_ms":5,"op":{"DeleteBucket":{"name":"b"}}}"#;
    let e = serde_json::from_str::<Command>(too_new).expect_err("too new");
    assert!(e.to_string().contains("newer"), "{e}");
}

// ---------- issue 21's fields (format 3, ADR 0034) ----------

/// Every kind of op, as the sample list has it (issue 21's fields
/// unset), keeps the version it had before format 3 — 1, or 2 naming an
/// actor — so old nodes still read it; only the op format 3 added is 3.
/// (Each new field forcing 3: `state::format::layout`'s unit tests.)
#[test]
fn an_old_layout_command_of_each_kind_keeps_its_version() {
    use hamster_meta::state::commands::Actor;
    for op in s::ops() {
        let name = op.name();
        if name == "Unreadable" {
            continue; // written back as the v0 command it was
        }
        let (plain, with_actor) = if s::V3_ONLY_OPS.contains(&name) {
            (3, 3)
        } else {
            (1, 2)
        };
        let cmd = s::command("c1", op);
        let json = serde_json::to_string(&cmd).expect("encode");
        assert!(
            json.starts_with(&format!(r#"{{"v":{plain},"#)),
            "{name}: {json}"
        );
        assert_eq!(cmd.layout(), plain, "{name}");
        let by = cmd.by(Actor::Key("AK1".into()));
        assert_eq!(by.layout(), with_actor, "{name}");
    }
}

/// Logs from before a batch took its newest command's version hold v1
/// batches of v2 commands; a batch's commands are judged on their own.
#[test]
fn a_batch_older_than_its_commands_still_reads() {
    let old = r#"{"v":1,"id":"","at_ms":5,"op":{"Batch":[{"v":2,"id":"c1","at_ms":5,"by":{"key":"AK1"},"op":{"DeleteBucket":{"name":"b"}}}]}}"#;
    let cmd: Command = serde_json::from_str(old).expect("reads");
    assert_eq!(cmd.layout(), 2);
    let v3_inside = r#"{"v":1,"id":"","at_ms":5,"op":{"Batch":[{"v":3,"id":"c1","at_ms":5,"op":{"DeleteBucket":{"name":"b","abort_uploads":true}}}]}}"#;
    let cmd: Command = serde_json::from_str(v3_inside).expect("reads");
    assert_eq!(cmd.layout(), 3);
    // But a command that sets a field of format 3 must say 3 itself.
    let forged = v3_inside.replace(r#"{"v":3,"#, r#"{"v":2,"#);
    let e = serde_json::from_str::<Command>(&forged).expect_err("refused");
    assert!(e.to_string().contains("must be format version 3"), "{e}");
}
