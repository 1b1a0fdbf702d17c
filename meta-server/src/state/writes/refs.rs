//! The shard reference table (`shard_refs`): one row per shard a unit's
//! map names, rewritten with the map in the same call, and the faults of
//! shards no row names any more dropped with it.

use sqlx::SqliteConnection;

use crate::state::model::{ShardMap, Unit};

/// Which units' rows a change replaces.
pub(super) enum Scope<'a> {
    /// One unit.
    Unit(&'a Unit),
    /// A version: its own map and every part.
    Version {
        bucket: &'a str,
        key: &'a str,
        version_id: &'a str,
    },
    /// Every part of an open upload.
    Upload(&'a str),
}

/// How many of the map's k+m indexes it lacks.
fn missing(m: &ShardMap) -> i64 {
    let width = m.data_shards.saturating_add(m.parity_shards);
    let present: std::collections::BTreeSet<u32> = m
        .shards
        .iter()
        .map(|s| s.index)
        .filter(|i| *i < width)
        .collect();
    i64::from(width) - present.len() as i64
}

/// Drops the rows of `scope`, answering the shard ids they named.
pub(super) async fn drop_refs(
    c: &mut SqliteConnection,
    scope: Scope<'_>,
) -> Result<Vec<String>, sqlx::Error> {
    // Every condition names upload_id and version_id first: the unit index.
    let (cond, binds): (&str, Vec<&str>) = match &scope {
        Scope::Unit(u) => (
            "upload_id = ? AND version_id = ? AND bucket = ? AND key = ? AND part_number = ?",
            vec![&u.upload_id, &u.version_id, &u.bucket, &u.key],
        ),
        Scope::Version {
            bucket,
            key,
            version_id,
        } => (
            "upload_id = '' AND version_id = ? AND bucket = ? AND key = ?",
            vec![version_id, bucket, key],
        ),
        Scope::Upload(upload_id) => ("upload_id = ? AND version_id = ''", vec![upload_id]),
    };
    let part = match &scope {
        Scope::Unit(u) => Some(i64::from(u.part_number)),
        _ => None,
    };
    // One statement: the rows go and their shard ids come back.
    let delete = format!("DELETE FROM shard_refs WHERE {cond} RETURNING shard_id");
    let mut d = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(delete));
    for b in &binds {
        d = d.bind(*b);
    }
    if let Some(n) = part {
        d = d.bind(n);
    }
    let mut ids = d.fetch_all(&mut *c).await?;
    // RETURNING's order is unspecified: the callers' order is the table's.
    ids.sort_unstable();
    Ok(ids)
}

/// Adds a row per shard of `map`, for `unit`.
pub(super) async fn add_refs(
    c: &mut SqliteConnection,
    unit: &Unit,
    map: &ShardMap,
) -> Result<(), sqlx::Error> {
    let width = i64::from(map.data_shards) + i64::from(map.parity_shards);
    let missing = missing(map);
    // One multi-row statement per map (a few hundred bound parameters at
    // most: a map has at most 255 shards, 11 columns each, in rows of 64).
    for rows in map.shards.chunks(64) {
        let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; rows.len()].join(", ");
        let sql = format!(
            "INSERT INTO shard_refs (shard_id, blob_id, idx, bucket, key, version_id, upload_id, \
             part_number, k, width, missing) VALUES {values}"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for s in rows {
            q = q
                .bind(&s.shard_id)
                .bind(&s.blob_id)
                .bind(i64::from(s.index))
                .bind(&unit.bucket)
                .bind(&unit.key)
                .bind(&unit.version_id)
                .bind(&unit.upload_id)
                .bind(i64::from(unit.part_number))
                .bind(i64::from(map.data_shards))
                .bind(width)
                .bind(missing);
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

/// Forgets the faults of those of `ids` that no row names any more: a
/// fault counts only against a shard some map still needs.
pub(super) async fn forget_unnamed_faults(
    c: &mut SqliteConnection,
    ids: &[String],
) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM shard_faults)")
        .fetch_one(&mut *c)
        .await?;
    if !any {
        return Ok(());
    }
    for id in ids {
        sqlx::query(
            "DELETE FROM shard_faults WHERE shard_id = ?1 \
             AND NOT EXISTS (SELECT 1 FROM shard_refs WHERE shard_id = ?1)",
        )
        .bind(id)
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

/// Replaces the rows of `scope` with those of `maps` (each for its unit).
pub(super) async fn replace(
    c: &mut SqliteConnection,
    scope: Scope<'_>,
    maps: &[(Unit, &ShardMap)],
) -> Result<(), sqlx::Error> {
    let old = drop_refs(c, scope).await?;
    for (unit, map) in maps {
        add_refs(c, unit, map).await?;
    }
    forget_unnamed_faults(c, &old).await
}
