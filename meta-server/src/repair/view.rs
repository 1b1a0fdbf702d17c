//! `Admin.Durability`: the durability counts, the worst units and the
//! shards held since a restore (ADR 0026), one linearizable read, so
//! every meta-server answers the same.

use hamster_proto::pb;

use crate::cluster::{CallError, Meta};
use crate::state::reads as q;

/// Units an answer lists by default, and at most.
pub const DEFAULT_UNITS: u32 = 100;
pub const MAX_UNITS: u32 = 1000;

/// The view with up to `limit` units (0: the default), worst first.
pub async fn durability(meta: &Meta, limit: u32) -> Result<pb::DurabilityResponse, CallError> {
    let limit = match limit {
        0 => DEFAULT_UNITS,
        n => n.min(MAX_UNITS),
    };
    let (summary, units, held, orphans) = meta
        .read(async |c| {
            Ok((
                q::durability_summary(c).await?,
                q::degraded_units(c, limit).await?,
                q::orphan_counts(c, None).await?,
                q::held_orphans(c, None, limit).await?,
            ))
        })
        .await?;
    Ok(pb::DurabilityResponse {
        under_replicated: summary.under_replicated,
        unrecoverable: summary.unrecoverable,
        repair_queue: summary.repair_queue,
        last_scrub_ms: summary.last_scrub_ms,
        shards_repaired: summary.shards_repaired,
        held_orphans: held.held,
        orphans: orphans.into_iter().map(Into::into).collect(),
        units: units
            .into_iter()
            .map(|u| pb::DegradedUnit {
                good: u32::try_from(u.good.len()).unwrap_or(u32::MAX),
                bucket: u.unit.bucket,
                key: u.unit.key,
                version_id: u.unit.version_id,
                upload_id: u.unit.upload_id,
                part_number: u.unit.part_number,
                data_shards: u.data_shards,
                total_shards: u.total_shards,
            })
            .collect(),
    })
}
