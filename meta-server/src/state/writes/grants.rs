//! Writes of who may reach a bucket (ADR 0027): grant rows, a bucket's
//! owner and its own retention limit. The rows a deleted bucket or key
//! leaves are dropped by `delete_bucket` / `delete_access_key`.

use sqlx::SqliteConnection;

use crate::state::model::BucketGrant;

/// Stores `g` as the key's whole grant on the bucket (the caller merged).
pub async fn put_grant(c: &mut SqliteConnection, g: &BucketGrant) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT OR REPLACE INTO bucket_grants (bucket, key_id, can_read, can_write, is_owner) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&g.bucket)
    .bind(&g.key_id)
    .bind(g.read)
    .bind(g.write)
    .bind(g.owner)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Drops a key's grant on a bucket: true if there was one.
pub async fn delete_grant(
    c: &mut SqliteConnection,
    bucket: &str,
    key_id: &str,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query("DELETE FROM bucket_grants WHERE bucket = ? AND key_id = ?")
        .bind(bucket)
        .bind(key_id)
        .execute(&mut *c)
        .await?;
    Ok(n.rows_affected() > 0)
}

/// Sets a bucket's owner ("": none).
pub async fn set_bucket_owner(
    c: &mut SqliteConnection,
    bucket: &str,
    owner: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE buckets SET owner = ? WHERE name = ?")
        .bind(owner)
        .bind(bucket)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Sets a bucket's own retention limit in days (None: the cluster's).
pub async fn set_bucket_max_retention(
    c: &mut SqliteConnection,
    bucket: &str,
    days: Option<u32>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE buckets SET max_retention_days = ? WHERE name = ?")
        .bind(days.map(i64::from))
        .bind(bucket)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Gives every ownerless bucket `owner`, dropping the grant rows `owner`
/// had on them (ownership includes every right).
pub async fn adopt_buckets(c: &mut SqliteConnection, owner: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM bucket_grants WHERE key_id = ?1 \
         AND bucket IN (SELECT name FROM buckets WHERE owner = '')",
    )
    .bind(owner)
    .execute(&mut *c)
    .await?;
    sqlx::query("UPDATE buckets SET owner = ? WHERE owner = ''")
        .bind(owner)
        .execute(&mut *c)
        .await?;
    Ok(())
}
