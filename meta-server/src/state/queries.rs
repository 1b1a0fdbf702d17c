//! Reads against the applied state, and the row helpers apply writes with.
//!
//! Keys compare as bytes (SQLite's BINARY collation on UTF-8), which is the
//! order S3 lists in.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::model::{AccessKey, BlobServer, Bucket, JoinToken, Part, ShardMap, Upload, Version};

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

pub fn json<T: serde::Serialize>(v: &T) -> Result<String, sqlx::Error> {
    serde_json::to_string(v).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, sqlx::Error> {
    serde_json::from_str(s).map_err(json_err)
}

// ---------- buckets ----------

fn bucket_row(r: &SqliteRow) -> Result<Bucket, sqlx::Error> {
    // lock_config: the default retention as JSON, '' for none.
    let lock_config: String = r.get("lock_config");
    Ok(Bucket {
        name: r.get("name"),
        created_at_ms: r.get("created_at_ms"),
        versioning: r.get("versioning"),
        object_lock_enabled: r.get("object_lock_enabled"),
        default_retention: (!lock_config.is_empty())
            .then(|| from_json(&lock_config))
            .transpose()?,
    })
}

/// Stores a bucket's default retention (None: none).
pub async fn set_default_retention(
    c: &mut SqliteConnection,
    name: &str,
    d: Option<&super::model::DefaultRetention>,
) -> Result<(), sqlx::Error> {
    let config = d.map(json).transpose()?.unwrap_or_default();
    sqlx::query("UPDATE buckets SET lock_config = ? WHERE name = ?")
        .bind(config)
        .bind(name)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Sets a bucket's versioning state.
pub async fn set_versioning(
    c: &mut SqliteConnection,
    name: &str,
    status: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE buckets SET versioning = ? WHERE name = ?")
        .bind(status)
        .bind(name)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Sets a version's retention and legal hold (and nothing else).
pub async fn set_lock(c: &mut SqliteConnection, v: &Version) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE versions SET lock_mode = ?, retain_until_ms = ?, legal_hold = ? \
         WHERE bucket = ? AND key = ? AND version_id = ?",
    )
    .bind(&v.lock_mode)
    .bind(v.retain_until_ms)
    .bind(v.legal_hold)
    .bind(&v.bucket)
    .bind(&v.key)
    .bind(&v.version_id)
    .execute(&mut *c)
    .await?;
    Ok(())
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

// ---------- versions ----------

/// The version columns, as a literal so queries stay `'static` SQL.
macro_rules! version_cols {
    () => {
        "bucket, key, version_id, seq, size, etag, content_type, user_metadata, stored_headers, \
         created_at_ms, delete_marker, shard_map, parts, wrapped_dek, kek_fingerprint, lock_mode, retain_until_ms, legal_hold"
    };
}

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
            lock_mode: r.get("lock_mode"),
            retain_until_ms: r.get("retain_until_ms"),
            legal_hold: r.get("legal_hold"),
        },
        r.get("seq"),
    ))
}

pub async fn insert_version(
    c: &mut SqliteConnection,
    seq: i64,
    v: &Version,
) -> Result<(), sqlx::Error> {
    const SQL: &str = concat!(
        "INSERT INTO versions (",
        version_cols!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    );
    sqlx::query(SQL)
        .bind(&v.bucket)
        .bind(&v.key)
        .bind(&v.version_id)
        .bind(seq)
        .bind(to_i64(v.size))
        .bind(&v.etag)
        .bind(&v.content_type)
        .bind(json(&v.user_metadata)?)
        .bind(json(&v.stored_headers)?)
        .bind(v.created_at_ms)
        .bind(v.delete_marker)
        .bind(v.shard_map.as_ref().map(json).transpose()?)
        .bind(json(&v.parts)?)
        .bind(&v.wrapped_dek)
        .bind(&v.kek_fingerprint)
        .bind(&v.lock_mode)
        .bind(v.retain_until_ms)
        .bind(v.legal_hold)
        .execute(&mut *c)
        .await?;
    Ok(())
}

