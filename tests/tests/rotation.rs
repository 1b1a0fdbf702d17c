//! Master-key rotation on a real cluster (3 meta-servers, 3 blob-servers,
//! a gateway), end to end, in named steps over that one cluster.
//!
//! 1. Write objects of every kind: plain, multipart, several versions, a
//!    delete marker, GOVERNANCE- and COMPLIANCE-locked, and an upload in
//!    progress.
//! 2. Provision the next key on every holder with no restart: write the
//!    file, then SIGHUP.
//! 3. `hamster rotate-key` is refused, naming the gateway, while the
//!    gateway lacks the next key.
//! 4. The rotation runs, the leader is SIGKILLed midway, and the rotation
//!    still closes with nothing left on the old key.
//! 5. Every node restarts with only the new key. Every object reads back
//!    byte-identical, locks unchanged, and the S3 key still signs.
//! 6. A gateway left on only the old key is refused writes (503) and
//!    fails reads of rewrapped objects with an error naming the key.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, ObjectLockMode,
    VersioningConfiguration,
};
use hamster_proto::secrets::MasterKey;
use hamster_tests::s3::{S3Cluster, assert_s3_error, error_status, read_body};
use hamster_tests::{Kind, Node, Steps, path_str};

const MIB: usize = 1 << 20;

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// One version to read back after the rotation.
struct Kept {
    bucket: String,
    key: String,
    version_id: Option<String>,
    bytes: Vec<u8>,
    lock: Option<(ObjectLockMode, i64)>,
}

async fn put(c: &aws_sdk_s3::Client, bucket: &str, key: &str, bytes: Vec<u8>) -> Kept {
    let r = c
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(bytes.clone()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e:?}"));
    Kept {
        bucket: bucket.into(),
        key: key.into(),
        version_id: r.version_id().map(str::to_string),
        bytes,
        lock: None,
    }
}

