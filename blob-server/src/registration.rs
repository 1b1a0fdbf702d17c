//! Joining the registry: register with the meta tier at start-up (retrying
//! until a meta node answers), then heartbeat capacity and free space.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hamster_proto::{ErrorCode, pb};

use crate::meta_link::MetaLink;

pub struct Registration {
    pub link: Arc<MetaLink>,
    pub address: String,
    pub failure_domain: String,
    pub data_dir: PathBuf,
    /// Reported capacity; None: the filesystem's size.
    pub capacity_bytes: Option<u64>,
    pub interval: Duration,
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

impl Registration {
    fn space(&self) -> (u64, u64) {
        let (cap, free) = disk_space(&self.data_dir);
        let cap = self.capacity_bytes.unwrap_or(cap);
        (cap, free.min(cap))
    }

    fn server(&self) -> pb::BlobServer {
        let (capacity_bytes, free_bytes) = self.space();
        pb::BlobServer {
            id: self.link.node_id(),
            address: self.address.clone(),
            failure_domain: self.failure_domain.clone(),
            capacity_bytes,
            free_bytes,
            ..Default::default()
        }
    }

    async fn register(&self) {
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
        self.register().await;
        loop {
            tokio::time::sleep(self.interval).await;
            let Some(mut c) = self.link.registry() else {
                self.link.failed();
                continue;
            };
            let (capacity_bytes, free_bytes) = self.space();
            let hb = pb::HeartbeatRequest {
                id: self.link.node_id(),
                capacity_bytes,
                free_bytes,
                ..Default::default()
            };
            match c.heartbeat(hb).await {
                Ok(_) => {}
                // The registry forgot us (a restored meta tier): register again.
                Err(e) if ErrorCode::of(&e) == Some(ErrorCode::NoSuchBlobServer) => {
                    self.register().await
                }
                Err(e) => {
                    tracing::warn!(error = %e.message(), "heartbeat failed");
                    self.link.failed();
                }
            }
        }
    }
}
