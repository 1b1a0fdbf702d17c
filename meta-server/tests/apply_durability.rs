//! The durability view: which units (versions, completed parts, open
//! uploads' parts) count as short of k+m good shards after degraded
//! commits, scrub faults and silent blob-servers, and the order the
//! repair planner reads them in. The repair's compare-and-set and the
//! rule on freed shards are in apply_repair.rs.

mod common;

use common::*;

const B: &str = "bkt";

/// A versioned bucket and four blob-servers (see `common::versioned_with_blobs`).
async fn cluster() -> Db {
    versioned_with_blobs(B, 4).await
}

/// (under_replicated, unrecoverable, repair_queue).
async fn counts(db: &mut Db) -> (u64, u64, u64) {
    let s = db.summary().await;
    (s.under_replicated, s.unrecoverable, s.repair_queue)
}

fn scrub(blob_id: &str, bad: &[&str], pass_finished_ms: i64) -> Op {
    Op::RecordScrub {
        blob_id: blob_id.into(),
        bad: bad
            .iter()
            .map(|id| BadShard {
                shard_id: id.to_string(),
                reason: format!("{id}: block 0 checksum mismatch"),
            })
            .collect(),
        pass_finished_ms,
    }
}

fn down(id: &str, silent_since_ms: i64) -> Op {
    Op::MarkBlobDown {
        id: id.into(),
        silent_since_ms,
    }
}

fn heartbeat(id: &str) -> Op {
    Op::BlobHeartbeat {
        id: id.into(),
        capacity_bytes: 1000,
        free_bytes: 500,
        shards_stored: 0,
        bytes_stored: 0,
    }
}

/// `tag`'s version with the shard at `missing` left out (a degraded PUT).
fn degraded(key: &str, id: &str, tag: &str, missing: u32) -> Version {
    let mut v = ver(B, key, id, tag);
    if let Some(m) = v.shard_map.as_mut() {
        m.shards.retain(|s| s.index != missing);
    }
    v
}

async fn faults(db: &mut Db) -> usize {
    rows_of(&db.dump().await, "shard_faults").len()
}

#[tokio::test]
async fn a_healthy_unit_counts_nothing_and_a_degraded_commit_counts() {
    let mut db = cluster().await;
    db.ok(commit(ver(B, "a", "v1", "a"))).await;
    assert_eq!(db.summary().await, DurabilitySummary::default());
    assert_eq!(db.degraded(10).await, vec![]);

    let short = degraded("b", "v2", "b", 2);
    db.ok(commit(short.clone())).await;
    assert_eq!(counts(&mut db).await, (1, 0, 1));
    assert_eq!(
        db.degraded(10).await,
        vec![DegradedUnit {
            unit: Unit::version(B, "b", "v2", 0),
            map: short.shard_map.clone().expect("map"),
            good: vec![0, 1],
            data_shards: 2,
            total_shards: 3,
        }]
    );

    // Two indexes missing of 2+1: below k, nothing to rebuild from.
    let mut worse = degraded("c", "v3", "c", 2);
    if let Some(m) = worse.shard_map.as_mut() {
        m.shards.retain(|s| s.index != 1);
    }
    db.ok(commit(worse)).await;
    assert_eq!(counts(&mut db).await, (2, 1, 1));
}

#[tokio::test]
async fn scrub_faults_count_only_for_shards_named_on_the_reporting_server() {
    let mut db = cluster().await;
    db.ok(commit(ver(B, "a", "v1", "a"))).await;

    // a-shard-1 is named on blob-1; a-shard-0 lives on blob-0, and
    // "stray" is named by nothing: both are ignored.
    let r = db
        .run(scrub("blob-1", &["a-shard-1", "stray", "a-shard-0"], 0))
        .await;
    assert_eq!(r, Response::Ok);
    assert_eq!(faults(&mut db).await, 1);
    assert_eq!(counts(&mut db).await, (1, 0, 1));
    let units = db.degraded(10).await;
    assert_eq!(units.len(), 1);
    assert_eq!(units[0].good, vec![0, 2]);

    // Reported again later: still one fault, as first reported.
    db.run_at(NOW + 5, scrub("blob-1", &["a-shard-1"], 0)).await;
    let dump = db.dump().await;
    let rows = rows_of(&dump, "shard_faults");
    assert_eq!(
        rows,
        vec![
            "shard_faults('a-shard-1','blob-1','a-shard-1: block 0 checksum mismatch',1600000000000)"
        ]
    );

    // An unknown reporter is refused and records nothing.
    db.reject(
        scrub("blob-9", &["a-shard-2"], NOW),
        MetaError::NoSuchBlobServer("blob-9".into()),
    )
    .await;

    // A second fault leaves one good shard of k=2: unrecoverable.
    db.ok(scrub("blob-0", &["a-shard-0"], 0)).await;
    assert_eq!(counts(&mut db).await, (1, 1, 0));
    assert_eq!(db.degraded(10).await[0].good, vec![2]);
}