async fn check(c: &aws_sdk_s3::Client, k: &Kept) {
    let g = c
        .get_object()
        .bucket(&k.bucket)
        .key(&k.key)
        .set_version_id(k.version_id.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {}/{}@{:?}: {e:?}", k.bucket, k.key, k.version_id));
    let lock = g
        .object_lock_mode()
        .cloned()
        .zip(g.object_lock_retain_until_date().map(DateTime::secs));
    assert_eq!(lock, k.lock, "{}/{} lock", k.bucket, k.key);
    assert!(
        read_body(g).await == k.bytes,
        "{}/{}@{:?} bytes differ",
        k.bucket,
        k.key,
        k.version_id
    );
}

/// Status as the first answering meta-server among `metas` gives it.
async fn status(s: &S3Cluster, metas: &[Node]) -> hamster_proto::pb::StatusResponse {
    for &m in metas.iter().filter(|m| s.c.is_running(**m)) {
        if let Ok(st) = s.c.status(m).await {
            return st;
        }
    }
    panic!("no meta-server answered status\n{}", s.c.all_logs());
}

/// Waits until `ok` holds for the status, or fails with the logs.
async fn wait_status(
    s: &S3Cluster,
    what: &str,
    ok: impl Fn(&hamster_proto::pb::StatusResponse) -> bool,
) -> hamster_proto::pb::StatusResponse {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = status(s, &s.metas).await;
        if ok(&st) {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {st:?}\n{}",
            s.c.all_logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn holds_next(st: &hamster_proto::pb::StatusResponse, role: &str, next: &str) -> bool {
    let of_role: Vec<_> = st
        .key_holders
        .iter()
        .filter(|h| h.role == role && h.live)
        .collect();
    !of_role.is_empty() && of_role.iter().all(|h| h.next_kek_fingerprint == next)
}

/// The cluster under rotation and what the steps hand on.
struct Rotation {
    s: S3Cluster,
    /// The next key's file (written by `hamster keygen` in step 2).
    next: PathBuf,
    /// Admin flags that reach every meta-server.
    flags: Vec<String>,
    old_fp: String,
    /// Every version to read back after the rotation.
    kept: Vec<Kept>,
}

impl Rotation {
    /// `args` followed by the admin flags.
    fn with(&self, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(self.flags.iter().cloned());
        all
    }
}

/// A multipart upload left open across the rotation.
struct OpenUpload {
    id: String,
    etag: String,
    part: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn master_key_rotation_rewraps_every_key_and_survives_the_leader() {
    let keys = tempfile::tempdir().expect("tmp");
    let next = keys.path().join("master.next.key");
    let next_flag = format!("--next-master-key-file={}", next.display());
    // Small, paced batches so the leader can be killed midway.
    let s = S3Cluster::build(
        3,
        3,
        &[&next_flag, "--rewrap-batch=4", "--rewrap-pause-ms=300"],
        &[&next_flag],
    )
    .await;
    let old_fp = MasterKey::load(&s.c.pki_dir().join("master.key"))
        .expect("old key")
        .fingerprint();
    let mut flags = s.c.admin_flags();
    flags.retain(|f| !f.starts_with("--meta="));
    flags.push(format!("--meta={}", s.c.meta_addrs().join(",")));
    let mut r = Rotation {
        s,
        next,
        flags,
        old_fp,
        kept: Vec::new(),
    };
    let mut steps = Steps::new("master_key_rotation_rewraps_every_key_and_survives_the_leader");
    let open = steps
        .require(
            "1. objects of every kind are written",
            write_every_kind(&mut r),
        )
        .await;
    let new_fp = steps
        .require(
            "2. the next key reaches every meta-server by SIGHUP",
            provision(&r),
        )
        .await;
    steps
        .require(
            "3. rotate-key is refused, naming the gateway, while it lacks the key",
            refused_until_the_gateway_holds_it(&r, &new_fp),
        )
        .await;
    steps
        .require(
            "4. the rotation survives its leader's death and closes",
            rotate_and_kill_the_leader(&mut r, &new_fp),
        )
        .await;
    steps
        .require(
            "5. every holder restarts with only the new key",
            restart_on_the_new_key(&mut r),
        )
        .await;
    steps
        .run("5. every object reads back, locks unchanged", read_back(&r))
        .await;
    steps
        .run(
            "5. the upload begun under the old key completes",
            complete_open(&r, open),
        )
        .await;
    steps
        .run("5. a COMPLIANCE version is still locked", still_locked(&r))
        .await;
    steps
        .run(
            "6. a gateway on the old key is refused, naming the key",
            old_gateway(&mut r, &new_fp),
        )
        .await;
    steps
        .run(
            "6. nothing was written, nothing corrupted",
            nothing_changed(&r),
        )
        .await;
    steps.finish();
}

/// Plain, multipart, several versions, a delete marker, GOVERNANCE- and
/// COMPLIANCE-locked, and an upload in progress (answered).
async fn write_every_kind(r: &mut Rotation) -> anyhow::Result<OpenUpload> {
    let c = r.s.client();
    let kept = &mut r.kept;
    c.create_bucket().bucket("plain").send().await.expect("mb");
    for i in 0..20 {
        kept.push(put(&c, "plain", &format!("small-{i}"), data(1000 + i, i as u8)).await);
    }
    let up = c
        .create_multipart_upload()
        .bucket("plain")
        .key("mp")
        .send()
        .await
        .expect("mpu");
    let id = up.upload_id().expect("id").to_string();
    let (p1, p2) = (data(5 * MIB, 1), data(777, 2));
    let mut parts = Vec::new();
    for (n, p) in [(1, &p1), (2, &p2)] {
        let r = c
            .upload_part()
            .bucket("plain")
            .key("mp")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(p.clone()))
            .send()
            .await
            .expect("part");
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(r.e_tag().expect("etag"))
                .build(),
        );
    }
    c.complete_multipart_upload()
        .bucket("plain")
        .key("mp")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    kept.push(Kept {
        bucket: "plain".into(),
        key: "mp".into(),
        version_id: None,
        bytes: [p1.clone(), p2.clone()].concat(),
        lock: None,
    });
    // An upload still in progress across the rotation.
    let open = c
        .create_multipart_upload()
        .bucket("plain")
        .key("open")
        .send()
        .await
        .expect("mpu");
    let open_id = open.upload_id().expect("id").to_string();
    let open_part = data(5 * MIB + 3, 9);
    let r = c
        .upload_part()
        .bucket("plain")
        .key("open")
        .upload_id(&open_id)
        .part_number(1)
        .body(ByteStream::from(open_part.clone()))
        .send()
        .await
        .expect("open part");
    let open_etag = r.e_tag().expect("etag").to_string();

    c.create_bucket().bucket("ver").send().await.expect("mb");
    c.put_bucket_versioning()
        .bucket("ver")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");
    for i in 0..3 {
        kept.push(put(&c, "ver", "doc", data(3000, 40 + i)).await);
    }
    c.delete_object()
        .bucket("ver")
        .key("doc")
        .send()
        .await
        .expect("marker");

    c.create_bucket()
        .bucket("vault")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("mb lock");
    let until = hamster_tests::lock::now_secs() + 30 * 86_400;
    for (key, mode) in [
        ("gov", ObjectLockMode::Governance),
        ("comp", ObjectLockMode::Compliance),
    ] {
        let bytes = data(4096, key.len() as u8);
        let r = c
            .put_object()
            .bucket("vault")
            .key(key)
            .object_lock_mode(mode.clone())
            .object_lock_retain_until_date(DateTime::from_secs(until))
            .body(ByteStream::from(bytes.clone()))
            .send()
            .await
            .expect("put locked");
        kept.push(Kept {
            bucket: "vault".into(),
            key: key.into(),
            version_id: r.version_id().map(str::to_string),
            bytes,
            lock: Some((mode, until)),
        });
    }
    Ok(OpenUpload {
        id: open_id,
        etag: open_etag,
        part: open_part,
    })
}

/// The next key on every meta-server, without restart: write the file,
/// then SIGHUP. Answers the next key's fingerprint.
async fn provision(r: &Rotation) -> anyhow::Result<String> {
    let s = &r.s;
    let st = wait_status(s, "the write key", |st| {
        st.master_key_fingerprint == r.old_fp
    })
    .await;
    assert_eq!(st.key_rotation, "none");
    s.c.hamster(&["keygen", "--out", path_str(&r.next)]);
    let new_fp = MasterKey::load(&r.next).expect("new key").fingerprint();
    for &m in &s.metas {
        s.c.signal(m, rustix::process::Signal::HUP);
    }
    wait_status(s, "every meta-server holding the next key", |st| {
        holds_next(st, "meta", &new_fp)
    })
    .await;
    Ok(new_fp)
}

/// Refused while the gateway lacks the next key, naming the gateway; then
/// the gateway gets it by SIGHUP too.
async fn refused_until_the_gateway_holds_it(r: &Rotation, new_fp: &str) {
    let s = &r.s;
    let args = r.with(&["rotate-key", "--no-wait"]);
    let (ok, out) =
        s.c.hamster_status(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        !ok && out.contains("gw-1"),
        "rotate-key should refuse, naming gw-1:\n{out}"
    );
    assert_eq!(status(s, &s.metas).await.key_rotation, "none");

    s.c.signal(s.gw, rustix::process::Signal::HUP);
    wait_status(s, "the gateway holding the next key", |st| {
        holds_next(st, "gateway", new_fp)
    })
    .await;
}

/// Rotate, and SIGKILL the leader midway: the rotation still closes with
/// nothing left on the old key, and rotate-key reports it.
async fn rotate_and_kill_the_leader(r: &mut Rotation, new_fp: &str) {
    let follow = Command::new(hamster_tests::bin_dir().join("hamster"))
        .args(r.with(&["rotate-key", "--json"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rotate-key");
    let started = wait_status(&r.s, "the rotation to open", |st| {
        st.key_rotation == "rewrapping"
    })
    .await;
    // What is left when this status was read: the rewrapper may already
    // have moved a batch, so the count at opening is checked below, from
    // rotate-key's own "opened" line.
    let total = started.versions_on_old_key;
    // A write while the rotation is open uses the new key.
    let c = r.s.client();
    r.kept
        .push(put(&c, "plain", "during", data(5000, 77)).await);
    wait_status(&r.s, "rewrapping to make progress", |st| {
        st.versions_on_old_key < total && st.versions_on_old_key > 0
    })
    .await;
    let s = &mut r.s;
    let leader = s.c.wait_leader(&s.metas).await;
    s.c.kill(leader);
    let after = status(s, &s.metas).await;
    assert_eq!(
        after.key_rotation, "rewrapping",
        "the rotation should still be open when its leader dies: {after:?}"
    );
    let closed = wait_status(s, "the rotation to close under a new leader", |st| {
        st.key_rotation == "none"
    })
    .await;
    assert_eq!(
        (
            closed.master_key_fingerprint.as_str(),
            closed.versions_on_old_key
        ),
        (new_fp, 0)
    );
    let out = follow.wait_with_output().expect("rotate-key output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rotate-key failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let opened: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("a line")).expect("json line");
    assert_eq!(opened["event"], "opened", "{text}");
    let to_rewrap = opened["to_rewrap"].as_u64().unwrap_or(0);
    // 20 small + 2 parts of mp + 1 open part + 3 versions + 2 locked + the S3 key.
    assert!(to_rewrap >= 29, "{to_rewrap} keys to rewrap");
    let last: serde_json::Value =
        serde_json::from_str(text.lines().last().expect("a line")).expect("json line");
    assert_eq!(
        (last["event"].as_str(), last["versions_on_old_key"].as_u64()),
        (Some("closed"), Some(0))
    );
    let st_json = r.s.c.hamster(
        &r.with(&["status", "--json"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let st_json: serde_json::Value = serde_json::from_str(&st_json).expect("status json");
    assert_eq!(st_json["master_key_fingerprint"], new_fp);
    assert_eq!(st_json["key_rotation"], "none");
    assert_eq!(st_json["versions_on_old_key"], 0);
}

/// Every key holder (meta-servers, the gateway) restarts with only the
/// new key.
async fn restart_on_the_new_key(r: &mut Rotation) {
    let s = &mut r.s;
    let holders: Vec<Node> = s.metas.iter().copied().chain([s.gw]).collect();
    for &n in &holders {
        s.c.kill(n);
        s.c.set_arg(n, "--master-key-file", Some(path_str(&r.next)));
        s.c.set_arg(n, "--next-master-key-file", None);
    }
    for &n in &holders {
        s.c.restart(n);
    }
    s.c.wait_leader(&s.metas).await;
    s.c.wait_healthy(s.gw).await;
}

async fn read_back(r: &Rotation) {
    let c = r.s.client();
    for k in &r.kept {
        check(&c, k).await;
    }
}

/// The upload begun under the old key completes under the new one.
async fn complete_open(r: &Rotation, open: OpenUpload) {
    let c = r.s.client();
    c.complete_multipart_upload()
        .bucket("plain")
        .key("open")
        .upload_id(&open.id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(&open.etag)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete the open upload");
    check(
        &c,
        &Kept {
            bucket: "plain".into(),
            key: "open".into(),
            version_id: None,
            bytes: open.part,
            lock: None,
        },
    )
    .await;
}

async fn still_locked(r: &Rotation) {
    let e =
        r.s.client()
            .delete_object()
            .bucket("vault")
            .key("comp")
            .version_id(
                r.kept
                    .iter()
                    .find(|k| k.key == "comp")
                    .and_then(|k| k.version_id.clone())
                    .expect("id"),
            )
            .send()
            .await;
    assert_eq!(
        error_status(&e.expect_err("still locked")).0.as_deref(),
        Some("AccessDenied")
    );
}

/// A gateway left on the old key: no writes, clear read errors. Its S3
/// secrets are under the new key too, so it refuses every call (503:
/// another gateway can serve it), naming the key it lacks.
async fn old_gateway(r: &mut Rotation, new_fp: &str) {
    let s = &mut r.s;
    let old_gw = s.c.start(Kind::Gateway, "gw-old");
    s.c.wait_healthy(old_gw).await;
    let oc = s.c.s3_client(old_gw, &s.access_key_id, &s.secret);
    let e = oc
        .put_object()
        .bucket("plain")
        .key("from-old")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_s3_error(e, "ServiceUnavailable", 503);
    let e = oc.get_object().bucket("plain").key("small-1").send().await;
    assert_s3_error(e, "ServiceUnavailable", 503);
    let log = s.c.log(old_gw);
    assert!(
        log.contains("split key") && log.contains(new_fp),
        "the error names the key:\n{log}"
    );
}

/// Nothing was written through the old gateway, and nothing corrupted.
async fn nothing_changed(r: &Rotation) {
    let c = r.s.client();
    let e = c
        .head_object()
        .bucket("plain")
        .key("from-old")
        .send()
        .await
        .expect_err("absent");
    assert_eq!(error_status(&e).1, Some(404));
    for k in &r.kept {
        check(&c, k).await;
    }
}
