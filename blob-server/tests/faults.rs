//! Faults that are not corruption, over real mTLS with a fake meta
//! Registry: a shard that cannot be read (here: a directory where its file
//! should be, so every read of it fails) is answered as an I/O error and
//! never moved aside by a read; the scrub judges it unreadable only if it
//! fails again in a later pass. A listing that cannot be whole fails
//! instead of coming back short. Quarantined copies are expired by the
//! scrub a week after they were moved aside.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{BlobNode, Ca, FakeRegistry, client, get, put, scrub_done};
use hamster_proto::{ErrorCode, Role, pb};

const LEN: usize = 200_000;

async fn setup(n: usize) -> (Ca, FakeRegistry, BlobNode) {
    let ca = Ca::new();
    let registry = FakeRegistry::default();
    let meta = registry.start(&ca).await;
    let node = BlobNode::start(&ca, "blob-3", vec![meta]).await;
    let mut gw = client(&ca, Role::Gateway, &node.addr);
    for i in 0..n {
        put(&mut gw, &format!("s-{i}"), 0, &common::data(LEN, i as u32)).await;
    }
    (ca, registry, node)
}

/// Puts a directory where shard `id`'s file is; answers the file's bytes.
fn unreadable(node: &BlobNode, id: &str) -> Vec<u8> {
    let path = node.shard_path(id);
    let bytes = std::fs::read(&path).expect("read");
    std::fs::remove_file(&path).expect("rm");
    std::fs::create_dir(&path).expect("dir");
    bytes
}

fn readable(node: &BlobNode, id: &str, bytes: &[u8]) {
    let path = node.shard_path(id);
    std::fs::remove_dir(&path).expect("rmdir");
    std::fs::write(&path, bytes).expect("write");
}

fn aside(node: &BlobNode, id: &str) -> bool {
    node.dir.path().join("quarantine").join(id).exists()
}

#[tokio::test]
async fn an_unreadable_shard_is_an_io_error_and_judged_only_if_it_fails_twice() {
    let (ca, registry, node) = setup(2).await;
    let mut gw = client(&ca, Role::Gateway, &node.addr);
    let mut meta = client(&ca, Role::Meta, &node.addr);
    let bytes = unreadable(&node, "s-0");

    // Reads answer an I/O error, not corruption, and move nothing.
    let e = get(&mut gw, "s-0").await.expect_err("unreadable");
    assert_eq!(ErrorCode::of(&e), Some(ErrorCode::Internal), "{e:?}");
    let e = meta
        .stat_shard(pb::StatShardRequest {
            shard_id: "s-0".into(),
        })
        .await
        .expect_err("unreadable");
    assert_eq!(ErrorCode::of(&e), Some(ErrorCode::Internal), "{e:?}");
    assert!(!aside(&node, "s-0"));

    // One failing pass judges nothing.
    let pass = scrub_done(&mut meta).await;
    assert_eq!((pass.shards_checked, pass.corrupt_count), (1, 0));
    assert!(!aside(&node, "s-0"));
    assert!(registry.bad_ids().is_empty());

    // It was a passing fault: served again, and a good pass forgets it.
    readable(&node, "s-0", &bytes);
    assert_eq!(
        get(&mut gw, "s-0").await.expect("back"),
        common::data(LEN, 0)
    );
    let pass = scrub_done(&mut meta).await;
    assert_eq!((pass.shards_checked, pass.corrupt_count), (2, 0));

    // Failing in two passes in a row: unreadable, moved aside, reported.
    unreadable(&node, "s-0");
    let pass = scrub_done(&mut meta).await;
    assert_eq!(pass.corrupt_count, 0, "the earlier failure was forgotten");
    assert!(!aside(&node, "s-0"));
    let pass = scrub_done(&mut meta).await;
    assert_eq!(pass.corrupt, ["s-0"]);
    assert!(aside(&node, "s-0"));
    let reports = registry.reports.lock().expect("lock").clone();
    let bad: Vec<_> = reports.iter().flat_map(|(_, r)| r.bad.clone()).collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].shard_id, "s-0");
    assert!(bad[0].reason.contains("unreadable"), "{:?}", bad[0].reason);
    // The other shard was never in question.
    assert_eq!(
        get(&mut gw, "s-1").await.expect("good"),
        common::data(LEN, 1)
    );
}

#[tokio::test]
async fn a_listing_that_cannot_be_whole_fails() {
    let (ca, _registry, node) = setup(3).await;
    let mut meta = client(&ca, Role::Meta, &node.addr);
    let list = async |meta: &mut hamster_proto::pb::blob_client::BlobClient<_>| {
        let mut s = meta
            .list_shards(pb::ListShardsRequest {
                modified_before_ms: i64::MAX,
            })
            .await?
            .into_inner();
        let mut n = 0;
        while s.message().await?.is_some() {
            n += 1;
        }
        Ok::<_, tonic::Status>(n)
    };
    assert_eq!(list(&mut meta).await.expect("whole"), 3);
    // The shard tree gone from under the server (a disk unmounted): an
    // error, not an empty list the meta tier would take as every shard lost.
    std::fs::remove_dir_all(node.dir.path().join("shards")).expect("rm");
    let e = list(&mut meta).await.expect_err("not whole");
    assert_eq!(ErrorCode::of(&e), Some(ErrorCode::Internal), "{e:?}");
}

fn age(path: &Path, days: u64) {
    let t = SystemTime::now() - Duration::from_secs(days * 24 * 3600);
    std::fs::File::open(path)
        .expect("open")
        .set_modified(t)
        .expect("set mtime");
}

#[tokio::test]
async fn the_scrub_removes_copies_quarantined_over_a_week_ago() {
    let (ca, _registry, node) = setup(3).await;
    let mut meta = client(&ca, Role::Meta, &node.addr);
    // s-0 moved aside long ago and never freed; s-1 moved aside just now,
    // though written long ago (the week counts from when it was moved).
    assert!(node.store.quarantine("s-0").await.expect("aside"));
    age(&node.dir.path().join("quarantine/s-0"), 8);
    age(&node.shard_path("s-1"), 30);
    assert!(node.store.quarantine("s-1").await.expect("aside"));
    let pass = scrub_done(&mut meta).await;
    assert_eq!(pass.shards_checked, 1);
    assert!(!aside(&node, "s-0"), "expired");
    assert!(aside(&node, "s-1"), "kept");
}