pub async fn delete_version(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
    id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM versions WHERE bucket = ? AND key = ? AND version_id = ?")
        .bind(bucket)
        .bind(key)
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(())
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

/// The smallest string greater than every string that starts with `prefix`
/// (None: no such string, everything after `prefix` has it as a prefix).
pub fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Where a listing resumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cursor {
    Start,
    /// Strictly after this key.
    After(String),
    /// At or after this key (the end of a common prefix).
    From(String),
    /// After this version: older versions of the key, then later keys.
    AfterVersion(String, i64),
}

/// Encodes a continuation token (opaque to clients).
pub fn encode_token(c: &Cursor) -> String {
    match c {
        Cursor::Start => String::new(),
        Cursor::After(k) => format!("a{}", hex::encode(k)),
        Cursor::From(k) => format!("f{}", hex::encode(k)),
        Cursor::AfterVersion(k, s) => format!("v{s}.{}", hex::encode(k)),
    }
}

/// Decodes a continuation token; None if it was not one of ours.
pub fn decode_token(t: &str) -> Option<Cursor> {
    if t.is_empty() {
        return Some(Cursor::Start);
    }
    let key = |h: &str| String::from_utf8(hex::decode(h).ok()?).ok();
    match t.as_bytes()[0] {
        b'a' => Some(Cursor::After(key(t.get(1..)?)?)),
        b'f' => Some(Cursor::From(key(t.get(1..)?)?)),
        b'v' => {
            let (seq, k) = t.get(1..)?.split_once('.')?;
            Some(Cursor::AfterVersion(key(k)?, seq.parse().ok()?))
        }
        _ => None,
    }
}

/// One entry of a listing: a version, or a common prefix.
// Most entries are versions: boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    Version { version: Version, is_latest: bool },
    Prefix(String),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub entries: Vec<Entry>,
    pub is_truncated: bool,
    /// Where the next page starts (meaningful when truncated).
    pub next: Option<Cursor>,
}

/// Which rows a listing walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk {
    /// Current versions that are not delete markers (ListObjects).
    Latest,
    /// Every version and marker, newest first per key (ListObjectVersions).
    AllVersions,
}

const BATCH: i64 = 256;
macro_rules! is_latest {
    () => {
        "seq = (SELECT MAX(seq) FROM versions w WHERE w.bucket = v.bucket AND w.key = v.key)"
    };
}
macro_rules! list_sql {
    ($filter:expr) => {
        concat!(
            "SELECT ", version_cols!(), ", (", is_latest!(), ") AS is_latest FROM versions v ",
            "WHERE bucket = ?1 AND (key > ?2 OR (key = ?2 AND seq < ?3)) AND (?4 IS NULL OR key < ?4) ",
            $filter,
            " ORDER BY key, seq DESC LIMIT ?5"
        )
    };
}
/// Current versions only (ListObjects).
const LIST_LATEST: &str = list_sql!(concat!("AND ", is_latest!()));
/// Every version and marker (ListObjectVersions).
const LIST_ALL: &str = list_sql!("");

