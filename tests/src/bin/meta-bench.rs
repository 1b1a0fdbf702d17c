//! Load tool for the meta tier: commits per second and latency
//! percentiles on a real 3-node cluster on this machine.
//!
//! cargo build --release --workspace
//! cargo run --release -p hamster-tests --bin meta-bench -- [COMMITS_PER_RUN]
//!
//! Each run commits versions (the metadata of a PUT) with 1 or 32
//! concurrent clients, through the leader or through a follower.

use std::time::{Duration, Instant};

use hamster_tests::Cluster;
use hamster_tests::bench::arg;
use hamster_tests::meta::commit;

struct Run {
    label: &'static str,
    clients: usize,
    via_follower: bool,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let total = arg(1, 5000);
    let mut c = Cluster::new();
    c.log_level = "warn".into();
    let (idxs, leader, gw, key_id) = c.bench_meta_tier().await;
    let follower = *idxs.iter().find(|i| **i != leader).expect("follower");

    let runs = [
        Run {
            label: "1 client, leader",
            clients: 1,
            via_follower: false,
        },
        Run {
            label: "32 clients, leader",
            clients: 32,
            via_follower: false,
        },
        Run {
            label: "32 clients, follower",
            clients: 32,
            via_follower: true,
        },
    ];
    println!("meta-bench: 3 meta-servers on loopback, {total} commits per run");
    println!(
        "{:<24} {:>10} {:>10} {:>10} {:>10}",
        "run", "commits/s", "p50 ms", "p99 ms", "max ms"
    );
    for (r, run) in runs.iter().enumerate() {
        let target = if run.via_follower { follower } else { leader };
        let per_client = total / run.clients;
        let start = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..run.clients {
            let mut client = c.meta_client(target, &gw);
            let kek = c.kek_fingerprint();
            let key_id = key_id.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_client);
                for n in 0..per_client {
                    let key = format!("r{r}/c{t:02}/{n:06}");
                    let t0 = Instant::now();
                    commit(&mut client, &kek, &key_id, "bench", &key, n as u64)
                        .await
                        .expect("commit");
                    lat.push(t0.elapsed());
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("client task"));
        }
        let elapsed = start.elapsed();
        all.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:<24} {:>10.0} {:>10.2} {:>10.2} {:>10.2}",
            run.label,
            all.len() as f64 / elapsed.as_secs_f64(),
            ms(percentile(&all, 0.50)),
            ms(percentile(&all, 0.99)),
            ms(*all.last().expect("samples")),
        );
    }
    let s = c.status(leader).await.expect("status");
    println!(
        "leader applied index {}, snapshot at {}",
        s.applied_index, s.snapshot_index
    );
}
