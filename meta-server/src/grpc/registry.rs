//! The `Registry` service: blob-servers register and heartbeat through
//! Raft; anyone admitted lists them (linearizable).

use std::sync::Arc;

use hamster_proto::pb;
use tonic::{Request, Response, Status};

use super::errors::unexpected;
use crate::cluster::Meta;
use crate::state::commands::{Op, Response as R};
use crate::state::queries as q;

pub struct RegistryService {
    meta: Arc<Meta>,
}

impl RegistryService {
    pub fn new(meta: Arc<Meta>) -> Self {
        Self { meta }
    }
}

#[tonic::async_trait]
impl pb::registry_server::Registry for RegistryService {
    async fn register_blob(
        &self,
        req: Request<pb::RegisterBlobRequest>,
    ) -> Result<Response<pb::RegisterBlobResponse>, Status> {
        let server = req
            .into_inner()
            .server
            .ok_or_else(|| Status::invalid_argument("server is required"))?;
        match self
            .meta
            .write(Op::RegisterBlob {
                server: server.into(),
            })
            .await?
        {
            R::Ok => Ok(Response::new(pb::RegisterBlobResponse {})),
            other => Err(unexpected(&other)),
        }
    }

    async fn heartbeat(
        &self,
        req: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let r = req.into_inner();
        let op = Op::BlobHeartbeat {
            id: r.id,
            capacity_bytes: r.capacity_bytes,
            free_bytes: r.free_bytes,
        };
        match self.meta.write(op).await? {
            // Trust bundles arrive with the CA-rotation issue; generation 0 until then.
            R::Ok => Ok(Response::new(pb::HeartbeatResponse {
                trust_generation: 0,
            })),
            other => Err(unexpected(&other)),
        }
    }

    async fn list_blobs(
        &self,
        _req: Request<pb::ListBlobsRequest>,
    ) -> Result<Response<pb::ListBlobsResponse>, Status> {
        let servers = self.meta.read(async |c| q::blob_servers(c).await).await?;
        Ok(Response::new(pb::ListBlobsResponse {
            servers: servers.into_iter().map(Into::into).collect(),
        }))
    }
}
