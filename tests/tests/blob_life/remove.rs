//! Removal for good: a dead server force-removed and repaired, then the
//! same server back from the dead with its old certificate and shards.

use std::sync::Arc;

use hamster_proto::tls::NodeTls;

use crate::*;

/// Step 4: a SIGKILLed server still named by maps is removed with
/// --force; the command says its shards are lost, and repair alone
/// rebuilds every one of them elsewhere.
pub async fn forced(w: &mut World) {
    settle(w, "before the forced remove").await;
    let meta = w.s.metas[0];
    let victim = w.s.blobs[2];
    let id = id_of(w, victim);
    let named = blob_list(w).row(&id).shards_named;
    assert!(named > 0, "{id} holds no shard: nothing to lose");
    let repaired = w.s.c.status(meta).await.expect("status").shards_repaired;
    w.s.c.kill(victim);
    w.gone.push(victim);

    let run = w.s.c.admin_cli(&["blob", "remove", &id, "--force"]);
    assert!(run.ok(), "forced remove: {run}");
    let said = format!("{}\n{}", run.stdout, run.stderr).replace(&id, "<id>");
    assert!(
        said.to_lowercase().contains("lost") && names_number(&said, named),
        "the forced remove does not say {named} shards are lost: {run}"
    );
    assert_eq!(blob_list(w).row(&id).state, "removed");

    w.s.c
        .wait_durable(meta, "the force-removed server's shards", HEAL)
        .await;
    let now = w.s.c.status(meta).await.expect("status").shards_repaired;
    assert!(
        now >= repaired + named,
        "{named} shards lost, but only {} repaired",
        now.saturating_sub(repaired)
    );
    assert_whole(w, "after the forced remove").await;
    read_all(w, "after the forced remove").await;
}

/// Whether `who` is refused by `target` (a failed handshake or call),
/// within a few seconds (a member learns a revocation at its next trust
/// sync).
async fn refused(w: &World, target: Node, who: &Arc<NodeTls>) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if w.s.c.health(target, who).await.is_err() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Step 5: the force-removed server restarted with its old certificate
/// and data dir: the meta tier takes none of its heartbeats, every tier
/// refuses its certificate (while a server not removed is admitted), the
/// gateway refuses to talk to it, no map names its stale shards, and
/// every object reads.
pub async fn comes_back(w: &mut World) {
    settle(w, "before the removed server comes back").await;
    let meta = w.s.metas[0];
    let victim = w.s.blobs[2];
    let id = id_of(w, victim);
    let before = blob_list(w);
    let row = before.row(&id).clone();
    assert_eq!(row.state, "removed", "{}", before.summary());
    // The gateway keeps the revoked identities beside its trust file.
    let revoked = w.s.c.node(w.s.gw).dir.join("trust.pem.revoked");
    let me = format!("hamster://blob/{id}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&revoked).is_ok_and(|t| t.lines().any(|l| l.trim() == me)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway never wrote {me} to {}",
            revoked.display()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let log_before = w.s.c.log(victim).len();
    w.s.c.restart(victim);
    w.s.c.wait_healthy(victim).await;
    let stale = w.s.shard_files(victim);
    assert!(
        !stale.is_empty(),
        "{id} came back with no shard: nothing to prove"
    );
    // A few heartbeats' time.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let after = blob_list(w);
    let now = after.row(&id);
    assert_eq!(
        (now.state.as_str(), now.last_heartbeat_ms),
        ("removed", row.last_heartbeat_ms),
        "the meta tier took a removed server's heartbeat: {}",
        after.summary()
    );
    let log = w.s.c.log(victim);
    let since = log.get(log_before..).unwrap_or_default().to_lowercase();
    assert!(
        since.contains("removed") || since.contains("registration failed"),
        "{id}'s log does not say it was refused:\n{since}"
    );

    // Every tier refuses its certificate; a server not removed is admitted.
    let own = w.s.c.identity(&w.s.c.node(victim).dir);
    let peer_node = running_others(w, &[victim])[0];
    let peer = w.s.c.identity(&w.s.c.node(peer_node).dir);
    let another = running_others(w, &[victim, peer_node])[0];
    for target in [meta, w.s.gw, another] {
        let name = id_of(w, target);
        assert!(
            refused(w, target, &own).await,
            "{name} still admits {id}'s certificate"
        );
        let ok = w.s.c.health(target, &peer).await;
        assert!(ok.is_ok(), "{name} refuses a server not removed: {ok:?}");
    }
    // Reads go through the gateway's identity: it will not talk to it.
    let gw = w.s.c.identity(&w.s.c.node(w.s.gw).dir);
    let to_removed = w.s.c.health(victim, &gw).await;
    assert!(
        to_removed.is_err(),
        "the gateway's identity still talks to {id}: {to_removed:?}"
    );
    let to_peer = w.s.c.health(peer_node, &gw).await;
    assert!(to_peer.is_ok(), "{to_peer:?}");

    // Its stale shards are named nowhere, and every object reads without it.
    let units = w.s.c.bucket_units(meta, "data").await;
    let names = named_ids(&units);
    let named_stale: Vec<String> = stale
        .iter()
        .map(|p| hamster_tests::durability::file_name(p))
        .filter(|f| names.contains(f))
        .collect();
    assert!(
        named_stale.is_empty(),
        "stale shards named: {named_stale:?}"
    );
    assert_whole(w, "with the removed server back").await;
    read_all(w, "with the removed server back").await;
    w.s.c.kill(victim);
}
