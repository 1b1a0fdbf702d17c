//! Every read of the applied state: gets, counts, scans, the S3
//! listings (the `listing` submodule), pages and counts of buckets
//! (`buckets`), grants (`grants`), the durability view (the
//! `durability` submodule), the blob-server lifecycle's reads (the
//! `lifecycle` submodule), the orphan hold's (the `orphans`
//! submodule) and answers sized for the wire: versions without their
//! parts, parts a page at a time (`parts`, ADR 0031), all re-exported
//! here.
//!
//! Also the column codecs [`super::writes`] shares: integers and JSON.

use std::str::FromStr;

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::commands::Response;
use super::model::{
    AccessKey, BlobServer, Bucket, JoinToken, KeyHolder, Lifecycle, Part, TlsMember, UnknownName,
    Upload, Version,
};

mod buckets;
mod durability;
mod grants;
mod lifecycle;
mod listing;
mod orphans;
mod parts;
mod rewrap;
pub use buckets::{
    BucketStats, MAX_BUCKETS_PAGE, bucket_stats, buckets_on_cluster_limit, buckets_page,
};
pub use durability::{
    DegradedUnit, DurabilitySummary, SHARDS_REPAIRED, blob_state, degraded_units,
    durability_summary, referenced_shards, shard_is_named, shards_named_on, shards_repaired,
    unit_map, version_parts,
};
pub use grants::{access_key_ids, bucket_grants, grant, key_grants, ownerless_buckets};
pub use lifecycle::{
    SHARDS_MOVED, UnitOnBlob, blob_fences, blob_lifecycle, revoked_identities, shards_moved,
    shards_named_by_blob, shards_named_on_count, units_on_blob, widest_width_on,
};
pub use listing::{
    Cursor, Entry, LIST_STATEMENTS, Page, Walk, after_version, decode_token, encode_token, list,
    prefix_successor,
};
pub use orphans::{OrphanCounts, held_on, held_orphans, orphan_counts, orphan_hold};
pub use parts::{
    Head, PartsPage, PartsRefusal, upload_part, upload_parts_page, version_head, version_parts_page,
};
pub use rewrap::{RewrapCursor, VERSION_PARTS, wrapped_by, wrapped_by_after};

/// Largest page a listing returns, as in S3.
pub const MAX_PAGE: u32 = 1000;

pub fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn json_err(e: serde_json::Error) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, sqlx::Error> {
    serde_json::from_str(s).map_err(json_err)
}

/// A named state's column (a role, a lock mode…): text this binary does
/// not know is a decode error, never a default.
fn named<T: FromStr<Err = UnknownName>>(r: &SqliteRow, col: &str) -> Result<T, sqlx::Error> {
    let text: String = r.try_get(col)?;
    text.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

// ---------- buckets ----------

fn bucket_row(r: &SqliteRow) -> Result<Bucket, sqlx::Error> {
    // lock_config: the default retention as JSON, '' for none.
    let lock_config: String = r.get("lock_config");
    Ok(Bucket {
        name: r.get("name"),
        created_at_ms: r.get("created_at_ms"),
        versioning: named(r, "versioning")?,
        object_lock_enabled: r.get("object_lock_enabled"),
        default_retention: (!lock_config.is_empty())
            .then(|| from_json(&lock_config))
            .transpose()?,
        owner: r.get("owner"),
        max_retention_days: r
            .get::<Option<i64>, _>("max_retention_days")
            .map(|d| u32::try_from(d).unwrap_or(u32::MAX)),
        public_access_block: {
            let pab: String = r.get("public_access_block");
            (!pab.is_empty()).then(|| from_json(&pab)).transpose()?
        },
    })
}

pub async fn bucket(c: &mut SqliteConnection, name: &str) -> Result<Option<Bucket>, sqlx::Error> {
    let row = sqlx::query("SELECT * FROM buckets WHERE name = ?")
        .bind(name)
        .fetch_optional(&mut *c)
        .await?;
    row.as_ref().map(bucket_row).transpose()
}

pub async fn buckets(c: &mut SqliteConnection) -> Result<Vec<Bucket>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM buckets ORDER BY name")
        .fetch_all(&mut *c)
        .await?;
    rows.iter().map(bucket_row).collect()
}

