//! The README's compose procedures for rotations and metrics ("Compose:
//! rotate the CA and the master key", "Compose: metrics"): with S3
//! traffic through both first gateways all along, `hamster rotate-ca` in
//! a one-shot bootstrap container, then docker/rotate-key.sh, each to
//! completion; not one request fails, every object written meanwhile
//! reads back, and the status shows both rotations closed with nothing
//! left on the old CA or key; the script's backup exists, the audit logs
//! hold the rotations' admin calls, and `up` again (init again) keeps a
//! serving cluster with the old key gone. And every server answers /metrics on :9100
//! inside the project network (asked at its container's address, which
//! the host reaches on Linux).

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use hamster_tests::s3::{pattern, read_body};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Client, Compose, Gateways, admin, docker, json_in, repo};

/// Every server of the project as it first came up: (service, replicas,
/// its role in `hamster_build_info`).
const SERVERS: [(&str, u32, &str); 5] = [
    ("meta-1", 1, "meta"),
    ("meta-2", 1, "meta"),
    ("meta-3", 1, "meta"),
    ("blob", 6, "blob"),
    ("gateway", 2, "gateway"),
];

pub async fn metrics_served(c: &Compose) {
    for (svc, n, role) in SERVERS {
        for i in 1..=n {
            let name = c.container(svc, i);
            let out = docker(&[
                "inspect",
                "-f",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                &name,
            ]);
            let ip = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert!(
                out.status.success() && !ip.is_empty(),
                "no address for {name}"
            );
            let text = scrape(&format!("{ip}:9100")).await;
            assert!(
                text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/1.0 200"),
                "{name} /metrics: {}",
                text.lines().next().unwrap_or_default()
            );
            let line = format!("role=\"{role}\"");
            assert!(
                text.lines()
                    .any(|l| l.starts_with("hamster_build_info{") && l.contains(&line)),
                "{name}: no hamster_build_info with {line} in:\n{text}"
            );
        }
    }
}

/// The whole HTTP answer to GET /metrics (HTTP/1.0: the server closes).
async fn scrape(addr: &str) -> String {
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: hamster\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    // Only a guard against a hang; no timing is asserted.
    match tokio::time::timeout(Duration::from_secs(30), io).await {
        Ok(Ok(b)) => String::from_utf8_lossy(&b).into_owned(),
        Ok(Err(e)) => panic!("GET http://{addr}/metrics: {e}"),
        Err(_) => panic!("GET http://{addr}/metrics: no answer in 30 s"),
    }
}

/// The keys written (with their bytes) and every failure, as "OP key: why".
type Outcome = (Vec<(String, Vec<u8>)>, Vec<String>);

/// A loop of PUTs of new keys, each read back at once, until stopped:
/// the keys written and every failure.
struct Traffic {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Outcome>>,
}

impl Traffic {
    fn start(clients: [&Client; 2]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = clients
            .into_iter()
            .enumerate()
            .map(|(g, client)| {
                let (client, stop) = (client.clone(), stop.clone());
                tokio::spawn(async move {
                    let (mut written, mut failed) = (Vec::new(), Vec::new());
                    let mut i = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("rot-{g}-{i}");
                        let body = pattern([17, 5_000, 70_000][i % 3], (i % 251) as u8);
                        i += 1;
                        let put = client
                            .put_object()
                            .bucket("compose")
                            .key(&key)
                            .body(ByteStream::from(body.clone()))
                            .send()
                            .await;
                        if let Err(e) = put {
                            failed.push(format!("PUT {key}: {e:?}"));
                            continue;
                        }
                        match client.get_object().bucket("compose").key(&key).send().await {
                            Ok(out) => {
                                if read_body(out).await != body {
                                    failed.push(format!("GET {key}: other bytes"));
                                }
                            }
                            Err(e) => failed.push(format!("GET {key}: {e:?}")),
                        }
                        written.push((key, body));
                    }
                    (written, failed)
                })
            })
            .collect();
        Self { stop, tasks }
    }

    async fn stop(self) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        let (mut written, mut failed) = (Vec::new(), Vec::new());
        for t in self.tasks {
            let (w, f) = t.await.expect("a traffic task panicked");
            written.extend(w);
            failed.extend(f);
        }
        (written, failed)
    }
}

