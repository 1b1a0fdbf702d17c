//! Repair and scrub benchmark on this machine (not run in CI): 3
//! meta-servers, 8 blob-servers and one gateway, profile 4+2, all real
//! processes, so a lost server's shards always have a spare to go to.
//!
//! cargo build --release --workspace
//! cargo run --release -p hamster-tests --bin repair-bench -- [MIB_OF_OBJECTS] [REPAIR_RATE_MBPS]
//!
//! (defaults: 512 MiB of 4 MiB objects; --repair-rate 64, the default).
//! Reports, as a table:
//! - scrub: an on-demand checksum pass over every shard of a healthy
//!   cluster (Admin.StartRepair, followed with Admin.ScrubProgress), MB/s
//!   of shard bytes checked (all blob-servers together) and the
//!   blob-servers' CPU seconds per GiB checked (/proc utime + stime);
//! - repair, no load: one blob-server SIGKILLed and its disk wiped; MB/s
//!   of rebuilt shards, from the moment the meta tier marks it down until
//!   nothing is under-replicated;
//! - repair under load: the same for a second server while 4 streams of
//!   S3 PUT + GET-verify run; and the load's ops/s without repair (the
//!   same load on the healthy cluster) and during it: the slowdown.

use std::time::{Duration, Instant};

use hamster_tests::bench::{bench_cluster, bench_spec, fill, mb, print_load, shard_bytes};
use hamster_tests::durability::cpu_secs;
use hamster_tests::load::Load;
use hamster_tests::s3::S3Cluster;
use hamster_tests::{Node, files_under};

const OBJECT: usize = 4 << 20;
const STREAMS: usize = 4;
/// How long the load runs on the healthy cluster, for its baseline.
const BASELINE: Duration = Duration::from_secs(20);
const LIMIT: Duration = Duration::from_secs(3600);

fn blob_cpu(s: &S3Cluster) -> f64 {
    s.blobs
        .iter()
        .filter_map(|&b| s.c.node(b).pid())
        .map(cpu_secs)
        .sum()
}

/// SIGKILLs `victim` and deletes its disk; waits until the meta tier marks
/// it down, then until nothing is under-replicated. Answers (bytes its
/// shards held, the repair's duration from the down mark).
async fn lose_and_repair(s: &mut S3Cluster, victim: Node) -> (u64, Duration) {
    let bytes = shard_bytes(s, victim);
    let id = s.c.node(victim).id.clone();
    s.c.kill(victim);
    let _ = std::fs::remove_dir_all(s.data_dir(victim));
    let meta = s.metas[0];
    s.c.wait_blob_state(meta, &id, "down", LIMIT).await;
    let t = Instant::now();
    s.c.wait_durable(meta, "the lost server", LIMIT).await;
    (bytes, t.elapsed())
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let total_mib: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(512);
    let repair_rate: String = args.next().unwrap_or_else(|| "64".into());
    let (mut s, c) = bench_cluster(&bench_spec(8, &repair_rate)).await;
    // Load: total_mib of 4 MiB objects, 4 streams.
    fill(&c, "bench", total_mib, OBJECT, STREAMS).await;

    // (c) scrub: one on-demand pass over everything, CPU around it.
    let cpu0 = blob_cpu(&s);
    let t = Instant::now();
    let passes = s.c.scrub_now(s.metas[0], LIMIT).await;
    let scrub_time = t.elapsed();
    let cpu = blob_cpu(&s) - cpu0;
    let checked: u64 = passes.iter().map(|p| p.bytes_checked).sum();
    let gib = checked as f64 / (1u64 << 30) as f64;

    // Load baseline on the healthy cluster.
    let load = Load::start(&s.client(), "bench", "load/", STREAMS, 4);
    tokio::time::sleep(BASELINE).await;
    let base = load.stop().await;

    // (a) repair with no load.
    let victim = s.blobs[7];
    let (idle_bytes, idle_time) = lose_and_repair(&mut s, victim).await;

    // (b) repair under load.
    let load = Load::start(&s.client(), "bench", "load/", STREAMS, 4);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let victim = s.blobs[6];
    let (busy_bytes, busy_time) = lose_and_repair(&mut s, victim).await;
    let during = load.stop().await;

    let leftover: usize = s
        .blobs
        .iter()
        .filter(|&&b| s.c.is_running(b))
        .map(|&b| files_under(&s.data_dir(b).join("quarantine")).len())
        .sum();
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| scrub: bytes checked | {:.1} MiB in {scrub_time:.1?} |",
        checked as f64 / 1048576.0
    );
    println!(
        "| scrub MB/s (8 servers together) | {:.0} |",
        mb(checked, scrub_time)
    );
    println!(
        "| scrub CPU s per GiB (blob-servers) | {:.2} |",
        cpu / gib.max(1e-9)
    );
    println!(
        "| repair, no load: MB/s rebuilt | {:.1} ({:.1} MiB in {idle_time:.1?}) |",
        mb(idle_bytes, idle_time),
        idle_bytes as f64 / 1048576.0
    );
    println!(
        "| repair under load: MB/s rebuilt | {:.1} ({:.1} MiB in {busy_time:.1?}) |",
        mb(busy_bytes, busy_time),
        busy_bytes as f64 / 1048576.0
    );
    print_load("load alone", STREAMS, &base);
    print_load("load during repair", STREAMS, &during);
    println!(
        "| load slowdown during repair | {:.0}% |",
        (1.0 - during.ops_per_sec() / base.ops_per_sec().max(1e-9)) * 100.0
    );
    println!("| shards in quarantine at the end | {leftover} |");
}
