//! `hamster dev` under faults (issue 23): every node it runs answers
//! /metrics at the address DIR/prometheus.yml lists; a SIGKILLed
//! blob-server and meta-server are reported, restarted (new pids, same
//! flags) and the cluster serves S3; `hamster status` shows the blob tier
//! whole again (no server silent) and the gateway; and a SIGKILLed `hamster dev` takes every child with
//! it.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use hamster_tests::dev::{
    Dev, env, free_ports, hamster, hamster_json, pid_with_arg, processes_using,
};
use hamster_tests::s3::{get_bytes, s3_client_at};
use rustix::process::{Signal, kill_process};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hamster_dev_restarts_killed_nodes_serves_metrics_and_dies_with_its_children() {
    let root = tempfile::tempdir().expect("tmp");
    let dir = root.path().join("cluster");
    let (base, s3) = free_ports();
    let mut dev = Dev::start(&dir, base, s3, 1);
    let out = dev.stdout();
    assert!(
        out.contains("prometheus.yml"),
        "banner names prometheus.yml:\n{out}"
    );

    // (a) Every scrape target answers with hamster_ series.
    let targets = scrape_targets(&dir);
    let nodes: Vec<&str> = targets.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(nodes.len(), 10, "3 meta, 6 blob, 1 gateway: {targets:?}");
    for n in ["meta-1", "blob-6", "gateway-1"] {
        assert!(nodes.contains(&n), "{n} not in {targets:?}");
    }
    for (node, addr) in &targets {
        let body = scrape(addr)
            .await
            .unwrap_or_else(|e| panic!("{node} {addr}: {e}"));
        assert!(body.contains("hamster_build_info"), "{node}: {body}");
    }

    // (b) SIGKILL a blob-server and a meta-server: reported, restarted.
    let e = env(&dir);
    let data = |n: &str| format!("--data-dir={}", dir.join("data").join(n).display());
    let mut old = Vec::new();
    for n in ["blob-2", "meta-1"] {
        let pid = pid_with_arg(&data(n)).unwrap_or_else(|| panic!("{n} not running"));
        kill_process(pid, Signal::KILL).expect("SIGKILL");
        old.push((n, pid));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for (n, pid) in &old {
        loop {
            let out = dev.stdout();
            let back = pid_with_arg(&data(n)).filter(|p| p != pid);
            if out.contains(&format!("{n} died (signal: 9")) && back.is_some() {
                assert!(
                    out.contains(&format!(
                        "log: {}",
                        dir.join("logs").join(format!("{n}.log")).display()
                    )),
                    "the death names the log:\n{out}"
                );
                break;
            }
            assert!(dev.running(), "hamster dev exited:\n{}", dev.output(&dir));
            assert!(
                Instant::now() < deadline,
                "{n} was not restarted:\n{}",
                dev.output(&dir)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    // The restarted blob-server has its flags back: its metrics answer.
    let blob2 = &targets
        .iter()
        .find(|(n, _)| n == "blob-2")
        .expect("blob-2")
        .1;
    poll("blob-2's metrics after its restart", async || {
        scrape(blob2).await.ok()
    })
    .await;

    let c = s3_client_at(
        &e["AWS_ENDPOINT_URL"],
        &e["AWS_ACCESS_KEY_ID"],
        &e["AWS_SECRET_ACCESS_KEY"],
    );
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    // A new meta leader may be being elected: the first calls may fail.
    poll("CreateBucket after the restarts", async || {
        c.create_bucket().bucket("faults").send().await.ok()
    })
    .await;
    poll("PutObject after the restarts", async || {
        c.put_object()
            .bucket("faults")
            .key("k")
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .ok()
    })
    .await;
    assert!(get_bytes(&c, "faults", "k").await.expect("GET") == body);
    assert!(dev.running(), "hamster dev exited:\n{}", dev.output(&dir));
    for log in ["access-gateway-1.jsonl", "audit-meta-1.jsonl"] {
        assert!(dir.join("logs").join(log).exists(), "no logs/{log}");
    }

    // (c) status: the blob tier line and the gateway. The restarted
    // blob-server heartbeats again, so none is silent (a dead one would
    // be, long before the meta tier marks it down).
    let st = poll("a whole blob tier in status --json", async || {
        let st = hamster_json(&e, &["status", "--json"]);
        (st["blob_tier"]["silent"] == 0 && st["blob_tier"]["healthy"] == true).then_some(st)
    })
    .await;
    assert_eq!(st["blob_tier"]["down"], 0, "{st}");
    let text = hamster(&e, &["status"]);
    assert!(
        text.contains("blob tier    6 servers: 6 active, 0 down, 0 silent, 0 draining"),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("blob tier") && l.contains("DEGRADED")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("GATEWAY ")),
        "no GATEWAYS table:\n{text}"
    );
    let st = poll("gateway-1 live in status --json", async || {
        let st = hamster_json(&e, &["status", "--json"]);
        (st["gateways"][0]["live"] == true).then_some(st)
    })
    .await;
    assert_eq!(st["blob_tier"]["servers"], 6, "{st}");
    assert_eq!(st["gateways"][0]["id"], "gateway-1", "{st}");
    assert!(st["gateways"][0]["current_key"].is_string(), "{st}");

    // (d) SIGKILL hamster dev: every child follows it.
    assert!(!processes_using(&dir).is_empty(), "no child found");
    dev.kill();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = processes_using(&dir);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "children outlived a SIGKILLed hamster dev: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// (node, address) of every target in DIR/prometheus.yml.
fn scrape_targets(dir: &Path) -> Vec<(String, String)> {
    let y = std::fs::read_to_string(dir.join("prometheus.yml")).expect("prometheus.yml");
    assert!(y.contains("\nscrape_configs:\n"), "{y}");
    for job in ["hamster-meta", "hamster-blob", "hamster-gateway"] {
        assert!(
            y.contains(&format!("job_name: \"{job}\"")),
            "no job {job}:\n{y}"
        );
    }
    let quoted = |l: &str| l.split('"').nth(1).map(str::to_string);
    let lines: Vec<&str> = y.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0].trim_start().starts_with("- targets: ["))
        .map(|w| {
            let addr = quoted(w[0]).unwrap_or_else(|| panic!("target: {}", w[0]));
            let node = quoted(w[1]).unwrap_or_else(|| panic!("labels: {}", w[1]));
            (node, addr)
        })
        .collect()
}

/// GET http://ADDR/metrics: the body of a 200 answer.
async fn scrape(addr: &str) -> Result<String, String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    if !out.starts_with("HTTP/1.1 200") {
        return Err(out);
    }
    Ok(out)
}

/// `f` until it answers, for up to 60 s (a liveness bound, not a timing
/// claim).
async fn poll<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
