//! `hamster dev`: from nothing to a serving cluster of local processes;
//! SIGTERM stops every child; a backup restored with `hamster restore
//! --dir` (the old meta dirs moved aside, not deleted) is what the next run
//! serves, with the same keys and credentials; the master-key and CA
//! runbooks work on the restored cluster (SIGHUP to `hamster dev` reaches
//! every key holder); and a backup from before both rotations is refused
//! while the old key is gone, refused as older once it is back, and with
//! `--accept-older` restores onto the new key and CA.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use hamster_proto::secrets::MasterKey;
use hamster_tests::dev::{
    Dev, env, free_ports, hamster, hamster_json, hamster_ok, processes_using,
};
use hamster_tests::files_under;
use hamster_tests::s3::{assert_s3_error, get_bytes, s3_client_at};
use rustix::process::{Signal, kill_process};

type Env = HashMap<String, String>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hamster_dev_serves_restores_rotates_and_comes_back_with_its_data() {
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
    assert_eq!(mode(&dir.join("env")), 0o600, "env holds a secret");
    let topology: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("topology.json")).expect("topology.json"))
            .expect("topology json");
    assert_eq!(
        topology["metas"].as_array().map(Vec::len),
        Some(3),
        "{topology}"
    );
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
    put(&c, "k", &data).await;
    assert!(read(&c, "k").await == data);
    assert!(
        !processes_using(&dir).is_empty(),
        "no child processes found"
    );

    // A backup, then a write it does not hold.
    let before_backup = root.path().join("before.hbk");
    let b1 = backup(&e, &before_backup);
    put(&c, "after-backup", b"not in the backup").await;
    dev.stop(&dir);

    // --check writes nothing; the restore moves each meta dir aside.
    let untouched = files(&dir);
    restore(&e, &before_backup, &dir, &["--check"]).expect("restore --check");
    assert_eq!(files(&dir), untouched, "restore --check changed files");
    let r = restore_json(&e, &before_backup, &dir, &[]);
    assert_eq!(r["raft_index"], b1["raft_index"], "{r}");
    assert_moved_aside(&dir, &r);

    // The second run serves the backup, with the same credentials.
    let dev = Dev::start(&dir, base, s3, 2);
    assert_eq!(env(&dir), e, "credentials changed across the restore");
    assert!(read(&c, "k").await == data, "k after the restore");
    assert_s3_error(
        c.get_object()
            .bucket("devtest")
            .key("after-backup")
            .send()
            .await,
        "NoSuchKey",
        404,
    );
    let held = hamster_json(&e, &["orphans", "list", "--json"]);
    assert_eq!(held["hold"]["backup_index"], b1["raft_index"], "{held}");
    put(&c, "k2", b"written after the restore").await;
    assert_eq!(read(&c, "k2").await, b"written after the restore");
    let before_rotations = root.path().join("before-rotations.hbk");
    backup(&e, &before_rotations);

    // The README's rotation runbook: next key, SIGHUP to `hamster dev`
    // (passed on), rotate, verify zero, promote, SIGHUP.
    let keys = dir.join("keys");
    let old_key = dir.join("old-master.key");
    rotate_master_key(&e, &dev, &keys, &old_key).await;
    assert!(read(&c, "k").await == data);

    // The CA runbook too: rotate-ca moves every member and the admin files
    // in DIR/pki onto a new CA, minted in DIR/pki (every meta's --ca-dir).
    let out = hamster(&e, &["rotate-ca", "--json"]);
    assert!(out.contains("\"closed\""), "{out}");
    let st = hamster_json(&e, &["status", "--json"]);
    assert_eq!(st["members_on_old_ca"].as_u64(), Some(0), "{st}");
    assert_eq!(st["ca_rotation"].as_str(), Some("none"), "{st}");
    assert!(read(&c, "k").await == data);
    dev.stop(&dir);

    // The backup from before both rotations: refused while the old key is
    // gone, naming it; refused as older once it is back.
    let old_fp = MasterKey::load(&old_key).expect("old key").fingerprint();
    let new_fp = MasterKey::load(&keys.join("master.key"))
        .expect("key")
        .fingerprint();
    let untouched = files(&dir);
    let err = restore(&e, &before_rotations, &dir, &[])
        .expect_err("restored without the key its backup needs");
    assert!(
        err.contains(&old_fp) && err.to_lowercase().contains("master key"),
        "the refusal does not name the missing master key {old_fp}:\n{err}"
    );
    assert_eq!(files(&dir), untouched, "a refused restore changed files");
    std::fs::copy(&old_key, keys.join("master.next.key")).expect("old key back");
    let untouched = files(&dir);
    let err = restore(&e, &before_rotations, &dir, &[])
        .expect_err("restored a backup older than two rotations");
    assert!(err.contains("--accept-older"), "{err}");
    assert_eq!(files(&dir), untouched, "a refused restore changed files");
    let r = restore_json(&e, &before_rotations, &dir, &["--accept-older"]);
    let accepted = r["accepted_older"].as_array().map_or(0, Vec::len);
    assert!(accepted >= 2, "the key and the CA rotation: {r}");
    assert!(r["rewrapped"].as_u64() >= Some(1), "{r}");
    // Everything is on the new key now: the old one goes for good.
    std::fs::remove_file(keys.join("master.next.key")).expect("rm old key");

    // The third run: only the promoted key, every node on its new-CA
    // certificate and trust; what the backup held reads, writes work.
    let dev = Dev::start(&dir, base, s3, 3);
    assert!(read(&c, "k").await == data);
    assert_eq!(read(&c, "k2").await, b"written after the restore");
    put(&c, "k3", b"after the second restore").await;
    assert_eq!(read(&c, "k3").await, b"after the second restore");
    let st = no_old_key_in_status(&e, &old_fp).await;
    assert_eq!(
        (
            st["key_rotation"].as_str(),
            st["master_key_fingerprint"].as_str(),
            st["ca_rotation"].as_str()
        ),
        (Some("none"), Some(new_fp.as_str()), Some("none")),
        "{st}"
    );
    dev.stop(&dir);
}

