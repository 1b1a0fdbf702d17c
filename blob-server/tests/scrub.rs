//! Scrub over real mTLS with a fake meta Registry: a flipped byte and a
//! truncated file are found, moved aside, never served or listed again,
//! and reported (with the end of the pass); a read that hits a corrupt
//! block does the same; undelivered reports are kept and sent later. An
//! on-demand pass is started by `Scrub`, which answers at once (a second
//! call joins it), and followed by `ScrubStatus`, which shows its end only
//! once its report was delivered. Each pass counts the store again.

mod common;

use std::time::Duration;

use common::{BlobNode, Ca, FakeRegistry, client, get, put, scrub_done};
use hamster_proto::{ErrorCode, Role, pb};

const LEN: usize = 300_000;

/// A blob-server reporting to a fake registry, with shards s-0..s-{n}.
async fn setup(n: usize) -> (Ca, FakeRegistry, BlobNode) {
    let ca = Ca::new();
    let registry = FakeRegistry::default();
    let meta = registry.start(&ca).await;
    let node = BlobNode::start(&ca, "blob-7", vec![meta]).await;
    let mut gw = client(&ca, Role::Gateway, &node.addr);
    for i in 0..n {
        put(&mut gw, &format!("s-{i}"), 0, &common::data(LEN, i as u32)).await;
    }
    (ca, registry, node)
}

fn flip(node: &BlobNode, id: &str, at: usize) {
    let path = node.shard_path(id);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[at] ^= 1;
    std::fs::write(&path, bytes).expect("write");
}

fn truncate(node: &BlobNode, id: &str) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(node.shard_path(id))
        .expect("open");
    f.set_len(100_000).expect("truncate");
}

async fn listed(ca: &Ca, node: &BlobNode) -> Vec<String> {
    let mut s = client(ca, Role::Meta, &node.addr)
        .list_shards(pb::ListShardsRequest {
            modified_before_ms: i64::MAX,
        })
        .await
        .expect("list")
        .into_inner();
    let mut ids = Vec::new();
    while let Some(e) = s.message().await.expect("entry") {
        ids.push(e.shard_id);
    }
    ids.sort();
    ids
}

#[tokio::test]
async fn scrub_moves_aside_and_reports_a_flipped_byte_and_a_truncated_file() {
    let (ca, registry, node) = setup(5).await;
    // A payload byte deep in a block: only its CRC can tell.
    flip(&node, "s-1", 64 + 200_000);
    truncate(&node, "s-3");

    let mut meta = client(&ca, Role::Meta, &node.addr);
    let resp = scrub_done(&mut meta).await;
    assert_eq!(resp.shards_checked, 5);
    assert_eq!(resp.corrupt_count, 2);
    let mut corrupt = resp.corrupt.clone();
    corrupt.sort();
    assert_eq!(corrupt, ["s-1", "s-3"]);
    assert!(resp.finished_ms > 0);
    // The three good ones were read whole, header and CRCs included.
    assert!(
        resp.bytes_checked >= 3 * LEN as u64,
        "{}",
        resp.bytes_checked
    );

    // Reported before the end showed, by this node, with the end of the pass.
    let reports = registry.reports.lock().expect("lock").clone();
    let mut bad = registry.bad_ids();
    bad.sort();
    assert_eq!(bad, ["s-1", "s-3"]);
    for (caller, r) in &reports {
        assert_eq!(caller, "blob-7");
        assert_eq!(r.id, "blob-7");
    }
    assert_eq!(
        reports.last().expect("one").1.pass_finished_ms,
        resp.finished_ms
    );
    let reasons: Vec<&str> = reports
        .iter()
        .flat_map(|(_, r)| r.bad.iter().map(|b| b.reason.as_str()))
        .collect();
    assert!(reasons.iter().any(|r| r.contains("block")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("truncated")),
        "{reasons:?}"
    );

    // Never served, stat'ed or listed again; the good ones still are.
    for id in ["s-1", "s-3"] {
        let e = get(&mut meta, id).await.expect_err("aside");
        assert_eq!(ErrorCode::of(&e), Some(ErrorCode::NoSuchShard), "{id}");
        let stat = meta
            .stat_shard(pb::StatShardRequest {
                shard_id: id.into(),
            })
            .await
            .expect("stat");
        assert!(!stat.get_ref().exists);
        assert!(node.dir.path().join("quarantine").join(id).exists());
    }
    assert_eq!(listed(&ca, &node).await, ["s-0", "s-2", "s-4"]);
    assert_eq!(
        get(&mut meta, "s-2").await.expect("good"),
        common::data(LEN, 2)
    );

    // A second pass finds nothing new and reports nothing twice.
    let again = scrub_done(&mut meta).await;
    assert!(
        again.started_ms >= resp.finished_ms,
        "a new pass: {again:?}"
    );
    assert_eq!(again.shards_checked, 3);
    assert!(again.corrupt.is_empty());
    assert_eq!(registry.bad_ids().len(), 2);

    // Deleting a quarantined id removes the copy aside.
    let del = meta
        .delete_shard(pb::DeleteShardRequest {
            shard_id: "s-1".into(),
        })
        .await
        .expect("delete");
    assert!(del.get_ref().existed);
    assert!(!node.dir.path().join("quarantine").join("s-1").exists());
}

