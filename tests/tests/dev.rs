//! `hamster dev`: from nothing to a serving cluster of local processes;
//! SIGTERM stops every child; a second run comes back with the same keys
//! and data; the master-key rotation runbook works on it (SIGHUP to
//! `hamster dev` reaches every key holder).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use hamster_tests::bin_dir;
use hamster_tests::s3::{read_body, s3_client_at};
use rustix::process::{Pid, Signal, kill_process};

/// A base port with the ports `hamster dev` will use free right now.
fn free_ports() -> (u16, u16) {
    for _ in 0..200 {
        let base = 20_000 + (rand::random::<u16>() % 20_000);
        let s3 = base + 300;
        let mut ports: Vec<u16> = (1..=3).map(|i| base + i).collect();
        ports.extend((101..=106).map(|i| base + i));
        ports.push(base + 201);
        ports.push(s3);
        if ports
            .iter()
            .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        {
            return (base, s3);
        }
    }
    panic!("no free port range");
}

/// Processes whose command line names `dir` (the children of a dev run).
fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&needle) && !cmd.contains("hamster dev") {
                out.push(cmd);
            }
        }
    }
    out
}

struct Dev {
    child: Child,
    out: std::path::PathBuf,
}

impl Dev {
    fn start(dir: &Path, base: u16, s3: u16, n: usize) -> Self {
        let out = dir.parent().expect("parent").join(format!("dev-{n}.out"));
        let child = Command::new(bin_dir().join("hamster"))
            .args(["dev", "--dir"])
            .arg(dir)
            .args([
                "--base-port",
                &base.to_string(),
                "--s3-port",
                &s3.to_string(),
            ])
            .arg("--bin-dir")
            .arg(bin_dir())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("out"))
            .stderr(std::fs::File::create(out.with_extension("err")).expect("err"))
            .spawn()
            .expect("hamster dev");
        let mut d = Self { child, out };
        let deadline = Instant::now() + Duration::from_secs(90);
        while !std::fs::read_to_string(&d.out)
            .unwrap_or_default()
            .contains("Hamster is running")
        {
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("hamster dev exited ({st}):\n{}", d.output(dir));
            }
            assert!(
                Instant::now() < deadline,
                "hamster dev never came up:\n{}",
                d.output(dir)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        d
    }

