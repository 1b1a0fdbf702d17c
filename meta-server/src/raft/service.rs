//! The `Raft` gRPC service: the receiving end of replication, votes and
//! snapshots, of writes forwarded by followers, and of read-index
//! requests. Admitted for the meta role only (hamster_proto::authz).

use std::io::Cursor;
use std::sync::Arc;

use hamster_proto::pb::{self, RaftPayload};
use openraft::SnapshotSegmentId;
use openraft::error::{Fatal, InstallSnapshotError, RaftError, SnapshotMismatch};
use openraft::raft::{
    AppendEntriesRequest, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
};
use tokio::sync::Mutex;
use tonic::{Request, Response, Status};

use super::codec::{decode, encode};
use super::{NodeId, Snapshot, TypeConfig};
use crate::cluster::{ForwardError, ForwardRequest, Meta};
use crate::state::commands::{MetaError, Op, Response as StateResponse};

pub struct RaftService {
    meta: Arc<Meta>,
    /// The snapshot being received from the leader, chunk by chunk.
    incoming: Mutex<Option<Incoming>>,
}

struct Incoming {
    id: String,
    data: Vec<u8>,
}

impl RaftService {
    pub fn new(meta: Arc<Meta>) -> Self {
        Self {
            meta,
            incoming: Mutex::new(None),
        }
    }

    /// Receives one chunk; on the last, saves the snapshot durably and
    /// only then hands it to openraft (see `StateDb::save_received`).
    async fn receive_snapshot(
        &self,
        rpc: InstallSnapshotRequest<TypeConfig>,
    ) -> Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        let my_vote = self.meta.raft.metrics().borrow().vote;
        if rpc.vote < my_vote {
            return Ok(InstallSnapshotResponse { vote: my_vote });
        }
        let mut incoming = self.incoming.lock().await;
        let id = &rpc.meta.snapshot_id;
        if incoming.as_ref().map(|i| &i.id) != Some(id) {
            *incoming = None;
        }
        let expected = incoming.as_ref().map_or(0, |i| i.data.len() as u64);
        if rpc.offset != expected {
            return Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(
                SnapshotMismatch {
                    expect: SnapshotSegmentId {
                        id: id.clone(),
                        offset: expected,
                    },
                    got: SnapshotSegmentId {
                        id: id.clone(),
                        offset: rpc.offset,
                    },
                },
            )));
        }
        let cur = incoming.get_or_insert_with(|| Incoming {
            id: id.clone(),
            data: Vec::new(),
        });
        cur.data.extend_from_slice(&rpc.data);
        if !rpc.done {
            return Ok(InstallSnapshotResponse { vote: my_vote });
        }
        let Some(done) = incoming.take() else {
            return Ok(InstallSnapshotResponse { vote: my_vote });
        };
        drop(incoming);
        let fatal = |e| RaftError::Fatal(Fatal::StorageError(e));
        self.meta
            .db
            .save_received(&rpc.meta, &done.data)
            .await
            .map_err(fatal)?;
        let snapshot = Snapshot {
            meta: rpc.meta,
            snapshot: Box::new(Cursor::new(done.data)),
        };
        let resp = self
            .meta
            .raft
            .install_full_snapshot(rpc.vote, snapshot)
            .await
            .map_err(RaftError::Fatal)?;
        Ok(InstallSnapshotResponse { vote: resp.vote })
    }
}

type Reply = Result<Response<RaftPayload>, Status>;

/// A forwarded write this node will not propose, answered as apply would
/// refuse it: a bucket command with no actor (apply lets those through
/// only because an old log holds them: ADR 0027), or a batch (only the
/// leader's batcher makes those, from commands it checked).
fn unforwardable(fwd: &ForwardRequest) -> Option<StateResponse> {
    let ForwardRequest::Write(cmd) = fwd else {
        return None;
    };
    let why = match &cmd.op {
        Op::Batch(_) => "a batch cannot be forwarded",
        op if op.needs_actor() && cmd.by.is_none() => "a bucket command must name who it acts for",
        _ => return None,
    };
    Some(StateResponse::Err(MetaError::AccessDenied(why.into())))
}

#[tonic::async_trait]
impl pb::raft_server::Raft for RaftService {
    async fn append_entries(&self, req: Request<RaftPayload>) -> Reply {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(req.get_ref())?;
        Ok(Response::new(encode(
            &self.meta.raft.append_entries(rpc).await,
        )?))
    }

    async fn vote(&self, req: Request<RaftPayload>) -> Reply {
        let rpc: VoteRequest<NodeId> = decode(req.get_ref())?;
        Ok(Response::new(encode(&self.meta.raft.vote(rpc).await)?))
    }

    async fn install_snapshot(&self, req: Request<RaftPayload>) -> Reply {
        let payload = req.into_inner();
        let mut rpc: InstallSnapshotRequest<TypeConfig> = decode(&payload)?;
        rpc.data = payload.blob;
        Ok(Response::new(encode(&self.receive_snapshot(rpc).await)?))
    }

    async fn forward(&self, req: Request<RaftPayload>) -> Reply {
        let fwd: ForwardRequest = decode(req.get_ref())?;
        if let Some(refused) = unforwardable(&fwd) {
            return Ok(Response::new(encode(&Ok::<_, ForwardError>(refused))?));
        }
        Ok(Response::new(encode(&self.meta.handle_local(&fwd).await)?))
    }

    async fn read_index(&self, _req: Request<RaftPayload>) -> Reply {
        Ok(Response::new(encode(&self.meta.read_index_local().await)?))
    }
}
