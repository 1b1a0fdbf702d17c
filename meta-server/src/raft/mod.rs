//! Raft: openraft's type configuration and the pieces we plug into it.
//!
//! - [`log_store`]: the Raft log on SQLite (durable before an append is acked).
//! - [`state_machine`]: applies committed commands to the metadata DB; snapshots.
//! - [`network`]: Raft RPCs to peers over gRPC/mTLS, one channel per peer.
//! - [`service`]: the server side of those RPCs, plus write forwarding and read-index.
//! - [`codec`]: how Raft messages are serialized into the gRPC payloads.

pub mod codec;
pub mod log_store;
pub mod network;
pub mod private;
pub mod service;
pub mod state_machine;

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::state::commands::{Command, Response};

/// Raft id of a meta node (distinct from its certificate's node id).
pub type NodeId = u64;

/// What the cluster knows of a meta node: where to reach it and its name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaNode {
    /// host:port of its gRPC listener.
    pub addr: String,
    /// The id in its certificate (hamster://meta/NAME).
    pub name: String,
}

impl std::fmt::Display for MetaNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.addr)
    }
}

openraft::declare_raft_types!(
    /// Hamster's Raft types: commands in, responses out, u64 ids.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = MetaNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, MetaNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, MetaNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
