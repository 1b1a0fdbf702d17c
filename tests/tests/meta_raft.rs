//! The meta tier as a Raft cluster of real processes: commits through any
//! node, leader loss, catch-up by snapshot, loss of quorum, membership.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hamster_proto::pb::admin_client::AdminClient;
use hamster_proto::pb::{self, AddMemberRequest, GetVersionRequest, RemoveMemberRequest};
use hamster_tests::meta::{commit, list_all, test_version};
use hamster_tests::{Cluster, Node};

const BUCKET: &str = "bucket-1";

/// Creates `BUCKET` through `node`, owned by the cluster's test key
/// ([`Cluster::meta_key`]), which every commit below acts for.
async fn create_bucket(c: &Cluster, node: Node) {
    let gw = c.gateway_identity("gw-test");
    let key = c.meta_key(node).await;
    c.meta_client(node, &gw)
        .create_bucket(pb::CreateBucketRequest {
            name: BUCKET.into(),
            object_lock_enabled: false,
            access_key_id: key,
        })
        .await
        .expect("create bucket");
}

/// Commits keys `from..to` through `node`, `parallel` at a time.
async fn commit_range(c: &Cluster, node: Node, from: u64, to: u64, parallel: usize) {
    let gw = c.gateway_identity("gw-test");
    let kek = c.kek_fingerprint();
    let key_id = c.meta_key(node).await;
    let next = Arc::new(Mutex::new(from));
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let mut client = c.meta_client(node, &gw);
        let next = next.clone();
        let kek = kek.clone();
        let key_id = key_id.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let n = {
                    let mut g = next.lock().expect("lock");
                    if *g >= to {
                        return;
                    }
                    *g += 1;
                    *g - 1
                };
                commit(&mut client, &kek, &key_id, BUCKET, &format!("k{n:06}"), n)
                    .await
                    .expect("commit");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
}

/// A 3-node meta cluster with `BUCKET` created: (cluster, nodes, leader).
async fn three_nodes(meta_args: &[&str]) -> (Cluster, Vec<Node>, Node) {
    let mut c = Cluster::new();
    c.meta_args = meta_args.iter().map(|a| a.to_string()).collect();
    let idxs = c.start_meta_cluster(3);
    for &i in &idxs {
        c.wait_healthy(i).await;
    }
    let leader = c.wait_leader(&idxs).await;
    create_bucket(&c, leader).await;
    (c, idxs, leader)
}

/// Kills a follower, commits 10,000 versions, restarts it and waits until
/// it has applied everything; returns the cluster and that node.
async fn catch_up_after_10000_commits(meta_args: &[&str]) -> (Cluster, Node) {
    let (mut c, idxs, leader) = three_nodes(meta_args).await;
    let down = follower_of(&c, &idxs, leader);
    c.kill(down);
    commit_range(&c, leader, 0, 10_000, 32).await;
    let target = c.status(leader).await.expect("status").commit_index;
    c.restart(down);
    c.wait_healthy(down).await;
    c.wait_applied(down, target).await;
    let gw = c.gateway_identity("gw-test");
    let keys = list_all(&mut c.meta_client(down, &gw), BUCKET)
        .await
        .expect("list");
    assert_eq!(keys.len(), 10_000);
    assert_eq!(keys.first().map(String::as_str), Some("k000000"));
    assert_eq!(keys.last().map(String::as_str), Some("k009999"));
    (c, down)
}

fn follower_of(c: &Cluster, idxs: &[Node], leader: Node) -> Node {
    *idxs
        .iter()
        .find(|i| **i != leader && c.is_running(**i))
        .expect("a follower")
}