pub async fn rotations_under_load(c: &Compose, gws: &Gateways) {
    let before = json_in(&admin(c, &[], &["status", "--json"]));
    let traffic = Traffic::start([&gws.g1, &gws.g2]);

    admin(c, &[], &["rotate-ca"]);
    let backups = tempfile::tempdir().expect("tmp");
    let out = Command::new("sh")
        .arg(repo().join("docker/rotate-key.sh"))
        .arg(&c.project)
        .arg(backups.path())
        .env("COMPOSE_FILE", repo().join("compose.yaml"))
        .env("HAMSTER_S3_PORTS", &c.ports)
        .current_dir(repo())
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "docker/rotate-key.sh failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let (written, failed) = traffic.stop().await;
    assert!(
        failed.is_empty(),
        "{} of {} requests failed during the rotations; first: {:?}",
        failed.len(),
        written.len() * 2,
        &failed[..failed.len().min(5)]
    );
    assert!(
        written.len() >= 10,
        "the traffic made only {} objects",
        written.len()
    );
    for (n, (key, body)) in written.iter().enumerate() {
        let client = if n % 2 == 0 { &gws.g1 } else { &gws.g2 };
        crate::assert_bytes(client, key, body, "after the rotations").await;
    }

    let s = json_in(&admin(c, &[], &["status", "--json"]));
    assert_eq!(s["ca_rotation"], "none", "{s}");
    assert_eq!(s["members_on_old_ca"].as_u64(), Some(0), "{s}");
    assert!(
        s["trust_generation"].as_u64() > before["trust_generation"].as_u64(),
        "trust generation did not move: {s}"
    );
    assert_ne!(
        s["issuing_ca_fingerprint"], before["issuing_ca_fingerprint"],
        "{s}"
    );
    assert_eq!(s["key_rotation"], "none", "{s}");
    assert_eq!(s["versions_on_old_key"].as_u64(), Some(0), "{s}");
    assert_eq!(s["access_keys_on_old_key"].as_u64(), Some(0), "{s}");
    assert_ne!(
        s["master_key_fingerprint"], before["master_key_fingerprint"],
        "{s}"
    );
    let fp = s["master_key_fingerprint"].clone();
    for h in s["key_holders"].as_array().expect("key_holders") {
        if h["live"] == true {
            assert_eq!(h["current"], fp, "holder on another key: {s}");
        }
    }
    // The script backed up under the new key before dropping the old one.
    let hbk = std::fs::read_dir(backups.path())
        .expect("backups dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".hbk"))
        .count();
    assert_eq!(hbk, 1, "docker/rotate-key.sh left no backup");
    audited(c);
    up_again(c, gws).await;
}

/// The rotations' admin calls are in the meta-servers' audit logs (each
/// logs the calls it answered, so the three together).
fn audited(c: &Compose) {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut methods = Vec::new();
    for i in 1..=3 {
        let dest = tmp.path().join(format!("audit-{i}"));
        let src = format!("{}:/data/audit.jsonl", c.container(&format!("meta-{i}"), 1));
        if !docker(&["cp", &src, dest.to_str().expect("utf8")])
            .status
            .success()
        {
            continue;
        }
        for line in std::fs::read_to_string(&dest).expect("audit").lines() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("meta-{i} audit line not JSON ({e}): {line}"));
            methods.push((
                v["method"].as_str().unwrap_or_default().to_string(),
                v["outcome"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    for m in ["StartCaRotation", "AdvanceCaRotation", "StartKeyRotation"] {
        assert!(
            methods.iter().any(|(x, o)| x == m && o == "ok"),
            "no successful {m} in the audit logs: {methods:?}"
        );
    }
}

/// `up` again (init runs again over the rotated cluster): it succeeds,
/// the cluster serves, the master volume holds the current key alone and
/// the pki volume no CA or master key.
async fn up_again(c: &Compose, gws: &Gateways) {
    c.ok(&["up", "-d", "--scale", "gateway=3", "--scale", "blob=8"]);
    let body = pattern(70_000, 3);
    gws.g1
        .put_object()
        .bucket("compose")
        .key("after-up-again")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put after up again");
    let got = gws
        .g2
        .get_object()
        .bucket("compose")
        .key("after-up-again")
        .send()
        .await;
    assert!(read_body(got.expect("get after up again")).await == body);
    let tmp = tempfile::tempdir().expect("tmp");
    for vol in ["master", "pki"] {
        let dest = tmp.path().join(vol);
        let src = format!("{}:/{vol}", c.container("init", 1));
        assert!(
            docker(&["cp", &src, dest.to_str().expect("utf8")])
                .status
                .success()
        );
        let names: Vec<String> = std::fs::read_dir(&dest)
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if vol == "master" {
            assert_eq!(
                names,
                ["master.key"],
                "the master volume after the rotation"
            );
        } else {
            assert!(
                !names
                    .iter()
                    .any(|n| n.starts_with("ca") || n == "master.key" || n == "nodes"),
                "CA, master key or node files left in the pki volume: {names:?}"
            );
        }
    }
}
