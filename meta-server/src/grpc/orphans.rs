//! Shards held since a restore (ADR 0026): list and release. The list is
//! one linearizable read, so every meta-server answers alike; a release
//! goes through Raft, and the leader's next sweep deletes what it freed.

use hamster_proto::pb;
use sqlx::SqliteConnection;

use super::errors::{ServiceError, unexpected};
use crate::cluster::Meta;
use crate::state::ca_rotation;
use crate::state::commands::{Op, Response};
use crate::state::reads as q;

/// Held rows an answer lists by default, and at most (a row is ~100
/// bytes: the most stays well under a gRPC message's limit).
pub const DEFAULT_LIMIT: u32 = 1000;
pub const MAX_LIMIT: u32 = 10_000;

/// `limit` as asked: 0 is the default, anything above the most is cut.
pub fn limit(asked: u32) -> u32 {
    match asked {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    }
}

/// Inside status's read: its fields 33–36 (what is held, the restore it
/// came from, the cluster's id); the rest left default.
pub async fn status(c: &mut SqliteConnection) -> Result<pb::StatusResponse, sqlx::Error> {
    let counts = q::orphan_counts(c, None).await?;
    Ok(pb::StatusResponse {
        held_orphans: counts.held,
        held_orphan_bytes: counts.held_bytes,
        restored: q::orphan_hold(c).await?.map(Into::into),
        cluster_id: ca_rotation::cluster_id(c).await?,
        ..Default::default()
    })
}

/// The counts, the hold and the first rows, on one server or everywhere.
pub async fn list(
    meta: &Meta,
    req: pb::ListOrphansRequest,
) -> Result<pb::ListOrphansResponse, ServiceError> {
    let blob = (!req.blob_id.is_empty()).then_some(req.blob_id.as_str());
    let limit = limit(req.limit);
    let (counts, rows, hold) = meta
        .read(async |c| {
            Ok((
                q::orphan_counts(c, blob).await?,
                q::held_orphans(c, blob, limit).await?,
                q::orphan_hold(c).await?,
            ))
        })
        .await?;
    Ok(pb::ListOrphansResponse {
        held: counts.held,
        held_bytes: counts.held_bytes,
        released: counts.released,
        orphans: rows.into_iter().map(Into::into).collect(),
        hold: hold.map(Into::into),
    })
}

/// Releases every held shard, or those on one server (exactly one of
/// the two); answers how many were released.
pub async fn release(
    meta: &Meta,
    req: pb::ReleaseOrphansRequest,
) -> Result<pb::ReleaseOrphansResponse, ServiceError> {
    let blob_id = match (req.all, req.blob_id.is_empty()) {
        (true, true) => None,
        (false, false) => Some(req.blob_id),
        _ => {
            return Err(ServiceError::InvalidArgument(
                "release needs exactly one of: all, a blob-server id".into(),
            ));
        }
    };
    let scope = blob_id.clone().unwrap_or_else(|| "all".into());
    match meta.write(Op::ReleaseOrphans { blob_id }).await? {
        Response::Orphans { rows } => {
            tracing::info!(scope = %scope, released = rows, "held orphans released to the sweep");
            Ok(pb::ReleaseOrphansResponse { released: rows })
        }
        other => Err(unexpected(other)),
    }
}
