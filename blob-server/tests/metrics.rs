//! Blob-server metrics, in-process over real mTLS: puts, gets and
//! deletes move the op and byte counters and the shard and byte gauges;
//! a corrupt shard found by a read or by the scrub counts a checksum
//! failure; a store opened again on the same dir publishes what is on
//! disk. The recorder is process-wide (nextest runs each test in its own
//! process), so counters are compared as deltas.

mod common;

use common::{BlobNode, Ca, FakeRegistry, client, get, put, scrub_done};
use hamster_blob::store::Store;
use hamster_proto::{ErrorCode, Role, pb};

const LEN: usize = 200_000;

/// The value of one series (`name{labels}` exactly as rendered); 0 if absent.
fn value(series: &str) -> f64 {
    let text = hamster_proto::metrics::render();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, v) = l.rsplit_once(' ')?;
            (name == series).then(|| v.parse::<f64>().expect("a number"))
        })
        .unwrap_or(0.0)
}

fn flip(node: &BlobNode, id: &str) {
    let path = node.shard_path(id);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[64 + 100_000] ^= 1;
    std::fs::write(&path, bytes).expect("write");
}

fn file_len(node: &BlobNode, id: &str) -> f64 {
    std::fs::metadata(node.shard_path(id)).expect("stat").len() as f64
}

