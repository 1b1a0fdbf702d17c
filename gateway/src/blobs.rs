//! The gateway's view of the blob-server registry (and of the cluster's
//! erasure profile and write key, which come with it): refreshed from the meta tier
//! every few seconds, and on demand when a placement finds too few
//! servers. A server whose last heartbeat is older than `down_after` is
//! treated as down: no new shards go to it (reads still try it).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hamster_proto::pb;
use hamster_proto::pb::registry_client::RegistryClient;

use crate::meta::{MetaError, MetaTier};
use crate::pipeline::placement::Candidate;

const REFRESH: Duration = Duration::from_secs(2);

pub struct Blobs {
    meta: Arc<MetaTier>,
    down_after: Duration,
    servers: RwLock<Vec<pb::BlobServer>>,
    /// The cluster's erasure profile, if set (`hamster profile set`).
    profile: RwLock<Option<(usize, usize)>>,
    /// The master key new writes use, as the meta tier last said.
    write_key: RwLock<String>,
}

impl Blobs {
    pub fn new(meta: Arc<MetaTier>, down_after: Duration) -> Arc<Self> {
        Arc::new(Self {
            meta,
            down_after,
            servers: RwLock::new(Vec::new()),
            profile: RwLock::new(None),
            write_key: RwLock::new(String::new()),
        })
    }

    /// Keeps the view fresh until the process ends.
    pub fn spawn_refresh(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(b) = me.upgrade() {
                if let Err(e) = b.refresh().await {
                    tracing::debug!(error = %e, "blob registry refresh failed");
                }
                drop(b);
                tokio::time::sleep(REFRESH).await;
            }
        });
    }

    pub async fn refresh(&self) -> Result<(), MetaError> {
        let list = self
            .meta
            .call(|ch| async move {
                RegistryClient::new(ch)
                    .list_blobs(pb::ListBlobsRequest {})
                    .await
            })
            .await?;
        if let Ok(mut s) = self.servers.write() {
            *s = list.servers;
        }
        if let Ok(mut p) = self.profile.write() {
            *p = (list.data_shards > 0)
                .then_some((list.data_shards as usize, list.parity_shards as usize));
        }
        if let Ok(mut w) = self.write_key.write() {
            *w = list.write_kek_fingerprint;
        }
        Ok(())
    }

    /// The fingerprint of the cluster's write key ("" if not yet known).
    pub fn write_key(&self) -> String {
        self.write_key.read().map(|w| w.clone()).unwrap_or_default()
    }

    fn snapshot(&self) -> Vec<pb::BlobServer> {
        self.servers.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// The profile the cluster set, as last read from the meta tier.
    pub fn cluster_profile(&self) -> Option<(usize, usize)> {
        self.profile.read().ok().and_then(|p| *p)
    }

    /// Registered servers (up or down): what the default profile follows.
    pub fn registered(&self) -> usize {
        self.snapshot().len()
    }

    /// Servers that may take new shards.
    pub fn candidates(&self) -> Vec<Candidate> {
        let fresh =
            crate::now_ms() - i64::try_from(self.down_after.as_millis()).unwrap_or(i64::MAX);
        self.snapshot()
            .into_iter()
            .map(|s| Candidate {
                active: s.state == "active" && s.last_heartbeat_ms >= fresh,
                id: s.id,
                address: s.address,
                failure_domain: s.failure_domain,
                free_bytes: s.free_bytes,
            })
            .collect()
    }

    /// Blob id → address, for reads.
    pub fn addresses(&self) -> HashMap<String, String> {
        self.snapshot()
            .into_iter()
            .map(|s| (s.id, s.address))
            .collect()
    }
}
