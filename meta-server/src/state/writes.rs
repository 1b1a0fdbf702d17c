//! Every write the state machine makes to its DB, one function a change.
//!
//! No rule is checked here: the topic modules decide, these store. They
//! run inside the batch transaction, under the command's savepoint, so a
//! rejected command's writes are rolled back by `apply`.
//!
//! Every write of a shard map (a version's, its parts', an upload's
//! part) rewrites that map's rows of `shard_refs` in the same call
//! (`refs`); the durability commands' writes are in `durability`,
//! the registry's (join tokens, blob-servers, key holders, TLS members)
//! in `registry`, the blob-server lifecycle's in `lifecycle`, the orphan
//! hold's in `orphans`, bucket grants and owners in `grants`, master-key
//! rotation's rewrapped keys in `rewrap`; all
//! re-exported here.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::SqliteConnection;

use super::model::{
    AccessKey, DefaultRetention, Part, PublicAccessBlock, ShardMap, Unit, Upload, Version,
    Versioning,
};
use super::reads::{to_i64, version_cols};

mod durability;
mod grants;
mod lifecycle;
mod orphans;
mod refs;
mod registry;
mod rewrap;
pub use durability::{
    MapSite, add_shards_repaired, mark_blob_down, record_fault, set_last_scrub, set_unit_map,
};
pub use grants::{
    adopt_buckets, delete_grant, put_grant, set_bucket_max_retention, set_bucket_owner,
};
pub use lifecycle::{add_shards_moved, remove_blob, set_fence, set_lifecycle};
pub use orphans::{forget_orphan, hold_orphan, release_orphans};
use refs::Scope;
pub use registry::{
    blob_heartbeat, forget_member, put_join_token, put_key_holder, put_member, register_blob,
    spend_join_token,
};
pub use rewrap::{
    REWRAP_CHUNK, bulk_statements, rewrap_access_key, rewrap_rows, rewrap_upload_part,
    rewrap_version,
};