#[tokio::test]
async fn ops_bytes_gauges_and_checksum_failures_are_counted() {
    hamster_proto::metrics::install(Role::Blob).expect("install");
    hamster_blob::observe::describe();
    let ca = Ca::new();
    let registry = FakeRegistry::default();
    let meta_addr = registry.start(&ca).await;
    let node = BlobNode::start(&ca, "blob-1", vec![meta_addr]).await;
    node.store.publish_metrics();
    let text = hamster_proto::metrics::render();
    assert!(text.contains("# HELP hamster_blob_shards"), "{text}");
    assert!(
        text.contains("hamster_blob_ops_total{op=\"put\"} 0"),
        "{text}"
    );
    assert_eq!(value("hamster_blob_shards"), 0.0);

    let puts = value("hamster_blob_ops_total{op=\"put\"}");
    let written = value("hamster_blob_bytes_written_total");
    let file_fsyncs = value("hamster_blob_fsync_seconds_count{what=\"file\"}");
    let mut gw = client(&ca, Role::Gateway, &node.addr);
    for i in 0..4 {
        put(&mut gw, &format!("m-{i}"), i, &common::data(LEN, i)).await;
    }
    assert_eq!(value("hamster_blob_ops_total{op=\"put\"}") - puts, 4.0);
    assert_eq!(
        value("hamster_blob_bytes_written_total") - written,
        4.0 * LEN as f64
    );
    assert_eq!(value("hamster_blob_shards"), 4.0);
    let on_disk: f64 = (0..4).map(|i| file_len(&node, &format!("m-{i}"))).sum();
    assert_eq!(value("hamster_blob_bytes_stored"), on_disk);
    // A histogram's count moves once the recorder summarised it.
    assert!(value("hamster_blob_fsync_seconds_count{what=\"file\"}") - file_fsyncs >= 4.0);
    assert!(value("hamster_blob_op_seconds_count{op=\"put\"}") >= 4.0);

    // A good get, then a get of a missing shard (an error of its kind).
    let gets = value("hamster_blob_ops_total{op=\"get\"}");
    let read = value("hamster_blob_bytes_read_total");
    assert_eq!(get(&mut gw, "m-0").await.expect("get").len(), LEN);
    let missing = get(&mut gw, "nope").await.expect_err("missing");
    assert_eq!(ErrorCode::of(&missing), Some(ErrorCode::NoSuchShard));
    assert_eq!(value("hamster_blob_ops_total{op=\"get\"}") - gets, 2.0);
    assert_eq!(value("hamster_blob_bytes_read_total") - read, LEN as f64);
    assert_eq!(
        value("hamster_blob_op_errors_total{op=\"get\",kind=\"NoSuchShard\"}"),
        1.0
    );

    // A read of a corrupt shard: counted, and the shard moved aside.
    flip(&node, "m-1");
    let by_read = value("hamster_blob_checksum_failures_total{found_by=\"read\"}");
    let bad = get(&mut gw, "m-1").await.expect_err("corrupt");
    assert_eq!(ErrorCode::of(&bad), Some(ErrorCode::ShardCorrupt));
    assert_eq!(
        value("hamster_blob_checksum_failures_total{found_by=\"read\"}") - by_read,
        1.0
    );
    assert_eq!(
        value("hamster_blob_op_errors_total{op=\"get\",kind=\"ShardCorrupt\"}"),
        1.0
    );
    assert_eq!(value("hamster_blob_shards"), 3.0);

    // The scrub finds another.
    flip(&node, "m-2");
    let by_scrub = value("hamster_blob_checksum_failures_total{found_by=\"scrub\"}");
    let checked = value("hamster_blob_scrub_shards_checked_total{pass=\"on_demand\"}");
    let mut meta = client(&ca, Role::Meta, &node.addr);
    let pass = scrub_done(&mut meta).await;
    assert_eq!(pass.corrupt_count, 1);
    assert_eq!(
        value("hamster_blob_checksum_failures_total{found_by=\"scrub\"}") - by_scrub,
        1.0
    );
    assert_eq!(
        value("hamster_blob_scrub_shards_checked_total{pass=\"on_demand\"}") - checked,
        pass.shards_checked as f64
    );
    // m-0, m-2 and m-3: the one moved aside by the read is not walked.
    assert_eq!(pass.shards_checked, 3);
    assert_eq!(
        value("hamster_blob_scrub_pass_progress{pass=\"on_demand\"}"),
        1.0
    );
    assert!(value("hamster_blob_scrub_last_pass_timestamp_seconds{pass=\"on_demand\"}") > 1e9);
    assert_eq!(value("hamster_blob_shards"), 2.0);

    // A delete lowers the gauges by the file it removed.
    let deletes = value("hamster_blob_ops_total{op=\"delete\"}");
    let gone = file_len(&node, "m-3");
    let stored = value("hamster_blob_bytes_stored");
    meta.delete_shard(pb::DeleteShardRequest {
        shard_id: "m-3".into(),
    })
    .await
    .expect("delete");
    assert_eq!(
        value("hamster_blob_ops_total{op=\"delete\"}") - deletes,
        1.0
    );
    assert_eq!(value("hamster_blob_shards"), 1.0);
    assert_eq!(value("hamster_blob_bytes_stored"), stored - gone);

    // Opened again (as after a restart), the store publishes what is on disk.
    let again = Store::open(node.dir.path()).await.expect("reopen");
    metrics::gauge!("hamster_blob_shards").set(0.0);
    again.publish_metrics();
    assert_eq!(value("hamster_blob_shards"), 1.0);
    assert_eq!(value("hamster_blob_bytes_stored"), file_len(&node, "m-0"));
}

#[tokio::test]
async fn a_put_of_a_taken_id_is_an_error_of_its_kind() {
    hamster_proto::metrics::install(Role::Blob).expect("install");
    let ca = Ca::new();
    let node = BlobNode::start(&ca, "blob-2", vec![]).await;
    let mut gw = client(&ca, Role::Gateway, &node.addr);
    put(&mut gw, "once", 0, &common::data(1000, 1)).await;
    let chunks = vec![pb::ShardChunk {
        shard_id: "once".into(),
        shard_index: 0,
        data: vec![1, 2, 3].into(),
    }];
    let e = gw
        .put_shard(tokio_stream::iter(chunks))
        .await
        .expect_err("taken");
    assert_eq!(ErrorCode::of(&e), Some(ErrorCode::ShardExists));
    assert_eq!(
        value("hamster_blob_op_errors_total{op=\"put\",kind=\"ShardExists\"}"),
        1.0
    );
}
