//! The `Registry` service: blob-servers register, heartbeat and report
//! what their scrubs found through Raft; anyone admitted lists them
//! (linearizable).

use std::sync::Arc;

use hamster_proto::pb;
use tonic::{Request, Response, Status};

use super::errors::{ServiceError, unexpected};
use crate::cluster::Meta;
use crate::state::commands::{Op, Response as R};
use crate::state::model::BadShard;
use crate::state::reads as q;
use crate::state::{key_rotation, registry};

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

/// Longest reason kept for a bad shard (it goes into the Raft log).
const MAX_REASON: usize = 256;
/// Most bad shards one ReportScrub may carry (blob-servers send 500).
const MAX_BAD_PER_REPORT: usize = 1000;

/// `s` cut to at most `max` bytes, on a character boundary.
fn clip(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
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
        // One address per live server (ADR 0030): another server's address
        // would take its reads and writes.
        let servers = self.meta.read(async |c| q::blob_servers(c).await).await?;
        let now = crate::cluster::now_ms();
        if let Some(o) = registry::address_holder(&servers, &server.id, &server.address, now) {
            return Err(ServiceError::InvalidArgument(format!(
                "address {} is blob-server {}'s (heard from {} s ago): one address per live server",
                server.address,
                o.id,
                now.saturating_sub(o.last_heartbeat_ms).max(0) / 1000
            ))
            .into());
        }
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
            shards_stored: r.shards_stored,
            bytes_stored: r.bytes_stored,
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
    /// A blob-server's scrub findings, recorded through Raft under the id
    /// in its certificate; answered once applied, so a blob-server that
    /// reports before answering Blob.Scrub has its findings in the state.
    async fn report_scrub(
        &self,
        req: Request<pb::ReportScrubRequest>,
    ) -> Result<Response<pb::ReportScrubResponse>, Status> {
        own_id(&req, &req.get_ref().id)?;
        let r = req.into_inner();
        // One report is one Raft entry: blob-servers send at most this many.
        if r.bad.len() > MAX_BAD_PER_REPORT {
            return Err(ServiceError::InvalidArgument(format!(
                "at most {MAX_BAD_PER_REPORT} bad shards per report"
            ))
            .into());
        }
        if r.bad.iter().any(|b| b.shard_id.is_empty()) {
            return Err(ServiceError::Malformed("a bad shard needs its id".into()).into());
        }
        let op = Op::RecordScrub {
            blob_id: r.id,
            bad: r
                .bad
                .into_iter()
                .map(|b| BadShard {
                    shard_id: b.shard_id,
                    reason: clip(b.reason, MAX_REASON),
                })
                .collect(),
            pass_finished_ms: r.pass_finished_ms,
        };
        match self.meta.write(op).await? {
            R::Ok => Ok(Response::new(pb::ReportScrubResponse {})),
            other => Err(unexpected(other).into()),
        }
    }

    /// Which of these shards no version, part or upload names and no
    /// restore holds (ADR 0029): one linearizable read, so a blob-server
    /// never deletes a shard a commit applied before the call names.
    async fn confirm_free(
        &self,
        req: Request<pb::ConfirmFreeRequest>,
    ) -> Result<Response<pb::ConfirmFreeResponse>, Status> {
        let ids = req.into_inner().shard_ids;
        if ids.len() > super::frees::MAX_CONFIRM_IDS {
            return Err(ServiceError::InvalidArgument(format!(
                "ConfirmFree asks about at most {} shards, not {}",
                super::frees::MAX_CONFIRM_IDS,
                ids.len()
            ))
            .into());
        }
        let free = self
            .meta
            .read(async |c| super::frees::unnamed(c, &ids).await)
            .await
            .map_err(ServiceError::from)?;
        Ok(Response::new(pb::ConfirmFreeResponse { free }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_clipped_on_a_character_boundary() {
        assert_eq!(clip("short".into(), 256), "short");
        assert_eq!(clip("abcdef".into(), 3), "abc");
        // "é" is two bytes: a cut through it backs off to before it.
        assert_eq!(clip("aé".into(), 2), "a");
        assert_eq!(clip("x".repeat(1000), MAX_REASON).len(), MAX_REASON);
    }
}
