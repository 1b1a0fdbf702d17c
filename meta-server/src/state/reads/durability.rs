//! Reads of the durability view: which shards maps name, which units
//! (versions, completed parts, open uploads' parts) have fewer than k+m
//! known-good shards, and the counts status shows.
//!
//! A shard is good iff its blob-server is registered and not down and no
//! fault names it; an index a degraded commit left out of its map is not
//! good. Only units that can be short are looked at: those whose map
//! lacks an index (`missing > 0`, a partial index), those naming a faulted
//! shard, and those with a shard on a server that is down or unknown (the
//! distinct servers found by a skip-scan of the blob index). A healthy
//! cluster answers from indexes alone, whatever its size. (CROSS JOIN
//! fixes SQLite's join order: from the few candidates into shard_refs.)

use std::collections::HashSet;

use sqlx::{Row, SqliteConnection};

use super::{from_json, setting, to_u64};
use crate::state::model::{BlobState, Part, ShardMap, Unit};

/// The setting counting shards rebuilt and swapped in.
pub const SHARDS_REPAIRED: &str = "shards_repaired";

/// The cluster's durability, as `hamster status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DurabilitySummary {
    /// Units with fewer than k+m good shards.
    pub under_replicated: u64,
    /// Units with fewer than k good shards (of the above).
    pub unrecoverable: u64,
    /// under_replicated − unrecoverable: what repair can fix.
    pub repair_queue: u64,
    /// The oldest last full scrub pass among servers not down (0: none,
    /// or one never finished a pass).
    pub last_scrub_ms: i64,
    /// Shards rebuilt and swapped in since the cluster began.
    pub shards_repaired: u64,
}

/// A unit below k+m good shards, as the repair planner needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DegradedUnit {
    pub unit: Unit,
    /// The unit's whole current map.
    pub map: ShardMap,
    /// Indexes known good, ascending.
    pub good: Vec<u32>,
    pub data_shards: u32,
    pub total_shards: u32,
}

/// Whether the shard_refs row `r` is a good shard of its unit.
macro_rules! good_row {
    () => {
        "r.idx < r.width
         AND EXISTS (SELECT 1 FROM blob_servers s WHERE s.id = r.blob_id AND s.state <> 'down')
         AND NOT EXISTS (SELECT 1 FROM shard_faults f WHERE f.shard_id = r.shard_id)"
    };
}

/// The units worth a look (see the module doc), as a CTE named `units`
/// with each unit's k, width and count of good indexes.
macro_rules! units_cte {
    () => {
        concat!(
        "WITH RECURSIVE
          blobs(id) AS (
            SELECT (SELECT MIN(blob_id) FROM shard_refs)
            UNION ALL
            SELECT (SELECT MIN(blob_id) FROM shard_refs WHERE blob_id > blobs.id)
            FROM blobs WHERE blobs.id IS NOT NULL),
          lost(id) AS (
            SELECT id FROM blobs WHERE id IS NOT NULL AND NOT EXISTS
              (SELECT 1 FROM blob_servers s WHERE s.id = blobs.id AND s.state <> 'down')),
          cand(upload_id, version_id, bucket, key, part_number) AS (
            SELECT upload_id, version_id, bucket, key, part_number FROM shard_refs WHERE missing > 0
            UNION
            SELECT r.upload_id, r.version_id, r.bucket, r.key, r.part_number
            FROM shard_faults f CROSS JOIN shard_refs r ON r.shard_id = f.shard_id
            UNION
            SELECT r.upload_id, r.version_id, r.bucket, r.key, r.part_number
            FROM lost l CROSS JOIN shard_refs r ON r.blob_id = l.id),
          units AS (
            SELECT c.upload_id, c.version_id, c.bucket, c.key, c.part_number,
                   MAX(r.k) AS k, MAX(r.width) AS width,
                   COUNT(DISTINCT CASE WHEN "
        ,
        good_row!(),
        " THEN r.idx END) AS good
            FROM cand c CROSS JOIN shard_refs r
              ON r.upload_id = c.upload_id AND r.version_id = c.version_id
             AND r.bucket = c.bucket AND r.key = c.key AND r.part_number = c.part_number
            GROUP BY c.upload_id, c.version_id, c.bucket, c.key, c.part_number) "
        )
    };
}

/// The unit a row of shard_refs (or of a query keyed like it) names.
pub(super) fn unit_of_row(r: &sqlx::sqlite::SqliteRow) -> Result<Unit, sqlx::Error> {
    Ok(Unit {
        bucket: r.try_get("bucket")?,
        key: r.try_get("key")?,
        version_id: r.try_get("version_id")?,
        upload_id: r.try_get("upload_id")?,
        part_number: u32::try_from(r.try_get::<i64, _>("part_number")?).unwrap_or(0),
    })
}

/// The counts `status` shows.
pub async fn durability_summary(
    c: &mut SqliteConnection,
) -> Result<DurabilitySummary, sqlx::Error> {
    const SQL: &str = concat!(
        units_cte!(),
        "SELECT COALESCE(SUM(good < width), 0) AS under, COALESCE(SUM(good < k), 0) AS lost FROM units"
    );
    let row = sqlx::query(SQL).fetch_one(&mut *c).await?;
    let under = to_u64(row.try_get("under")?);
    let unrecoverable = to_u64(row.try_get("lost")?);
    let last_scrub_ms: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MIN(last_scrub_ms), 0) FROM blob_servers WHERE state <> 'down'",
    )
    .fetch_one(&mut *c)
    .await?;
    Ok(DurabilitySummary {
        under_replicated: under,
        unrecoverable,
        repair_queue: under.saturating_sub(unrecoverable),
        last_scrub_ms,
        shards_repaired: shards_repaired(c).await?,
    })
}