#[tokio::test]
async fn three_nodes_elect_and_1000_commits_through_a_follower_are_everywhere() {
    let mut c = Cluster::new();
    let idxs = c.start_meta_cluster(3);
    for &i in &idxs {
        c.wait_healthy(i).await;
    }
    let leader = c.wait_leader(&idxs).await;
    let follower = follower_of(&c, &idxs, leader);
    create_bucket(&c, follower).await;
    commit_range(&c, follower, 0, 1000, 16).await;

    let gw = c.gateway_identity("gw-test");
    let want: Vec<String> = (0..1000).map(|n| format!("k{n:06}")).collect();
    for &i in &idxs {
        let mut client = c.meta_client(i, &gw);
        assert_eq!(
            list_all(&mut client, BUCKET).await.expect("list"),
            want,
            "on {}",
            c.node(i).id
        );
        let v = client
            .get_version(GetVersionRequest {
                bucket: BUCKET.into(),
                key: "k000500".into(),
                version_id: String::new(),
            })
            .await
            .expect("get")
            .into_inner()
            .version
            .expect("version");
        assert_eq!(v.version_id, "null");
        assert_eq!(v.size, 500);
        assert_eq!(
            v.wrapped_dek,
            test_version(&c.kek_fingerprint(), BUCKET, "k000500", 500).wrapped_dek
        );
    }
    // Status: one leader, three healthy voters, every node caught up.
    // (Group commit puts many commits in one entry: indexes are not counts.)
    let ls = c.status(leader).await.expect("leader status");
    assert_eq!(ls.state, "Leader");
    assert!(ls.commit_index > 0 && ls.term >= 1, "{ls:?}");
    for &i in &idxs {
        c.wait_applied(i, ls.commit_index).await;
    }
    let s = c.status(follower).await.expect("status");
    assert_eq!(s.leader_raft_id, c.node(leader).raft_id);
    assert_eq!(s.members.len(), 3);
    assert!(s.members.iter().all(|m| m.voter && m.healthy), "{s:?}");
    // Members report in the background (keys, trust), so the log moves
    // on: at least what was committed then, and every member matched up
    // once a moment comes with nothing in flight.
    assert!(s.applied_index >= ls.commit_index, "{s:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let ls = c.status(leader).await.expect("leader status");
        if ls
            .members
            .iter()
            .all(|m| m.matched_index == ls.last_log_index)
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{ls:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn leader_sigkill_mid_stream_loses_no_acknowledged_commit() {
    let (mut c, idxs, leader) = three_nodes(&[]).await;

    // A writer that goes round the nodes and keeps what was acknowledged.
    let gw = c.gateway_identity("gw-test");
    let clients: Vec<_> = idxs.iter().map(|&i| c.meta_client(i, &gw)).collect();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (acked, stop, mut clients) = (acked.clone(), stop.clone(), clients);
        let kek = c.kek_fingerprint();
        let key_id = c.meta_key(leader).await;
        tokio::spawn(async move {
            let mut n = 0u64;
            let mut failures = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = format!("k{n:06}");
                let client = &mut clients[(n as usize) % 3];
                match commit(client, &kek, &key_id, BUCKET, &key, n).await {
                    Ok(_) => acked.lock().expect("lock").push(key),
                    Err(_) => failures += 1, // not acknowledged: may or may not exist
                }
                n += 1;
            }
            failures
        })
    };
    let wait_acks = |n: usize| {
        let acked = acked.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while acked.lock().expect("lock").len() < n {
                assert!(Instant::now() < deadline, "writes stalled");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_acks(200).await;
    c.kill(leader);
    let killed_at = acked.lock().expect("lock").len();
    wait_acks(killed_at + 300).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.expect("writer");
    let acked: BTreeSet<String> = acked.lock().expect("lock").iter().cloned().collect();

    let survivors: Vec<Node> = idxs.iter().copied().filter(|i| *i != leader).collect();
    let new_leader = c.wait_leader(&survivors).await;
    assert_ne!(new_leader, leader);
    for &i in &survivors {
        let listed: BTreeSet<String> = list_all(&mut c.meta_client(i, &gw), BUCKET)
            .await
            .expect("list")
            .into_iter()
            .collect();
        let missing: Vec<_> = acked.difference(&listed).collect();
        assert!(
            missing.is_empty(),
            "{} lost acknowledged commits: {missing:?}",
            c.node(i).id
        );
    }

    // The killed leader comes back and converges.
    c.restart(leader);
    c.wait_healthy(leader).await;
    let target = c.status(new_leader).await.expect("status").commit_index;
    c.wait_applied(leader, target).await;
    let on_old: BTreeSet<String> = list_all(&mut c.meta_client(leader, &gw), BUCKET)
        .await
        .expect("list")
        .into_iter()
        .collect();
    let on_new: BTreeSet<String> = list_all(&mut c.meta_client(new_leader, &gw), BUCKET)
        .await
        .expect("list")
        .into_iter()
        .collect();
    assert!(acked.is_subset(&on_old));
    assert_eq!(on_old, on_new, "the restarted node converged");
}

#[tokio::test]
async fn node_down_during_10000_commits_catches_up_by_snapshot() {
    // Group commit packs many commits into one entry: snapshot often enough
    // that the log the node missed is compacted away.
    let (c, down) = catch_up_after_10000_commits(&["--snapshot-every=100", "--keep-logs=10"]).await;
    let log = c.log(down);
    assert!(
        log.contains("installing snapshot"),
        "caught up without a snapshot:\n{log}"
    );
}

#[tokio::test]
async fn without_quorum_writes_fail_clearly_and_nothing_half_applied_appears() {
    let (mut c, idxs, leader) = three_nodes(&["--call-wait-ms=3000"]).await;
    let gw = c.gateway_identity("gw-test");
    let key_id = c.meta_key(leader).await;
    commit(
        &mut c.meta_client(leader, &gw),
        &c.kek_fingerprint(),
        &key_id,
        BUCKET,
        "before",
        1,
    )
    .await
    .expect("commit");

    // Keep one node; kill the other two (the leader among them).
    let keep = follower_of(&c, &idxs, leader);
    let others: Vec<Node> = idxs.iter().copied().filter(|i| *i != keep).collect();
    for &i in &others {
        c.kill(i);
    }
    let mut client = c.meta_client(keep, &gw);
    let start = Instant::now();
    let err = commit(
        &mut client,
        &c.kek_fingerprint(),
        &key_id,
        BUCKET,
        "during",
        2,
    )
    .await
    .expect_err("no quorum");
    let took = start.elapsed();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(err.message().contains("meta tier unavailable"), "{err:?}");
    assert!(took < Duration::from_secs(15), "failed only after {took:?}");
    // No stale read either.
    let read = client
        .get_version(GetVersionRequest {
            bucket: BUCKET.into(),
            key: "before".into(),
            version_id: String::new(),
        })
        .await
        .expect_err("no linearizable read without quorum");
    assert_eq!(read.code(), tonic::Code::Unavailable);

    // One node returns: writes succeed again.
    c.restart(others[0]);
    c.wait_healthy(others[0]).await;
    let back = [keep, others[0]];
    c.wait_leader(&back).await;
    commit(
        &mut client,
        &c.kek_fingerprint(),
        &key_id,
        BUCKET,
        "after",
        3,
    )
    .await
    .expect("commit with quorum back");
    let keys = list_all(&mut client, BUCKET).await.expect("list");
    assert!(keys.contains(&"before".to_string()) && keys.contains(&"after".to_string()));
    // The failed write was never acknowledged: it is absent, or (had it
    // reached a log that later won) present whole — never in part.
    match client
        .get_version(GetVersionRequest {
            bucket: BUCKET.into(),
            key: "during".into(),
            version_id: String::new(),
        })
        .await
    {
        Err(s) => assert_eq!(s.code(), tonic::Code::NotFound, "{s:?}"),
        Ok(v) => {
            let v = v.into_inner().version.expect("version");
            let want = test_version(&c.kek_fingerprint(), BUCKET, "during", 2);
            assert_eq!(
                (v.size, v.etag, v.shard_map, v.wrapped_dek),
                (want.size, want.etag, want.shard_map, want.wrapped_dek)
            );
            assert!(keys.contains(&"during".to_string()));
        }
    }
}

#[tokio::test]
async fn members_are_added_as_learner_then_voter_and_removed() {
    let (mut c, idxs, leader) = three_nodes(&[]).await;
    let gw = c.gateway_identity("gw-test");
    commit_range(&c, leader, 0, 50, 4).await;

    let new = c.start_meta_joiner();
    c.wait_healthy(new).await;
    // Through the CLI, asked of a follower: it answers NotLeader with the
    // leader's address and the CLI asks the leader (ADR 0030).
    let follower = follower_of(&c, &idxs, leader);
    let pki = c.pki_dir();
    let p = |n: &str| pki.join(n).to_str().expect("utf8").to_string();
    let conn = [
        "--admin-cert".to_string(),
        p("admin.crt"),
        "--admin-key".into(),
        p("admin.key"),
        "--trust".into(),
        p("trust.pem"),
    ];
    let meta_addr = c.node(follower).addr.to_string();
    let (raft_id, node_id, address) = (
        c.node(new).raft_id.to_string(),
        c.node(new).id.clone(),
        c.node(new).addr.to_string(),
    );
    let mut args = vec![
        "member",
        "add",
        "--meta",
        &meta_addr,
        "--raft-id",
        &raft_id,
        "--node-id",
        &node_id,
        "--address",
        &address,
    ];
    args.extend(conn.iter().map(String::as_str));
    c.hamster(&args);
    let mut args = vec!["status", "--json", "--meta", &meta_addr];
    args.extend(conn.iter().map(String::as_str));
    let json: serde_json::Value =
        serde_json::from_str(c.hamster(&args).trim()).expect("status json");
    assert_eq!(
        json["raft_members"].as_array().map(Vec::len),
        Some(4),
        "{json}"
    );
    assert_eq!(json["leader_raft_id"], c.node(leader).raft_id);
    let s = c.status(leader).await.expect("status");
    assert_eq!(s.members.len(), 4);
    assert!(s.members.iter().all(|m| m.voter), "{s:?}");
    // The new member has the data and serves reads.
    let keys = list_all(&mut c.meta_client(new, &gw), BUCKET)
        .await
        .expect("list on new member");
    assert_eq!(keys.len(), 50);

    // Remove one of the founders; the cluster keeps committing.
    let gone = follower;
    // Admin changes are made on the leader (a follower answers NotLeader,
    // ADR 0030; the CLI follows it, as `member add` above did).
    let mut admin = AdminClient::new(c.channel(leader, &c.admin_tls()));
    admin
        .remove_member(RemoveMemberRequest {
            raft_id: c.node(gone).raft_id,
        })
        .await
        .expect("remove member");
    let s = c.status(leader).await.expect("status");
    let voters: BTreeSet<u64> = s
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| m.raft_id)
        .collect();
    assert_eq!(voters.len(), 3, "{s:?}");
    assert!(!voters.contains(&c.node(gone).raft_id));
    commit(
        &mut c.meta_client(new, &gw),
        &c.kek_fingerprint(),
        &c.meta_key(new).await,
        BUCKET,
        "after-remove",
        1,
    )
    .await
    .expect("commit");
    // Bad input is refused and changes nothing.
    let err = admin
        .add_member(AddMemberRequest {
            raft_id: 0,
            node_id: String::new(),
            address: String::new(),
            as_voter: true,
        })
        .await
        .expect_err("invalid member");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn node_down_during_batched_commits_catches_up_from_the_log() {
    // Default snapshot policy: the missed entries are still in the log, and
    // group commit made them large. Catch-up must fit openraft's append
    // timeout, or the node retries forever.
    let (c, down) = catch_up_after_10000_commits(&[]).await;
    assert!(
        !c.log(down).contains("installing snapshot"),
        "expected a catch-up from the log"
    );
}
