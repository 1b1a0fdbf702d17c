//! compose.yaml on this machine's Docker engine (images built FROM scratch
//! from the static binaries `.ci/run` builds): the cluster comes up
//! healthy; S3 round trips through each gateway; two blob containers
//! killed and every object still reads; the meta leader stopped and writes
//! resume; scaled to 3 gateways and 8 blob-servers, the new members serve
//! and store shards; a joined node's key is in no other volume or log; and
//! the test leaves no container, network or volume behind.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use hamster_tests::files_under;
use hamster_tests::s3::s3_client_at;

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

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("docker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_compose_cluster_serves_survives_and_scales() {
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
    let base = 21_000 + (rand::random::<u16>() % 20_000);
    let c = Compose {
        project: format!("hamstertest{}", std::process::id()),
        ports: format!("{base}-{}", base + 9),
    };
    c.ok(&["build"]);
    c.ok(&["up", "-d"]);

    // Credentials from bootstrap; a client per gateway.
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
    let object = |n: usize| -> Vec<u8> {
        (0..1_500_000 + n)
            .map(|i| ((i * 13 + n) % 256) as u8)
            .collect()
    };
    let mut keys = Vec::new();
    for (i, (put, get)) in [(&g1, &g2), (&g2, &g1)].into_iter().enumerate() {
        let key = format!("obj-{i}");
        put.put_object()
            .bucket("compose")
            .key(&key)
            .body(ByteStream::from(object(i)))
            .send()
            .await
            .expect("put");
        let got = get
            .get_object()
            .bucket("compose")
            .key(&key)
            .send()
            .await
            .expect("get");
        assert!(
            got.body
                .collect()
                .await
                .expect("body")
                .into_bytes()
                .as_ref()
                == object(i).as_slice()
        );
        keys.push((key, i));
    }

    // Two blob-servers killed: every object still reads.
    for i in [1, 2] {
        assert!(docker(&["kill", &c.container("blob", i)]).status.success());
    }
    for (key, n) in &keys {
        let got = g1
            .get_object()
            .bucket("compose")
            .key(key)
            .send()
            .await
            .expect("get with 2 blobs down");
        assert!(
            got.body
                .collect()
                .await
                .expect("body")
                .into_bytes()
                .as_ref()
                == object(*n).as_slice()
        );
    }

    // With 4 of 6 up (= k) writes are refused by design; bring them back.
    for i in [1, 2] {
        assert!(docker(&["start", &c.container("blob", i)]).status.success());
    }

    // The meta leader stopped: writes resume under a new leader.
    let status = c.ok(&[
        "run",
        "--rm",
        "--no-deps",
        "bootstrap",
        "/hamster",
        "status",
        "--json",
        "--admin-cert",
        "/pki/admin.crt",
        "--admin-key",
        "/pki/admin.key",
        "--trust",
        "/pki/trust.pem",
        "--meta",
        "meta-1:7400,meta-2:7400,meta-3:7400",
    ]);
    let json = status
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("status json");
    let leader: serde_json::Value = serde_json::from_str(json).expect("json");
    let leader = leader["leader_raft_id"].as_u64().expect("leader");
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
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = g1
            .put_object()
            .bucket("compose")
            .key("after-leader")
            .body(ByteStream::from_static(b"new leader"))
            .send()
            .await;
        if r.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "writes did not resume: {r:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Scale: 3 gateways, 8 blob-servers (the killed two come back too).
    c.ok(&["up", "-d", "--scale", "gateway=3", "--scale", "blob=8"]);
    let g3 = s3_client_at(&c.s3_endpoint(3), &id, &secret);
    for i in 0..12 {
        let key = format!("scaled-{i}");
        g3.put_object()
            .bucket("compose")
            .key(&key)
            .body(ByteStream::from(object(i)))
            .send()
            .await
            .expect("put via the new gateway");
        let got = g1
            .get_object()
            .bucket("compose")
            .key(&key)
            .send()
            .await
            .expect("get");
        assert!(
            got.body
                .collect()
                .await
                .expect("body")
                .into_bytes()
                .as_ref()
                == object(i).as_slice()
        );
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

    // A joined node's key: in its own volume only, in no log.
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

    // Tear down: nothing of the project is left.
    c.ok(&["down", "-v", "--remove-orphans", "--timeout", "5"]);
    assert_eq!(c.leftovers(), "", "containers, networks or volumes left");
}
