//! No private key, master key or S3 secret reaches a log line, at the most
//! verbose log level, through start-up, calls, refusals, reloads, a crash
//! and a master-key rotation (which unwraps every key in memory).

use std::path::Path;

use hamster_proto::pb::StatusRequest;
use hamster_proto::pb::admin_client::AdminClient;
use hamster_proto::tls::NodeTls;
use hamster_tests::{Cluster, Kind};
use rustix::process::Signal;

/// Forms a secret could take in a log: raw bytes, hex, base64, Debug.
fn encodings(raw: &[u8]) -> Vec<Vec<u8>> {
    use std::fmt::Write;
    let hex = raw.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });
    vec![
        raw.to_vec(),
        hex.clone().into_bytes(),
        hex.to_uppercase().into_bytes(),
        base64(raw).into_bytes(),
        // Rust's Debug of a byte array or slice: "[12, 34, ...]".
        format!("{raw:?}").into_bytes(),
    ]
}

fn base64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// The secret parts of a PEM private key: each base64 line of its body.
fn pem_key_lines(path: &Path) -> Vec<Vec<u8>> {
    let pem = std::fs::read_to_string(path).expect("key file");
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(|l| l.as_bytes().to_vec())
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.len() <= hay.len() && hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn no_secret_reaches_any_log() {
    let mut c = Cluster::new();
    c.log_level = "trace".into();
    // Key holders read a next master key that appears later (SIGHUP).
    let next_key = c.root().join("next-master.key");
    let next_flag = format!("--next-master-key-file={}", next_key.display());
    let meta = c.prepare(Kind::Meta, "meta-1");
    let member = c.member(meta);
    // A CA directory for the CA rotation below (the new CA is minted there).
    let ca_dir = c.root().join("ca-dir");
    std::fs::create_dir_all(&ca_dir).expect("ca dir");
    let ca_flag = format!("--ca-dir={}", ca_dir.display());
    c.add_args(
        meta,
        &[&next_flag, &format!("--initial-members={member}"), &ca_flag],
    );
    c.spawn_prepared(meta);
    let blob = c.start(Kind::Blob, "blob-1");
    let gw = c.prepare(Kind::Gateway, "gw-1");
    c.add_args(gw, &[&next_flag]);
    c.spawn_prepared(gw);
    for i in [meta, blob, gw] {
        c.wait_healthy(i).await;
    }
    // A refused call, a reload, a crash and restart, more CLI commands.
    let gw_tls = NodeTls::load(&c.node(gw).tls_paths()).expect("gw tls");
    let refused = AdminClient::new(c.channel(meta, &gw_tls))
        .status(StatusRequest {})
        .await;
    assert_eq!(
        refused.expect_err("refused").code(),
        tonic::Code::PermissionDenied
    );
    c.signal(meta, Signal::HUP);
    c.kill(gw);
    c.restart(gw);
    c.wait_healthy(gw).await;
    c.hamster(&["keygen", "--out", next_key.to_str().expect("utf8")]);
    // Both holders load it, and a whole master-key rotation runs.
    c.signal(meta, Signal::HUP);
    c.signal(gw, Signal::HUP);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let flags = c.admin_flags();
        let mut args = vec!["rotate-key"];
        args.extend(flags.iter().map(String::as_str));
        let (ok, out) = c.hamster_status(&args);
        if ok {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rotate-key never opened:\n{out}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    // Ensure the reloads above have happened before reading the logs.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let pki = c.pki_dir();
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    // Every private key before the CA rotation, and every one it makes
    // (members' and the admin's renewed keys, the new CA's key).
    let key_files = |c: &Cluster| {
        let mut files = vec![pki.join("ca.key"), pki.join("admin.key")];
        files.extend(c.procs().map(|n| n.dir.join("node.key")));
        files.extend(
            std::fs::read_dir(&ca_dir)
                .expect("ca dir")
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "key")),
        );
        files
    };
    let mut pem_secrets = |files: Vec<std::path::PathBuf>| {
        for path in files {
            for line in pem_key_lines(&path) {
                secrets.push((path.display().to_string(), line));
            }
        }
    };
    pem_secrets(key_files(&c));
    let flags = c.admin_flags();
    let mut args = vec!["rotate-ca"];
    args.extend(flags.iter().map(String::as_str));
    c.hamster(&args);
    pem_secrets(key_files(&c));
    for path in [pki.join("master.key"), next_key] {
        let raw = std::fs::read(&path).expect("master key");
        assert_eq!(raw.len(), 32);
        for e in encodings(&raw) {
            secrets.push((path.display().to_string(), e));
        }
    }
    // An S3 key made through the CLI and used for signed requests: its
    // secret crosses the admin channel once and the gateway unseals it.
    let (key_id, s3_secret) = c.create_access_key("logs");
    assert_eq!(s3_secret.len(), 40);
    let s3 = c.s3_client(gw, &key_id, &s3_secret);
    s3.create_bucket()
        .bucket("logs")
        .send()
        .await
        .expect("signed request");
    s3.list_buckets().send().await.expect("signed request");
    secrets.push(("S3 secret".into(), s3_secret.into_bytes()));

    let logs = c.all_logs();
    // The logs are real and verbose: they show the key's fingerprint, TLS
    // handshakes, the refusal and the reload.
    assert!(logs.contains("master keys loaded"), "no start-up lines");
    assert!(logs.contains("master keys reloaded"));
    assert!(logs.contains("master-key rotation closed"));
    assert!(logs.contains("call refused by role"));
    assert!(logs.contains("TLS certificate and trust reloaded"));
    assert!(logs.contains("new CA minted"));
    assert!(logs.contains("certificate renewed from the issuing CA"));
    assert!(
        logs.len() > 50_000,
        "trace logs unexpectedly short: {}",
        logs.len()
    );
    for (what, secret) in &secrets {
        assert!(
            !contains(logs.as_bytes(), secret),
            "a secret from {what} is in the logs"
        );
    }
}
