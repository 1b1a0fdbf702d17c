//! Load tool for metadata backup and restore, on a real 3-node meta tier
//! on this machine.
//!
//! cargo build --release --workspace
//! cargo run --release -p hamster-tests --bin backup-bench -- [VERSIONS] [CLIENTS]
//!
//! Commits VERSIONS versions (default 1,000,000) from CLIENTS concurrent
//! clients (default 32), as meta-bench does, then times `hamster backup`
//! from the leader (size per version, the CLI's peak memory, the leader's
//! memory meanwhile), `hamster restore --check`, `hamster restore
//! --data-dir` into a fresh dir, and a meta-server started alone on that
//! dir until it is leader and answers a read of a version committed last.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hamster_proto::pb;
use hamster_tests::bench::arg;
use hamster_tests::meta::commit;
use hamster_tests::{Cluster, bin_dir, path_str};

#[tokio::main]
async fn main() {
    let (total, clients) = (arg(1, 1_000_000), arg(2, 32).max(1));
    let mut c = Cluster::new();
    c.log_level = "warn".into();
    // The test versions name blob-servers that never registered: the
    // repair planner would take every shard for lost and scan them all
    // each pass, which at ~1M versions starves the state machine.
    c.meta_args.push("--repair-every-ms=0".into());
    let (metas, leader, gw, _key) = c.bench_meta_tier().await;
    println!("backup-bench: 3 meta-servers on loopback, {total} versions, {clients} clients");

    let t0 = Instant::now();
    let last_key = fill(&c, leader, &gw, total, clients).await;
    let fill_took = t0.elapsed();
    // The leader may be building a snapshot (a VACUUM of the whole DB):
    // its status can take longer than one call waits.
    let mut applied = None;
    for _ in 0..60 {
        if let Ok(s) = c.status(leader).await {
            applied = Some(s.applied_index);
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let applied = applied.expect("the leader's status");
    println!(
        "committed {total} versions in {:.0} s ({:.0}/s), leader applied index {applied}",
        fill_took.as_secs_f64(),
        total as f64 / fill_took.as_secs_f64()
    );

    // The backup, from the leader, while its memory is watched.
    let file = c.root().join("bench.hbk");
    let leader_pid = c.node(leader).pid().expect("leader pid");
    let rss_before = proc_kb(leader_pid, "VmRSS:").unwrap_or(0);
    let peak = Arc::new(AtomicU64::new(rss_before));
    let watch = tokio::spawn(watch_rss(leader_pid, peak.clone()));
    let mut args = vec!["backup".to_string(), "--out".into(), path_str(&file).into()];
    args.push("--json".into());
    args.extend(
        c.admin_flags()
            .into_iter()
            .filter(|f| !f.starts_with("--meta")),
    );
    args.push(format!("--meta={}", c.node(leader).addr));
    let backup = timed(&args);
    watch.abort();
    let b: serde_json::Value = serde_json::from_str(backup.out.trim())
        .unwrap_or_else(|e| panic!("backup --json ({e}):\n{}", backup.out));
    let bytes = b["bytes"].as_u64().expect("bytes");
    let versions = b["versions"].as_u64().expect("versions").max(1);

    // Restore into a fresh dir as meta-1 of a one-node cluster.
    let m1 = metas[0];
    let node = c.node(m1);
    let restored = c.root().join("restored");
    let restore_args = |data: &Path| -> Vec<String> {
        vec![
            "restore".into(),
            "--from".into(),
            path_str(&file).into(),
            "--data-dir".into(),
            path_str(data).into(),
            "--raft-id".into(),
            node.raft_id.to_string(),
            "--listen".into(),
            node.addr.to_string(),
            "--master-key-file".into(),
            path_str(&c.pki_dir().join("master.key")).into(),
            "--trust".into(),
            path_str(&node.dir.join("trust.pem")).into(),
            "--tls-cert".into(),
            path_str(&node.dir.join("node.crt")).into(),
        ]
    };
    let mut check_args = restore_args(&c.root().join("check-only"));
    check_args.push("--check".into());
    let check = timed(&check_args);
    let restore = timed(&restore_args(&restored));
    let restored_bytes = dir_bytes(&restored);

    // The restored node alone: first leader, then a linearizable read.
    c.kill_all(&metas);
    c.set_arg(m1, "--data-dir", Some(path_str(&restored)));
    c.set_arg(m1, "--initial-members", None);
    let t = Instant::now();
    c.restart(m1);
    let raft_id = c.node(m1).raft_id;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Ok(s) = c.status(m1).await
            && s.leader_raft_id == raft_id
        {
            break;
        }
        assert!(Instant::now() < deadline, "the restored node never led");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let to_leader = t.elapsed();
    let got = c
        .meta_client(m1, &gw)
        .get_version(pb::GetVersionRequest {
            bucket: "bench".into(),
            key: last_key.clone(),
            version_id: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("{last_key} after the restore: {e}"));
    assert!(got.into_inner().version.is_some(), "{last_key} lost");
    let to_read = t.elapsed();

    let mb = |b: u64| b as f64 / 1e6;
    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "backup file: {:.1} MB, {versions} versions, {:.0} bytes/version, index {}",
        mb(bytes),
        bytes as f64 / versions as f64,
        b["raft_index"]
    );
    println!(
        "{:<34} {:>9} {:>10} {:>14}",
        "step", "seconds", "MB/s", "peak RSS MB"
    );
    let row = |step: &str, d: Duration, rss_kb: u64| {
        println!(
            "{step:<34} {:>9.2} {:>10.1} {:>14.1}",
            secs(d),
            mb(bytes) / secs(d).max(1e-9),
            rss_kb as f64 / 1e3
        );
    };
    row("hamster backup (CLI)", backup.took, backup.peak_kb);
    println!(
        "{:<34} {:>9} {:>10} {:>14.1}",
        "  leader RSS during it (before)",
        "",
        "",
        rss_before as f64 / 1e3
    );
    println!(
        "{:<34} {:>9} {:>10} {:>14.1}",
        "  leader RSS during it (peak)",
        "",
        "",
        peak.load(Ordering::Relaxed) as f64 / 1e3
    );
    row("hamster restore --check", check.took, check.peak_kb);
    row("hamster restore --data-dir", restore.took, restore.peak_kb);
    println!(
        "{:<34} {:>9.2}   (restored dir {:.1} MB)",
        "meta-server start → leader",
        secs(to_leader),
        mb(restored_bytes)
    );
    println!(
        "{:<34} {:>9.2}",
        "meta-server start → first read",
        secs(to_read)
    );
}

/// Commits `total` versions from `clients` clients on `leader`; answers
/// the key of one of the last commits. A failed commit is tried again
/// (without a request id: a retry of one that did land adds a version,
/// which the backup's own count shows).
async fn fill(
    c: &Cluster,
    leader: hamster_tests::Node,
    gw: &Arc<hamster_proto::tls::NodeTls>,
    total: usize,
    clients: usize,
) -> String {
    let done = Arc::new(AtomicUsize::new(0));
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                let n = done.load(Ordering::Relaxed);
                eprintln!(
                    "  {n} committed, {:.0}/s",
                    n as f64 / t0.elapsed().as_secs_f64()
                );
            }
        })
    };
    let mut tasks = Vec::new();
    let key_id = c.meta_key(leader).await;
    for t in 0..clients {
        let mut client = c.meta_client(leader, gw);
        let kek = c.kek_fingerprint();
        let key_id = key_id.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = String::new();
            for n in (t..total).step_by(clients) {
                let key = format!("c{t:03}/{n:07}");
                let mut tries = 0;
                while let Err(e) = commit(&mut client, &kek, &key_id, "bench", &key, n as u64).await
                {
                    tries += 1;
                    assert!(tries < 50, "commit {key}: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                done.fetch_add(1, Ordering::Relaxed);
                last = key;
            }
            last
        }));
    }
    let mut last = String::new();
    for t in tasks {
        let k = t.await.expect("client task");
        if !k.is_empty() {
            last = k;
        }
    }
    progress.abort();
    last
}

struct Timed {
    took: Duration,
    out: String,
    /// The process's peak resident set (VmHWM), kB, as last sampled.
    peak_kb: u64,
}

/// Runs `hamster ARGS` to the end, sampling its peak memory; panics with
/// its output if it fails.
fn timed(args: &[String]) -> Timed {
    let t = Instant::now();
    let mut child = Command::new(bin_dir().join("hamster"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("hamster");
    let mut peak_kb = 0;
    // Pipes are read at the end: the commands print one short report.
    while child.try_wait().expect("wait").is_none() {
        peak_kb = proc_kb(child.id(), "VmHWM:").unwrap_or(peak_kb);
        std::thread::sleep(Duration::from_millis(20));
    }
    let out: Output = child.wait_with_output().expect("output");
    let took = t.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "hamster {args:?} failed:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Timed {
        took,
        out: text,
        peak_kb,
    }
}

/// A "Field:  N kB" line of /proc/PID/status.
fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Keeps the highest VmRSS of `pid` in `peak` until aborted.
async fn watch_rss(pid: u32, peak: Arc<AtomicU64>) {
    loop {
        if let Some(kb) = proc_kb(pid, "VmRSS:") {
            peak.fetch_max(kb, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    hamster_tests::files_under(dir)
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}