/// Lists a bucket: keys with `prefix`, from `cursor`, grouped by
/// `delimiter`, at most `max` entries (versions and prefixes together).
pub async fn list(
    c: &mut SqliteConnection,
    bucket: &str,
    prefix: &str,
    delimiter: &str,
    mut cursor: Cursor,
    max: u32,
    walk: Walk,
) -> Result<Page, sqlx::Error> {
    let max = max.min(MAX_PAGE) as usize;
    let mut page = Page::default();
    if max == 0 {
        return Ok(page);
    }
    // Never start before the prefix.
    let before_prefix = match &cursor {
        Cursor::Start => true,
        Cursor::After(k) | Cursor::From(k) | Cursor::AfterVersion(k, _) => k.as_str() < prefix,
    };
    if before_prefix {
        cursor = Cursor::From(prefix.to_string());
    }
    let upper = prefix_successor(prefix);
    let latest_only = walk == Walk::Latest;
    loop {
        // One clause for every cursor: (key, seq) strictly after the bound,
        // with seq = MAX to include all of the key and MIN to skip it.
        let (key, seq) = match &cursor {
            Cursor::Start => (String::new(), i64::MAX),
            Cursor::From(k) => (k.clone(), i64::MAX),
            Cursor::After(k) => (k.clone(), i64::MIN),
            Cursor::AfterVersion(k, s) => (k.clone(), *s),
        };
        let sql = if latest_only { LIST_LATEST } else { LIST_ALL };
        let rows = sqlx::query(sql)
            .bind(bucket)
            .bind(&key)
            .bind(seq)
            .bind(upper.as_deref())
            .bind(BATCH)
            .fetch_all(&mut *c)
            .await?;
        let fetched = rows.len();
        let mut jumped = false;
        for row in &rows {
            let (v, seq) = version_row(row)?;
            let is_latest: bool = row.get("is_latest");
            cursor = if latest_only {
                Cursor::After(v.key.clone())
            } else {
                Cursor::AfterVersion(v.key.clone(), seq)
            };
            if latest_only && v.delete_marker {
                continue;
            }
            let Some(rest) = v.key.strip_prefix(prefix) else {
                continue;
            };
            // Group by the delimiter after the prefix.
            if !delimiter.is_empty()
                && let Some(pos) = rest.find(delimiter)
            {
                let cp = v.key[..prefix.len() + pos + delimiter.len()].to_string();
                if page.entries.len() == max {
                    page.is_truncated = true;
                    return Ok(page);
                }
                page.entries.push(Entry::Prefix(cp.clone()));
                let Some(next) = prefix_successor(&cp) else {
                    return Ok(page);
                };
                page.next = Some(Cursor::From(next.clone()));
                cursor = Cursor::From(next);
                jumped = true;
                break;
            }
            if page.entries.len() == max {
                page.is_truncated = true;
                return Ok(page);
            }
            page.next = Some(cursor.clone());
            page.entries.push(Entry::Version {
                version: v,
                is_latest,
            });
        }
        if !jumped && (fetched as i64) < BATCH {
            break;
        }
    }
    Ok(page)
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
    })
}

pub async fn parts(c: &mut SqliteConnection, upload_id: &str) -> Result<Vec<Part>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM parts WHERE upload_id = ? ORDER BY part_number")
        .bind(upload_id)
        .fetch_all(&mut *c)
        .await?;
    rows.iter().map(part_row).collect()
}

