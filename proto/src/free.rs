//! Freeing shards on blob-servers, the same way wherever the meta tier
//! frees: what the gateway's calls left unnamed (commits, deletes, aborts,
//! a failed write handed over with FreeShards), the leader's repair
//! (replaced or abandoned shards). Only a meta certificate may call
//! DeleteShard, and the blob-server deletes only what the meta tier
//! confirms nothing names (ADR 0029). Best effort: a shard that cannot be
//! deleted now stays until the sweep, which deletes any shard no metadata
//! names.

use std::time::Duration;

use tokio::task::JoinSet;

use crate::pb::{DeleteShardRequest, blob_client::BlobClient};
use crate::transport::Pool;

/// Deletes in flight at once: enough that a blob-server's check of many
/// ids travels as one ConfirmFree (it coalesces those that wait), few
/// enough not to crowd out client traffic.
const IN_FLIGHT: usize = 16;

/// Deletes each (blob-server address, shard id), up to [`IN_FLIGHT`] at a
/// time, each call given at most `per_call`. Answers how many were
/// deleted (or already gone); failures (a shard still named included) are
/// logged at debug, with the shard and the server.
pub async fn delete_shards(
    pool: &Pool,
    shards: Vec<(String, String)>,
    per_call: Duration,
) -> usize {
    let mut deleted = 0;
    let mut calls = JoinSet::new();
    let mut next = shards.into_iter();
    loop {
        while calls.len() < IN_FLIGHT {
            let Some((address, shard_id)) = next.next() else {
                break;
            };
            calls.spawn(delete_one(pool.clone(), address, shard_id, per_call));
        }
        match calls.join_next().await {
            Some(Ok(true)) => deleted += 1,
            Some(_) => {}
            None => return deleted,
        }
    }
}

async fn delete_one(pool: Pool, address: String, shard_id: String, per_call: Duration) -> bool {
    let Ok(ch) = pool.channel(&address) else {
        tracing::debug!(shard = %shard_id, blob = %address, "no channel to delete a shard; the sweep will");
        return false;
    };
    let req = DeleteShardRequest {
        shard_id: shard_id.clone(),
    };
    match tokio::time::timeout(per_call, BlobClient::new(ch).delete_shard(req)).await {
        Ok(Ok(_)) => true,
        Ok(Err(s)) => {
            tracing::debug!(shard = %shard_id, blob = %address, error = %s.message(), "could not delete a shard; the sweep will");
            false
        }
        Err(_) => {
            tracing::debug!(shard = %shard_id, blob = %address, "no answer deleting a shard; the sweep will");
            false
        }
    }
}
