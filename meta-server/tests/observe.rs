//! The meta-server's series (issue 23) from a state DB and from openraft
//! metrics, read back from the Prometheus text: refusals at apply counted
//! by code, the durability and rotation counts the periodic read finds,
//! and the Raft gauges.

mod common;

use common::*;
use hamster_meta::observe::series::{self, StateCounts};
use hamster_proto::Role as NodeRole;

/// The value of the sample `series` (name and labels exactly as rendered).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn refusals_durability_and_raft_state_show_in_the_series() {
    hamster_proto::metrics::install(NodeRole::Meta).expect("recorder");
    series::describe();
    let mut db = versioned_with_blobs("bkt", 3).await;

    // Two refusals at apply, counted under their code; a success is not.
    db.run(delete_bucket("nope")).await;
    db.run(delete_bucket("nope-either")).await;
    db.ok(commit(ver("bkt", "a", "v1", "a"))).await;
    let text = hamster_proto::metrics::render();
    assert_eq!(
        sample(&text, "hamster_apply_errors_total{code=\"NoSuchBucket\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "hamster_audit_records_total{outcome=\"ok\"}"),
        Some(0.0)
    );

    // A degraded commit: one unit under k+m, repairable, nothing open.
    let mut short = ver("bkt", "b", "v2", "b");
    if let Some(m) = short.shard_map.as_mut() {
        m.shards.retain(|s| s.index != 2);
    }
    db.ok(commit(short)).await;
    let counts = series::state_counts(db.c(), NOW).await.expect("counts");
    assert_eq!(
        counts,
        StateCounts {
            under_replicated: 1,
            unrecoverable: 0,
            repair_queue: 1,
            key_rotation: None,
            ca_rotation: None,
        }
    );
    series::record_state(&counts);
    let text = hamster_proto::metrics::render();
    assert_eq!(sample(&text, "hamster_under_replicated"), Some(1.0));
    assert_eq!(sample(&text, "hamster_repair_queue"), Some(1.0));
    assert_eq!(sample(&text, "hamster_unrecoverable"), Some(0.0));
    assert_eq!(sample(&text, "hamster_key_rotation_active"), Some(0.0));
    assert_eq!(sample(&text, "hamster_ca_rotation_members_left"), Some(0.0));

    // Raft: a leader at term 3 with entries 0..=9 applied up to 7.
    let mut m = openraft::RaftMetrics::new_initial(1);
    m.state = openraft::ServerState::Leader;
    m.current_term = 3;
    m.last_log_index = Some(9);
    m.last_applied = Some(openraft::LogId::new(
        openraft::CommittedLeaderId::new(3, 1),
        7,
    ));
    series::record_raft(&m, Some(8));
    let text = hamster_proto::metrics::render();
    assert_eq!(sample(&text, "hamster_raft_is_leader"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "hamster_raft_term"), Some(3.0));
    assert_eq!(sample(&text, "hamster_raft_last_log_index"), Some(9.0));
    assert_eq!(sample(&text, "hamster_raft_commit_index"), Some(8.0));
    assert_eq!(sample(&text, "hamster_raft_applied_index"), Some(7.0));
    assert_eq!(sample(&text, "hamster_raft_snapshot_index"), Some(-1.0));
    m.state = openraft::ServerState::Follower;
    series::record_raft(&m, Some(8));
    let text = hamster_proto::metrics::render();
    assert_eq!(sample(&text, "hamster_raft_is_leader"), Some(0.0));
    assert!(text.contains("# HELP hamster_raft_is_leader"), "{text}");
}
