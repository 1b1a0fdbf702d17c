//! CA rotation on real binaries (issue 9, ADR 0019): `hamster rotate-ca`
//! under S3 load with zero failed requests; every member and the admin on
//! the new CA and trust {new} only; old-CA certificates refused; every
//! node restarted trusting only the new CA serves every object; a node
//! joining afterwards gets a new-CA certificate; the driver SIGKILLed
//! midway (and the meta leader with it) and a re-run converges. The old
//! CA's key is never there: the meta-servers' CA directory starts empty.
//! The long scenario runs in named steps over one cluster.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use hamster_proto::pb::{ListBlobsRequest, registry_client::RegistryClient};
use hamster_proto::pki;
use hamster_proto::tls::{NodeTls, TlsPaths};
use hamster_tests::s3::{S3Cluster, read_body};
use hamster_tests::{Cluster, Kind, Node, Steps, bin_dir, free_port, path_str};
use rustix::process::Signal;

/// Runs `hamster ARGS` as the admin (flags from the harness); its stdout.
fn admin(c: &Cluster, args: &[&str]) -> String {
    let flags = c.admin_flags();
    let all: Vec<&str> = args
        .iter()
        .copied()
        .chain(flags.iter().map(String::as_str))
        .collect();
    c.hamster(&all)
}

fn status(c: &Cluster) -> serde_json::Value {
    let out = admin(c, &["status", "--json"]);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("status JSON: {e}\n{out}"))
}

fn fingerprints(pem_file: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(pem_file).expect("read pem");
    pki::certs_from_pem(&text)
        .expect("pem")
        .iter()
        .map(|d| pki::cert_fingerprint(d))
        .collect()
}

/// Copies a node's (or the admin's) certificate, key and trust aside.
fn save_identity(c: &Cluster, cert: &str, key: &str, trust: &str, name: &str) -> TlsPaths {
    let dir = c.root().join("saved").join(name);
    std::fs::create_dir_all(&dir).expect("dir");
    let to = TlsPaths {
        cert: dir.join("c.crt"),
        key: dir.join("c.key"),
        trust: dir.join("t.pem"),
    };
    std::fs::copy(cert, &to.cert).expect("copy cert");
    std::fs::copy(key, &to.key).expect("copy key");
    std::fs::copy(trust, &to.trust).expect("copy trust");
    to
}

async fn cluster(metas: usize, blobs: usize) -> (S3Cluster, tempfile::TempDir) {
    // Shared by the meta-servers, like compose's volume; without ca.key.
    let ca_dir = tempfile::tempdir().expect("ca dir");
    let flag = format!("--ca-dir={}", path_str(ca_dir.path()));
    let s = S3Cluster::build(metas, blobs, &[&flag], &[]).await;
    (s, ca_dir)
}

/// A client, and the bucket the tests write to.
async fn bucket(s: &S3Cluster) -> aws_sdk_s3::Client {
    let client = s.client();
    client
        .create_bucket()
        .bucket("ca-rot")
        .send()
        .await
        .expect("bucket");
    client
}

