//! The performance targets of issue 22, measured as server CPU per unit
//! of work: `hamster dev` (3 meta, 6 blob-servers, 1 gateway, release
//! binaries) driven by the neutral load tool `s3load.py`, which reports
//! the CPU of the dev process tree per op or per GiB.
//!
//! cargo build --release --workspace
//! cargo run --release -p hamster-tests --bin perf-bench -- [WORKLOAD...]
//!
//! WORKLOAD: put4k get4k put64m get64m (default: all four). The load tool
//! is ../shared/bench/s3load.py from the repository root, or the file
//! named by HAMSTER_S3LOAD. Each workload runs on the same cluster; a GET
//! workload first PUTs the objects it reads (its own PUT row is printed
//! too). Also printed: each tier's share of the CPU of the whole run.
//! Rewrap has its own bench (rotate-bench), RSS on a 2 GiB PUT s3-bench's.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use hamster_tests::dev::{Dev, env, free_ports};
use hamster_tests::durability::cpu_secs;

struct Workload {
    name: &'static str,
    size: u64,
    count: u64,
    streams: u64,
    phases: &'static str,
    /// The target for the last phase: (what, limit).
    target: (&'static str, f64),
}

const WORKLOADS: [Workload; 4] = [
    Workload {
        name: "put4k",
        size: 4096,
        count: 3000,
        streams: 32,
        phases: "put",
        target: ("ms CPU/op (and p99 <= 100 ms)", 3.0),
    },
    Workload {
        name: "get4k",
        size: 4096,
        count: 3000,
        streams: 32,
        phases: "put,get",
        target: ("ms CPU/op", f64::NAN),
    },
    Workload {
        name: "put64m",
        size: 64 << 20,
        count: 16,
        streams: 4,
        phases: "put",
        target: ("s CPU/GiB", 8.0),
    },
    Workload {
        name: "get64m",
        size: 64 << 20,
        count: 16,
        streams: 4,
        phases: "put,get",
        target: ("s CPU/GiB", 1.8),
    },
];

fn load_tool() -> PathBuf {
    if let Some(p) = std::env::var_os("HAMSTER_S3LOAD") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    root.join("../shared/bench/s3load.py")
}

/// CPU seconds (user + system) of each tier's processes of the run in `dir`.
fn tier_cpu(dir: &std::path::Path) -> BTreeMap<String, f64> {
    let needle = dir.display().to_string();
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let comm = comm.trim();
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if !matches!(comm, "meta-server" | "blob-server" | "gateway")
            || !String::from_utf8_lossy(&cmd).contains(&needle)
        {
            continue;
        }
        *out.entry(comm.to_string()).or_insert(0.0) += cpu_secs(pid);
    }
    out
}

fn main() {
    let chosen: Vec<String> = std::env::args().skip(1).collect();
    let tool = load_tool();
    assert!(
        tool.exists(),
        "no load tool at {} (set HAMSTER_S3LOAD)",
        tool.display()
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("dev");
    let (base, s3) = free_ports();
    let dev = Dev::start(&dir, base, s3, 1);
    let vars = env(&dir);
    let var = |k: &str| vars.get(k).cloned().unwrap_or_default();
    println!(
        "{:<8} {:<5} {:>8} {:>9} {:>9} {:>12}   target",
        "workload", "phase", "ops/s", "MB/s", "p99 ms", "server CPU"
    );
    for w in WORKLOADS
        .iter()
        .filter(|w| chosen.is_empty() || chosen.iter().any(|c| c == w.name))
    {
        let before = tier_cpu(&dir);
        let out = Command::new("python3")
            .arg(&tool)
            .args(["--endpoint", &var("AWS_ENDPOINT_URL")])
            .args(["--access", &var("AWS_ACCESS_KEY_ID")])
            .args(["--secret", &var("AWS_SECRET_ACCESS_KEY")])
            .args(["--bucket", "bench", "--label", w.name, "--phases", w.phases])
            .args([
                "--size",
                &w.size.to_string(),
                "--count",
                &w.count.to_string(),
            ])
            .args(["--concurrency", &w.streams.to_string()])
            .arg("--pids")
            .arg(dev.pid().as_raw_nonzero().to_string())
            .output()
            .expect("python3");
        if !out.status.success() {
            panic!("load tool failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let after = tier_cpu(&dir);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(r) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let num = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
            let phase = r["phase"].as_str().unwrap_or("?");
            let cpu = if w.size < 1 << 20 {
                format!("{:.2} ms/op", num("server_cpu_s") * 1e3 / w.count as f64)
            } else {
                format!("{:.2} s/GiB", num("server_cpu_s_per_GiB"))
            };
            let last = w.phases.ends_with(phase);
            let target = match (last, w.target.1.is_nan()) {
                (true, false) => format!("<= {} {}", w.target.1, w.target.0),
                _ => String::new(),
            };
            println!(
                "{:<8} {:<5} {:>8.1} {:>9.1} {:>9.1} {:>12}   {target}",
                w.name,
                phase,
                num("ops"),
                num("MBps"),
                num("p99_ms"),
                cpu
            );
            if num("errors") > 0.0 {
                println!("  errors: {}", r["first_errors"]);
            }
        }
        let split: Vec<String> = after
            .iter()
            .map(|(tier, s)| format!("{tier} {:.1}s", s - before.get(tier).unwrap_or(&0.0)))
            .collect();
        println!(
            "  CPU by tier over the whole workload: {}",
            split.join(", ")
        );
    }
    dev.stop(&dir);
}