/// Up to `limit` units below k+m good shards: the repairable ones first,
/// fewest good first, then those below k (which repair cannot help, so
/// they never crowd out what it can).
pub async fn degraded_units(
    c: &mut SqliteConnection,
    limit: u32,
) -> Result<Vec<DegradedUnit>, sqlx::Error> {
    const SQL: &str = concat!(
        units_cte!(),
        "SELECT upload_id, version_id, bucket, key, part_number, k, width FROM units
         WHERE good < width
         ORDER BY good < k, good, bucket, key, version_id, upload_id, part_number
         LIMIT ?"
    );
    let rows = sqlx::query(SQL)
        .bind(i64::from(limit))
        .fetch_all(&mut *c)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let unit = unit_of_row(&r)?;
        let Some(map) = unit_map(c, &unit).await? else {
            continue;
        };
        let good = good_indexes(c, &unit).await?;
        out.push(DegradedUnit {
            data_shards: map.data_shards,
            total_shards: map.data_shards.saturating_add(map.parity_shards),
            unit,
            map,
            good,
        });
    }
    Ok(out)
}

/// The good indexes of a unit, ascending.
async fn good_indexes(c: &mut SqliteConnection, u: &Unit) -> Result<Vec<u32>, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT DISTINCT r.idx FROM shard_refs r WHERE r.upload_id = ? AND r.version_id = ? \
         AND r.bucket = ? AND r.key = ? AND r.part_number = ? AND ",
        good_row!(),
        " ORDER BY r.idx"
    );
    let idx: Vec<i64> = sqlx::query_scalar(SQL)
        .bind(&u.upload_id)
        .bind(&u.version_id)
        .bind(&u.bucket)
        .bind(&u.key)
        .bind(i64::from(u.part_number))
        .fetch_all(&mut *c)
        .await?;
    Ok(idx
        .into_iter()
        .filter_map(|i| u32::try_from(i).ok())
        .collect())
}

/// A unit's current map, if the unit exists and has one.
pub async fn unit_map(c: &mut SqliteConnection, u: &Unit) -> Result<Option<ShardMap>, sqlx::Error> {
    match (
        u.version_id.is_empty(),
        u.upload_id.is_empty(),
        u.part_number,
    ) {
        (false, true, 0) => {
            let map: Option<Option<String>> = sqlx::query_scalar(
                "SELECT shard_map FROM versions WHERE bucket = ? AND key = ? AND version_id = ?",
            )
            .bind(&u.bucket)
            .bind(&u.key)
            .bind(&u.version_id)
            .fetch_optional(&mut *c)
            .await?;
            map.flatten().as_deref().map(from_json).transpose()
        }
        (false, true, n) => Ok(version_parts(c, &u.bucket, &u.key, &u.version_id)
            .await?
            .and_then(|parts| parts.into_iter().find(|p| p.part_number == n))
            .and_then(|p| p.shard_map)),
        (true, false, n) if n > 0 => {
            let map: Option<Option<String>> = sqlx::query_scalar(
                "SELECT p.shard_map FROM parts p JOIN uploads u ON u.upload_id = p.upload_id \
                 WHERE p.upload_id = ? AND p.part_number = ? AND u.bucket = ? AND u.key = ?",
            )
            .bind(&u.upload_id)
            .bind(i64::from(n))
            .bind(&u.bucket)
            .bind(&u.key)
            .fetch_optional(&mut *c)
            .await?;
            map.flatten().as_deref().map(from_json).transpose()
        }
        _ => Ok(None),
    }
}

/// A version's parts (empty for a single-part object), if it exists.
pub async fn version_parts(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
    version_id: &str,
) -> Result<Option<Vec<Part>>, sqlx::Error> {
    let parts: Option<String> = sqlx::query_scalar(
        "SELECT parts FROM versions WHERE bucket = ? AND key = ? AND version_id = ?",
    )
    .bind(bucket)
    .bind(key)
    .bind(version_id)
    .fetch_optional(&mut *c)
    .await?;
    parts.as_deref().map(from_json).transpose()
}

/// Whether any version, completed part or open upload's part names
/// `shard_id`.
pub async fn shard_is_named(c: &mut SqliteConnection, shard_id: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM shard_refs WHERE shard_id = ?)")
        .bind(shard_id)
        .fetch_one(&mut *c)
        .await
}

/// Every shard id some version, completed part or uploaded part names:
/// what the sweep must never delete.
pub async fn referenced_shards(c: &mut SqliteConnection) -> Result<HashSet<String>, sqlx::Error> {
    let ids: Vec<String> = sqlx::query_scalar("SELECT DISTINCT shard_id FROM shard_refs")
        .fetch_all(&mut *c)
        .await?;
    Ok(ids.into_iter().collect())
}

/// The shard ids some unit names on `blob_id` that no fault names yet:
/// what the server should hold and nobody has reported lost (the missing
/// check's candidates, at StartRepair and in the sweep).
pub async fn shards_named_on(
    c: &mut SqliteConnection,
    blob_id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT r.shard_id FROM shard_refs r WHERE r.blob_id = ? \
         AND NOT EXISTS (SELECT 1 FROM shard_faults f WHERE f.shard_id = r.shard_id)",
    )
    .bind(blob_id)
    .fetch_all(&mut *c)
    .await
}

/// Shards rebuilt and swapped in since the cluster began.
pub async fn shards_repaired(c: &mut SqliteConnection) -> Result<u64, sqlx::Error> {
    Ok(setting(c, SHARDS_REPAIRED)
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// A blob-server's state, if it is registered.
pub async fn blob_state(
    c: &mut SqliteConnection,
    id: &str,
) -> Result<Option<BlobState>, sqlx::Error> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM blob_servers WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    state
        .map(|s| s.parse().map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .transpose()
}
