//! Writes of the blob-server lifecycle (ADR 0025): a server's lifecycle
//! and drain target, its removal, and the count of shards moved.

use sqlx::SqliteConnection;

use super::put_setting;
use crate::state::model::{BlobState, Lifecycle, Role};
use crate::state::reads;

/// Sets a server's lifecycle and drain target ("": anywhere).
pub async fn set_lifecycle(
    c: &mut SqliteConnection,
    id: &str,
    lifecycle: Lifecycle,
    drain_to: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE blob_servers SET lifecycle = ?, drain_to = ? WHERE id = ?")
        .bind(lifecycle.as_str())
        .bind(drain_to)
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Records that the server left "drained" at `at` (see `fence_ms`).
pub async fn set_fence(c: &mut SqliteConnection, id: &str, at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE blob_servers SET fence_ms = ? WHERE id = ?")
        .bind(at)
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Retires a server for good at `at`: removed and down (so every query
/// that counts a down server's shards as lost counts its shards so), no
/// drain target, no longer any drain's target, and forgotten by the key
/// and CA rotations' gates (it will never report again).
pub async fn remove_blob(c: &mut SqliteConnection, id: &str, at: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE blob_servers SET lifecycle = ?, state = ?, drain_to = '', removed_ms = ? WHERE id = ?",
    )
    .bind(Lifecycle::Removed.as_str())
    .bind(BlobState::Down.as_str())
    .bind(at)
    .bind(id)
    .execute(&mut *c)
    .await?;
    sqlx::query("UPDATE blob_servers SET drain_to = '' WHERE drain_to = ?")
        .bind(id)
        .execute(&mut *c)
        .await?;
    sqlx::query("DELETE FROM tls_members WHERE role = ? AND id = ?")
        .bind(Role::Blob.as_str())
        .bind(id)
        .execute(&mut *c)
        .await?;
    sqlx::query("DELETE FROM key_holders WHERE role = ? AND id = ?")
        .bind(Role::Blob.as_str())
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Adds `n` to the count of shards moved (setting "shards_moved").
pub async fn add_shards_moved(c: &mut SqliteConnection, n: u64) -> Result<(), sqlx::Error> {
    let total = reads::shards_moved(c).await?.saturating_add(n);
    put_setting(c, reads::SHARDS_MOVED, Some(&total.to_string())).await
}
