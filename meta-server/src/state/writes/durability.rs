//! Writes of the durability commands: a blob-server judged down, a scrub's
//! faults and pass time, a repaired unit's map, the repair counter.

use sqlx::SqliteConnection;

use super::refs::{self, Scope};
use super::{json, put_setting};
use crate::state::model::{BlobState, Part, ShardMap, Unit};
use crate::state::reads;

/// Marks a blob-server down unless it is already, or heartbeat after
/// `silent_since_ms` (a heartbeat after the judgement wins): true if it
/// changed.
pub async fn mark_blob_down(
    c: &mut SqliteConnection,
    id: &str,
    silent_since_ms: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE blob_servers SET state = ?1 WHERE id = ?2 AND state <> ?1 AND last_heartbeat_ms <= ?3",
    )
    .bind(BlobState::Down.as_str())
    .bind(id)
    .bind(silent_since_ms)
    .execute(&mut *c)
    .await?;
    Ok(n.rows_affected() > 0)
}

/// Records `shard_id` on `blob_id` as bad, if a map names it there (the
/// first report's time and reason are kept): true if it is recorded.
pub async fn record_fault(
    c: &mut SqliteConnection,
    blob_id: &str,
    shard_id: &str,
    reason: &str,
    at_ms: i64,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "INSERT OR IGNORE INTO shard_faults (shard_id, blob_id, reason, at_ms) \
         SELECT ?1, ?2, ?3, ?4 \
         WHERE EXISTS (SELECT 1 FROM shard_refs WHERE shard_id = ?1 AND blob_id = ?2)",
    )
    .bind(shard_id)
    .bind(blob_id)
    .bind(reason)
    .bind(at_ms)
    .execute(&mut *c)
    .await?;
    Ok(n.rows_affected() > 0)
}

/// Records a finished scrub pass; never moves the time back (a late
/// report of an older pass).
pub async fn set_last_scrub(
    c: &mut SqliteConnection,
    blob_id: &str,
    finished_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE blob_servers SET last_scrub_ms = MAX(last_scrub_ms, ?) WHERE id = ?")
        .bind(finished_ms)
        .bind(blob_id)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Adds `n` to the count of shards repaired (setting "shards_repaired").
pub async fn add_shards_repaired(c: &mut SqliteConnection, n: u64) -> Result<(), sqlx::Error> {
    let total = reads::shards_repaired(c).await?.saturating_add(n);
    put_setting(c, reads::SHARDS_REPAIRED, Some(&total.to_string())).await
}

/// Where a unit's map is stored, with what the write needs.
pub enum MapSite<'a> {
    /// `versions.shard_map`.
    Version,
    /// An entry of `versions.parts`: the version's whole list, the
    /// unit's part already holding its new map.
    VersionPart(&'a [Part]),
    /// `parts.shard_map` of an open upload.
    UploadPart,
}

/// Stores a unit's new map (nothing else of its row changes) and
/// rewrites the unit's `shard_refs` rows: true if the row exists.
pub async fn set_unit_map(
    c: &mut SqliteConnection,
    unit: &Unit,
    site: MapSite<'_>,
    map: &ShardMap,
) -> Result<bool, sqlx::Error> {
    let q = match site {
        MapSite::Version => sqlx::query(
            "UPDATE versions SET shard_map = ? WHERE bucket = ? AND key = ? AND version_id = ?",
        )
        .bind(json(map)?)
        .bind(&unit.bucket)
        .bind(&unit.key)
        .bind(&unit.version_id),
        // The parts' writer rewrites the refs of the parts that changed.
        MapSite::VersionPart(parts) => {
            return super::set_version_parts(c, &unit.bucket, &unit.key, &unit.version_id, parts)
                .await;
        }
        MapSite::UploadPart => {
            sqlx::query("UPDATE parts SET shard_map = ? WHERE upload_id = ? AND part_number = ?")
                .bind(json(map)?)
                .bind(&unit.upload_id)
                .bind(i64::from(unit.part_number))
        }
    };
    if q.execute(&mut *c).await?.rows_affected() == 0 {
        return Ok(false);
    }
    refs::replace(c, Scope::Unit(unit), &[(unit.clone(), map)]).await?;
    Ok(true)
}
