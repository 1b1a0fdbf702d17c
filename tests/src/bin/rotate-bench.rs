//! Load tool for master-key rotation: how fast the meta leader rewraps
//! data keys, on a real 3-node meta tier on this machine.
//!
//! cargo build --release --workspace
//! cargo run --release -p hamster-tests --bin rotate-bench -- [VERSIONS] [BATCH] [WRITERS] [POLL_MS]
//!
//! Commits VERSIONS versions (default 20000) whose data keys are really
//! wrapped by the cluster's master key, provisions the next key on every
//! meta-server (file, then SIGHUP), opens the rotation and times it until
//! it closes with nothing left on the old key. BATCH is the meta-servers'
//! `--rewrap-batch` (default 500).
//!
//! While serving: WRITERS clients (default 4) commit versions (wrapped by
//! the new key) one after another from the moment the rotation opens
//! until it closes, and for as long again after, so the commit rate and
//! latency during the rotation print beside those without one.
//!
//! POLL_MS (default 200) is how often the bench asks `Status` whether the
//! rotation closed: the answer's resolution. Each `Status` counts the
//! keys left on the old key on the leader, so polling much faster than
//! an operator would slows the rotation it measures.

use std::time::{Duration, Instant};

use hamster_proto::envelope::{DataKey, wrap_dek};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hamster_proto::pb::{self, admin_client::AdminClient, meta_client::MetaClient};
use hamster_proto::secrets::MasterKey;
use hamster_tests::Cluster;
use hamster_tests::bench::arg;
use hamster_tests::load::quantile;
use hamster_tests::meta::test_version;

#[tokio::main]
async fn main() {
    let (total, batch, serving, poll) = (arg(1, 20_000), arg(2, 500), arg(3, 4), arg(4, 200));
    let mut c = Cluster::new();
    c.log_level = "warn".into();
    let next = c.root().join("master.next.key");
    c.meta_args
        .push(format!("--next-master-key-file={}", next.display()));
    c.meta_args.push(format!("--rewrap-batch={batch}"));
    let (idxs, leader, gw, key_id) = c.bench_meta_tier().await;
    let old = MasterKey::load(&c.pki_dir().join("master.key")).expect("key");
    let kek = old.fingerprint();

    // Versions with real wrapped keys, 32 writers at a time.
    let t0 = Instant::now();
    let writers = 32;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let mut client = c.meta_client(leader, &gw);
        let key_id = key_id.clone();
        let (kek, wrapped): (String, Vec<Vec<u8>>) = (
            kek.clone(),
            (w..total)
                .step_by(writers)
                .map(|_| wrap_dek(&old, &DataKey::generate()))
                .collect(),
        );
        tasks.push(tokio::spawn(async move {
            for (i, wrapped_dek) in wrapped.into_iter().enumerate() {
                let key = format!("w{w:02}/{i:07}");
                let v = pb::ObjectVersion {
                    wrapped_dek,
                    ..test_version(&kek, "bench", &key, i as u64)
                };
                commit(&mut client, v, &key_id).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    println!(
        "committed {total} versions in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    c.hamster(&["keygen", "--out", next.to_str().expect("utf8")]);
    for &i in &idxs {
        c.signal(i, rustix::process::Signal::HUP);
    }
    let mut admin = AdminClient::new(c.channel(leader, &c.admin_tls()));
    // Every meta-server reports the next key within a few seconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    let opened = loop {
        match admin
            .start_key_rotation(pb::StartKeyRotationRequest::default())
            .await
        {
            Ok(r) => break r.into_inner(),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("rotation never opened: {e}"),
        }
    };
    let new = Arc::new(MasterKey::load(&next).expect("next key"));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..serving)
        .map(|w| {
            let client = c.meta_client(leader, &gw);
            tokio::spawn(serve(client, new.clone(), key_id.clone(), w, stop.clone()))
        })
        .collect();
    let t0 = Instant::now();
    loop {
        let s = admin
            .status(pb::StatusRequest {})
            .await
            .expect("status")
            .into_inner();
        if s.key_rotation == "none" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(poll as u64)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "rewrapped {} keys (batch {batch}) in {secs:.2} s: {:.0} keys/s",
        opened.to_rewrap,
        opened.to_rewrap as f64 / secs
    );
    stop.store(true, Ordering::Relaxed);
    let during = join(writers).await;
    report("during the rotation", &during, secs);

    // The same writers with no rotation, for as long.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..serving)
        .map(|w| {
            let client = c.meta_client(leader, &gw);
            tokio::spawn(serve(
                client,
                new.clone(),
                key_id.clone(),
                w + serving,
                stop.clone(),
            ))
        })
        .collect();
    let quiet = Duration::from_secs_f64(secs.max(2.0));
    tokio::time::sleep(quiet).await;
    stop.store(true, Ordering::Relaxed);
    report(
        "without a rotation",
        &join(writers).await,
        quiet.as_secs_f64(),
    );
}

type Client = MetaClient<tonic::transport::Channel>;

/// Commits `v` as key `key_id` (panics on a refusal: a bench has no retry).
async fn commit(client: &mut Client, v: pb::ObjectVersion, key_id: &str) {
    client
        .commit_version(pb::CommitVersionRequest {
            version: Some(v),
            request_id: String::new(),
            access_key_id: key_id.to_string(),
            ..Default::default()
        })
        .await
        .expect("commit");
}

/// Commits versions wrapped by `kek` one after another until `stop`:
/// each commit's latency.
async fn serve(
    mut client: Client,
    kek: Arc<MasterKey>,
    key_id: String,
    w: usize,
    stop: Arc<AtomicBool>,
) -> Vec<Duration> {
    let fp = kek.fingerprint();
    let mut took = Vec::new();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("serve{w:02}/{i:07}");
        let v = pb::ObjectVersion {
            wrapped_dek: wrap_dek(&kek, &DataKey::generate()),
            ..test_version(&fp, "bench", &key, i)
        };
        let t = Instant::now();
        commit(&mut client, v, &key_id).await;
        took.push(t.elapsed());
        i += 1;
    }
    took
}

async fn join(writers: Vec<tokio::task::JoinHandle<Vec<Duration>>>) -> Vec<Duration> {
    let mut all = Vec::new();
    for w in writers {
        all.extend(w.await.expect("writer"));
    }
    all.sort();
    all
}

fn report(what: &str, took: &[Duration], secs: f64) {
    let ms = |q| quantile(took, q).as_secs_f64() * 1e3;
    println!(
        "commits {what}: {} ({:.0}/s), latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        took.len(),
        took.len() as f64 / secs.max(1e-9),
        ms(0.5),
        ms(0.99),
        ms(1.0)
    );
}
