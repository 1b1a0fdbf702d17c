//! Reads of who may reach a bucket (ADR 0027): one grant row, a bucket's
//! grants, every bucket a key reaches (owned or granted), and what
//! AdoptBuckets needs (the ownerless buckets, the keys).

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use crate::state::model::BucketGrant;

fn grant_row(r: &SqliteRow) -> BucketGrant {
    BucketGrant {
        bucket: r.get("bucket"),
        key_id: r.get("key_id"),
        read: r.get("can_read"),
        write: r.get("can_write"),
        owner: r.get("is_owner"),
    }
}

/// The grant row of `key_id` on `bucket`, if any (the bucket's owner
/// needs none: see `state::access`).
pub async fn grant(
    c: &mut SqliteConnection,
    bucket: &str,
    key_id: &str,
) -> Result<Option<BucketGrant>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT bucket, key_id, can_read, can_write, is_owner FROM bucket_grants \
         WHERE bucket = ? AND key_id = ?",
    )
    .bind(bucket)
    .bind(key_id)
    .fetch_optional(&mut *c)
    .await?;
    Ok(row.as_ref().map(grant_row))
}

/// Every grant on `bucket` in key order, except one to the bucket's own
/// owner (that key is `Bucket.owner`; an ACL lists it once).
pub async fn bucket_grants(
    c: &mut SqliteConnection,
    bucket: &str,
) -> Result<Vec<BucketGrant>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT g.bucket, g.key_id, g.can_read, g.can_write, g.is_owner \
         FROM bucket_grants g JOIN buckets b ON b.name = g.bucket \
         WHERE g.bucket = ? AND g.key_id <> b.owner ORDER BY g.key_id",
    )
    .bind(bucket)
    .fetch_all(&mut *c)
    .await?;
    Ok(rows.iter().map(grant_row).collect())
}

/// Every bucket `key_id` reaches, one grant each, in bucket order: one it
/// owns as read, write and owner; else its grant row.
pub async fn key_grants(
    c: &mut SqliteConnection,
    key_id: &str,
) -> Result<Vec<BucketGrant>, sqlx::Error> {
    // '' is every ownerless bucket's owner, never a key.
    if key_id.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT name AS bucket, ?1 AS key_id, 1 AS can_read, 1 AS can_write, 1 AS is_owner \
         FROM buckets WHERE owner = ?1 \
         UNION ALL \
         SELECT g.bucket, g.key_id, g.can_read, g.can_write, g.is_owner \
         FROM bucket_grants g JOIN buckets b ON b.name = g.bucket \
         WHERE g.key_id = ?1 AND b.owner <> ?1 \
         ORDER BY bucket",
    )
    .bind(key_id)
    .fetch_all(&mut *c)
    .await?;
    Ok(rows.iter().map(grant_row).collect())
}

/// The names of the buckets without an owner, in name order.
pub async fn ownerless_buckets(c: &mut SqliteConnection) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT name FROM buckets WHERE owner = '' ORDER BY name")
        .fetch_all(&mut *c)
        .await
}

/// At most `limit` access key ids, in id order (enough to tell "only
/// one" from "several" without reading every key).
pub async fn access_key_ids(
    c: &mut SqliteConnection,
    limit: u32,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM access_keys ORDER BY id LIMIT ?")
        .bind(i64::from(limit))
        .fetch_all(&mut *c)
        .await
}