    fn output(&self, dir: &Path) -> String {
        let mut s = std::fs::read_to_string(&self.out).unwrap_or_default();
        s += &std::fs::read_to_string(self.out.with_extension("err")).unwrap_or_default();
        for e in std::fs::read_dir(dir.join("logs"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let log = std::fs::read_to_string(e.path()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            s += &format!(
                "\n--- {}\n{}",
                e.path().display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        s
    }

    fn stop(mut self, dir: &Path) {
        let pid = Pid::from_raw(self.child.id() as i32).expect("pid");
        kill_process(pid, Signal::TERM).expect("SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                assert!(
                    st.success(),
                    "hamster dev exited with {st}:\n{}",
                    self.output(dir)
                );
                break;
            }
            assert!(Instant::now() < deadline, "hamster dev did not stop");
            std::thread::sleep(Duration::from_millis(100));
        }
        let left = processes_using(dir);
        assert!(left.is_empty(), "children left running: {left:?}");
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn env(dir: &Path) -> std::collections::HashMap<String, String> {
    std::fs::read_to_string(dir.join("env"))
        .expect("env file")
        .lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hamster_dev_serves_stops_cleanly_and_comes_back_with_its_data() {
    let root = tempfile::tempdir().expect("tmp");
    let dir = root.path().join("cluster");
    let (base, s3) = free_ports();

    let dev = Dev::start(&dir, base, s3, 1);
    let e = env(&dir);
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "HAMSTER_META",
        "HAMSTER_ADMIN_CERT",
    ] {
        assert!(e.contains_key(k), "{k} missing from env");
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("env"))
            .expect("env")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "env holds a secret");
    let c = s3_client_at(
        &e["AWS_ENDPOINT_URL"],
        &e["AWS_ACCESS_KEY_ID"],
        &e["AWS_SECRET_ACCESS_KEY"],
    );
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 249) as u8).collect();
    c.create_bucket()
        .bucket("devtest")
        .send()
        .await
        .expect("mb");
    c.put_object()
        .bucket("devtest")
        .key("k")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put");
    assert!(read(&c).await == data);
    assert!(
        !processes_using(&dir).is_empty(),
        "no child processes found"
    );
    dev.stop(&dir);

    // The second run reuses keys and data.
    let dev = Dev::start(&dir, base, s3, 2);
    assert_eq!(env(&dir), e, "credentials changed between runs");
    assert_eq!(read(&c).await, data);

    // The README's rotation runbook, on this dev cluster: next key, SIGHUP
    // to `hamster dev` (passed on), rotate, verify zero, promote, SIGHUP.
    let keys = dir.join("keys");
    assert!(
        keys.join("master.key").exists(),
        "the master key lives in keys/"
    );
    hamster(
        &e,
        &[
            "keygen",
            "--out",
            &keys.join("master.next.key").display().to_string(),
        ],
    );
    let dev_pid = Pid::from_raw(dev.child.id() as i32).expect("pid");
    kill_process(dev_pid, Signal::HUP).expect("SIGHUP");
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(out) = hamster_ok(&e, &["rotate-key", "--json"]) {
        assert!(
            Instant::now() < deadline,
            "rotate-key never succeeded:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let st: serde_json::Value =
        serde_json::from_str(&hamster(&e, &["status", "--json"])).expect("status json");
    assert_eq!(
        (
            st["key_rotation"].as_str(),
            st["versions_on_old_key"].as_u64()
        ),
        (Some("none"), Some(0)),
        "{st}"
    );
    std::fs::rename(keys.join("master.key"), dir.join("old-master.key")).expect("mv");
    std::fs::rename(keys.join("master.next.key"), keys.join("master.key")).expect("mv");
    kill_process(dev_pid, Signal::HUP).expect("SIGHUP");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(read(&c).await, data);

    // The CA runbook too: rotate-ca moves every member and the admin files
    // in DIR/pki onto a new CA, minted in DIR/pki (every meta's --ca-dir).
    let out = hamster(&e, &["rotate-ca", "--json"]);
    assert!(out.contains("\"closed\""), "{out}");
    let st: serde_json::Value =
        serde_json::from_str(&hamster(&e, &["status", "--json"])).expect("status json");
    assert_eq!(st["members_on_old_ca"].as_u64(), Some(0), "{st}");
    assert_eq!(st["ca_rotation"].as_str(), Some("none"), "{st}");
    assert_eq!(read(&c).await, data);
    dev.stop(&dir);

    // A third run starts every holder with only the promoted key, and
    // every node with its new-CA certificate and trust.
    let dev = Dev::start(&dir, base, s3, 3);
    assert_eq!(read(&c).await, data);
    dev.stop(&dir);
}

async fn read(c: &aws_sdk_s3::Client) -> Vec<u8> {
    let got = c
        .get_object()
        .bucket("devtest")
        .key("k")
        .send()
        .await
        .expect("get");
    read_body(got).await
}

/// The admin CLI with the dev cluster's env file: its output, or why not.
fn hamster_ok(
    env: &std::collections::HashMap<String, String>,
    args: &[&str],
) -> Result<String, String> {
    let out = Command::new(bin_dir().join("hamster"))
        .args(args)
        .envs(env.iter().filter(|(k, _)| k.starts_with("HAMSTER_")))
        .output()
        .expect("hamster");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(text + &String::from_utf8_lossy(&out.stderr))
    }
}

fn hamster(env: &std::collections::HashMap<String, String>, args: &[&str]) -> String {
    hamster_ok(env, args).unwrap_or_else(|e| panic!("hamster {args:?}: {e}"))
}
