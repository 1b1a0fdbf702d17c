//! Joining the registry: register with the meta tier at start-up (retrying
//! until a meta node answers), then heartbeat capacity, free space and
//! what the store holds (shards and bytes, exact: a drain waits on them).
//!
//! A server an operator removed is refused by every tier for good (ADR
//! 0025). It says so once, plainly, and keeps running: harmless, since
//! nobody talks to it, and the operator decides what becomes of the
//! machine.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hamster_proto::revoke::refused_as_revoked;
use hamster_proto::{ErrorCode, pb};

use crate::meta_link::MetaLink;
use crate::store::Store;

/// How often a removed server still knocks (quietly).
const REMOVED_RETRY: Duration = Duration::from_secs(60);

pub struct Registration {
    pub link: Arc<MetaLink>,
    pub address: String,
    pub failure_domain: String,
    pub data_dir: PathBuf,
    /// Reported capacity; None: the filesystem's size.
    pub capacity_bytes: Option<u64>,
    pub interval: Duration,
    /// Whose shard and byte counts go in every heartbeat.
    pub store: Store,
}

/// (capacity, free) of the filesystem holding `dir`.
pub fn disk_space(dir: &std::path::Path) -> (u64, u64) {
    match rustix::fs::statvfs(dir) {
        Ok(s) => (
            s.f_blocks.saturating_mul(s.f_frsize),
            s.f_bavail.saturating_mul(s.f_frsize),
        ),
        Err(_) => (0, 0),
    }
}

/// (capacity, free) as reported: `capacity` overrides the filesystem's
/// size, and free never exceeds it.
pub fn space(dir: &std::path::Path, capacity: Option<u64>) -> (u64, u64) {
    let (cap, free) = disk_space(dir);
    let cap = capacity.unwrap_or(cap);
    (cap, free.min(cap))
}

/// Whether this server was refused as removed; logs that once.
fn removed(e: &tonic::Status, told: &mut bool) -> bool {
    if !refused_as_revoked(e) {
        return false;
    }
    if !*told {
        *told = true;
        tracing::error!(
            "this blob-server was removed from the cluster by an operator; its shards are not \
             used; wipe the data dir and join anew to reuse the machine"
        );
    }
    true
}

impl Registration {
    fn space(&self) -> (u64, u64) {
        space(&self.data_dir, self.capacity_bytes)
    }

    fn server(&self) -> pb::BlobServer {
        let (capacity_bytes, free_bytes) = self.space();
        let stored = self.store.counts();
        pb::BlobServer {
            id: self.link.node_id(),
            address: self.address.clone(),
            failure_domain: self.failure_domain.clone(),
            capacity_bytes,
            free_bytes,
            shards_stored: stored.shards,
            bytes_stored: stored.bytes,
            ..Default::default()
        }
    }

    /// What a heartbeat says now.
    pub fn heartbeat(&self) -> pb::HeartbeatRequest {
        let (capacity_bytes, free_bytes) = self.space();
        let stored = self.store.counts();
        pb::HeartbeatRequest {
            id: self.link.node_id(),
            capacity_bytes,
            free_bytes,
            shards_stored: stored.shards,
            bytes_stored: stored.bytes,
            ..Default::default()
        }
    }

    async fn register(&self, told: &mut bool) {
        let mut backoff = Duration::from_millis(200);
        loop {
            if let Some(mut c) = self.link.registry() {
                match c
                    .register_blob(pb::RegisterBlobRequest {
                        server: Some(self.server()),
                    })
                    .await
                {
                    Ok(_) => {
                        tracing::info!(domain = %self.failure_domain, address = %self.address, "registered with the meta tier");
                        return;
                    }
                    Err(e) if removed(&e, told) => {
                        tokio::time::sleep(REMOVED_RETRY).await;
                        continue;
                    }
                    Err(e) => tracing::warn!(error = %e.message(), "registration failed; retrying"),
                }
            }
            self.link.failed();
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Runs forever: register, then heartbeat every interval; registers
    /// again if the meta tier no longer knows this server.
    pub async fn run(self) {
        let mut told = false;
        self.register(&mut told).await;
        loop {
            tokio::time::sleep(self.interval).await;
            let Some(mut c) = self.link.registry() else {
                self.link.failed();
                continue;
            };
            match c.heartbeat(self.heartbeat()).await {
                Ok(_) => {}
                // The registry forgot us (a restored meta tier): register again.
                Err(e) if ErrorCode::of(&e) == Some(ErrorCode::NoSuchBlobServer) => {
                    self.register(&mut told).await
                }
                Err(e) if removed(&e, &mut told) => tokio::time::sleep(REMOVED_RETRY).await,
                Err(e) => {
                    tracing::warn!(error = %e.message(), "heartbeat failed");
                    self.link.failed();
                }
            }
        }
    }
}
