//! `--force-new-cluster` on a survivor's data dir: every entry of its log
//! is applied, it becomes the only member, and a second force is refused
//! until the marker is deleted.

use std::collections::{BTreeMap, BTreeSet};

use hamster_meta::backup::reseed::{self, FORCE_MARKER, RAFT_LOG_DB, ReseedError};
use hamster_meta::cluster::now_ms;
use hamster_meta::raft::log_store::LogStore;
use hamster_meta::raft::{Entry, MetaNode};
use hamster_meta::state::model::{ORPHAN_HOLD, OrphanHold};
use hamster_meta::state::reads;
use hamster_proto::secrets::MasterKey;
use openraft::storage::RaftLogStorage;
use openraft::{EntryPayload, Membership};

use super::common::*;
use super::fixture::*;
use super::restore::open_seeded;

fn node(addr: &str, name: &str) -> MetaNode {
    MetaNode {
        addr: addr.into(),
        name: name.into(),
    }
}

/// Writes entries into the dir's Raft log as the log store keeps them.
async fn append(dir: &std::path::Path, entries: &[Entry]) {
    let log = LogStore::open(&dir.join(RAFT_LOG_DB)).await.expect("log");
    log.close().await;
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new().filename(dir.join(RAFT_LOG_DB)),
    )
    .await
    .expect("pool");
    for e in entries {
        sqlx::query("INSERT INTO log (idx, entry) VALUES (?, ?)")
            .bind(e.log_id.index as i64)
            .bind(serde_json::to_vec(e).expect("json"))
            .execute(&pool)
            .await
            .expect("insert");
    }
    pool.close().await;
}

