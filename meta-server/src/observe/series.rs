//! The meta-server's Prometheus series (docs/metrics.md, "Meta-server").
//!
//! Raft gauges follow openraft's metrics watch, so they move with every
//! change this node sees. The state counts (durability, rotations) need
//! scans of the metadata DB: they are read from this node's own replica
//! every [`STATE_EVERY`], never per scrape. Every node reports its own
//! replica's view, so a follower lags the leader by its replication lag
//! at most, and a node that stops leading reports no stale leader's view.
//!
//! Recorded where they happen, not here: `hamster_raft_append_seconds`
//! (raft/log_store.rs), `hamster_raft_group_commit_batch_size`
//! (batch.rs), `hamster_apply_errors_total` (state/apply.rs).

use std::sync::Arc;
use std::time::Duration;

use openraft::{RaftMetrics, ServerState};
use sqlx::SqliteConnection;

use crate::cluster::{Meta, now_ms};
use crate::raft::{MetaNode, NodeId};
use crate::state::reads as q;
use crate::state::{ca_rotation, key_rotation};

/// How often the state counts are read from the local replica.
pub const STATE_EVERY: Duration = Duration::from_secs(30);

/// HELP text for every series this tier records; counters and gauges that
/// exist before their first event start at 0.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "hamster_raft_is_leader",
        "1 while this meta-server is the Raft leader, else 0."
    );
    describe_gauge!("hamster_raft_term", "This node's current Raft term.");
    describe_gauge!(
        "hamster_raft_last_log_index",
        "Index of the last entry in this node's Raft log (-1: none)."
    );
    describe_gauge!(
        "hamster_raft_commit_index",
        "Highest log index this node knows committed (-1: none)."
    );
    describe_gauge!(
        "hamster_raft_applied_index",
        "Highest log index applied to this node's metadata DB (-1: none)."
    );
    describe_gauge!(
        "hamster_raft_snapshot_index",
        "Log index of this node's last snapshot (-1: none)."
    );
    describe_gauge!(
        "hamster_raft_members",
        "Meta-servers in the Raft membership, by kind (voter, learner)."
    );
    describe_histogram!(
        "hamster_raft_append_seconds",
        "Appending entries to the Raft log, fsync included."
    );
    describe_histogram!(
        "hamster_raft_group_commit_batch_size",
        "Commands per log entry proposed by this node's group commit."
    );
    describe_counter!(
        "hamster_apply_errors_total",
        "Commands refused when applied, by error code (counted on every replica)."
    );
    describe_gauge!(
        "hamster_under_replicated",
        "Units (versions, parts) with fewer than k+m good shards (this replica, every 30 s)."
    );
    describe_gauge!(
        "hamster_unrecoverable",
        "Units with fewer than k good shards: data lost (this replica, every 30 s)."
    );
    describe_gauge!(
        "hamster_repair_queue",
        "Under-replicated units repair can rebuild (this replica, every 30 s)."
    );
    describe_gauge!(
        "hamster_key_rotation_active",
        "1 while a master-key rotation is open."
    );
    describe_gauge!(
        "hamster_key_rotation_keys_left",
        "Data keys and S3 secrets still wrapped by the old master key."
    );
    describe_gauge!(
        "hamster_ca_rotation_active",
        "1 while a CA rotation is open."
    );
    describe_gauge!(
        "hamster_ca_rotation_members_left",
        "Known members whose certificate is not from the target CA yet."
    );
    describe_counter!(
        "hamster_audit_records_total",
        "Admin calls written to the audit log, by outcome (ok, error)."
    );
    for outcome in ["ok", "error"] {
        metrics::counter!("hamster_audit_records_total", "outcome" => outcome).increment(0);
    }
}

fn index(i: Option<u64>) -> f64 {
    i.map_or(-1.0, |i| i as f64)
}

