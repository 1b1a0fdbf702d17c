//! Writes of the orphan hold (ADR 0026): `held_orphans` rows added,
//! released and dropped. Each answers how many rows it changed.

use sqlx::SqliteConnection;

use crate::state::model::HeldShard;
use crate::state::reads::to_i64;

/// Adds a held row found at `at`, unless the shard is held already.
pub async fn hold_orphan(
    c: &mut SqliteConnection,
    blob_id: &str,
    s: &HeldShard,
    at: i64,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query(
        "INSERT OR IGNORE INTO held_orphans (blob_id, shard_id, bytes, modified_ms, found_ms, released) \
         VALUES (?, ?, ?, ?, ?, 0)",
    )
    .bind(blob_id)
    .bind(&s.shard_id)
    .bind(to_i64(s.bytes))
    .bind(s.modified_ms)
    .bind(at)
    .execute(&mut *c)
    .await?;
    Ok(r.rows_affected())
}

/// Releases the held rows on `blob_id`, or all of them (None).
pub async fn release_orphans(
    c: &mut SqliteConnection,
    blob_id: Option<&str>,
) -> Result<u64, sqlx::Error> {
    let r = match blob_id {
        Some(b) => {
            sqlx::query("UPDATE held_orphans SET released = 1 WHERE released = 0 AND blob_id = ?")
                .bind(b)
        }
        None => sqlx::query("UPDATE held_orphans SET released = 1 WHERE released = 0"),
    }
    .execute(&mut *c)
    .await?;
    Ok(r.rows_affected())
}

/// Drops one held row.
pub async fn forget_orphan(
    c: &mut SqliteConnection,
    blob_id: &str,
    shard_id: &str,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query("DELETE FROM held_orphans WHERE blob_id = ? AND shard_id = ?")
        .bind(blob_id)
        .bind(shard_id)
        .execute(&mut *c)
        .await?;
    Ok(r.rows_affected())
}
