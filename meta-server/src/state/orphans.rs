//! The orphan hold after a restore (ADR 0026), as commands apply it.
//!
//! After a restore the metadata lacks whatever was written after the
//! backup, so a shard no map names may hold acknowledged data: the sweep
//! records it here ([`hold`]) instead of deleting it, an operator
//! releases it ([`release`]), and the sweep deletes released ones and
//! drops their rows ([`forget`]). Every step is idempotent, so a sweep
//! round retried, or run by a new leader, changes nothing twice.

use sqlx::SqliteConnection;

use super::commands::Response;
use super::model::HeldShard;
use super::outcome::{Outcome, invalid};
use super::{reads, writes};

/// Holds `shards` of `blob_id`, found at `at`. One held already keeps its
/// row (its first finding and its release); one a map names now (a
/// commit applied since the sweep read the names) is not an orphan.
pub async fn hold(
    c: &mut SqliteConnection,
    at: i64,
    blob_id: &str,
    shards: &[HeldShard],
) -> Outcome {
    if blob_id.is_empty() {
        return invalid("a held orphan needs its blob-server");
    }
    let mut rows = 0;
    for s in shards {
        if s.shard_id.is_empty() || reads::shard_is_named(c, &s.shard_id).await? {
            continue;
        }
        rows += writes::hold_orphan(c, blob_id, s, at).await?;
    }
    Ok(Response::Orphans { rows })
}

/// Releases the held shards on `blob_id`, or everywhere (None); answers
/// how many were held and are now released.
pub async fn release(c: &mut SqliteConnection, blob_id: Option<&str>) -> Outcome {
    if blob_id.is_some_and(str::is_empty) {
        return invalid("release needs a blob-server id, or all");
    }
    let rows = writes::release_orphans(c, blob_id).await?;
    Ok(Response::Orphans { rows })
}

/// Drops the rows of `shard_ids` on `blob_id`; answers how many there were.
pub async fn forget(c: &mut SqliteConnection, blob_id: &str, shard_ids: &[String]) -> Outcome {
    let mut rows = 0;
    for id in shard_ids {
        rows += writes::forget_orphan(c, blob_id, id).await?;
    }
    Ok(Response::Orphans { rows })
}