/// Whether a bucket holds no version, delete marker or open upload.
pub async fn bucket_is_empty(c: &mut SqliteConnection, name: &str) -> Result<bool, sqlx::Error> {
    let uploads: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM uploads WHERE bucket = ? LIMIT 1)")
            .bind(name)
            .fetch_one(&mut *c)
            .await?;
    Ok(uploads == 0 && !bucket_has_versions(c, name).await?)
}

/// Whether any version or delete marker is in the bucket (one row read).
pub async fn bucket_has_versions(
    c: &mut SqliteConnection,
    name: &str,
) -> Result<bool, sqlx::Error> {
    let versions: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM versions WHERE bucket = ? LIMIT 1)",
    )
    .bind(name)
    .fetch_one(&mut *c)
    .await?;
    Ok(versions > 0)
}

// ---------- versions ----------

/// The version columns, as a literal so queries stay `'static` SQL.
macro_rules! version_cols {
    () => {
        "bucket, key, version_id, seq, size, etag, content_type, user_metadata, stored_headers, \
         created_at_ms, delete_marker, shard_map, parts, wrapped_dek, kek_fingerprint, lock_mode, retain_until_ms, legal_hold, \
         checksum_algorithm, checksum_value, checksum_type, upload_id"
    };
}
// For the INSERT in writes.
pub(crate) use version_cols;

fn version_row(r: &SqliteRow) -> Result<(Version, i64), sqlx::Error> {
    let shard_map: Option<String> = r.get("shard_map");
    Ok((
        Version {
            bucket: r.get("bucket"),
            key: r.get("key"),
            version_id: r.get("version_id"),
            size: to_u64(r.get("size")),
            etag: r.get("etag"),
            content_type: r.get("content_type"),
            user_metadata: from_json(r.get("user_metadata"))?,
            stored_headers: from_json(r.get("stored_headers"))?,
            created_at_ms: r.get("created_at_ms"),
            delete_marker: r.get("delete_marker"),
            shard_map: shard_map.as_deref().map(from_json).transpose()?,
            parts: from_json(r.get("parts"))?,
            wrapped_dek: r.get("wrapped_dek"),
            kek_fingerprint: r.get("kek_fingerprint"),
            lock_mode: named(r, "lock_mode")?,
            retain_until_ms: r.get("retain_until_ms"),
            legal_hold: r.get("legal_hold"),
            checksum_algorithm: r.get("checksum_algorithm"),
            checksum_value: r.get("checksum_value"),
            checksum_type: r.get("checksum_type"),
            upload_id: r.get("upload_id"),
        },
        r.get("seq"),
    ))
}

/// A version by id, with its seq.
pub async fn version(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
    id: &str,
) -> Result<Option<(Version, i64)>, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT ",
        version_cols!(),
        " FROM versions WHERE bucket = ? AND key = ? AND version_id = ?"
    );
    let row = sqlx::query(SQL)
        .bind(bucket)
        .bind(key)
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    row.as_ref().map(version_row).transpose()
}

/// The current version of a key (possibly a delete marker).
pub async fn latest(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
) -> Result<Option<Version>, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT ",
        version_cols!(),
        " FROM versions WHERE bucket = ? AND key = ? ORDER BY seq DESC LIMIT 1"
    );
    let row = sqlx::query(SQL)
        .bind(bucket)
        .bind(key)
        .fetch_optional(&mut *c)
        .await?;
    Ok(row.as_ref().map(version_row).transpose()?.map(|(v, _)| v))
}

