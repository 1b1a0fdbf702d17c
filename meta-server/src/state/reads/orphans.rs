//! Reads of the orphan hold after a restore (ADR 0026): the hold itself
//! (the setting a restore writes), the held rows' counts and a page of
//! them, and one server's held rows for the sweep.

use std::collections::HashMap;

use sqlx::{Row, SqliteConnection};

use super::{setting_json, to_u64};
use crate::state::model::{HeldOrphan, ORPHAN_HOLD, OrphanHold};

/// Held rows by state, as status and the listing show them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrphanCounts {
    /// Rows not released.
    pub held: u64,
    pub held_bytes: u64,
    /// Released, waiting for the sweep to delete them.
    pub released: u64,
}

/// The hold a restore wrote (None: this metadata was never restored).
pub async fn orphan_hold(c: &mut SqliteConnection) -> Result<Option<OrphanHold>, sqlx::Error> {
    setting_json(c, ORPHAN_HOLD).await
}

/// The counts on `blob_id`, or everywhere (None).
pub async fn orphan_counts(
    c: &mut SqliteConnection,
    blob_id: Option<&str>,
) -> Result<OrphanCounts, sqlx::Error> {
    let row = sqlx::query(
        "SELECT COALESCE(SUM(released = 0), 0) AS held, \
                COALESCE(SUM(CASE WHEN released = 0 THEN bytes ELSE 0 END), 0) AS held_bytes, \
                COALESCE(SUM(released <> 0), 0) AS released \
         FROM held_orphans WHERE ?1 IS NULL OR blob_id = ?1",
    )
    .bind(blob_id)
    .fetch_one(&mut *c)
    .await?;
    Ok(OrphanCounts {
        held: to_u64(row.try_get("held")?),
        held_bytes: to_u64(row.try_get("held_bytes")?),
        released: to_u64(row.try_get("released")?),
    })
}

/// Up to `limit` held rows on `blob_id`, or everywhere (None): those
/// still held first, then by server and shard.
pub async fn held_orphans(
    c: &mut SqliteConnection,
    blob_id: Option<&str>,
    limit: u32,
) -> Result<Vec<HeldOrphan>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT blob_id, shard_id, bytes, modified_ms, found_ms, released FROM held_orphans \
         WHERE ?1 IS NULL OR blob_id = ?1 \
         ORDER BY released, blob_id, shard_id LIMIT ?2",
    )
    .bind(blob_id)
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(HeldOrphan {
                blob_id: r.try_get("blob_id")?,
                shard_id: r.try_get("shard_id")?,
                bytes: to_u64(r.try_get("bytes")?),
                modified_ms: r.try_get("modified_ms")?,
                found_ms: r.try_get("found_ms")?,
                released: r.try_get::<i64, _>("released")? != 0,
            })
        })
        .collect()
}

/// Every held shard on `blob_id`: whether it is released.
pub async fn held_on(
    c: &mut SqliteConnection,
    blob_id: &str,
) -> Result<HashMap<String, bool>, sqlx::Error> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT shard_id, released FROM held_orphans WHERE blob_id = ?")
            .bind(blob_id)
            .fetch_all(&mut *c)
            .await?;
    Ok(rows.into_iter().map(|(id, r)| (id, r != 0)).collect())
}