pub async fn upsert_part(
    c: &mut SqliteConnection,
    upload_id: &str,
    p: &Part,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT OR REPLACE INTO parts (upload_id, part_number, size, etag, shard_map, wrapped_dek, kek_fingerprint) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(upload_id)
    .bind(i64::from(p.part_number))
    .bind(to_i64(p.size))
    .bind(&p.etag)
    .bind(p.shard_map.as_ref().map(json).transpose()?)
    .bind(&p.wrapped_dek)
    .bind(&p.kek_fingerprint)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub async fn delete_upload(c: &mut SqliteConnection, upload_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM parts WHERE upload_id = ?")
        .bind(upload_id)
        .execute(&mut *c)
        .await?;
    sqlx::query("DELETE FROM uploads WHERE upload_id = ?")
        .bind(upload_id)
        .execute(&mut *c)
        .await?;
    Ok(())
}

// ---------- access keys and blob-servers ----------

fn access_key_row(r: &SqliteRow) -> AccessKey {
    AccessKey {
        id: r.get("id"),
        name: r.get("name"),
        sealed_secret: r.get("sealed_secret"),
        created_at_ms: r.get("created_at_ms"),
        enabled: r.get("enabled"),
        kek_fingerprint: r.get("kek_fingerprint"),
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

pub async fn blob_servers(c: &mut SqliteConnection) -> Result<Vec<BlobServer>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM blob_servers ORDER BY id")
        .fetch_all(&mut *c)
        .await?;
    Ok(rows
        .iter()
        .map(|r| BlobServer {
            id: r.get("id"),
            address: r.get("address"),
            failure_domain: r.get("failure_domain"),
            capacity_bytes: to_u64(r.get("capacity_bytes")),
            free_bytes: to_u64(r.get("free_bytes")),
            state: r.get("state"),
            last_heartbeat_ms: r.get("last_heartbeat_ms"),
        })
        .collect())
}

/// Every shard id some version, completed part or uploaded part names:
/// what the sweep must never delete. (One pass over the tables; a shard
/// reference index would make this incremental — ADR 0013.)
pub async fn referenced_shards(
    c: &mut SqliteConnection,
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    use futures::TryStreamExt;
    let mut out = std::collections::HashSet::new();
    let mut add = |m: ShardMap| out.extend(m.shards.into_iter().map(|s| s.shard_id));
    {
        let mut rows = sqlx::query(
            "SELECT shard_map, parts FROM versions WHERE shard_map IS NOT NULL OR parts != '[]'",
        )
        .fetch(&mut *c);
        while let Some(r) = rows.try_next().await? {
            let map: Option<String> = r.get("shard_map");
            if let Some(m) = map.as_deref().map(from_json::<ShardMap>).transpose()? {
                add(m);
            }
            let parts: String = r.get("parts");
            for p in from_json::<Vec<Part>>(&parts)? {
                if let Some(m) = p.shard_map {
                    add(m);
                }
            }
        }
    }
    let mut rows =
        sqlx::query("SELECT shard_map FROM parts WHERE shard_map IS NOT NULL").fetch(&mut *c);
    while let Some(r) = rows.try_next().await? {
        let map: Option<String> = r.get("shard_map");
        if let Some(m) = map.as_deref().map(from_json::<ShardMap>).transpose()? {
            add(m);
        }
    }
    Ok(out)
}

pub async fn join_token(
    c: &mut SqliteConnection,
    id: &str,
) -> Result<Option<JoinToken>, sqlx::Error> {
    let row = sqlx::query("SELECT * FROM join_tokens WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    Ok(row.map(|r| JoinToken {
        id: r.get("id"),
        role: r.get("role"),
        secret_hash: r.get("secret_hash"),
        uses_left: u32::try_from(r.get::<i64, _>("uses_left")).unwrap_or(0),
        expires_at_ms: r.get("expires_at_ms"),
        created_at_ms: r.get("created_at_ms"),
    }))
}

// ---------- settings and open rotations ----------

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

/// Sets (or, with None, removes) a cluster setting.
pub async fn put_setting(
    c: &mut SqliteConnection,
    key: &str,
    value: Option<&str>,
) -> Result<(), sqlx::Error> {
    match value {
        Some(v) => sqlx::query("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)")
            .bind(key)
            .bind(v),
        None => sqlx::query("DELETE FROM settings WHERE key = ?").bind(key),
    }
    .execute(&mut *c)
    .await?;
    Ok(())
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

/// Records (or, with None, closes) the open rotation of `kind`.
pub async fn put_rotation<T: serde::Serialize>(
    c: &mut SqliteConnection,
    kind: &str,
    state: Option<&T>,
) -> Result<(), sqlx::Error> {
    match state {
        Some(st) => sqlx::query("INSERT OR REPLACE INTO rotations (kind, state) VALUES (?, ?)")
            .bind(kind)
            .bind(json(st)?),
        None => sqlx::query("DELETE FROM rotations WHERE kind = ?").bind(kind),
    }
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// The cluster's erasure profile for new objects, if one was set.
pub async fn profile(c: &mut SqliteConnection) -> Result<Option<(u32, u32)>, sqlx::Error> {
    let v = setting(c, "profile").await?;
    Ok(v.and_then(|v| {
        let (k, m) = v.split_once('+')?;
        Some((k.parse().ok()?, m.parse().ok()?))
    }))
}
