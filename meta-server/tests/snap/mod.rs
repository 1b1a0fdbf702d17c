//! What the snapshot tests (snapshots.rs, formats.rs) share: log entries
//! that each create a bucket, and a snapshot of what has been applied.

#![allow(dead_code)] // each test crate uses its own part

use hamster_meta::raft::state_machine::StateMachine;
use hamster_meta::raft::{Entry, Snapshot};
use hamster_meta::state::commands::{Command, Op};
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder};

/// Log entry `index` (term 1, node 1): CreateBucket `bucket`.
pub fn entry(index: u64, bucket: &str) -> Entry {
    Entry {
        log_id: openraft::testing::log_id(1, 1, index),
        payload: EntryPayload::Normal(Command::new(
            format!("cmd-{index}"),
            1_700_000_000_000,
            Op::CreateBucket {
                name: bucket.into(),
                object_lock_enabled: false,
                owner: None,
            },
        )),
    }
}

/// A snapshot of what `sm` has applied, built as Raft builds one.
pub async fn snapshot(sm: &mut StateMachine) -> Snapshot {
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build")
}