#[tokio::test]
async fn a_read_that_hits_a_corrupt_block_moves_the_shard_aside_and_reports_it() {
    let (ca, registry, node) = setup(2).await;
    flip(&node, "s-0", 64 + 100);
    let mut gw = client(&ca, Role::Gateway, &node.addr);
    let e = get(&mut gw, "s-0").await.expect_err("corrupt");
    assert_eq!(ErrorCode::of(&e), Some(ErrorCode::ShardCorrupt));
    // The next read: gone, not corrupt bytes again.
    let e = get(&mut gw, "s-0").await.expect_err("aside");
    assert_eq!(ErrorCode::of(&e), Some(ErrorCode::NoSuchShard));
    // Reported by the background sender.
    tokio::spawn(node.reporter.clone().run());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while registry.bad_ids().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(registry.bad_ids(), ["s-0"]);
    assert_eq!(node.reporter.pending(), 0);
}

#[tokio::test]
async fn undelivered_reports_are_kept_until_the_meta_tier_takes_them() {
    let (_ca, registry, node) = setup(3).await;
    // The meta tier refuses the next two calls (no leader, say).
    *registry.refuse.lock().expect("lock") = 2;
    assert!(node.scrubber.set_aside("s-2", "test".into()).await);
    assert_eq!(node.reporter.pending(), 1);
    assert!(node.reporter.flush().await.is_err());
    assert_eq!(node.reporter.pending(), 1, "kept after a failed delivery");
    assert!(node.reporter.flush().await.is_err());
    node.reporter.flush().await.expect("delivered");
    assert_eq!(node.reporter.pending(), 0);
    assert_eq!(registry.bad_ids(), ["s-2"]);
    // Nothing left: another flush sends nothing.
    node.reporter.flush().await.expect("empty");
    assert_eq!(registry.reports.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn a_dead_meta_server_is_skipped_for_the_next() {
    let ca = Ca::new();
    let registry = FakeRegistry::default();
    let live = registry.start(&ca).await;
    // A port nobody listens on, first in the list.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let node = BlobNode::start(&ca, "blob-9", vec![dead, live]).await;
    put(
        &mut client(&ca, Role::Gateway, &node.addr),
        "x-0",
        0,
        b"abc",
    )
    .await;
    flip(&node, "x-0", 64);
    let resp = scrub_done(&mut client(&ca, Role::Meta, &node.addr)).await;
    assert_eq!(resp.corrupt, ["x-0"]);
    assert_eq!(registry.bad_ids(), ["x-0"]);
}

#[tokio::test]
async fn the_background_walk_finds_rot_on_its_own() {
    let (_ca, registry, node) = setup(4).await;
    truncate(&node, "s-0");
    tokio::spawn(node.reporter.clone().run());
    // Paced at 50 MB/s, a 1 s pause: the first pass starts within 1 s.
    tokio::spawn(node.scrubber.clone().run(50e6, Duration::from_secs(1)));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let done = registry
            .reports
            .lock()
            .expect("lock")
            .iter()
            .any(|(_, r)| r.pass_finished_ms > 0);
        if done {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no pass finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(registry.bad_ids(), ["s-0"]);
    assert!(!node.shard_path("s-0").exists());
}

async fn status(
    meta: &mut pb::blob_client::BlobClient<tonic::transport::Channel>,
) -> pb::ScrubResponse {
    meta.scrub_status(pb::ScrubStatusRequest {})
        .await
        .expect("status")
        .into_inner()
}

#[tokio::test]
async fn scrub_answers_at_once_and_a_second_call_joins_the_running_pass() {
    let (ca, registry, node) = setup(12).await;
    flip(&node, "s-4", 64 + 1000);
    let mut meta = client(&ca, Role::Meta, &node.addr);
    // No on-demand pass since start-up.
    assert_eq!(status(&mut meta).await, pb::ScrubResponse::default());

    // Passes held before their first shard: the answer cannot wait for one.
    let held = node.scrubber.hold().await;
    let answer = Duration::from_secs(10);
    let first = tokio::time::timeout(answer, meta.scrub(pb::ScrubRequest {}))
        .await
        .expect("Scrub waited for the pass")
        .expect("scrub")
        .into_inner();
    assert!(first.started_ms > 0, "{first:?}");
    assert_eq!((first.finished_ms, first.shards_checked), (0, 0));
    // A clock tick later, so a restarted pass would show another start.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let joined = tokio::time::timeout(answer, meta.scrub(pb::ScrubRequest {}))
        .await
        .expect("Scrub waited for the pass")
        .expect("scrub")
        .into_inner();
    assert_eq!(joined.started_ms, first.started_ms, "joined, not restarted");
    let running = status(&mut meta).await;
    assert_eq!(running.started_ms, first.started_ms);
    assert_eq!(running.finished_ms, 0);
    assert!(registry.reports.lock().expect("lock").is_empty());

    // Released, with the meta tier holding reports: the walk ends, but
    // the end does not show until the report is delivered.
    let meta_held = registry.hold.write().await;
    drop(held);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let walked = loop {
        let s = status(&mut meta).await;
        if s.shards_checked == 12 {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never walked: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        walked.finished_ms, 0,
        "shown ended before its report: {walked:?}"
    );
    assert_eq!(walked.corrupt, ["s-4"]);
    drop(meta_held);

    // Delivered: the end shows, with whole counts and the report in.
    let done = loop {
        let s = status(&mut meta).await;
        if s.finished_ms > 0 {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "never ended: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(done.started_ms, first.started_ms);
    assert!(done.finished_ms >= done.started_ms);
    assert_eq!((done.shards_checked, done.corrupt_count), (12, 1));
    assert_eq!(done.corrupt, ["s-4"]);
    // The total was every shard file's size; the good ones were read whole.
    let files: u64 = (0..12)
        .filter(|&i| i != 4)
        .map(|i| {
            std::fs::metadata(node.shard_path(&format!("s-{i}")))
                .expect("file")
                .len()
        })
        .sum();
    let aside = std::fs::metadata(node.dir.path().join("quarantine").join("s-4"))
        .expect("aside")
        .len();
    assert_eq!(done.bytes_total, files + aside);
    assert!(done.bytes_checked >= files && done.bytes_checked < files + aside);
    assert_eq!(registry.bad_ids(), ["s-4"]);
    let last = registry.reports.lock().expect("lock").last().cloned();
    assert_eq!(last.expect("a report").1.pass_finished_ms, done.finished_ms);

    // Ended: the next Scrub starts a new pass over what is left.
    let next = scrub_done(&mut meta).await;
    assert!(next.started_ms >= done.finished_ms);
    assert_eq!((next.shards_checked, next.corrupt_count), (11, 0));
    assert_eq!(next.bytes_checked, files);
}

#[tokio::test]
async fn a_scrub_pass_counts_the_store_again() {
    let (ca, _registry, node) = setup(3).await;
    let before = node.store.counts();
    assert_eq!(before.shards, 3);
    // A shard file lost behind the store's back (a careless operator):
    // the heartbeat's count is mended by the next pass.
    let gone = std::fs::metadata(node.shard_path("s-1"))
        .expect("stat")
        .len();
    std::fs::remove_file(node.shard_path("s-1")).expect("rm");
    assert_eq!(node.store.counts(), before, "not seen yet");
    scrub_done(&mut client(&ca, Role::Meta, &node.addr)).await;
    let after = node.store.counts();
    assert_eq!(after.shards, 2);
    assert_eq!(after.bytes, before.bytes - gone);
}
