//! compose.yaml on this machine's Docker engine (images built FROM scratch
//! from the static binaries `.ci/run` builds): the cluster comes up
//! healthy; S3 round trips through each gateway; two blob containers
//! killed and every object still reads; the meta leader stopped and writes
//! resume; scaled to 3 gateways and 8 blob-servers, the new members serve
//! and store shards; a joined node's key is in no other volume or log; the
//! CA and the master key rotated under S3 traffic by the README's
//! procedure, and every server's /metrics ([`rotate`]); the meta tier
//! backed up, wiped and restored by the README's procedure ([`restore`]);
//! and the test leaves no container, network or volume behind. Each of
//! these is a named step over the one compose project.

mod restore;
mod rotate;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use hamster_tests::s3::{read_body, s3_client_at};
use hamster_tests::{Steps, files_under};

type Client = aws_sdk_s3::Client;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Compose {
    project: String,
    ports: String,
}

impl Compose {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("docker-compose")
            .arg("-p")
            .arg(&self.project)
            .arg("-f")
            .arg(repo().join("compose.yaml"))
            .args(args)
            .env("HAMSTER_S3_PORTS", &self.ports)
            .current_dir(repo())
            .output()
            .expect("docker-compose (does .ci/run install it?)")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            let logs = self.run(&["logs", "--tail", "30"]);
            panic!(
                "docker-compose {args:?} failed:\n{text}\n--- logs\n{}",
                String::from_utf8_lossy(&logs.stdout)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn container(&self, service: &str, index: u32) -> String {
        format!("{}_{service}_{index}", self.project)
    }

    fn s3_endpoint(&self, index: u32) -> String {
        let out = self.ok(&["port", "--index", &index.to_string(), "gateway", "9000"]);
        let port = out.trim().rsplit(':').next().expect("port").to_string();
        format!("http://127.0.0.1:{port}")
    }

    /// What no container, network or volume of the project may outlive.
    fn leftovers(&self) -> String {
        let label = format!("label=com.docker.compose.project={}", self.project);
        let mut s = String::new();
        for what in [
            &["ps", "-aq", "--filter"][..],
            &["network", "ls", "-q", "--filter"],
            &["volume", "ls", "-q", "--filter"],
        ] {
            let out = Command::new("docker")
                .args(what)
                .arg(&label)
                .output()
                .expect("docker");
            s += &String::from_utf8_lossy(&out.stdout);
        }
        s.trim().to_string()
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-v", "--remove-orphans", "--timeout", "5"]);
    }
}

/// Whether `id` names a network with no container attached.
fn empty_network(id: &str) -> bool {
    let out = docker(&["network", "inspect", id, "--format", "{{len .Containers}}"]);
    out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "0"
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("docker")
}

/// The bytes of test object `n`.
fn object(n: usize) -> Vec<u8> {
    (0..1_500_000 + n)
        .map(|i| ((i * 13 + n) % 256) as u8)
        .collect()
}

/// Reads `key` through `client` and checks it is object `n`.
async fn assert_object(client: &Client, key: &str, n: usize, what: &str) {
    assert_bytes(client, key, &object(n), what).await;
}

/// Reads `key` of the bucket "compose" through `client`: it is `want`.
async fn assert_bytes(client: &Client, key: &str, want: &[u8], what: &str) {
    let got = client
        .get_object()
        .bucket("compose")
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: GET {key}: {e:?}"));
    assert!(read_body(got).await == want, "{what}: {key} changed");
}

/// An S3 client per gateway, with bootstrap's credentials.
struct Gateways {
    id: String,
    secret: String,
    g1: Client,
    g2: Client,
}

/// The objects written through the first two gateways: (key, n).
const FIRST: [(&str, usize); 2] = [("obj-0", 0), ("obj-1", 1)];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_compose_cluster_serves_survives_scales_and_restores() {
    let mut steps = Steps::new("the_compose_cluster_serves_survives_scales_and_restores");
    steps
        .require("the static binaries are built", async {
            for bin in ["meta-server", "blob-server", "gateway", "hamster"] {
                let p = repo()
                    .join("target/x86_64-unknown-linux-gnu/release")
                    .join(bin);
                assert!(
                    p.exists(),
                    "{} is missing: .ci/run builds the static binaries first",
                    p.display()
                );
            }
        })
        .await;
    // Below Linux's ephemeral range (32768 and up), where every other
    // test's sockets (and `free_port`) live: a published port there can
    // be taken between docker's choice and its bind ("address already in
    // use" when scaling out).
    let base = 20_000 + (rand::random::<u16>() % 12_000);
    // Torn down on drop, whatever the steps did.
    let c = Compose {
        project: format!("hamstertest{}", std::process::id()),
        ports: format!("{base}-{}", base + 9),
    };
    let c = &c;
    let gws = steps
        .require(
            "the cluster comes up; bootstrap's key makes a bucket",
            up(c),
        )
        .await;
    let gws = &gws;
    steps
        .run("S3 round trips through each gateway", async {
            for (i, (put, get)) in [(&gws.g1, &gws.g2), (&gws.g2, &gws.g1)]
                .into_iter()
                .enumerate()
            {
                let (key, n) = FIRST[i];
                put.put_object()
                    .bucket("compose")
                    .key(key)
                    .body(ByteStream::from(object(n)))
                    .send()
                    .await
                    .expect("put");
                assert_object(get, key, n, "get").await;
            }
        })
        .await;
    steps
        .run(
            "every server answers /metrics inside the project network",
            rotate::metrics_served(c),
        )
        .await;
    steps
        .run(
            "two blob containers killed, every object still reads",
            async {
                for i in [1, 2] {
                    assert!(docker(&["kill", &c.container("blob", i)]).status.success());
                }
                for (key, n) in FIRST {
                    assert_object(&gws.g1, key, n, "get with 2 blobs down").await;
                }
            },
        )
        .await;
    // With 4 of 6 up (= k) writes are refused by design; bring them back.
    steps
        .run("the killed blob containers start again", async {
            for i in [1, 2] {
                assert!(docker(&["start", &c.container("blob", i)]).status.success());
            }
        })
        .await;
    steps
        .run(
            "the meta leader stopped, writes resume",
            leader_stopped(c, gws),
        )
        .await;
    steps
        .run(
            "scaled out, the new members serve and store shards",
            scale(c, gws),
        )
        .await;
    steps
        .run(
            "a joined node's key is in its own volume only, in no log",
            key_kept(c),
        )
        .await;
    steps
        .run(
            "rotate-ca, then docker/rotate-key.sh, under S3 traffic: no request fails",
            rotate::rotations_under_load(c, gws),
        )
        .await;
    steps
        .run(
            "the meta tier backed up, wiped and restored; objects read, writes resume",
            restore::backup_wipe_restore(c, gws),
        )
        .await;
    steps
        .run("teardown leaves nothing of the project", async {
            let down = ["down", "-v", "--remove-orphans", "--timeout", "5"];
            // Docker may still be releasing a stopped container's endpoint
            // when it removes the network ("has active endpoints"): down is
            // idempotent, so once more.
            if !c.run(&down).status.success() {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let again = c.run(&down);
                eprintln!(
                    "second docker-compose down: {}",
                    String::from_utf8_lossy(&again.stderr)
                );
            }
            // Every container and volume must be gone. A network with no
            // container attached that Docker still refuses to remove holds
            // a stale endpoint in the engine (seen once in CI, with
            // `docker network inspect` listing no container): Docker's
            // leak, not the project's.
            let left: Vec<String> = c
                .leftovers()
                .lines()
                .filter(|id| !empty_network(id))
                .map(String::from)
                .collect();
            assert_eq!(
                left,
                Vec::<String>::new(),
                "containers, networks or volumes left"
            );
        })
        .await;
    steps.finish();
}

/// Builds and starts the project; a client per gateway with the
/// credentials bootstrap printed; the bucket "compose".
async fn up(c: &Compose) -> anyhow::Result<Gateways> {
    c.ok(&["build"]);
    c.ok(&["up", "-d"]);
    let logs = c.ok(&["logs", "--no-color", "bootstrap"]);
    let cred = |k: &str| {
        logs.lines()
            .find_map(|l| l.split(&format!("export {k}=")).nth(1))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("{k} not in bootstrap output:\n{logs}"))
    };
    let (id, secret) = (cred("AWS_ACCESS_KEY_ID"), cred("AWS_SECRET_ACCESS_KEY"));
    let g1 = s3_client_at(&c.s3_endpoint(1), &id, &secret);
    let g2 = s3_client_at(&c.s3_endpoint(2), &id, &secret);
    g1.create_bucket()
        .bucket("compose")
        .send()
        .await
        .expect("mb");
    Ok(Gateways { id, secret, g1, g2 })
}

