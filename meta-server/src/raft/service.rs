//! The `Raft` gRPC service: the receiving end of replication, votes and
//! snapshots, of writes forwarded by followers, and of read-index
//! requests. Admitted for the meta role only (hamster_proto::authz).

use std::sync::Arc;

use hamster_proto::pb::{self, RaftPayload};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use tonic::{Request, Response, Status};

use super::codec::{decode, encode};
use super::{NodeId, TypeConfig};
use crate::cluster::{ForwardRequest, Meta};

pub struct RaftService {
    meta: Arc<Meta>,
}

impl RaftService {
    pub fn new(meta: Arc<Meta>) -> Self {
        Self { meta }
    }
}

type Reply = Result<Response<RaftPayload>, Status>;

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
        Ok(Response::new(encode(
            &self.meta.raft.install_snapshot(rpc).await,
        )?))
    }

    async fn forward(&self, req: Request<RaftPayload>) -> Reply {
        let fwd: ForwardRequest = decode(req.get_ref())?;
        Ok(Response::new(encode(&self.meta.handle_local(&fwd).await)?))
    }

    async fn read_index(&self, _req: Request<RaftPayload>) -> Reply {
        Ok(Response::new(encode(&self.meta.read_index_local().await)?))
    }
}
