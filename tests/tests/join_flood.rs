//! A flood of forged join tokens (issue 20, item 7): the join port checks
//! a token on a read before proposing anything and limits calls per
//! source, so 5,000 forged tokens — real ids with wrong secrets, a real
//! token offered for the wrong role, unknown ids — add nothing to the Raft
//! log, and a valid token still joins afterwards.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hamster_proto::join::JoinToken;
use hamster_proto::pb::{self, join_client::JoinClient};
use hamster_proto::pki::{ExtraNames, generate_csr};
use hamster_proto::tls::unverified_client_config;
use hamster_proto::transport::channel_with;
use hamster_proto::{ErrorCode, PeerIdentity, Role};
use hamster_tests::{Cluster, Node};

const FORGED: usize = 5_000;
/// The flood in rounds, each checked alone (see the test).
const ROUNDS: usize = 5;
const PER_ROUND: usize = FORGED / ROUNDS;
/// Attempts per round before its moves are blamed on the forged tokens.
const ATTEMPTS: usize = 5;
const WORKERS: usize = 50;

fn token(c: &Cluster, role: &str, uses: u32) -> PathBuf {
    c.join_token(role, uses, 3600, role)
}

/// The `i`th forged token: each kind of forgery in turn.
fn forged(i: usize, gw: &[&str]) -> String {
    let (id, fp) = (gw[2], gw[4]);
    match i % 3 {
        // The real id, a wrong secret.
        0 => format!("HJ1.gateway.{id}.{:064x}.{fp}", i),
        // The real token, offered for a blob-server.
        1 => format!("HJ1.blob.{id}.{}.{fp}", gw[3]),
        // An id nobody issued.
        _ => format!("HJ1.gateway.{:032x}.{:064x}.{fp}", i, i),
    }
}

/// The leader's last log index once it has not moved for 3 s: a new
/// meta-server writes a few entries of its own as it starts.
async fn quiet_index(c: &Cluster, meta: Node) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = c.status(meta).await.expect("status").last_log_index;
    let mut since = Instant::now();
    while since.elapsed() < Duration::from_secs(3) {
        assert!(Instant::now() < deadline, "the log index never settled");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = c.status(meta).await.expect("status").last_log_index;
        if now != last {
            eprintln!("log index moved {last} -> {now}");
            (last, since) = (now, Instant::now());
        }
    }
    last
}

/// The leader's log index just after its next write (or now, if none
/// comes within 15 s).
async fn after_next_write(c: &Cluster, meta: Node) -> i64 {
    let last = c.status(meta).await.expect("status").last_log_index;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = c.status(meta).await.expect("status").last_log_index;
        if now != last {
            return now;
        }
    }
    last
}

/// Offers `tokens` from WORKERS callers at once: (denied, rate-limited).
/// Any other answer fails the test.
async fn flood(ch: &tonic::transport::Channel, tokens: &[String]) -> (usize, usize) {
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..WORKERS {
        let client = JoinClient::new(ch.clone());
        let mine: Vec<String> = tokens.iter().skip(w).step_by(WORKERS).cloned().collect();
        workers.spawn(async move {
            let mut codes = Vec::new();
            for t in mine {
                let r = client
                    .clone()
                    .join(pb::JoinRequest {
                        token: t,
                        node_id: "gw-forged".into(),
                        csr_pem: String::new(),
                    })
                    .await;
                codes.push(r.err().and_then(|s| ErrorCode::of(&s)));
            }
            codes
        });
    }
    let (mut denied, mut limited) = (0, 0);
    while let Some(codes) = workers.join_next().await {
        for code in codes.expect("worker") {
            match code {
                Some(ErrorCode::AccessDenied) => denied += 1,
                Some(ErrorCode::Unavailable) => limited += 1,
                other => panic!("a forged token got {other:?}"),
            }
        }
    }
    (denied, limited)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_join_tokens_add_nothing_to_the_raft_log() {
    let mut c = Cluster::new();
    let (meta, join) = c.start_join_meta().await;
    let gw_text = std::fs::read_to_string(token(&c, "gateway", 1)).expect("token");
    let gw_text = gw_text.trim().to_string();
    let gw: Vec<&str> = gw_text.split('.').collect();
    assert_eq!(gw.len(), 5, "{gw_text}");

    let ch = channel_with(&join, unverified_client_config()).expect("channel");
    quiet_index(&c, meta).await;
    // The meta-server's own periodic reports (certs.rs RECORD_EVERY, key
    // reports) also move the index, at times of their own. So the flood
    // goes in rounds, each started just after such a write and checked
    // alone; a round the index moved during is run again. Forged tokens
    // that wrote entries would move it in every attempt (each round has
    // dozens that reach the check), so the test still fails on them.
    let started = Instant::now();
    let (mut denied, mut limited) = (0, 0);
    let mut after = 0;
    for round in 0..ROUNDS {
        let tokens: Vec<String> = (round * PER_ROUND..(round + 1) * PER_ROUND)
            .map(|i| forged(i, &gw))
            .collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let before = after_next_write(&c, meta).await;
            let (d, l) = flood(&ch, &tokens).await;
            after = c.status(meta).await.expect("status").last_log_index;
            if before == after {
                denied += d;
                limited += l;
                break;
            }
            eprintln!("round {round}: the index moved {before} -> {after}; again");
            assert!(
                attempt < ATTEMPTS,
                "forged tokens added Raft log entries in {ATTEMPTS} attempts of round {round}"
            );
        }
    }
    let took = started.elapsed();
    eprintln!("{FORGED} forged tokens in {took:?}: {denied} denied, {limited} rate-limited");
    assert_eq!(denied + limited, FORGED);
    assert!(denied > 0, "no forged token reached the check");
    assert!(limited > 0, "the flood was not rate-limited");

    // The real token still joins (once the limiter lets this address in).
    let identity = PeerIdentity::new(Role::Gateway, "gw-real").expect("identity");
    let (csr, _key) = generate_csr(&identity, &ExtraNames::default()).expect("csr");
    let real = JoinToken::parse(&gw_text).expect("parse");
    let deadline = Instant::now() + Duration::from_secs(60);
    let joined = loop {
        let r = JoinClient::new(ch.clone())
            .join(pb::JoinRequest {
                token: real.encode().to_string(),
                node_id: "gw-real".into(),
                csr_pem: csr.clone(),
            })
            .await;
        match r {
            Ok(r) => break r.into_inner(),
            Err(s) if ErrorCode::of(&s) == Some(ErrorCode::Unavailable) => {
                assert!(Instant::now() < deadline, "still refused: {s:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(s) => panic!("the real token was refused: {s:?}\n{}", c.log(meta)),
        }
    };
    assert!(joined.cert_pem.contains("BEGIN CERTIFICATE"));
    let spent = c.status(meta).await.expect("status").last_log_index;
    assert!(spent > after, "the real join was not proposed");
}
