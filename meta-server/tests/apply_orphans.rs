//! The orphan hold after a restore (ADR 0026) as apply decides it: the
//! sweep's finding is recorded once (a repeat keeps the first finding and
//! any release) and never for a shard a map names; an operator's release
//! counts what it released, on one server or everywhere; the sweep's
//! forget drops rows. And the reads status and the listing show.

mod common;

use common::*;
use hamster_meta::state::model::{HeldOrphan, HeldShard, ORPHAN_HOLD, OrphanHold};
use hamster_meta::state::reads::OrphanCounts;
use hamster_meta::state::writes;

const B: &str = "bkt";

fn shard(id: &str, bytes: u64) -> HeldShard {
    HeldShard {
        shard_id: id.into(),
        bytes,
        modified_ms: NOW - 100_000,
    }
}

fn hold(blob: &str, shards: Vec<HeldShard>) -> Op {
    Op::HoldOrphans {
        blob_id: blob.into(),
        shards,
    }
}

fn release(blob: Option<&str>) -> Op {
    Op::ReleaseOrphans {
        blob_id: blob.map(String::from),
    }
}

fn forget(blob: &str, ids: &[&str]) -> Op {
    Op::ForgetOrphans {
        blob_id: blob.into(),
        shard_ids: ids.iter().map(|s| s.to_string()).collect(),
    }
}

fn rows(n: u64) -> Response {
    Response::Orphans { rows: n }
}

async fn counts(db: &mut Db, blob: Option<&str>) -> OrphanCounts {
    q::orphan_counts(db.c(), blob).await.expect("counts")
}

async fn listed(db: &mut Db, blob: Option<&str>, limit: u32) -> Vec<HeldOrphan> {
    q::held_orphans(db.c(), blob, limit).await.expect("rows")
}

#[tokio::test]
async fn a_finding_is_held_once_and_keeps_its_first_time_and_its_release() {
    let mut db = Db::new().await;
    let first = vec![shard("s1", 100), shard("s2", 200)];
    assert_eq!(db.run_at(NOW, hold("b1", first.clone())).await, rows(2));
    // The next round finds them again, and one more.
    let again = vec![shard("s1", 100), shard("s3", 300)];
    assert_eq!(db.run_at(NOW + 5_000, hold("b1", again)).await, rows(1));
    let all = listed(&mut db, None, 100).await;
    assert_eq!(all.len(), 3);
    let s1 = all.iter().find(|o| o.shard_id == "s1").expect("s1");
    assert_eq!(s1.found_ms, NOW, "the first finding is kept");
    assert_eq!(s1.modified_ms, NOW - 100_000);
    let s3 = all.iter().find(|o| o.shard_id == "s3").expect("s3");
    assert_eq!(s3.found_ms, NOW + 5_000);
    assert_eq!(
        counts(&mut db, None).await,
        OrphanCounts {
            held: 3,
            held_bytes: 600,
            released: 0
        }
    );
    // A release survives a later finding of the same shard.
    assert_eq!(db.run(release(Some("b1"))).await, rows(3));
    assert_eq!(db.run(hold("b1", first)).await, rows(0));
    assert!(listed(&mut db, None, 100).await.iter().all(|o| o.released));
    // The same shard id on another server is another row.
    assert_eq!(db.run(hold("b2", vec![shard("s1", 100)])).await, rows(1));
    assert_eq!(counts(&mut db, Some("b2")).await.held, 1);
}

#[tokio::test]
async fn a_shard_a_map_names_is_never_held() {
    let mut db = Db::new().await;
    db.ok(create(B, false)).await;
    db.ok(commit(ver(B, "k", "v1", "live"))).await;
    let r = db
        .run(hold(
            "blob-0",
            vec![shard("live-shard-0", 10), shard("orphan", 20)],
        ))
        .await;
    assert_eq!(r, rows(1));
    let held: Vec<String> = listed(&mut db, None, 10)
        .await
        .into_iter()
        .map(|o| o.shard_id)
        .collect();
    assert_eq!(held, ["orphan"]);
}

#[tokio::test]
async fn release_by_server_then_everywhere_counts_what_it_released() {
    let mut db = Db::new().await;
    db.ok(hold("b1", vec![shard("a", 1), shard("b", 2)])).await;
    db.ok(hold("b2", vec![shard("c", 4)])).await;
    assert_eq!(db.run(release(Some("b1"))).await, rows(2));
    assert_eq!(db.run(release(Some("b1"))).await, rows(0), "again: none");
    assert_eq!(db.run(release(Some("nobody"))).await, rows(0));
    assert_eq!(
        counts(&mut db, None).await,
        OrphanCounts {
            held: 1,
            held_bytes: 4,
            released: 2
        }
    );
    // Still held first, then by server and shard.
    let order: Vec<(String, bool)> = listed(&mut db, None, 10)
        .await
        .into_iter()
        .map(|o| (o.shard_id, o.released))
        .collect();
    assert_eq!(
        order,
        [("c".into(), false), ("a".into(), true), ("b".into(), true)]
    );
    assert_eq!(listed(&mut db, None, 1).await.len(), 1, "the limit");
    assert_eq!(listed(&mut db, Some("b2"), 10).await.len(), 1);
    assert_eq!(db.run(release(None)).await, rows(1));
    assert_eq!(counts(&mut db, None).await.released, 3);
    assert_eq!(counts(&mut db, None).await.held_bytes, 0);
}

#[tokio::test]
async fn forget_drops_the_rows_it_names_on_that_server() {
    let mut db = Db::new().await;
    db.ok(hold("b1", vec![shard("a", 1), shard("b", 2)])).await;
    db.ok(hold("b2", vec![shard("a", 1)])).await;
    assert_eq!(db.run(forget("b1", &["a", "zz"])).await, rows(1));
    let left: Vec<(String, String)> = listed(&mut db, None, 10)
        .await
        .into_iter()
        .map(|o| (o.blob_id, o.shard_id))
        .collect();
    assert_eq!(left, [("b1".into(), "b".into()), ("b2".into(), "a".into())]);
    assert_eq!(db.run(forget("b1", &["a"])).await, rows(0), "again: none");
}

#[tokio::test]
async fn a_hold_or_release_without_its_server_is_refused_and_changes_nothing() {
    let mut db = Db::new().await;
    db.ok(hold("b1", vec![shard("a", 1)])).await;
    db.reject(hold("", vec![shard("x", 1)]), invalid()).await;
    db.reject(release(Some("")), invalid()).await;
}

#[tokio::test]
async fn the_hold_is_the_setting_a_restore_writes() {
    let mut db = Db::new().await;
    assert_eq!(q::orphan_hold(db.c()).await.expect("read"), None);
    let h = OrphanHold {
        restored_at_ms: NOW,
        backup_index: 77,
        backup_created_ms: NOW - 60_000,
    };
    let json = serde_json::to_string(&h).expect("json");
    writes::put_setting(db.c(), ORPHAN_HOLD, Some(&json))
        .await
        .expect("write");
    assert_eq!(q::orphan_hold(db.c()).await.expect("read"), Some(h));
    assert_eq!(counts(&mut db, None).await, OrphanCounts::default());
}
