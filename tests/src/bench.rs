//! What the benchmark binaries (src/bin/*-bench.rs) share: their cluster,
//! filling it with objects, MB/s, and how a load's report is printed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;

use crate::Node;
use crate::load::{LoadReport, quantile};
use crate::s3::{ClusterSpec, S3Cluster, strings};

/// The `i`-th command-line argument as a number, or `default` if it is
/// absent or not one.
pub fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// MB (10^6 bytes) per second.
pub fn mb(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64().max(1e-9) / 1e6
}

/// A benchmark cluster: 3 meta-servers with a quick repair planner,
/// `blobs` blob-servers with background scrub out of the way (passes run
/// on demand only) and repair reads at `repair_rate` MB/s, one gateway,
/// logs at warn.
pub fn bench_spec(blobs: usize, repair_rate: &str) -> ClusterSpec {
    ClusterSpec {
        metas: 3,
        blobs,
        meta_args: strings(&["--repair-every-ms=500", "--blob-down-after-secs=3"]),
        blob_args: vec![
            "--scrub-pause-secs=86400".into(),
            "--scrub-rate=1".into(),
            format!("--repair-rate={repair_rate}"),
        ],
        log_level: "warn".into(),
        ..ClusterSpec::default()
    }
}

/// Starts the cluster `spec` describes with profile 4+2 and the bucket
/// "bench"; answers it and a client of its gateway.
pub async fn bench_cluster(spec: &ClusterSpec) -> (S3Cluster, Arc<aws_sdk_s3::Client>) {
    let s = S3Cluster::build_spec(spec).await;
    let run = s.c.admin_cli(&["profile", "set", "4+2"]);
    assert!(run.ok(), "profile: {run}");
    // The gateway's view refreshes every 2 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let c = Arc::new(s.client());
    c.create_bucket().bucket("bench").send().await.expect("mb");
    (s, c)
}

/// PUTs `total_mib` of `object`-byte objects "obj-{i}" into `bucket`, from
/// `streams` streams; prints the rate and answers how many objects.
pub async fn fill(
    c: &Arc<aws_sdk_s3::Client>,
    bucket: &str,
    total_mib: usize,
    object: usize,
    streams: usize,
) -> usize {
    let body = bytes::Bytes::from(
        (0..object)
            .map(|i| ((i * 2_654_435_761) >> 13) as u8)
            .collect::<Vec<u8>>(),
    );
    let n = (total_mib << 20) / object.max(1);
    let t = Instant::now();
    let tasks: Vec<_> = (0..streams)
        .map(|w| {
            let (c, body, bucket) = (c.clone(), body.clone(), bucket.to_string());
            tokio::spawn(async move {
                for i in (w..n).step_by(streams) {
                    c.put_object()
                        .bucket(&bucket)
                        .key(format!("obj-{i}"))
                        .body(ByteStream::from(body.clone()))
                        .send()
                        .await
                        .expect("put");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("load task");
    }
    println!(
        "loaded {n} x {:.1} MiB in {:.1?} ({:.0} MB/s)",
        object as f64 / 1048576.0,
        t.elapsed(),
        mb((n * object) as u64, t.elapsed())
    );
    n
}

/// Bytes of the shard files on `blob`.
pub fn shard_bytes(s: &S3Cluster, blob: Node) -> u64 {
    s.shard_files(blob)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// A load's report as rows of a markdown table: rate, then the latency
/// of each kind of request, then every failure kept.
pub fn print_load(what: &str, streams: usize, r: &LoadReport) {
    println!(
        "| {what}: ops/s ({streams} streams PUT+GET) | {:.1} ({} ok, {} failed, {:.0} MB/s) |",
        r.ops_per_sec(),
        r.ok,
        r.failed,
        mb(r.bytes, r.elapsed)
    );
    for (kind, lat) in [("PUT", &r.put_latency), ("GET", &r.get_latency)] {
        println!(
            "| {what}: {kind} latency p50 / p99 | {:.1?} / {:.1?} |",
            quantile(lat, 0.5),
            quantile(lat, 0.99)
        );
    }
    for e in &r.errors {
        println!("|   failure | {e} |");
    }
}
