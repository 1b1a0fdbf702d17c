//! Raft RPCs to peers: gRPC over the mTLS transport, one long-lived
//! channel per peer address (tonic multiplexes calls over one HTTP/2
//! connection and reconnects by itself). Every call on these channels has
//! a deadline (`transport::RAFT_CALL_TIMEOUT`, ADR 0032): Raft RPCs, and
//! the `Forward` and `ReadIndex` calls `crate::cluster` makes, so a
//! follower forwarding to a leader that stopped answering gives up and
//! retries against the leader elected meanwhile.

use std::sync::Arc;

use hamster_proto::pb::raft_client::RaftClient;
use hamster_proto::tls::NodeTls;
use hamster_proto::{Role, transport};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use tonic::transport::Channel;

use super::codec::{decode, encode};
use super::{MetaNode, NodeId, TypeConfig};

/// Channels to peers, shared by Raft replication and write forwarding.
#[derive(Clone)]
pub struct Peers {
    pool: transport::Pool,
}

impl Peers {
    pub fn new(tls: Arc<NodeTls>) -> Self {
        Self {
            pool: transport::Pool::new(tls, &[Role::Meta])
                .with_deadline(transport::RAFT_CALL_TIMEOUT),
        }
    }

    /// The channel to a meta node at `addr`, made once and reused.
    pub fn channel(&self, addr: &str) -> Result<Channel, transport::ConnectError> {
        self.pool.channel(addr)
    }

    pub fn raft_client(&self, addr: &str) -> Result<RaftClient<Channel>, transport::ConnectError> {
        Ok(RaftClient::new(self.channel(addr)?).max_decoding_message_size(MAX_MESSAGE))
    }
}

/// Largest Raft message: snapshot chunks and entry batches stay well below.
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;

impl RaftNetworkFactory<TypeConfig> for Peers {
    type Network = PeerConn;

    async fn new_client(&mut self, target: NodeId, node: &MetaNode) -> PeerConn {
        PeerConn {
            target,
            client: self.raft_client(&node.addr).map_err(|e| e.to_string()),
        }
    }
}

pub struct PeerConn {
    target: NodeId,
    client: Result<RaftClient<Channel>, String>,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, MetaNode, E>>;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Msg(String);

impl PeerConn {
    async fn call<Req, Resp, E>(
        &mut self,
        req: &Req,
        blob: Vec<u8>,
        option: &RPCOption,
        rpc: impl AsyncFnOnce(
            RaftClient<Channel>,
            tonic::Request<hamster_proto::pb::RaftPayload>,
        )
            -> Result<tonic::Response<hamster_proto::pb::RaftPayload>, tonic::Status>,
    ) -> RpcResult<Resp, E>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
        E: serde::de::DeserializeOwned + std::error::Error,
    {
        let client = match &self.client {
            Ok(c) => c.clone(),
            Err(e) => return Err(RPCError::Unreachable(Unreachable::new(&Msg(e.clone())))),
        };
        let mut payload = encode(req).map_err(|s| RPCError::Network(NetworkError::new(&s)))?;
        payload.blob = blob;
        let mut request = tonic::Request::new(payload);
        request.set_timeout(option.hard_ttl());
        let resp = rpc(client, request)
            .await
            .map_err(|s| RPCError::Unreachable(Unreachable::new(&s)))?;
        let result: Result<Resp, E> =
            decode(resp.get_ref()).map_err(|s| RPCError::Network(NetworkError::new(&s)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        self.call(&rpc, Vec::new(), &option, async |mut c, r| {
            c.append_entries(r).await
        })
        .await
    }

    async fn install_snapshot(
        &mut self,
        mut rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        // The chunk travels raw beside the JSON header.
        let chunk = std::mem::take(&mut rpc.data);
        self.call(&rpc, chunk, &option, async |mut c, r| {
            c.install_snapshot(r).await
        })
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, RaftError<NodeId>> {
        self.call(&rpc, Vec::new(), &option, async |mut c, r| c.vote(r).await)
            .await
    }
}
