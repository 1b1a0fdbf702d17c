//! The gateway's view of the cluster, as the meta tier's registry answers
//! it: the blob-servers, the erasure profile and the master key new
//! writes use. Refreshed every few seconds, and on demand when a
//! placement finds too few servers or a commit is refused for its key. A
//! server whose last heartbeat is older than `down_after` is treated as
//! down: no new shards go to it (reads still try it).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hamster_proto::pb;
use hamster_proto::pb::registry_client::RegistryClient;

use crate::meta::{MetaError, MetaTier};
use crate::pipeline::placement::Candidate;
use crate::pipeline::profile::default_profile;

const REFRESH: Duration = Duration::from_secs(2);

pub struct ClusterView {
    meta: Arc<MetaTier>,
    down_after: Duration,
    servers: RwLock<Vec<pb::BlobServer>>,
    /// The cluster's erasure profile, if set (`hamster profile set`).
    profile: RwLock<Option<(usize, usize)>>,
    /// The master key new writes use, as the meta tier last said.
    write_key: RwLock<String>,
}

impl ClusterView {
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
                    tracing::debug!(error = %e, "cluster view refresh failed");
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

    /// k+m for a new object: the profile the cluster set, else the
    /// default for the servers registered (up or down).
    fn profile(&self) -> Option<(usize, usize)> {
        self.profile
            .read()
            .ok()
            .and_then(|p| *p)
            .or_else(|| default_profile(self.snapshot().len()))
    }

    /// k+m for a new object and its placement candidates; None while no
    /// blob-server is registered. The registry is asked again first if the
    /// view looks short: no blob-server seen yet (just started), or fewer
    /// active than k+m.
    pub async fn placement(&self) -> Option<((usize, usize), Vec<Candidate>)> {
        let short = |c: &[Candidate], p: Option<(usize, usize)>| {
            p.is_none_or(|(k, m)| c.iter().filter(|c| c.active).count() < k + m)
        };
        let mut c = self.candidates();
        if short(&c, self.profile()) {
            if let Err(e) = self.refresh().await {
                tracing::debug!(error = %e, "registry refresh before placement failed");
            }
            c = self.candidates();
        }
        Some((self.profile()?, c))
    }

    /// Servers that may take new shards.
    fn candidates(&self) -> Vec<Candidate> {
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

    /// Blob id → address, for reads and for freeing shards.
    pub fn addresses(&self) -> HashMap<String, String> {
        self.snapshot()
            .into_iter()
            .map(|s| (s.id, s.address))
            .collect()
    }
}
