//! Blob-server metrics on a real cluster (issue 23): each blob-server
//! serves /metrics; PUTs raise the shard gauges by the shards the maps
//! name (and match the files on disk), bytes stored and put counts; GETs
//! raise get counts and bytes read; a SIGKILLed and restarted blob-server
//! reports the same shards; a flipped byte found by a scrub counts a
//! checksum failure on the server that holds it.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use hamster_tests::durability::{file_name, flip_payload_byte, units_of};
use hamster_tests::s3::{S3Cluster, pattern};
use hamster_tests::{Cluster, Kind, Node, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A cluster of one meta-server, three blob-servers serving metrics (their
/// addresses in order) and a gateway.
async fn cluster() -> (S3Cluster, Vec<String>) {
    let mut c = Cluster::new();
    let metas = vec![c.start(Kind::Meta, "meta-1")];
    c.wait_leader(&metas).await;
    let mut blobs = Vec::new();
    let mut scrapes = Vec::new();
    for i in 1..=3 {
        let b = c.prepare(Kind::Blob, &format!("blob-{i}"));
        let addr = format!("127.0.0.1:{}", free_port());
        c.add_args(b, &[&format!("--metrics-listen={addr}")]);
        c.spawn_prepared(b);
        blobs.push(b);
        scrapes.push(addr);
    }
    for &b in &blobs {
        c.wait_healthy(b).await;
    }
    c.wait_blobs_registered(metas[0], blobs.len()).await;
    let gw = c.start(Kind::Gateway, "gw-1");
    c.wait_healthy(gw).await;
    let (access_key_id, secret) = c.create_access_key("test");
    let s = S3Cluster {
        c,
        metas,
        blobs,
        gw,
        access_key_id,
        secret,
    };
    (s, scrapes)
}

/// `GET /metrics` at `addr`: series (name with labels) to value.
async fn scrape(addr: &str) -> HashMap<String, f64> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    assert!(out.starts_with("HTTP/1.1 200"), "{addr}: {out}");
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, v) = l.rsplit_once(' ')?;
            Some((name.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// One series of one scrape (0 if absent).
fn of(m: &HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

/// One series summed over every blob-server.
async fn sum(scrapes: &[String], series: &str) -> f64 {
    let mut total = 0.0;
    for a in scrapes {
        total += of(&scrape(a).await, series);
    }
    total
}

const SHARDS: &str = "hamster_blob_shards";
const STORED: &str = "hamster_blob_bytes_stored";
const PUTS: &str = "hamster_blob_ops_total{op=\"put\"}";
const GETS: &str = "hamster_blob_ops_total{op=\"get\"}";
const READ: &str = "hamster_blob_bytes_read_total";
const BY_SCRUB: &str = "hamster_blob_checksum_failures_total{found_by=\"scrub\"}";

#[tokio::test(flavor = "multi_thread")]
async fn blob_metrics_follow_puts_gets_restarts_and_corruption() {
    let (s, scrapes) = cluster().await;
    let c = s.client();
    for a in &scrapes {
        let m = scrape(a).await;
        assert!(
            m.keys()
                .any(|k| k.starts_with("hamster_build_info{role=\"blob\"")),
            "{a}: {m:?}"
        );
        assert!(m.contains_key("hamster_blob_free_bytes"), "{a}: {m:?}");
        assert!(of(&m, "hamster_blob_capacity_bytes") > 0.0, "{a}");
    }
    let (shards0, stored0, puts0) = (
        sum(&scrapes, SHARDS).await,
        sum(&scrapes, STORED).await,
        sum(&scrapes, PUTS).await,
    );

    c.create_bucket()
        .bucket("metrics")
        .send()
        .await
        .expect("mb");
    let mut expected = 0usize;
    for i in 0..3u8 {
        let key = format!("obj-{i}");
        c.put_object()
            .bucket("metrics")
            .key(&key)
            .body(ByteStream::from(pattern(200_000, i)))
            .send()
            .await
            .expect("put");
        let v = s.c.version(s.metas[0], "metrics", &key, "").await;
        expected += units_of(&v).iter().map(|u| u.shards.len()).sum::<usize>();
    }
    assert!(expected >= 3, "{expected} shards");
    let shards = sum(&scrapes, SHARDS).await;
    assert_eq!(
        shards - shards0,
        expected as f64,
        "shard gauges after the PUTs"
    );
    assert_eq!(
        shards,
        s.shard_file_count() as f64,
        "gauges against the files"
    );
    assert!(sum(&scrapes, STORED).await - stored0 >= 3.0 * 200_000.0);
    assert!(sum(&scrapes, PUTS).await - puts0 >= expected as f64);

    let (gets0, read0) = (sum(&scrapes, GETS).await, sum(&scrapes, READ).await);
    for i in 0..3u8 {
        let out = c
            .get_object()
            .bucket("metrics")
            .key(format!("obj-{i}"))
            .send()
            .await
            .expect("get");
        let body = out.body.collect().await.expect("body").into_bytes();
        assert_eq!(body.len(), 200_000);
    }
    assert!(sum(&scrapes, GETS).await - gets0 >= 3.0, "get counts");
    assert!(
        sum(&scrapes, READ).await - read0 >= 3.0 * 200_000.0 / 2.0,
        "bytes read"
    );

    // SIGKILL and restart: the count comes back from disk.
    let mut s = s;
    let (b, addr) = (s.blobs[0], scrapes[0].clone());
    let before = of(&scrape(&addr).await, SHARDS);
    assert!(before > 0.0);
    s.c.kill(b);
    s.c.restart(b);
    s.c.wait_healthy(b).await;
    assert_eq!(of(&scrape(&addr).await, SHARDS), before, "after a restart");

    // A flipped byte, found by an on-demand scrub.
    let (victim, path) = first_shard(&s);
    let at = s
        .blobs
        .iter()
        .position(|&x| x == victim)
        .expect("one of ours");
    let failures = of(&scrape(&scrapes[at]).await, BY_SCRUB);
    flip_payload_byte(&path);
    s.c.scrub_now(s.metas[0], Duration::from_secs(60)).await;
    assert!(s.moved_aside(victim, &file_name(&path)), "not moved aside");
    assert_eq!(
        of(&scrape(&scrapes[at]).await, BY_SCRUB) - failures,
        1.0,
        "checksum failures on the server holding the flipped shard"
    );
}

/// A shard file of some blob-server: its server and path.
fn first_shard(s: &S3Cluster) -> (Node, std::path::PathBuf) {
    s.blobs
        .iter()
        .find_map(|&b| s.shard_files(b).into_iter().next().map(|p| (b, p)))
        .expect("a shard file")
}