/// Sets the Raft gauges from one metrics snapshot and the log store's
/// committed index (openraft 0.9 does not put it in its metrics).
pub fn record_raft(m: &RaftMetrics<NodeId, MetaNode>, committed: Option<u64>) {
    let leader = m.state == ServerState::Leader;
    metrics::gauge!("hamster_raft_is_leader").set(if leader { 1.0 } else { 0.0 });
    metrics::gauge!("hamster_raft_term").set(m.current_term as f64);
    metrics::gauge!("hamster_raft_last_log_index").set(index(m.last_log_index));
    metrics::gauge!("hamster_raft_commit_index").set(index(committed));
    metrics::gauge!("hamster_raft_applied_index").set(index(m.last_applied.map(|l| l.index)));
    metrics::gauge!("hamster_raft_snapshot_index").set(index(m.snapshot.map(|l| l.index)));
    let membership = m.membership_config.membership();
    let voters = membership.voter_ids().count();
    let nodes = membership.nodes().count();
    metrics::gauge!("hamster_raft_members", "kind" => "voter").set(voters as f64);
    metrics::gauge!("hamster_raft_members", "kind" => "learner")
        .set(nodes.saturating_sub(voters) as f64);
}

/// What the periodic read of the replica finds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StateCounts {
    pub under_replicated: u64,
    pub unrecoverable: u64,
    pub repair_queue: u64,
    /// Keys left on the old master key, while a rotation is open.
    pub key_rotation: Option<u64>,
    /// Members left on another CA, while a CA rotation is open.
    pub ca_rotation: Option<u64>,
}

/// Reads the counts from one connection (the same reads as `hamster
/// status`, taken locally, without a linearizable round trip).
pub async fn state_counts(
    c: &mut SqliteConnection,
    at_ms: i64,
) -> Result<StateCounts, sqlx::Error> {
    let d = q::durability_summary(c).await?;
    let key_rotation = match key_rotation::rotation(c).await? {
        Some(r) => Some(key_rotation::count_on(c, &r.old).await?),
        None => None,
    };
    let ca_rotation = match ca_rotation::rotation(c).await? {
        Some(r) => {
            let bundle = ca_rotation::bundle(c).await?.unwrap_or_default();
            let target = ca_rotation::target_ca(&bundle, Some(&r));
            let members = q::members(c).await?;
            Some(ca_rotation::on_other_ca(&members, &target, at_ms).len() as u64)
        }
        None => None,
    };
    Ok(StateCounts {
        under_replicated: d.under_replicated,
        unrecoverable: d.unrecoverable,
        repair_queue: d.repair_queue,
        key_rotation,
        ca_rotation,
    })
}

pub fn record_state(s: &StateCounts) {
    metrics::gauge!("hamster_under_replicated").set(s.under_replicated as f64);
    metrics::gauge!("hamster_unrecoverable").set(s.unrecoverable as f64);
    metrics::gauge!("hamster_repair_queue").set(s.repair_queue as f64);
    let flag = |o: Option<u64>| if o.is_some() { 1.0 } else { 0.0 };
    metrics::gauge!("hamster_key_rotation_active").set(flag(s.key_rotation));
    metrics::gauge!("hamster_key_rotation_keys_left").set(s.key_rotation.unwrap_or(0) as f64);
    metrics::gauge!("hamster_ca_rotation_active").set(flag(s.ca_rotation));
    metrics::gauge!("hamster_ca_rotation_members_left").set(s.ca_rotation.unwrap_or(0) as f64);
}

/// Starts the two updaters: Raft gauges on every metrics change, state
/// counts every [`STATE_EVERY`]. They end with the process.
pub fn spawn(meta: Arc<Meta>) {
    describe();
    let mut watch = meta.raft.metrics();
    let log = meta.log.clone();
    tokio::spawn(async move {
        loop {
            let m = watch.borrow_and_update().clone();
            record_raft(&m, log.committed_index());
            if watch.changed().await.is_err() {
                // Raft shut down: this node leads nothing any more.
                metrics::gauge!("hamster_raft_is_leader").set(0.0);
                return;
            }
        }
    });
    tokio::spawn(async move {
        loop {
            let counts = match meta.db.acquire().await {
                Ok(mut c) => state_counts(&mut c, now_ms()).await,
                Err(e) => Err(e),
            };
            match counts {
                Ok(s) => record_state(&s),
                Err(e) => tracing::debug!(error = %e, "metrics: state counts not read"),
            }
            tokio::time::sleep(STATE_EVERY).await;
        }
    });
}