/// A JSON column's text (its encoding is pinned by the goldens, ADR 0020).
pub fn json<T: serde::Serialize>(v: &T) -> Result<String, sqlx::Error> {
    serde_json::to_string(v).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

// ---------- buckets ----------

/// A new bucket owned by `owner` ("": none), with the cluster's
/// retention limit.
pub async fn insert_bucket(
    c: &mut SqliteConnection,
    name: &str,
    at: i64,
    versioning: Versioning,
    object_lock_enabled: bool,
    owner: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO buckets (name, created_at_ms, versioning, object_lock_enabled, lock_config, owner) VALUES (?, ?, ?, ?, '', ?)")
        .bind(name)
        .bind(at)
        .bind(versioning.as_str())
        .bind(object_lock_enabled)
        .bind(owner)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Removes a bucket and every grant on it (a bucket made later under the
/// same name starts with none).
pub async fn delete_bucket(c: &mut SqliteConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM bucket_grants WHERE bucket = ?")
        .bind(name)
        .execute(&mut *c)
        .await?;
    sqlx::query("DELETE FROM buckets WHERE name = ?")
        .bind(name)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Sets a bucket's versioning state.
pub async fn set_versioning(
    c: &mut SqliteConnection,
    name: &str,
    status: Versioning,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE buckets SET versioning = ? WHERE name = ?")
        .bind(status.as_str())
        .bind(name)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Stores a bucket's default retention (None: none).
pub async fn set_default_retention(
    c: &mut SqliteConnection,
    name: &str,
    d: Option<&DefaultRetention>,
) -> Result<(), sqlx::Error> {
    // lock_config: the default retention as JSON, '' for none.
    let config = d.map(json).transpose()?.unwrap_or_default();
    sqlx::query("UPDATE buckets SET lock_config = ? WHERE name = ?")
        .bind(config)
        .bind(name)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Turns object lock on for a bucket (never off: nothing calls this
/// with false, since a lock bucket stays one).
pub async fn enable_object_lock(c: &mut SqliteConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE buckets SET object_lock_enabled = 1 WHERE name = ?")
        .bind(name)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Stores a bucket's PublicAccessBlock (None: none set).
pub async fn set_public_access_block(
    c: &mut SqliteConnection,
    name: &str,
    p: Option<&PublicAccessBlock>,
) -> Result<(), sqlx::Error> {
    // public_access_block: JSON, '' for none (migration 11).
    let config = p.map(json).transpose()?.unwrap_or_default();
    sqlx::query("UPDATE buckets SET public_access_block = ? WHERE name = ?")
        .bind(config)
        .bind(name)
        .execute(&mut *c)
        .await?;
    Ok(())
}

// ---------- versions ----------

pub async fn insert_version(
    c: &mut SqliteConnection,
    seq: i64,
    v: &Version,
) -> Result<(), sqlx::Error> {
    const SQL: &str = concat!(
        "INSERT INTO versions (",
        version_cols!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
        .bind(v.lock_mode.as_str())
        .bind(v.retain_until_ms)
        .bind(v.legal_hold)
        .bind(&v.checksum_algorithm)
        .bind(&v.checksum_value)
        .bind(&v.checksum_type)
        .bind(&v.upload_id)
        .execute(&mut *c)
        .await?;
    let mut maps: Vec<(Unit, &_)> = Vec::new();
    if let Some(m) = &v.shard_map {
        maps.push((Unit::version(&v.bucket, &v.key, &v.version_id, 0), m));
    }
    for p in &v.parts {
        if let Some(m) = &p.shard_map {
            let unit = Unit::version(&v.bucket, &v.key, &v.version_id, p.part_number);
            maps.push((unit, m));
        }
    }
    let scope = Scope::Version {
        bucket: &v.bucket,
        key: &v.key,
        version_id: &v.version_id,
    };
    refs::replace(c, scope, &maps).await
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
    let scope = Scope::Version {
        bucket,
        key,
        version_id: id,
    };
    refs::replace(c, scope, &[]).await
}

/// Sets a version's retention and legal hold (and nothing else).
pub async fn set_lock(c: &mut SqliteConnection, v: &Version) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE versions SET lock_mode = ?, retain_until_ms = ?, legal_hold = ? \
         WHERE bucket = ? AND key = ? AND version_id = ?",
    )
    .bind(v.lock_mode.as_str())
    .bind(v.retain_until_ms)
    .bind(v.legal_hold)
    .bind(&v.bucket)
    .bind(&v.key)
    .bind(&v.version_id)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Replaces a multipart version's parts: true if the version exists.
/// Only the parts whose map changed have their `shard_refs` rewritten
/// (a rewrap or a repair touches one part of up to 10,000).
pub async fn set_version_parts(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
    version_id: &str,
    parts: &[Part],
) -> Result<bool, sqlx::Error> {
    let Some(before) = super::reads::version_parts(c, bucket, key, version_id).await? else {
        return Ok(false);
    };
    sqlx::query("UPDATE versions SET parts = ? WHERE bucket = ? AND key = ? AND version_id = ?")
        .bind(json(&parts)?)
        .bind(bucket)
        .bind(key)
        .bind(version_id)
        .execute(&mut *c)
        .await?;
    let maps = |ps: &[Part]| -> BTreeMap<u32, Option<ShardMap>> {
        ps.iter()
            .map(|p| (p.part_number, p.shard_map.clone()))
            .collect()
    };
    let (old, new) = (maps(&before), maps(parts));
    let numbers: BTreeSet<u32> = old.keys().chain(new.keys()).copied().collect();
    for n in numbers {
        let now = new.get(&n).and_then(Option::as_ref);
        if old.get(&n).and_then(Option::as_ref) == now {
            continue;
        }
        let unit = Unit::version(bucket, key, version_id, n);
        let rows: Vec<(Unit, &ShardMap)> = now.map(|m| (unit.clone(), m)).into_iter().collect();
        refs::replace(c, Scope::Unit(&unit), &rows).await?;
    }
    Ok(true)
}

// ---------- multipart ----------

pub async fn insert_upload(c: &mut SqliteConnection, u: &Upload) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO uploads (upload_id, bucket, key, initiated_at_ms, template) VALUES (?, ?, ?, ?, ?)")
        .bind(&u.upload_id)
        .bind(&u.bucket)
        .bind(&u.key)
        .bind(u.initiated_at_ms)
        .bind(json(&u.template)?)
        .execute(&mut *c)
        .await?;
    Ok(())
}

pub async fn upsert_part(
    c: &mut SqliteConnection,
    upload_id: &str,
    p: &Part,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT OR REPLACE INTO parts (upload_id, part_number, size, etag, shard_map, wrapped_dek, kek_fingerprint, checksum_value) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(upload_id)
    .bind(i64::from(p.part_number))
    .bind(to_i64(p.size))
    .bind(&p.etag)
    .bind(p.shard_map.as_ref().map(json).transpose()?)
    .bind(&p.wrapped_dek)
    .bind(&p.kek_fingerprint)
    .bind(&p.checksum_value)
    .execute(&mut *c)
    .await?;
    // An upload's part is found by its upload id; its unit names the key.
    let (bucket, key): (String, String) =
        sqlx::query_as("SELECT bucket, key FROM uploads WHERE upload_id = ?")
            .bind(upload_id)
            .fetch_optional(&mut *c)
            .await?
            .unwrap_or_default();
    let unit = Unit::upload_part(&bucket, &key, upload_id, p.part_number);
    let maps: Vec<(Unit, &_)> = p.shard_map.iter().map(|m| (unit.clone(), m)).collect();
    refs::replace(c, Scope::Unit(&unit), &maps).await
}

/// Removes an upload and its parts.
pub async fn delete_upload(c: &mut SqliteConnection, upload_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM parts WHERE upload_id = ?")
        .bind(upload_id)
        .execute(&mut *c)
        .await?;
    sqlx::query("DELETE FROM uploads WHERE upload_id = ?")
        .bind(upload_id)
        .execute(&mut *c)
        .await?;
    refs::replace(c, Scope::Upload(upload_id), &[]).await
}

// ---------- access keys ----------

pub async fn insert_access_key(c: &mut SqliteConnection, k: &AccessKey) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO access_keys (id, name, sealed_secret, created_at_ms, enabled, kek_fingerprint, can_create_bucket) VALUES (?, ?, ?, ?, ?, ?, ?)")
        .bind(&k.id)
        .bind(&k.name)
        .bind(&k.sealed_secret)
        .bind(k.created_at_ms)
        .bind(k.enabled)
        .bind(&k.kek_fingerprint)
        .bind(k.can_create_bucket)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Removes a key with its rights: its grants go and the buckets it owned
/// are left ownerless (so a key made later with the same id gets
/// nothing). True if there was such a key.
pub async fn delete_access_key(c: &mut SqliteConnection, id: &str) -> Result<bool, sqlx::Error> {
    let n = sqlx::query("DELETE FROM access_keys WHERE id = ?")
        .bind(id)
        .execute(&mut *c)
        .await?;
    if n.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM bucket_grants WHERE key_id = ?")
        .bind(id)
        .execute(&mut *c)
        .await?;
    sqlx::query("UPDATE buckets SET owner = '' WHERE owner = ?")
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(true)
}

/// Records `fp` as the sealing key of every secret that names none.
pub async fn mark_unmarked_secrets(c: &mut SqliteConnection, fp: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE access_keys SET kek_fingerprint = ? WHERE kek_fingerprint = ''")
        .bind(fp)
        .execute(&mut *c)
        .await?;
    Ok(())
}

// ---------- settings, rotations, applied commands ----------

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

/// Remembers what the command `id` answered (JSON), for its retries.
pub async fn remember_answer(
    c: &mut SqliteConnection,
    id: &str,
    at_ms: i64,
    response: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO applied_commands (id, at_ms, response) VALUES (?, ?, ?)")
        .bind(id)
        .bind(at_ms)
        .bind(response)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Forgets the answers of commands stamped before `at_ms`.
pub async fn forget_answers_before(
    c: &mut SqliteConnection,
    at_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM applied_commands WHERE at_ms < ?")
        .bind(at_ms)
        .execute(&mut *c)
        .await?;
    Ok(())
}
