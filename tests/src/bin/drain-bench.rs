//! Drain benchmark on this machine (not run in CI): 3 meta-servers, 7
//! blob-servers and one gateway, profile 4+2, all real processes.
//!
//! cargo build --release --workspace
//! cargo run --release -p hamster-tests --bin drain-bench -- [MIB_OF_OBJECTS] [--repair-rate MBPS]
//!
//! (defaults: 256 MiB of 4 MiB objects; --repair-rate 64, the default:
//! moves are paced like repair). Reports, as a table:
//! - the S3 load alone (4 streams of PUT + GET-verify): ops/s, PUT and GET
//!   latency p50 / p99;
//! - one blob-server drained (`hamster blob drain`, to the end: no map
//!   names it, its store empty) while the same load runs: MB/s of its
//!   shard bytes over the command's wall time, shards moved;
//! - the load during the drain: the same figures, and its failures (must
//!   be 0).

use std::time::{Duration, Instant};

use hamster_tests::bench::{bench_cluster, bench_spec, fill, mb, print_load, shard_bytes};
use hamster_tests::load::Load;

const OBJECT: usize = 4 << 20;
const STREAMS: usize = 4;
/// How long the load runs with no drain, for its baseline.
const BASELINE: Duration = Duration::from_secs(20);

/// (MiB of objects, repair rate in MB/s) from the command line.
fn parse_args() -> (usize, String) {
    let mut total_mib = 256;
    let mut rate = "64".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if let Some(v) = a.strip_prefix("--repair-rate=") {
            rate = v.to_string();
        } else if a == "--repair-rate" {
            rate = args.next().expect("--repair-rate needs a value");
        } else {
            total_mib = a.parse().expect("MIB_OF_OBJECTS must be a number");
        }
    }
    (total_mib, rate)
}

#[tokio::main]
async fn main() {
    let (total_mib, rate) = parse_args();
    let (s, c) = bench_cluster(&bench_spec(7, &rate)).await;
    fill(&c, "bench", total_mib, OBJECT, STREAMS).await;

    let load = Load::start(&s.client(), "bench", "load/", STREAMS, 4);
    tokio::time::sleep(BASELINE).await;
    let base = load.stop().await;

    let victim = s.blobs[6];
    let id = s.c.node(victim).id.clone();
    let named =
        s.c.blob_list()
            .unwrap_or_else(|e| panic!("{e}"))
            .row(&id)
            .shards_named;
    let load = Load::start(&s.client(), "bench", "load/", STREAMS, 4);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // What the drain has to move: the shard bytes on it when it starts.
    let bytes = shard_bytes(&s, victim);
    let t = Instant::now();
    let run =
        s.c.admin_cli_bg(&["blob", "drain", &id, "--json", "--timeout-secs", "86400"])
            .await
            .expect("the drain command's thread");
    let drain_time = t.elapsed();
    let during = load.stop().await;
    assert!(run.ok(), "hamster blob drain: {run}");
    let out = run.json().unwrap_or_else(|e| panic!("{e}"));
    let left = shard_bytes(&s, victim);

    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| drain: outcome, shards moved | {} , {} (named at the start: {named}) |",
        out["outcome"], out["shards_moved"]
    );
    println!(
        "| drain MB/s (its shard bytes / wall time of `hamster blob drain`) | {:.1} ({:.1} MiB in {drain_time:.1?}) |",
        mb(bytes, drain_time),
        bytes as f64 / 1048576.0
    );
    println!("| shard bytes left on the drained server | {left} |");
    print_load("load alone", STREAMS, &base);
    print_load("load during the drain", STREAMS, &during);
    println!(
        "| load slowdown during the drain | {:.0}% |",
        (1.0 - during.ops_per_sec() / base.ops_per_sec().max(1e-9)) * 100.0
    );
    if during.failed > 0 {
        eprintln!("{} requests failed during the drain", during.failed);
        std::process::exit(1);
    }
}