/// Waits until every running member has reported (status lists them live).
async fn wait_members(c: &Cluster, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(c);
        let live = s["members"]
            .as_array()
            .map_or(0, |m| m.iter().filter(|m| m["live"] == true).count());
        if live >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{n} members never reported: {s}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits for `n` registered blob-servers, asking as the admin (the
/// harness's probe identity comes from the old CA).
async fn wait_blobs(c: &Cluster, meta: Node, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut r = RegistryClient::new(c.channel(meta, &c.admin_tls()));
        if let Ok(l) = r.list_blobs(ListBlobsRequest {}).await
            && l.into_inner().servers.len() >= n
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} blob-servers never registered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A PUT/GET loop; counts successes and failures until stopped.
fn load(s: &S3Cluster, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(u64, Vec<String>)> {
    let client = s.client();
    tokio::spawn(async move {
        let (ok, failures) = (AtomicU64::new(0), std::sync::Mutex::new(Vec::new()));
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let key = format!("load/{i}");
            let body = format!("load object {i} ").repeat(50).into_bytes();
            let put = client
                .put_object()
                .bucket("ca-rot")
                .key(&key)
                .body(ByteStream::from(body.clone()))
                .send()
                .await;
            let got = match put {
                Ok(_) => client.get_object().bucket("ca-rot").key(&key).send().await,
                Err(e) => {
                    failures
                        .lock()
                        .expect("lock")
                        .push(format!("PUT {key}: {e:?}"));
                    i += 1;
                    continue;
                }
            };
            match got {
                Ok(out) => {
                    if read_body(out).await == body {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failures
                            .lock()
                            .expect("lock")
                            .push(format!("GET {key}: wrong bytes"));
                    }
                }
                Err(e) => failures
                    .lock()
                    .expect("lock")
                    .push(format!("GET {key}: {e:?}")),
            }
            i += 1;
        }
        (
            ok.load(Ordering::Relaxed),
            failures.into_inner().expect("lock"),
        )
    })
}

/// The cluster under CA rotation and what the steps hand on.
struct CaRot {
    s: S3Cluster,
    /// The meta-servers' CA directory (starts without the CA key).
    ca_dir: tempfile::TempDir,
    /// The admin's and a blob-server's old-CA identities, saved aside.
    old_admin: TlsPaths,
    old_blob: TlsPaths,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotate_ca_under_load_then_restart_join_and_old_certs_refused() {
    let (s, ca_dir) = cluster(3, 4).await;
    let mut steps = Steps::new("rotate_ca_under_load_then_restart_join_and_old_certs_refused");
    let (mut r, before) = steps
        .require(
            "objects are written, every member reports, identities saved",
            async { setup(s, ca_dir).await },
        )
        .await;
    steps
        .require(
            "rotate-ca under load closes with no failed request",
            under_load(&r),
        )
        .await;
    let new_ca = steps
        .require(
            "status shows every member on a new CA",
            new_ca_in_status(&r, &before),
        )
        .await;
    steps
        .run(
            "every trust and certificate on disk is the new CA's",
            on_disk(&r, &new_ca),
        )
        .await;
    steps
        .run(
            "no CA key or renewed node key reached a log",
            keys_not_logged(&r),
        )
        .await;
    steps
        .run(
            "old-CA certificates are refused, today's accepted",
            old_certs_refused(&r),
        )
        .await;
    steps
        .require(
            "every node restarts trusting only the new CA",
            restart_all(&mut r),
        )
        .await;
    steps
        .run("every object reads back after the restart", read_back(&r))
        .await;
    steps
        .run(
            "a node joining now gets a new-CA certificate and serves",
            late_join(&mut r, &new_ca),
        )
        .await;
    steps.finish();
}

/// Writes objects, waits for every member, and saves the admin's and a
/// blob-server's old-CA identities; answers the status before.
async fn setup(
    s: S3Cluster,
    ca_dir: tempfile::TempDir,
) -> anyhow::Result<(CaRot, serde_json::Value)> {
    let client = bucket(&s).await;
    for i in 0..5 {
        client
            .put_object()
            .bucket("ca-rot")
            .key(format!("before/{i}"))
            .body(ByteStream::from(
                format!("written before the rotation {i}").into_bytes(),
            ))
            .send()
            .await
            .expect("put");
    }
    // 3 meta, 4 blob, 1 gateway.
    wait_members(&s.c, 8).await;
    let before = status(&s.c);
    assert_eq!(before["members_on_old_ca"], 0, "{before}");
    assert_eq!(before["ca_rotation"], "none", "{before}");

    let pki_dir = s.c.pki_dir();
    let old_admin = save_identity(
        &s.c,
        path_str(&pki_dir.join("admin.crt")),
        path_str(&pki_dir.join("admin.key")),
        path_str(&pki_dir.join("trust.pem")),
        "admin",
    );
    let blob_dir = s.c.node(s.blobs[0]).dir.clone();
    let old_blob = save_identity(
        &s.c,
        path_str(&blob_dir.join("node.crt")),
        path_str(&blob_dir.join("node.key")),
        path_str(&blob_dir.join("trust.pem")),
        "blob",
    );
    let r = CaRot {
        s,
        ca_dir,
        old_admin,
        old_blob,
    };
    Ok((r, before))
}

async fn under_load(r: &CaRot) {
    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(&r.s, stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let out = admin(&r.s.c, &["rotate-ca", "--json"]);
    assert!(out.contains("\"closed\""), "{out}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failures) = loader.await.expect("load task");
    assert!(
        failures.is_empty(),
        "requests failed during the rotation: {failures:#?}"
    );
    assert!(ok > 0, "the load made no requests");
}

/// Every member on the new CA (answered), none on the old.
async fn new_ca_in_status(r: &CaRot, before: &serde_json::Value) -> anyhow::Result<String> {
    let old_ca = before["issuing_ca_fingerprint"].as_str().expect("issuing");
    let after = status(&r.s.c);
    let new_ca = after["issuing_ca_fingerprint"]
        .as_str()
        .expect("issuing")
        .to_string();
    assert_ne!(new_ca, old_ca);
    assert_eq!(after["ca_rotation"], "none", "{after}");
    assert_eq!(after["members_on_old_ca"], 0, "{after}");
    assert!(after["trust_generation"].as_u64() > before["trust_generation"].as_u64());
    for m in after["members"].as_array().expect("members") {
        assert_eq!(m["cert_ca_fingerprint"], new_ca.as_str(), "{m}");
    }
    Ok(new_ca)
}

/// Trust {new} everywhere; every certificate on disk (what a restart
/// presents) and the admin's is the new CA's.
async fn on_disk(r: &CaRot, new_ca: &str) {
    let c = &r.s.c;
    for n in c.procs() {
        assert_eq!(
            fingerprints(&n.dir.join("trust.pem")),
            vec![new_ca.to_string()],
            "{}",
            n.id
        );
        let on_disk = c.identity(&n.dir);
        assert_eq!(
            on_disk.own_issuer_fingerprint().as_deref(),
            Some(new_ca),
            "{}",
            n.id
        );
    }
    assert_eq!(
        fingerprints(&c.pki_dir().join("trust.pem")),
        vec![new_ca.to_string()]
    );
    assert_eq!(
        c.admin_tls().own_issuer_fingerprint().as_deref(),
        Some(new_ca)
    );
}

/// The new CA's key is where it was minted, and nowhere in any log; nor
/// is any node's renewed key.
async fn keys_not_logged(r: &CaRot) {
    let key_pem = std::fs::read_dir(r.ca_dir.path())
        .expect("ca dir")
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "key"))
        .map(|e| std::fs::read_to_string(e.path()).expect("key"))
        .expect("the minted CA key is in the CA directory");
    let body = key_pem.lines().nth(1).expect("key body").to_string();
    let logs = r.s.c.all_logs();
    assert!(!logs.contains(&body), "the CA key reached a log");
    for n in r.s.c.procs() {
        let key = std::fs::read_to_string(n.dir.join("node.key")).expect("node key");
        let line = key.lines().nth(1).expect("key body");
        assert!(!logs.contains(line), "{}'s key reached a log", n.id);
    }
}

/// Old-CA certificates are refused now, the admin's and a node's, even
/// from a client that trusts the new CA (so the refusal is the server's).
/// The same calls with today's certificates pass: the refusals are the
/// old CA's, not the calls'.
async fn old_certs_refused(r: &CaRot) {
    let s = &r.s;
    let pki_dir = s.c.pki_dir();
    for (name, saved) in [("admin", &r.old_admin), ("blob", &r.old_blob)] {
        let paths = TlsPaths {
            trust: pki_dir.join("trust.pem"),
            ..saved.clone()
        };
        let old = NodeTls::load(&paths).expect("old identity");
        for &m in &s.metas {
            let refused = s.c.health(m, &old).await;
            assert!(
                refused.is_err(),
                "an old-CA {name} certificate was accepted"
            );
        }
    }
    let current_blob = s.c.identity(&s.c.node(s.blobs[0]).dir);
    for &m in &s.metas {
        s.c.health(m, &s.c.admin_tls()).await.expect("new admin");
        s.c.health(m, &current_blob).await.expect("renewed blob");
    }
}

async fn restart_all(r: &mut CaRot) {
    let s = &mut r.s;
    let all = s.c.handles();
    for &n in &all {
        s.c.kill(n);
    }
    for &n in &all {
        s.c.restart(n);
    }
    s.c.wait_leader(&s.metas).await;
    for &n in &all {
        s.c.wait_healthy(n).await;
    }
    wait_blobs(&s.c, s.metas[0], 4).await;
}

/// The objects from before the rotation and those the load wrote.
async fn read_back(r: &CaRot) {
    let client = r.s.client();
    for i in 0..5 {
        let out = client
            .get_object()
            .bucket("ca-rot")
            .key(format!("before/{i}"))
            .send()
            .await
            .expect("get after restart");
        assert_eq!(
            read_body(out).await,
            format!("written before the rotation {i}").into_bytes()
        );
    }
    let listed = client
        .list_objects_v2()
        .bucket("ca-rot")
        .prefix("load/")
        .send()
        .await
        .expect("list");
    for o in listed.contents() {
        let key = o.key().expect("key");
        client
            .get_object()
            .bucket("ca-rot")
            .key(key)
            .send()
            .await
            .expect("load object reads");
    }
}

/// A blob-server joining now gets a certificate from the new CA, and
/// stores shards.
async fn late_join(r: &mut CaRot, new_ca: &str) {
    let s = &mut r.s;
    let join = format!("127.0.0.1:{}", free_port());
    s.c.kill(s.metas[0]);
    s.c.set_arg(s.metas[0], "--join-listen", Some(&join));
    s.c.restart(s.metas[0]);
    s.c.wait_healthy(s.metas[0]).await;
    let token = s.c.root().join("late.token");
    admin(
        &s.c,
        &[
            "token",
            "create",
            "--role",
            "blob",
            "--out",
            path_str(&token),
        ],
    );
    let late = s.c.prepare_joiner(Kind::Blob, "blob-late", &token, &join);
    s.c.spawn_prepared(late);
    s.c.wait_healthy(late).await;
    let late_tls = s.c.identity(&s.c.node(late).dir.clone());
    assert_eq!(late_tls.own_issuer_fingerprint().as_deref(), Some(new_ca));
    wait_blobs(&s.c, s.metas[0], 5).await;
    // With a 3+2 profile over five blob-servers every new coded object has
    // a shard on the late one (gateways pick the profile up within 2 s).
    // Objects are above the gateway's mirror limit (8108 B, ADR 0038): a
    // mirrored one has 3 copies on 3 of the 5, and may miss the late one.
    admin(&s.c, &["profile", "set", "3+2"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let client = s.client();
    for i in 0..4 {
        let body = format!("after the join {i}").repeat(1000).into_bytes();
        client
            .put_object()
            .bucket("ca-rot")
            .key(format!("after/{i}"))
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("put after the join");
        let out = client
            .get_object()
            .bucket("ca-rot")
            .key(format!("after/{i}"))
            .send()
            .await
            .expect("get");
        assert_eq!(read_body(out).await, body);
    }
    let shards = hamster_tests::files_under(&s.c.node(late).dir.join("data").join("shards"));
    assert!(!shards.is_empty(), "the joined blob-server stores no shard");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotation_whose_driver_and_leader_die_midway_converges_on_a_rerun() {
    let (mut s, _ca_dir) = cluster(3, 3).await;
    let client = bucket(&s).await;
    client
        .put_object()
        .bucket("ca-rot")
        .key("k")
        .body(ByteStream::from_static(b"survives"))
        .send()
        .await
        .expect("put");
    wait_members(&s.c, 7).await;

    // A blob-server frozen (SIGSTOP): known but silent, it holds the
    // first gate, so the driver is certain to be midway when it dies.
    let frozen = s.blobs[1];
    s.c.signal(frozen, Signal::STOP);
    let mut driver = Command::new(bin_dir().join("hamster"))
        .arg("rotate-ca")
        .arg("--json")
        .args(s.c.admin_flags())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rotate-ca");
    let stdout = driver.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let frozen_id = format!("blob/{}", s.c.node(frozen).id);
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("rotate-ca output: {e}; so far {seen:?}"));
        seen.push(line.clone());
        if line.contains("\"widening\"") && line.contains(&frozen_id) {
            break;
        }
        assert!(
            !line.contains("\"closed\""),
            "closed past a frozen member: {seen:?}"
        );
    }
    // SIGKILL the driver: the rotation stays open where it was, with
    // trust {old, new} already in the driver's trust file.
    let _ = driver.kill();
    let _ = driver.wait();
    let open = status(&s.c);
    assert_eq!(open["ca_rotation"], "widening", "{open}");
    let both = s.c.root().join("trust-old-and-new.pem");
    std::fs::copy(s.c.pki_dir().join("trust.pem"), &both).expect("copy trust");
    assert_eq!(fingerprints(&both).len(), 2);
    // ...and the meta leader, brought back afterwards.
    let leader = s.c.wait_leader(&s.metas).await;
    s.c.kill(leader);
    s.c.restart(leader);
    s.c.wait_healthy(leader).await;
    s.c.signal(frozen, Signal::CONT);

    // A re-run converges.
    let out = admin(&s.c, &["rotate-ca", "--json"]);
    assert!(out.contains("\"closed\""), "{out}");
    let after = status(&s.c);
    assert_eq!(after["ca_rotation"], "none", "{after}");
    assert_eq!(after["members_on_old_ca"], 0, "{after}");
    let new_ca = after["issuing_ca_fingerprint"].as_str().expect("issuing");
    for n in s.c.procs() {
        assert_eq!(
            fingerprints(&n.dir.join("trust.pem")),
            vec![new_ca.to_string()],
            "{}",
            n.id
        );
    }
    let out = client
        .get_object()
        .bucket("ca-rot")
        .key("k")
        .send()
        .await
        .expect("get");
    assert_eq!(read_body(out).await, b"survives");

    // Killed after the close but before it saved trust {new}: a re-run
    // finishes that rotation and does not start another.
    std::fs::copy(&both, s.c.pki_dir().join("trust.pem")).expect("restore");
    let out = admin(&s.c, &["rotate-ca", "--json"]);
    assert!(
        out.contains("\"closed\"") && !out.contains("\"opened\""),
        "{out}"
    );
    assert_eq!(
        fingerprints(&s.c.pki_dir().join("trust.pem")),
        vec![new_ca.to_string()]
    );
    assert_eq!(status(&s.c)["issuing_ca_fingerprint"], new_ca);
}
