//! The `Registry` service: blob-servers register and heartbeat through
//! Raft; anyone admitted lists them (linearizable).

use std::sync::Arc;

use hamster_proto::pb;
use tonic::{Request, Response, Status};

use super::errors::{ServiceError, unexpected};
use crate::cluster::Meta;
use crate::state::commands::{Op, Response as R};
use crate::state::key_rotation;
use crate::state::reads as q;

/// A blob-server may register and heartbeat only as itself: the id in the
/// request must be the node id in its certificate.
fn own_id<T>(req: &Request<T>, id: &str) -> Result<(), ServiceError> {
    match hamster_proto::transport::peer(req) {
        Some(p) if p.role == hamster_proto::Role::Blob && p.node_id == id => Ok(()),
        Some(p) => Err(ServiceError::AccessDenied(format!(
            "{p} may not speak for blob-server {id:?}"
        ))),
        None => Err(ServiceError::Unauthenticated),
    }
}

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
            .get_ref()
            .server
            .clone()
            .ok_or_else(|| ServiceError::Malformed("server is required".into()))?;
        own_id(&req, &server.id)?;
        match self
            .meta
            .write(Op::RegisterBlob {
                server: server.try_into()?,
            })
            .await?
        {
            R::Ok => Ok(Response::new(pb::RegisterBlobResponse {})),
            other => Err(unexpected(other).into()),
        }
    }

    async fn heartbeat(
        &self,
        req: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        own_id(&req, &req.get_ref().id)?;
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
            other => Err(unexpected(other).into()),
        }
    }

    async fn list_blobs(
        &self,
        _req: Request<pb::ListBlobsRequest>,
    ) -> Result<Response<pb::ListBlobsResponse>, Status> {
        let (servers, profile, write_kek_fingerprint) = self
            .meta
            .read(async |c| {
                Ok((
                    q::blob_servers(c).await?,
                    q::profile(c).await?,
                    key_rotation::write_key(c).await?,
                ))
            })
            .await?;
        let (data_shards, parity_shards) = profile.unwrap_or((0, 0));
        Ok(Response::new(pb::ListBlobsResponse {
            servers: servers.into_iter().map(Into::into).collect(),
            data_shards,
            parity_shards,
            write_kek_fingerprint,
        }))
    }

    /// A gateway's (or meta-server's) key report, recorded through Raft
    /// under the identity in its certificate.
    async fn report_keys(
        &self,
        req: Request<pb::ReportKeysRequest>,
    ) -> Result<Response<pb::ReportKeysResponse>, Status> {
        let peer = hamster_proto::transport::peer(&req).ok_or(ServiceError::Unauthenticated)?;
        let id = peer.node_id.clone();
        let role = match peer.role {
            r @ (hamster_proto::Role::Gateway | hamster_proto::Role::Meta) => r,
            other => {
                return Err(
                    ServiceError::RoleNotAdmitted(format!("{other} holds no master key")).into(),
                );
            }
        };
        let r = req.into_inner();
        let op = Op::KeyHolderSeen {
            id,
            role: role.into(),
            current: r.current_kek_fingerprint,
            next: r.next_kek_fingerprint,
        };
        match self.meta.write(op).await? {
            R::Ok => {}
            other => return Err(unexpected(other).into()),
        }
        let write_kek_fingerprint = self
            .meta
            .read(async |c| key_rotation::write_key(c).await)
            .await?;
        Ok(Response::new(pb::ReportKeysResponse {
            write_kek_fingerprint,
        }))
    }
}
