//! Entry points for the fuzz harness (hamster-tests `fuzz-all`, ADR
//! 0033): every message a peer sends this crate as bytes, and the Raft
//! records it reads back from disk, decoded exactly as the server does.
//! Not an API; nothing here is used by the server.

use hamster_proto::pb::RaftPayload;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{CommittedLeaderId, LogId, Vote};
use serde::de::DeserializeOwned;

use crate::cluster::{ForwardError, ForwardRequest};
use crate::raft::codec;
use crate::raft::state_machine::{SNAPSHOT_FORMAT, StoredSnapshotMeta};
use crate::raft::{Entry, NodeId, TypeConfig};
use crate::state::commands::{Command, Response};
use crate::state::format;

/// What [`decode`] reads, by kind.
pub const KINDS: [&str; 13] = [
    "AppendEntries request",
    "Vote request",
    "InstallSnapshot request",
    "Forward request",
    "AppendEntries answer",
    "Vote answer",
    "InstallSnapshot answer",
    "Forward answer",
    "log entry",
    "vote record",
    "log id record",
    "snapshot.json",
    "command",
];

fn gate<T: DeserializeOwned>(data: &[u8]) -> Result<(), String> {
    let payload = RaftPayload {
        data: data.to_vec(),
        blob: Vec::new(),
    };
    codec::decode::<T>(&payload)
        .map(drop)
        .map_err(|e| e.to_string())
}

fn json<T: DeserializeOwned>(data: &[u8]) -> Result<(), String> {
    serde_json::from_slice::<T>(data)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// `snapshot.json` as `StateMachine` reads it: the version first.
fn snapshot_json(data: &[u8]) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        v: u64,
    }
    if let Ok(p) = serde_json::from_slice::<Probe>(data) {
        format::check("snapshot.json", p.v, SNAPSHOT_FORMAT).map_err(|e| e.to_string())?;
    }
    json::<StoredSnapshotMeta>(data)
}

/// Decodes `data` as message or record `kind` (an index into [`KINDS`],
/// modulo their number); Err is the server's refusal.
pub fn decode(kind: u8, data: &[u8]) -> Result<(), String> {
    match usize::from(kind) % KINDS.len() {
        0 => gate::<AppendEntriesRequest<TypeConfig>>(data),
        1 => gate::<VoteRequest<NodeId>>(data),
        2 => gate::<InstallSnapshotRequest<TypeConfig>>(data),
        3 => gate::<ForwardRequest>(data),
        4 => gate::<Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>>(data),
        5 => gate::<Result<VoteResponse<NodeId>, RaftError<NodeId>>>(data),
        6 => {
            gate::<Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>>(
                data,
            )
        }
        7 => gate::<Result<Response, ForwardError>>(data),
        8 => json::<Entry>(data),
        9 => json::<Vote<NodeId>>(data),
        10 => json::<LogId<NodeId>>(data),
        11 => snapshot_json(data),
        _ => json::<Command>(data),
    }
}

/// A valid encoding of each kind [`decode`] reads (kind, bytes), built
/// from a log entry's and a snapshot.json's JSON (the golden files).
pub fn seeds(entry_json: &[u8], snapshot_json: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |kind: u8, v: Result<Vec<u8>, serde_json::Error>| {
        if let Ok(v) = v {
            out.push((kind, v));
        }
    };
    let vote = Vote::<NodeId>::new_committed(7, 2);
    let log_id = LogId::new(CommittedLeaderId::new(7, 2), 42);
    let entry: Option<Entry> = serde_json::from_slice(entry_json).ok();
    let stored: Option<StoredSnapshotMeta> = serde_json::from_slice(snapshot_json).ok();
    add(
        0,
        serde_json::to_vec(&AppendEntriesRequest::<TypeConfig> {
            vote,
            prev_log_id: Some(log_id),
            entries: entry.clone().into_iter().collect(),
            leader_commit: Some(log_id),
        }),
    );
    add(
        1,
        serde_json::to_vec(&VoteRequest {
            vote,
            last_log_id: Some(log_id),
        }),
    );
    if let Some(s) = &stored {
        add(
            2,
            serde_json::to_vec(&InstallSnapshotRequest::<TypeConfig> {
                vote,
                meta: s.meta.clone(),
                offset: 0,
                data: Vec::new(),
                done: true,
            }),
        );
    }
    if let Some(openraft::EntryPayload::Normal(cmd)) = entry.as_ref().map(|e| &e.payload) {
        add(
            3,
            serde_json::to_vec(&ForwardRequest::Write(Box::new(cmd.clone()))),
        );
        add(12, serde_json::to_vec(cmd));
    }
    add(
        4,
        serde_json::to_vec(&Ok::<_, RaftError<NodeId>>(
            AppendEntriesResponse::<NodeId>::Success,
        )),
    );
    add(
        5,
        serde_json::to_vec(&Ok::<_, RaftError<NodeId>>(VoteResponse {
            vote,
            vote_granted: true,
            last_log_id: Some(log_id),
        })),
    );
    add(
        6,
        serde_json::to_vec(&Ok::<_, RaftError<NodeId, InstallSnapshotError>>(
            InstallSnapshotResponse { vote },
        )),
    );
    add(
        7,
        serde_json::to_vec(&Err::<Response, _>(ForwardError::Busy("busy".into()))),
    );
    add(8, Ok(entry_json.to_vec()));
    add(9, serde_json::to_vec(&vote));
    add(10, serde_json::to_vec(&log_id));
    add(11, Ok(snapshot_json.to_vec()));
    out
}