/// The version of a key that multipart upload `upload_id` completed into,
/// if it is still there (a repeated completion is answered with it). Only
/// CompleteMultipart's apply sets `upload_id`, so one row at most; should
/// two ever match, the newest answers, never whichever SQLite finds first.
pub async fn version_of_upload(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<Option<Version>, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT ",
        version_cols!(),
        " FROM versions WHERE bucket = ? AND key = ? AND upload_id = ? ORDER BY seq DESC LIMIT 1"
    );
    let row = sqlx::query(SQL)
        .bind(bucket)
        .bind(key)
        .bind(upload_id)
        .fetch_optional(&mut *c)
        .await?;
    Ok(row.as_ref().map(version_row).transpose()?.map(|(v, _)| v))
}

/// The seq of a version, for resuming a versions listing after it.
pub async fn version_seq(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
    id: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT seq FROM versions WHERE bucket = ? AND key = ? AND version_id = ?")
        .bind(bucket)
        .bind(key)
        .bind(id)
        .fetch_optional(&mut *c)
        .await
}

// ---------- multipart ----------

fn upload_row(r: &SqliteRow) -> Result<Upload, sqlx::Error> {
    Ok(Upload {
        bucket: r.get("bucket"),
        key: r.get("key"),
        upload_id: r.get("upload_id"),
        initiated_at_ms: r.get("initiated_at_ms"),
        template: from_json(r.get("template"))?,
    })
}

pub async fn upload(
    c: &mut SqliteConnection,
    upload_id: &str,
) -> Result<Option<Upload>, sqlx::Error> {
    let row = sqlx::query("SELECT * FROM uploads WHERE upload_id = ?")
        .bind(upload_id)
        .fetch_optional(&mut *c)
        .await?;
    row.as_ref().map(upload_row).transpose()
}

/// The ids of `bucket`'s open uploads after `after`, in id order, at most
/// `max` (clamped to [`MAX_PAGE`]).
pub async fn upload_ids(
    c: &mut SqliteConnection,
    bucket: &str,
    after: &str,
    max: u32,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT upload_id FROM uploads WHERE bucket = ? AND upload_id > ? \
         ORDER BY upload_id LIMIT ?",
    )
    .bind(bucket)
    .bind(after)
    .bind(i64::from(max.clamp(1, MAX_PAGE)))
    .fetch_all(&mut *c)
    .await
}

/// Uploads in (key, upload id) order after the markers, with `prefix`.
pub async fn uploads(
    c: &mut SqliteConnection,
    bucket: &str,
    prefix: &str,
    key_marker: &str,
    upload_id_marker: &str,
    max: u32,
) -> Result<(Vec<Upload>, bool), sqlx::Error> {
    let max = i64::from(max.clamp(1, MAX_PAGE));
    let rows = sqlx::query(
        "SELECT * FROM uploads WHERE bucket = ? AND substr(key, 1, length(?)) = ? \
         AND (key > ? OR (key = ? AND ? <> '' AND upload_id > ?)) ORDER BY key, initiated_at_ms, upload_id LIMIT ?",
    )
    .bind(bucket)
    .bind(prefix)
    .bind(prefix)
    .bind(key_marker)
    .bind(key_marker)
    // S3: without an upload-id marker, the key marker's own uploads are skipped.
    .bind(upload_id_marker)
    .bind(upload_id_marker)
    .bind(max + 1)
    .fetch_all(&mut *c)
    .await?;
    let truncated = rows.len() as i64 > max;
    let list = rows
        .iter()
        .take(max as usize)
        .map(upload_row)
        .collect::<Result<_, _>>()?;
    Ok((list, truncated))
}

fn part_row(r: &SqliteRow) -> Result<Part, sqlx::Error> {
    let shard_map: Option<String> = r.get("shard_map");
    Ok(Part {
        part_number: u32::try_from(r.get::<i64, _>("part_number")).unwrap_or(0),
        size: to_u64(r.get("size")),
        etag: r.get("etag"),
        shard_map: shard_map.as_deref().map(from_json).transpose()?,
        wrapped_dek: r.get("wrapped_dek"),
        kek_fingerprint: r.get("kek_fingerprint"),
        checksum_value: r.get("checksum_value"),
    })
}

