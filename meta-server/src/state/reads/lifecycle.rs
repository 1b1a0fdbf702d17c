//! Reads of the blob-server lifecycle (ADR 0025): how many shards maps
//! name on each server, the units a drain must move off one, the widest
//! map naming it, the identities of removed servers, and the count of
//! shards moved.
//!
//! Every lookup by server goes through `shard_refs_by_blob_unit`
//! (blob_id, unit columns, width): counts, the page of units and the
//! widest width are read from the index alone.

use std::collections::HashMap;

use hamster_proto::{PeerIdentity, Role};
use sqlx::{Row, SqliteConnection};

use super::durability::unit_map;
use super::{setting, to_u64};
use crate::state::model::{Lifecycle, ShardMap, Unit};

/// The setting counting shards moved by drains and rebalances.
pub const SHARDS_MOVED: &str = "shards_moved";

/// A shard some unit's map names on a server, with the unit's whole map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitOnBlob {
    pub unit: Unit,
    /// The unit's whole current map.
    pub map: ShardMap,
    /// The shard's index in the map and its id.
    pub index: u32,
    pub shard_id: String,
}

/// Shards the maps name on each server (servers named by none are
/// absent). A map entry counts once per unit naming it.
pub async fn shards_named_by_blob(
    c: &mut SqliteConnection,
) -> Result<HashMap<String, u64>, sqlx::Error> {
    let rows = sqlx::query("SELECT blob_id, COUNT(*) AS n FROM shard_refs GROUP BY blob_id")
        .fetch_all(&mut *c)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("blob_id")?, to_u64(r.try_get("n")?))))
        .collect()
}

/// Shards the maps name on one server.
pub async fn shards_named_on_count(
    c: &mut SqliteConnection,
    blob_id: &str,
) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM shard_refs WHERE blob_id = ?")
        .bind(blob_id)
        .fetch_one(&mut *c)
        .await?;
    Ok(to_u64(n))
}

/// Up to `limit` units whose map names a shard on `blob_id`, in unit
/// order (bucket, key, version id, upload id, part number), after the
/// unit `after`: one entry per shard the unit has there, so a page never
/// splits a unit and the caller pages on with the last entry's unit.
pub async fn units_on_blob(
    c: &mut SqliteConnection,
    blob_id: &str,
    after: Option<&Unit>,
    limit: u32,
) -> Result<Vec<UnitOnBlob>, sqlx::Error> {
    // Before every unit: the empty bucket name sorts first and no unit
    // has it.
    let first = Unit::default();
    let after = after.unwrap_or(&first);
    let rows = sqlx::query(
        "SELECT DISTINCT bucket, key, version_id, upload_id, part_number FROM shard_refs
         WHERE blob_id = ?1
           AND (bucket, key, version_id, upload_id, part_number) > (?2, ?3, ?4, ?5, ?6)
         ORDER BY bucket, key, version_id, upload_id, part_number
         LIMIT ?7",
    )
    .bind(blob_id)
    .bind(&after.bucket)
    .bind(&after.key)
    .bind(&after.version_id)
    .bind(&after.upload_id)
    .bind(i64::from(after.part_number))
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let unit = super::durability::unit_of_row(&r)?;
        // shard_refs mirrors the maps in the same transaction: a unit
        // without a map here is one this read cannot act on; skip it.
        let Some(map) = unit_map(c, &unit).await? else {
            continue;
        };
        for l in map.shards.iter().filter(|l| l.blob_id == blob_id) {
            out.push(UnitOnBlob {
                unit: unit.clone(),
                map: map.clone(),
                index: l.index,
                shard_id: l.shard_id.clone(),
            });
        }
    }
    Ok(out)
}

/// The widest k+m among the maps naming `blob_id` (0: none does): how
/// many distinct servers its units need.
pub async fn widest_width_on(c: &mut SqliteConnection, blob_id: &str) -> Result<u32, sqlx::Error> {
    let w: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(width), 0) FROM shard_refs WHERE blob_id = ?")
            .bind(blob_id)
            .fetch_one(&mut *c)
            .await?;
    Ok(u32::try_from(w).unwrap_or(u32::MAX))
}

/// The identities (`hamster://blob/ID`) of every removed server, in id
/// order: what every tier refuses.
pub async fn revoked_identities(c: &mut SqliteConnection) -> Result<Vec<String>, sqlx::Error> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM blob_servers WHERE lifecycle = ? ORDER BY id")
            .bind(Lifecycle::Removed.as_str())
            .fetch_all(&mut *c)
            .await?;
    // An id no certificate can carry needs no refusing.
    Ok(ids
        .iter()
        .filter_map(|id| PeerIdentity::new(Role::Blob, id).ok())
        .map(|p| p.uri())
        .collect())
}

/// Shards moved by drains and rebalances since the cluster began.
pub async fn shards_moved(c: &mut SqliteConnection) -> Result<u64, sqlx::Error> {
    Ok(setting(c, SHARDS_MOVED)
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// The lifecycle of each of `ids` that is registered and the time it last
/// left "drained" (0: never), in one query (a commit names up to k+m
/// servers: one statement, not one per server).
pub async fn blob_fences(
    c: &mut SqliteConnection,
    ids: &[&str],
) -> Result<std::collections::BTreeMap<String, (Lifecycle, i64)>, sqlx::Error> {
    let mut out = std::collections::BTreeMap::new();
    // Well under SQLite's bound-parameter limit: a map has at most 255 shards.
    for chunk in ids.chunks(256) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let sql = format!("SELECT id, lifecycle, fence_ms FROM blob_servers WHERE id IN ({marks})");
        let mut q = sqlx::query_as::<_, (String, String, i64)>(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        for (id, l, fence) in q.fetch_all(&mut *c).await? {
            let l = l.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            out.insert(id, (l, fence));
        }
    }
    Ok(out)
}

pub async fn blob_lifecycle(
    c: &mut SqliteConnection,
    id: &str,
) -> Result<Option<Lifecycle>, sqlx::Error> {
    let v: Option<String> = sqlx::query_scalar("SELECT lifecycle FROM blob_servers WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    v.map(|s| s.parse().map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .transpose()
}
