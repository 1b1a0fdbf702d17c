//! The sweep: shards on blob-servers that no metadata names — a PUT that
//! failed, a gateway that died between fan-out and commit, a free that
//! did not reach its server — are deleted once they are old enough.
//!
//! Runs on the leader only, one round every `every`:
//! 1. each blob-server lists its shards last written before now − grace;
//! 2. then a linearizable read collects every shard id the metadata names;
//! 3. listed shards not named are deleted.
//!
//! Step 2 follows step 1, and a commit naming a shard older than the
//! write window (grace / 2) is refused when proposed (`grpc::meta`), so a
//! shard can never become named after the sweep judged it orphaned.

use std::sync::Arc;
use std::time::Duration;

use hamster_proto::Role;
use hamster_proto::pb::{self, blob_client::BlobClient};
use hamster_proto::transport::Pool;
use openraft::ServerState;

use crate::cluster::{Meta, now_ms};
use crate::grpc::errors::ServiceError;
use crate::state::reads as q;

pub struct Sweep {
    pub meta: Arc<Meta>,
    pub every: Duration,
    pub grace: Duration,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub listed: usize,
    pub deleted: usize,
    pub servers_unreachable: usize,
}

impl Sweep {
    pub fn spawn(self) {
        tokio::spawn(async move {
            let pool = Pool::new(self.meta.tls.clone(), &[Role::Blob]);
            loop {
                tokio::time::sleep(self.every).await;
                if self.meta.raft.metrics().borrow().state != ServerState::Leader {
                    continue;
                }
                match self.round(&pool).await {
                    Ok(r) if r.deleted > 0 || r.servers_unreachable > 0 => {
                        tracing::info!(
                            listed = r.listed,
                            deleted = r.deleted,
                            unreachable = r.servers_unreachable,
                            "sweep round"
                        )
                    }
                    Ok(r) => tracing::debug!(listed = r.listed, "sweep round: nothing to delete"),
                    Err(e) => tracing::warn!(error = %e, "sweep round failed"),
                }
            }
        });
    }

    async fn round(&self, pool: &Pool) -> Result<Round, crate::cluster::CallError> {
        let before = now_ms() - i64::try_from(self.grace.as_millis()).unwrap_or(i64::MAX);
        let servers = self.meta.read(async |c| q::blob_servers(c).await).await?;
        let mut round = Round::default();
        let mut listed: Vec<(String, Vec<String>)> = Vec::new();
        for s in servers {
            match list(pool, &s.address, before).await {
                Ok(ids) => {
                    round.listed += ids.len();
                    listed.push((s.address, ids));
                }
                Err(e) => {
                    tracing::debug!(blob = %s.id, error = %e, "sweep: cannot list shards");
                    round.servers_unreachable += 1;
                }
            }
        }
        if round.listed == 0 {
            return Ok(round);
        }
        let named = self
            .meta
            .read(async |c| q::referenced_shards(c).await)
            .await?;
        for (addr, ids) in listed {
            let Ok(ch) = pool.channel(&addr) else {
                continue;
            };
            let mut client = BlobClient::new(ch);
            for id in ids.into_iter().filter(|id| !named.contains(id)) {
                match client
                    .delete_shard(pb::DeleteShardRequest {
                        shard_id: id.clone(),
                    })
                    .await
                {
                    Ok(_) => {
                        tracing::debug!(shard = %id, blob = %addr, "swept an orphan shard");
                        round.deleted += 1;
                    }
                    Err(e) => {
                        tracing::debug!(shard = %id, error = %e.message(), "sweep delete failed")
                    }
                }
            }
        }
        Ok(round)
    }
}

async fn list(pool: &Pool, addr: &str, before: i64) -> Result<Vec<String>, ServiceError> {
    let ch = pool
        .channel(addr)
        .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
    let mut stream = BlobClient::new(ch)
        .list_shards(pb::ListShardsRequest {
            modified_before_ms: before,
        })
        .await?
        .into_inner();
    let mut ids = Vec::new();
    while let Some(e) = stream.message().await? {
        ids.push(e.shard_id);
    }
    Ok(ids)
}