pub async fn parts(c: &mut SqliteConnection, upload_id: &str) -> Result<Vec<Part>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM parts WHERE upload_id = ? ORDER BY part_number")
        .bind(upload_id)
        .fetch_all(&mut *c)
        .await?;
    rows.iter().map(part_row).collect()
}

// ---------- access keys, join tokens and blob-servers ----------

fn access_key_row(r: &SqliteRow) -> AccessKey {
    AccessKey {
        id: r.get("id"),
        name: r.get("name"),
        sealed_secret: r.get("sealed_secret"),
        created_at_ms: r.get("created_at_ms"),
        enabled: r.get("enabled"),
        kek_fingerprint: r.get("kek_fingerprint"),
        can_create_bucket: r.get("can_create_bucket"),
    }
}

pub async fn access_key(
    c: &mut SqliteConnection,
    id: &str,
) -> Result<Option<AccessKey>, sqlx::Error> {
    let row = sqlx::query("SELECT * FROM access_keys WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    Ok(row.as_ref().map(access_key_row))
}

pub async fn access_keys(c: &mut SqliteConnection) -> Result<Vec<AccessKey>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM access_keys ORDER BY id")
        .fetch_all(&mut *c)
        .await?;
    Ok(rows.iter().map(access_key_row).collect())
}

pub async fn join_token(
    c: &mut SqliteConnection,
    id: &str,
) -> Result<Option<JoinToken>, sqlx::Error> {
    let row = sqlx::query("SELECT * FROM join_tokens WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    row.map(|r| {
        Ok(JoinToken {
            id: r.get("id"),
            role: named(&r, "role")?,
            secret_hash: r.get("secret_hash"),
            uses_left: u32::try_from(r.get::<i64, _>("uses_left")).unwrap_or(0),
            expires_at_ms: r.get("expires_at_ms"),
            created_at_ms: r.get("created_at_ms"),
        })
    })
    .transpose()
}

fn blob_server_row(r: &SqliteRow) -> Result<BlobServer, sqlx::Error> {
    Ok(BlobServer {
        id: r.get("id"),
        address: r.get("address"),
        failure_domain: r.get("failure_domain"),
        capacity_bytes: to_u64(r.get("capacity_bytes")),
        free_bytes: to_u64(r.get("free_bytes")),
        state: named(r, "state")?,
        last_heartbeat_ms: r.get("last_heartbeat_ms"),
        last_scrub_ms: r.get("last_scrub_ms"),
        lifecycle: named(r, "lifecycle")?,
        drain_to: r.get("drain_to"),
        shards_stored: to_u64(r.get("shards_stored")),
        bytes_stored: to_u64(r.get("bytes_stored")),
    })
}

pub async fn blob_servers(c: &mut SqliteConnection) -> Result<Vec<BlobServer>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM blob_servers ORDER BY id")
        .fetch_all(&mut *c)
        .await?;
    rows.iter().map(blob_server_row).collect()
}

/// The ids of the blob-servers removed for good, in id order.
pub async fn removed_blob_servers(c: &mut SqliteConnection) -> Result<Vec<String>, sqlx::Error> {
    Ok(blob_servers(c)
        .await?
        .into_iter()
        .filter(|s| s.lifecycle == Lifecycle::Removed)
        .map(|s| s.id)
        .collect())
}