#[tokio::test]
async fn a_survivor_applies_its_whole_log_and_becomes_a_cluster_of_one() {
    let key = MasterKey::generate();
    let src = Source::populated(&key, &Pki::new("ca-1")).await;
    let applied = src.index;
    src.db.close().await;
    let dir = src.dir.path().to_path_buf();
    // The log holds the last applied entries and three more: the old
    // three-member membership and two writes never applied here.
    let old = BTreeMap::from([
        (1, node("10.1.1.1:7400", "meta-1")),
        (2, node("10.1.1.2:7400", "meta-2")),
        (3, node("10.1.1.3:7400", "meta-3")),
    ]);
    let membership = Membership::new(vec![BTreeSet::from([1, 2, 3])], old);
    let mut entries = vec![entry(applied - 1, create("ignored", false))];
    entries[0].payload = EntryPayload::Blank;
    entries.push(Entry {
        log_id: log_id(TERM, applied + 1),
        payload: EntryPayload::Membership(membership),
    });
    let late = |id: &str| Version {
        kek_fingerprint: key.fingerprint(),
        ..ver("plain", "late", id, id)
    };
    entries.push(entry(applied + 2, commit(late("l1"))));
    entries.push(entry(applied + 3, commit(late("l2"))));
    append(&dir, &entries).await;
    // Left-overs a seeded dir must not keep.
    std::fs::write(dir.join("snapshot.json"), b"{}").expect("write");
    std::fs::write(dir.join("snapshot-3-5-00000000.db"), b"x").expect("write");
    std::fs::write(dir.join("building-00000001.db"), b"x").expect("write");

    // No address given: the old membership's address for it is kept.
    let before = now_ms();
    let last = reseed::force_new_cluster(&dir, 1, node("", "meta-1"))
        .await
        .expect("forced");
    assert_eq!(last, log_id(TERM, applied + 3));

    let s = open_seeded(&dir).await;
    assert_eq!(s.last, Some(last));
    let nodes: Vec<(u64, MetaNode)> = s
        .membership
        .membership()
        .nodes()
        .map(|(i, n)| (*i, n.clone()))
        .collect();
    assert_eq!(nodes, vec![(1, node("10.1.1.1:7400", "meta-1"))]);
    let voters: Vec<u64> = s.membership.membership().voter_ids().collect();
    assert_eq!(voters, vec![1]);
    let mut c = s.db.acquire().await.expect("conn");
    for id in ["l1", "l2"] {
        assert!(
            q::version(&mut c, "plain", "late", id)
                .await
                .expect("read")
                .is_some()
        );
    }
    // Writes acknowledged by the lost members only left shards no row
    // here names: the sweep holds them, as after a restore.
    let hold: OrphanHold = reads::setting_json(&mut c, ORPHAN_HOLD)
        .await
        .expect("read")
        .expect("the orphan hold");
    assert!(
        (before..=now_ms()).contains(&hold.restored_at_ms),
        "{hold:?}"
    );
    assert_eq!(hold.backup_index, last.index);
    assert_eq!(hold.backup_created_ms, hold.restored_at_ms);
    drop(c);
    s.db.close().await;

    let mut log = LogStore::open(&dir.join(RAFT_LOG_DB)).await.expect("log");
    let st = log.get_log_state().await.expect("state");
    assert_eq!(
        (st.last_purged_log_id, st.last_log_id),
        (Some(last), Some(last))
    );
    let vote = log.read_vote().await.expect("vote").expect("a vote");
    assert_eq!(
        (vote.leader_id().term, vote.leader_id().node_id),
        (TERM + 1, 1)
    );
    log.close().await;
    let marker = std::fs::read_to_string(dir.join(FORCE_MARKER)).expect("marker");
    assert_eq!(marker.trim(), (applied + 3).to_string());
    for gone in [
        "snapshot.json",
        "snapshot-3-5-00000000.db",
        "building-00000001.db",
    ] {
        assert!(!dir.join(gone).exists(), "{gone} left");
    }

    // Forcing again is refused until the marker is deleted.
    let e = reseed::force_new_cluster(&dir, 1, node("10.1.1.1:7400", "meta-1"))
        .await
        .expect_err("refused");
    assert!(matches!(e, ReseedError::AlreadyForced { index, .. } if index == applied + 3));
    assert!(e.to_string().contains("drop --force-new-cluster"), "{e}");
    std::fs::remove_file(dir.join(FORCE_MARKER)).expect("delete marker");
    let again = reseed::force_new_cluster(&dir, 1, node("10.1.1.1:7400", "meta-1"))
        .await
        .expect("forced again");
    assert_eq!(again, last);
}

/// The marker refuses by being there: one that cannot be read (a dir in
/// its place, a dangling link, garbage) refuses as firmly, with index 0.
#[tokio::test]
async fn an_unreadable_force_marker_still_refuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join(FORCE_MARKER);
    let refused = || async {
        let e = reseed::force_new_cluster(dir.path(), 1, node("127.0.0.1:1", "meta-1"))
            .await
            .expect_err("refused");
        assert!(
            matches!(&e, ReseedError::AlreadyForced { index: 0, file } if *file == marker),
            "{e}"
        );
    };
    std::fs::create_dir(&marker).expect("mkdir");
    refused().await;
    std::fs::remove_dir(&marker).expect("rmdir");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &marker).expect("symlink");
    refused().await;
    std::fs::remove_file(&marker).expect("unlink");
    std::fs::write(&marker, b"not an index").expect("write");
    refused().await;
}

#[tokio::test]
async fn a_dir_without_state_is_not_forced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = reseed::force_new_cluster(dir.path(), 1, node("127.0.0.1:1", "meta-1"))
        .await
        .expect_err("refused");
    assert!(matches!(e, ReseedError::Empty(_)), "{e}");
    assert_eq!(files_under(dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn seeding_requires_the_node_among_the_members() {
    let dir = tempfile::tempdir().expect("tempdir");
    let members = BTreeMap::from([(2, node("127.0.0.1:2", "meta-2"))]);
    let e = reseed::seed(dir.path(), 1, &members)
        .await
        .expect_err("refused");
    assert!(matches!(e, ReseedError::NotAMember(1)), "{e}");
}