#[tokio::test]
async fn last_scrub_is_the_oldest_finished_pass_among_servers_not_down() {
    let mut db = cluster().await;
    assert_eq!(db.summary().await.last_scrub_ms, 0);
    db.ok(scrub("blob-0", &[], NOW - 50)).await;
    db.ok(scrub("blob-1", &[], NOW - 40)).await;
    db.ok(scrub("blob-2", &[], NOW - 30)).await;
    // blob-3 never finished a pass.
    assert_eq!(db.summary().await.last_scrub_ms, 0);
    db.ok(scrub("blob-3", &[], NOW - 60)).await;
    assert_eq!(db.summary().await.last_scrub_ms, NOW - 60);
    // A report of no finished pass, or of an older one, changes nothing.
    db.ok(scrub("blob-3", &[], 0)).await;
    db.ok(scrub("blob-3", &[], NOW - 90)).await;
    assert_eq!(db.summary().await.last_scrub_ms, NOW - 60);
    let servers = db.blob_servers().await;
    assert_eq!(servers[3].last_scrub_ms, NOW - 60);
    // A server down does not hold the view back.
    db.ok(down("blob-3", NOW)).await;
    assert_eq!(db.summary().await.last_scrub_ms, NOW - 50);
}

#[tokio::test]
async fn a_blob_server_silent_past_the_grace_is_down_until_it_heartbeats() {
    let mut db = cluster().await;
    db.ok(commit(ver(B, "a", "v1", "a"))).await;

    // Heard from at NOW, after the leader's judgement: stays active.
    assert_eq!(db.run(down("blob-1", NOW - 1)).await, Response::Ok);
    assert_eq!(db.blob_servers().await[1].state, BlobState::Active);
    assert_eq!(counts(&mut db).await, (0, 0, 0));

    assert_eq!(db.run(down("blob-1", NOW)).await, Response::Ok);
    assert_eq!(db.blob_servers().await[1].state, BlobState::Down);
    assert_eq!(counts(&mut db).await, (1, 0, 1));
    let before = db.dump().await;
    assert_eq!(db.run(down("blob-1", NOW + 5)).await, Response::Ok);
    assert_eq!(db.dump().await, before, "already down: nothing changes");
    db.reject(
        down("blob-9", NOW),
        MetaError::NoSuchBlobServer("blob-9".into()),
    )
    .await;

    // Two of three down: below k.
    db.ok(down("blob-0", NOW)).await;
    assert_eq!(counts(&mut db).await, (1, 1, 0));

    // A heartbeat revives each.
    db.run_at(NOW + 10, heartbeat("blob-1")).await;
    assert_eq!(db.blob_servers().await[1].state, BlobState::Active);
    assert_eq!(counts(&mut db).await, (1, 0, 1));
    db.run_at(NOW + 10, heartbeat("blob-0")).await;
    assert_eq!(db.summary().await, DurabilitySummary::default());

    // A registration keeps the server active too.
    db.ok(down("blob-2", NOW + 10)).await;
    let server = blob("blob-2", "10.0.0.2:7000");
    db.run_at(NOW + 20, Op::RegisterBlob { server }).await;
    assert_eq!(db.blob_servers().await[2].state, BlobState::Active);
    assert_eq!(counts(&mut db).await, (0, 0, 0));
}

#[tokio::test]
async fn a_shard_on_a_server_nobody_registered_counts_as_lost() {
    let mut db = cluster().await;
    let mut v = ver(B, "a", "v1", "a");
    if let Some(m) = v.shard_map.as_mut() {
        m.shards[2].blob_id = "blob-unknown".into();
    }
    db.ok(commit(v)).await;
    assert_eq!(counts(&mut db).await, (1, 0, 1));
    assert_eq!(db.degraded(10).await[0].good, vec![0, 1]);
}

