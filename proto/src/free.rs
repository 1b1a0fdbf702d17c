//! Freeing shards on blob-servers, the same way from every tier: the
//! gateway (a refused commit, what a commit answers as freed), the meta
//! leader's repair (replaced or abandoned shards) and its sweep (orphans).
//! Best effort: a shard that cannot be deleted now stays until the sweep,
//! which deletes any shard no metadata names.

use std::time::Duration;

use crate::pb::{DeleteShardRequest, blob_client::BlobClient};
use crate::transport::Pool;

/// Deletes each (blob-server address, shard id), one at a time, each call
/// given at most `per_call`. Answers how many were deleted (or already
/// gone); failures are logged at debug, with the shard and the server.
pub async fn delete_shards(
    pool: &Pool,
    shards: Vec<(String, String)>,
    per_call: Duration,
) -> usize {
    let mut deleted = 0;
    for (address, shard_id) in shards {
        let Ok(ch) = pool.channel(&address) else {
            tracing::debug!(shard = %shard_id, blob = %address, "no channel to delete a shard; the sweep will");
            continue;
        };
        let req = DeleteShardRequest {
            shard_id: shard_id.clone(),
        };
        match tokio::time::timeout(per_call, BlobClient::new(ch).delete_shard(req)).await {
            Ok(Ok(_)) => deleted += 1,
            Ok(Err(s)) => {
                tracing::debug!(shard = %shard_id, blob = %address, error = %s.message(), "could not delete a shard; the sweep will")
            }
            Err(_) => {
                tracing::debug!(shard = %shard_id, blob = %address, "no answer deleting a shard; the sweep will")
            }
        }
    }
    deleted
}
