//! The `Raft` gRPC service: the receiving end of replication, votes and
//! snapshots, of writes forwarded by followers (data commands and member
//! reports only: [`forwardable`]), and of read-index requests. Admitted
//! for the meta role only (hamster_proto::authz).

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
use crate::state::commands::{Actor, MetaError, Op, Response as StateResponse};

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

/// Whether Raft.Forward carries `fwd` (ADR 0030): only data commands and
/// member reports. A meta certificate can call Forward, so anything an
/// admin alone may ask (membership, blob drain/remove, rotations, access
/// keys, join tokens, grants, settings, forgetting a member) is never
/// taken from it: on a follower those are answered NotLeader with the
/// leader's address, and the admin asks the leader itself.
pub fn forwardable(fwd: &ForwardRequest) -> bool {
    let ForwardRequest::Write(cmd) = fwd else {
        // AddLearner, AddVoter, RemoveVoter: membership, admins only.
        return false;
    };
    match &cmd.op {
        // S3 data commands, for the access key a gateway authenticated.
        Op::CreateBucket { .. }
        | Op::DeleteBucket { .. }
        | Op::CommitVersion { .. }
        | Op::DeleteObject { .. }
        | Op::PutBucketVersioning { .. }
        | Op::PutLockConfiguration { .. }
        | Op::PutPublicAccessBlock { .. }
        | Op::PutRetention { .. }
        | Op::PutLegalHold { .. }
        | Op::BeginMultipart { .. }
        | Op::CommitPart { .. }
        | Op::CompleteMultipart { .. }
        | Op::AbortMultipart { .. } => matches!(cmd.by, Some(Actor::Key(_))),
        // Member reports, each checked against the caller's certificate
        // by the node that took the call; a join's token use.
        Op::RegisterBlob { .. }
        | Op::BlobHeartbeat { .. }
        | Op::RecordScrub { .. }
        | Op::KeyHolderSeen { .. }
        | Op::MemberSeen { .. }
        | Op::InitTrust { .. }
        | Op::UseJoinToken { .. } => true,
        // Admin-only (and the leader's own tasks, which never need it).
        // Listed without a wildcard so a new Op must be placed here.
        Op::PutAccessKey { .. }
        | Op::DeleteAccessKey { .. }
        | Op::PutJoinToken { .. }
        | Op::SetProfile { .. }
        | Op::StartKeyRotation { .. }
        | Op::Rewrap { .. }
        | Op::FinishKeyRotation
        | Op::StartCaRotation { .. }
        | Op::AdvanceCaRotation { .. }
        | Op::ForgetMember { .. }
        | Op::DenyMember { .. }
        | Op::MarkBlobDown { .. }
        | Op::SwapShards { .. }
        | Op::DrainBlob { .. }
        | Op::UndrainBlob { .. }
        | Op::FinishDrain { .. }
        | Op::RemoveBlob { .. }
        | Op::MoveShards { .. }
        | Op::HoldOrphans { .. }
        | Op::ReleaseOrphans { .. }
        | Op::ForgetOrphans { .. }
        | Op::AllowBucket { .. }
        | Op::DenyBucket { .. }
        | Op::SetBucket { .. }
        | Op::SetBucketDefaults { .. }
        | Op::AdoptBuckets { .. }
        // Only the leader's batcher makes batches, from commands it checked.
        | Op::Batch(_)
        | Op::Unreadable { .. } => false,
    }
}

/// A forwarded request this node will not run, answered as apply would
/// refuse it (AccessDenied): see [`forwardable`].
fn unforwardable(fwd: &ForwardRequest) -> Option<StateResponse> {
    if forwardable(fwd) {
        return None;
    }
    let what = match fwd {
        ForwardRequest::Write(cmd) => match &cmd.op {
            Op::Batch(_) => "a batch cannot be forwarded".to_string(),
            op if op.needs_actor() && cmd.by.is_none() => {
                "a bucket command must name who it acts for".to_string()
            }
            op => format!("{} is not forwarded: ask the leader directly", op.name()),
        },
        _ => "a membership change is not forwarded: ask the leader directly".to_string(),
    };
    Some(StateResponse::Err(MetaError::AccessDenied(what)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::commands::Command;
    use crate::state::model::Role;

    fn write(op: Op, by: Option<Actor>) -> ForwardRequest {
        let cmd = Command::new("c", 1, op);
        ForwardRequest::Write(Box::new(match by {
            Some(by) => cmd.by(by),
            None => cmd,
        }))
    }

    #[test]
    fn forward_carries_data_commands_and_member_reports_only() {
        let key = || Some(Actor::Key("AK".into()));
        let admin = || Some(Actor::Admin("ops".into()));
        let del = || Op::DeleteBucket {
            name: "b".into(),
            abort_uploads: false,
        };
        assert!(forwardable(&write(del(), key())));
        // The same command for an admin, or for nobody: never forwarded.
        assert!(!forwardable(&write(del(), admin())));
        assert!(!forwardable(&write(del(), None)));
        let report = Op::MemberSeen {
            id: "gw".into(),
            role: Role::Gateway,
            generation: 1,
            cert_ca: "ca".into(),
        };
        assert!(forwardable(&write(report, None)));
        for op in [
            Op::ForgetMember {
                role: Role::Gateway,
                id: "gw".into(),
            },
            Op::DenyMember {
                role: Role::Meta,
                id: "m".into(),
            },
            Op::RemoveBlob {
                id: "b".into(),
                force: true,
            },
            Op::DeleteAccessKey { id: "AK".into() },
            Op::SetProfile {
                data_shards: 1,
                parity_shards: 0,
            },
            Op::FinishKeyRotation,
            Op::Batch(Vec::new()),
        ] {
            let name = op.name();
            let fwd = write(op, None);
            assert!(!forwardable(&fwd), "{name}");
            let Some(StateResponse::Err(MetaError::AccessDenied(why))) = unforwardable(&fwd) else {
                panic!("{name} not refused");
            };
            assert!(!why.is_empty());
        }
        // Grants are admin-only even when they name a key.
        let grant = Op::DenyBucket {
            bucket: "b".into(),
            key_id: "AK".into(),
        };
        assert!(!forwardable(&write(grant, key())));
        for membership in [
            ForwardRequest::AddVoter { id: 4 },
            ForwardRequest::RemoveVoter { id: 2 },
        ] {
            assert!(!forwardable(&membership));
            assert!(unforwardable(&membership).is_some());
        }
    }
}