/// `hamster backup --out FILE --json`, checked: a private file holding
/// the cluster's key and its versions.
fn backup(e: &Env, file: &Path) -> serde_json::Value {
    let b = hamster_json(e, &["backup", "--out", &p(file), "--json"]);
    assert!(b["raft_index"].as_u64() > Some(0), "{b}");
    assert!(b["versions"].as_u64() >= Some(1), "{b}");
    assert_eq!(
        std::fs::metadata(file).expect("backup file").len(),
        b["bytes"].as_u64().expect("bytes"),
        "{b}"
    );
    assert_eq!(mode(file), 0o600, "a backup holds sealed secrets");
    b
}

/// `hamster restore --from FILE --dir DIR EXTRA..`: its stdout, or why not.
fn restore(e: &Env, file: &Path, dir: &Path, extra: &[&str]) -> Result<String, String> {
    let (f, d) = (p(file), p(dir));
    let mut a = vec!["restore", "--from", &f, "--dir", &d];
    a.extend_from_slice(extra);
    hamster_ok(e, &a)
}

/// A restore that must succeed, with `--json`.
fn restore_json(e: &Env, file: &Path, dir: &Path, extra: &[&str]) -> serde_json::Value {
    let mut a = extra.to_vec();
    a.push("--json");
    let out = restore(e, file, dir, &a).unwrap_or_else(|e| panic!("restore: {e}"));
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("restore --json printed no JSON object ({e}):\n{out}"))
}

/// Every meta dir was rebuilt; each old one is beside it, whole.
fn assert_moved_aside(dir: &Path, r: &serde_json::Value) {
    let paths = |k: &str| -> Vec<PathBuf> {
        r[k].as_array()
            .unwrap_or_else(|| panic!("no {k} in {r}"))
            .iter()
            .map(|v| PathBuf::from(v.as_str().expect("path")))
            .collect()
    };
    let (seeded, aside) = (paths("seeded"), paths("moved_aside"));
    assert_eq!((seeded.len(), aside.len()), (3, 3), "{r}");
    for i in 1..=3 {
        let meta = dir.join("data").join(format!("meta-{i}"));
        assert!(meta.join("state.db").exists(), "meta-{i} not seeded");
        let prefix = format!("meta-{i}.pre-restore-");
        let old = aside
            .iter()
            .find(|a| {
                a.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
            })
            .unwrap_or_else(|| panic!("meta-{i} not moved aside: {r}"));
        assert!(
            old.join("state.db").exists(),
            "{} lost its DB",
            old.display()
        );
    }
}

/// The rotation runbook; the old key ends at `old_key`.
async fn rotate_master_key(e: &Env, dev: &Dev, keys: &Path, old_key: &Path) {
    assert!(
        keys.join("master.key").exists(),
        "the master key lives in keys/"
    );
    hamster(e, &["keygen", "--out", &p(&keys.join("master.next.key"))]);
    kill_process(dev.pid(), Signal::HUP).expect("SIGHUP");
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(out) = hamster_ok(e, &["rotate-key", "--json"]) {
        assert!(
            Instant::now() < deadline,
            "rotate-key never succeeded:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let st = hamster_json(e, &["status", "--json"]);
    assert_eq!(
        (
            st["key_rotation"].as_str(),
            st["versions_on_old_key"].as_u64()
        ),
        (Some("none"), Some(0)),
        "{st}"
    );
    std::fs::rename(keys.join("master.key"), old_key).expect("mv");
    std::fs::rename(keys.join("master.next.key"), keys.join("master.key")).expect("mv");
    kill_process(dev.pid(), Signal::HUP).expect("SIGHUP");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// `hamster status --json` once no line of it names `old_fp` (key holders
/// report every 5 s, replacing what the backup recorded of them).
async fn no_old_key_in_status(e: &Env, old_fp: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = hamster(e, &["status", "--json"]);
        if !out.contains(old_fp) {
            return serde_json::from_str(out.trim()).expect("status json");
        }
        assert!(
            Instant::now() < deadline,
            "status still names the old key {old_fp}:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every file of the cluster's state (data, identities, keys, PKI) with
/// its size and time: what a refused restore must leave as it was.
fn files(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut out: Vec<_> = ["data", "nodes", "keys", "pki"]
        .iter()
        .flat_map(|d| files_under(&dir.join(d)))
        .map(|f| {
            let m = std::fs::metadata(&f).expect("stat");
            (f, m.len(), m.modified().ok())
        })
        .collect();
    out.sort();
    out
}

fn mode(path: &Path) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).expect("stat").permissions())
        & 0o777
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

async fn put(c: &aws_sdk_s3::Client, key: &str, data: &[u8]) {
    c.put_object()
        .bucket("devtest")
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

async fn read(c: &aws_sdk_s3::Client, key: &str) -> Vec<u8> {
    get_bytes(c, "devtest", key)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}
