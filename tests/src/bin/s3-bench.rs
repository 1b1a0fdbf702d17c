//! Load tool for the S3 data path on this machine: 3 meta-servers, 6
//! blob-servers and one gateway, all real processes.
//!
//! cargo build --release --workspace
//! cargo run --release -p hamster-tests --bin s3-bench -- [OBJECTS_PER_STREAM]
//!
//! Reports, in order: the gateway's peak RSS growth during one 2 GiB PUT;
//! PUT and GET MB/s of 64 MiB objects with 4 concurrent streams; and the
//! pipeline's own single-process throughput (MD5 + seal + RS encode on one
//! core) on the same bytes, for comparison.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use hamster_gateway::pipeline::encrypt::{SEGMENT_SIZE, SegmentCipher};
use hamster_gateway::pipeline::erasure::Coder;
use hamster_proto::envelope::DataKey;
use hamster_tests::bench::arg;
use hamster_tests::durability::cpu_secs;
use hamster_tests::s3::S3Cluster;
use md5::{Digest, Md5};

const OBJECT: usize = 64 << 20;
const STREAMS: usize = 4;
const BIG: usize = 2 << 30;

/// (current RSS, peak RSS) of a process, bytes.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU seconds used by the gateway, the blob-servers and the meta tier.
fn cpu_by_tier(s: &S3Cluster) -> [f64; 3] {
    let sum = |nodes: &[hamster_tests::Node]| {
        nodes
            .iter()
            .filter_map(|&i| s.c.node(i).pid())
            .map(cpu_secs)
            .sum::<f64>()
    };
    [sum(&[s.gw]), sum(&s.blobs), sum(&s.metas)]
}

fn mb(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

#[tokio::main]
async fn main() {
    let per_stream = arg(1, 4);
    let s = S3Cluster::build_logged(3, 6, &[], &[], "warn").await;
    let c = s.client();
    c.create_bucket().bucket("bench").send().await.expect("mb");
    let pid = s.c.node(s.gw).pid().expect("gateway pid");
    let data: Vec<u8> = (0..OBJECT)
        .map(|i| ((i * 2_654_435_761) >> 13) as u8)
        .collect();
    let body = bytes::Bytes::from(data);

    // Warm up (connections, caches), then the 2 GiB PUT; the kernel keeps
    // the process's peak RSS (VmHWM).
    c.put_object()
        .bucket("bench")
        .key("warm")
        .body(ByteStream::from(body.slice(..8 << 20)))
        .send()
        .await
        .expect("warm-up put");
    let (base, _) = rss(pid);
    let big = bytes::Bytes::from(vec![7u8; BIG]);
    let t = Instant::now();
    c.put_object()
        .bucket("bench")
        .key("big")
        .body(ByteStream::from(big))
        .send()
        .await
        .expect("2 GiB put");
    let big_time = t.elapsed();
    let (_, hwm) = rss(pid);
    println!(
        "2 GiB PUT: {:.0} MB/s; gateway RSS {:.1} MiB before, peak {:.1} MiB: grew {:.1} MiB",
        mb(BIG, big_time),
        base as f64 / 1048576.0,
        hwm as f64 / 1048576.0,
        (hwm.saturating_sub(base)) as f64 / 1048576.0
    );

    // 4 streams of 64 MiB PUTs, then GETs of the same objects.
    let c = Arc::new(c);
    let total = STREAMS * per_stream * OBJECT;
    let cpu0 = cpu_by_tier(&s);
    let t = Instant::now();
    let tasks: Vec<_> = (0..STREAMS)
        .map(|w| {
            let (c, body) = (c.clone(), body.clone());
            tokio::spawn(async move {
                for i in 0..per_stream {
                    c.put_object()
                        .bucket("bench")
                        .key(format!("obj-{w}-{i}"))
                        .body(ByteStream::from(body.clone()))
                        .send()
                        .await
                        .expect("put");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("put task");
    }
    let put = t.elapsed();
    let cpu1 = cpu_by_tier(&s);
    let t = Instant::now();
    let tasks: Vec<_> = (0..STREAMS)
        .map(|w| {
            let c = c.clone();
            tokio::spawn(async move {
                for i in 0..per_stream {
                    let out = c
                        .get_object()
                        .bucket("bench")
                        .key(format!("obj-{w}-{i}"))
                        .send()
                        .await
                        .expect("get");
                    let got = out.body.collect().await.expect("body").into_bytes();
                    assert_eq!(got.len(), OBJECT);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("get task");
    }
    let get = t.elapsed();
    let cpu2 = cpu_by_tier(&s);
    println!(
        "{STREAMS} streams x {per_stream} x 64 MiB: PUT {:.0} MB/s, GET {:.0} MB/s",
        mb(total, put),
        mb(total, get)
    );
    let per_gib =
        |a: [f64; 3], b: [f64; 3], i: usize| (b[i] - a[i]) / (total as f64 / (1u64 << 30) as f64);
    for (phase, a, b) in [("PUT", cpu0, cpu1), ("GET", cpu1, cpu2)] {
        println!(
            "  {phase} CPU s per GiB: gateway {:.2}, blob-servers {:.2}, meta {:.2}",
            per_gib(a, b, 0),
            per_gib(a, b, 1),
            per_gib(a, b, 2)
        );
    }

    // The pipeline alone, one core, on the same bytes.
    let cipher = SegmentCipher::new(&DataKey::generate());
    let coder = Coder::new(4, 2).expect("4+2");
    let t = Instant::now();
    let mut md5 = Md5::new();
    for (i, seg) in body.chunks(SEGMENT_SIZE).enumerate() {
        md5.update(seg);
        let sealed = cipher.seal(i as u64, false, seg);
        std::hint::black_box(coder.encode(sealed));
    }
    std::hint::black_box(md5.finalize());
    println!(
        "pipeline alone (MD5 + seal + RS 4+2, one core): {:.0} MB/s",
        mb(OBJECT, t.elapsed())
    );
}