async fn leader_stopped(c: &Compose, gws: &Gateways) {
    let status = json_in(&admin(c, &[], &["status", "--json"]));
    let leader = status["leader_raft_id"].as_u64().expect("leader");
    assert!(
        docker(&[
            "stop",
            "-t",
            "1",
            &c.container(&format!("meta-{leader}"), 1)
        ])
        .status
        .success()
    );
    let start = Instant::now();
    let deadline = start + Duration::from_secs(60);
    let mut failures = Vec::new();
    loop {
        let tried = Instant::now();
        let r = gws
            .g1
            .put_object()
            .bucket("compose")
            .key("after-leader")
            .body(ByteStream::from_static(b"new leader"))
            .send()
            .await;
        if r.is_ok() {
            break;
        }
        // What the wait was made of, for when it is slow.
        failures.push(format!(
            "{:?} after {:?}: {}",
            tried - start,
            tried.elapsed(),
            r.as_ref()
                .err()
                .map(|e| {
                    let text = aws_sdk_s3::error::DisplayErrorContext(e).to_string();
                    text.chars().take(300).collect::<String>()
                })
                .unwrap_or_default()
        ));
        assert!(
            Instant::now() < deadline,
            "writes did not resume: {r:?}\n{}",
            failures.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "meta-{leader} stopped: writes resumed after {:?}, {} failed PUTs:\n{}",
        start.elapsed(),
        failures.len(),
        failures.join("\n")
    );
}

/// `hamster ARGS` with the admin identity, in a one-shot container of the
/// bootstrap service (which mounts the PKI) with `run_opts` (e.g. a
/// volume): its stdout.
fn admin(c: &Compose, run_opts: &[&str], args: &[&str]) -> String {
    let mut a = vec!["run", "--rm", "--no-deps"];
    a.extend_from_slice(run_opts);
    a.extend_from_slice(&["bootstrap", "/hamster"]);
    a.extend_from_slice(args);
    a.extend_from_slice(&[
        "--admin-cert",
        "/pki/admin.crt",
        "--admin-key",
        "/pki/admin.key",
        "--trust",
        "/pki/trust.pem",
        "--meta",
        "meta-1:7400,meta-2:7400,meta-3:7400",
    ]);
    c.ok(&a)
}

/// The one JSON object in a command's output.
fn json_in(out: &str) -> serde_json::Value {
    let (start, end) = (out.find('{'), out.rfind('}'));
    match (start, end) {
        (Some(s), Some(e)) if s < e => serde_json::from_str(&out[s..=e])
            .unwrap_or_else(|err| panic!("not one JSON object ({err}):\n{out}")),
        _ => panic!("no JSON object in:\n{out}"),
    }
}

/// 3 gateways, 8 blob-servers (the killed two come back too): writes
/// through the new gateway read back, the new blob-servers store shards.
async fn scale(c: &Compose, gws: &Gateways) {
    c.ok(&["up", "-d", "--scale", "gateway=3", "--scale", "blob=8"]);
    let g3 = s3_client_at(&c.s3_endpoint(3), &gws.id, &gws.secret);
    // Until the blob-servers that were down (and the new ones) register
    // and beat, a 4+2 write may find only the 4 that stayed up, one short
    // of k+1: SlowDown, the answer a client retries. Anything else fails.
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..12 {
        let key = format!("scaled-{i}");
        loop {
            let r = g3
                .put_object()
                .bucket("compose")
                .key(&key)
                .body(ByteStream::from(object(i)))
                .send()
                .await;
            match r {
                Ok(_) => break,
                Err(e) if e.code() == Some("SlowDown") && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("put via the new gateway: {e:?}"),
            }
        }
        assert_object(&gws.g1, &key, i, "get").await;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    for i in [7, 8] {
        let dest = tmp.path().join(format!("blob-{i}"));
        let src = format!("{}:/data/shards", c.container("blob", i));
        assert!(
            docker(&["cp", &src, dest.to_str().expect("utf8")])
                .status
                .success()
        );
        let n = files_under(&dest)
            .iter()
            .filter(|f| {
                f.parent()
                    .and_then(|p| p.file_name())
                    .is_some_and(|n| n != "tmp")
            })
            .count();
        assert!(n > 0, "new blob-server {i} stores no shard");
    }
}

async fn key_kept(c: &Compose) {
    let tmp = tempfile::tempdir().expect("tmp");
    let key_dir = tmp.path().join("key");
    let src = format!("{}:/data/tls/node.key", c.container("blob", 3));
    assert!(
        docker(&["cp", &src, key_dir.to_str().expect("utf8")])
            .status
            .success()
    );
    let key = std::fs::read_to_string(&key_dir).expect("key");
    let line = key
        .lines()
        .find(|l| !l.starts_with("-----") && l.len() > 20)
        .expect("key body")
        .to_string();
    let all_logs = c.ok(&["logs", "--no-color"]);
    assert!(!all_logs.contains(&line), "a node key is in the logs");
    let other = tmp.path().join("other");
    let src = format!("{}:/data", c.container("blob", 4));
    assert!(
        docker(&["cp", &src, other.to_str().expect("utf8")])
            .status
            .success()
    );
    for f in files_under(&other) {
        let bytes = std::fs::read(&f).expect("read");
        assert!(
            !bytes.windows(line.len()).any(|w| w == line.as_bytes()),
            "blob-3's key in blob-4's volume"
        );
    }
}