/// One blob-server, if it is registered.
pub async fn blob_server(
    c: &mut SqliteConnection,
    id: &str,
) -> Result<Option<BlobServer>, sqlx::Error> {
    let row = sqlx::query("SELECT * FROM blob_servers WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    row.as_ref().map(blob_server_row).transpose()
}

// ---------- master keys: holders and what each key wraps ----------

pub async fn key_holders(c: &mut SqliteConnection) -> Result<Vec<KeyHolder>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM key_holders ORDER BY role, id")
        .fetch_all(&mut *c)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(KeyHolder {
                id: r.get("id"),
                role: named(r, "role")?,
                current_fp: r.get("current_fp"),
                next_fp: r.get("next_fp"),
                last_seen_ms: r.get("last_seen_ms"),
            })
        })
        .collect()
}

/// Number of data keys still wrapped by `kek_fingerprint`: single-part
/// versions, each part of completed multipart objects, and parts of open
/// uploads. A master key may be retired only when this reaches zero.
pub async fn count_keys_wrapped_by(
    c: &mut SqliteConnection,
    kek_fingerprint: &str,
) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM versions WHERE kek_fingerprint = ?1 AND delete_marker = 0) \
              + (SELECT COUNT(*) FROM versions v, json_each(v.parts) p \
                 WHERE v.parts <> '[]' AND json_extract(p.value, '$.kek_fingerprint') = ?1) \
              + (SELECT COUNT(*) FROM parts WHERE kek_fingerprint = ?1)",
    )
    .bind(kek_fingerprint)
    .fetch_one(&mut *c)
    .await?;
    Ok(to_u64(n))
}

/// S3 secrets sealed by `fp`.
pub async fn count_secrets_sealed_by(
    c: &mut SqliteConnection,
    fp: &str,
) -> Result<u64, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM access_keys WHERE kek_fingerprint = ?")
        .bind(fp)
        .fetch_one(&mut *c)
        .await?;
    Ok(to_u64(n))
}

// ---------- TLS members ----------

pub async fn members(c: &mut SqliteConnection) -> Result<Vec<TlsMember>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM tls_members ORDER BY role, id")
        .fetch_all(&mut *c)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(TlsMember {
                id: r.get("id"),
                role: named(r, "role")?,
                generation: u64::try_from(r.get::<i64, _>("generation")).unwrap_or(0),
                cert_ca: r.get("cert_ca"),
                last_seen_ms: r.get("last_seen_ms"),
            })
        })
        .collect()
}

// ---------- settings, open rotations, applied commands ----------

/// A cluster setting ("profile", "write_kek", "trust").
pub async fn setting(c: &mut SqliteConnection, key: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
        .bind(key)
        .fetch_optional(&mut *c)
        .await
}

/// A cluster setting stored as JSON.
pub async fn setting_json<T: serde::de::DeserializeOwned>(
    c: &mut SqliteConnection,
    key: &str,
) -> Result<Option<T>, sqlx::Error> {
    setting(c, key).await?.map(|s| from_json(&s)).transpose()
}

/// The cluster's erasure profile for new objects, if one was set.
pub async fn profile(c: &mut SqliteConnection) -> Result<Option<(u32, u32)>, sqlx::Error> {
    let v = setting(c, "profile").await?;
    Ok(v.and_then(|v| {
        let (k, m) = v.split_once('+')?;
        Some((k.parse().ok()?, m.parse().ok()?))
    }))
}

/// The open rotation of `kind` ("kek", "ca"), if any.
pub async fn rotation<T: serde::de::DeserializeOwned>(
    c: &mut SqliteConnection,
    kind: &str,
) -> Result<Option<T>, sqlx::Error> {
    let v: Option<String> = sqlx::query_scalar("SELECT state FROM rotations WHERE kind = ?")
        .bind(kind)
        .fetch_optional(&mut *c)
        .await?;
    v.map(|s| from_json(&s)).transpose()
}

/// What the command `id` answered, if it was applied (and not forgotten).
pub async fn answer_of(
    c: &mut SqliteConnection,
    id: &str,
) -> Result<Option<Response>, sqlx::Error> {
    let seen: Option<String> =
        sqlx::query_scalar("SELECT response FROM applied_commands WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *c)
            .await?;
    seen.map(|s| from_json(&s)).transpose()
}