#[tokio::test]
async fn parts_of_open_uploads_and_of_completed_versions_are_units() {
    let mut db = cluster().await;
    db.ok(begin(B, "mp", "u1")).await;
    db.ok(put_part(B, "mp", "u1", part(1, MIN_PART_SIZE, "p1")))
        .await;
    let mut p2 = part(2, 10, "p2");
    if let Some(m) = p2.shard_map.as_mut() {
        m.shards.retain(|s| s.index != 0); // a degraded part
    }
    db.ok(put_part(B, "mp", "u1", p2)).await;
    assert_eq!(counts(&mut db).await, (1, 0, 1));
    db.ok(scrub("blob-1", &["p1-shard-1"], 0)).await;
    assert_eq!(counts(&mut db).await, (2, 0, 2));
    let units: Vec<Unit> = db.degraded(10).await.into_iter().map(|d| d.unit).collect();
    assert_eq!(
        units,
        vec![
            Unit::upload_part(B, "mp", "u1", 1),
            Unit::upload_part(B, "mp", "u1", 2)
        ]
    );

    // Re-uploading part 1 replaces its shards: the fault goes with them.
    db.ok(put_part(B, "mp", "u1", part(1, MIN_PART_SIZE, "p1b")))
        .await;
    assert_eq!(counts(&mut db).await, (1, 0, 1));
    assert_eq!(faults(&mut db).await, 0);
    db.ok(scrub("blob-2", &["p1b-shard-2"], 0)).await;

    // Completed, the parts are the version's units, faults and all.
    let etags = [(1, md5_hex(b"p1b")), (2, md5_hex(b"p2"))];
    let listed: Vec<(u32, &str)> = etags.iter().map(|(n, e)| (*n, e.as_str())).collect();
    db.ok(complete(B, "mp", "u1", &listed, "mpv")).await;
    let units: Vec<(Unit, Vec<u32>)> = db
        .degraded(10)
        .await
        .into_iter()
        .map(|d| (d.unit, d.good))
        .collect();
    assert_eq!(
        units,
        vec![
            (Unit::version(B, "mp", "mpv", 1), vec![0, 1]),
            (Unit::version(B, "mp", "mpv", 2), vec![1, 2]),
        ]
    );

    // Deleting the version drops its references and their faults.
    db.ok(del(B, "mp", Some("mpv"), "")).await;
    assert_eq!(db.summary().await, DurabilitySummary::default());
    let dump = db.dump().await;
    assert_eq!(rows_of(&dump, "shard_refs"), Vec::<&String>::new());
    assert_eq!(rows_of(&dump, "shard_faults"), Vec::<&String>::new());
}

#[tokio::test]
async fn aborting_an_upload_drops_its_parts_references() {
    let mut db = cluster().await;
    db.ok(begin(B, "mp", "u1")).await;
    db.ok(put_part(B, "mp", "u1", part(1, 10, "p1"))).await;
    db.ok(scrub("blob-0", &["p1-shard-0"], 0)).await;
    assert_eq!(counts(&mut db).await, (1, 0, 1));
    db.ok(abort(B, "mp", "u1")).await;
    assert_eq!(db.summary().await, DurabilitySummary::default());
    assert_eq!(faults(&mut db).await, 0);
    assert!(q::referenced_shards(db.c()).await.expect("refs").is_empty());
}

#[tokio::test]
async fn degraded_units_puts_what_repair_can_fix_first() {
    let mut db = cluster().await;
    db.ok(commit(ver(B, "a", "v1", "a"))).await;
    db.ok(commit(ver(B, "b", "v2", "b"))).await;
    db.ok(commit(ver(B, "c", "v3", "c"))).await;
    // a: two lost (unrecoverable); b: one lost; c: healthy.
    db.ok(scrub("blob-0", &["a-shard-0", "b-shard-0"], 0)).await;
    db.ok(scrub("blob-1", &["a-shard-1"], 0)).await;
    let order: Vec<String> = db
        .degraded(10)
        .await
        .into_iter()
        .map(|d| d.unit.key)
        .collect();
    assert_eq!(order, vec!["b", "a"]);
    let first = db.degraded(1).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].unit.key, "b");
    assert_eq!(counts(&mut db).await, (2, 1, 1));
}

#[tokio::test]
async fn a_unit_without_parity_counts_once_a_shard_is_lost() {
    let mut db = cluster().await;
    let mut v = ver(B, "a", "v1", "a");
    if let Some(m) = v.shard_map.as_mut() {
        m.data_shards = 3;
        m.parity_shards = 0;
    }
    db.ok(commit(v)).await;
    assert_eq!(counts(&mut db).await, (0, 0, 0));
    db.ok(scrub("blob-2", &["a-shard-2"], 0)).await;
    // Below k+m is below k: nothing to rebuild from.
    assert_eq!(counts(&mut db).await, (1, 1, 0));
}
