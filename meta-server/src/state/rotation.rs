//! Master-key rotation as the state machine sees it: the cluster's write
//! key, the key holders and the fingerprints they report, the open
//! rotation, and the rewrapped keys it applies.
//!
//! No key is ever here: only fingerprints and wrapped (or sealed) bytes.
//! The leader's rewrapper (`crate::rotation`) does the cryptography and
//! proposes the results; apply checks each result is still current and
//! that the rotation may open or close, at the command's time.

use sqlx::{Row, SqliteConnection};

use super::apply::Outcome;
use super::commands::{MetaError, Response};
use super::model::{KeyHolder, KeyRotation, Part, RewrapTarget, Rewrapped};
use super::queries as q;

/// A key holder is live if it reported within this long of a command.
pub const LIVE_MS: i64 = 20_000;

const WRITE_KEY: &str = "write_kek";
const ROTATION: &str = "kek";

fn codec(e: serde_json::Error) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

/// The fingerprint new data keys must be wrapped with ("" before any).
pub async fn write_key(c: &mut SqliteConnection) -> Result<String, sqlx::Error> {
    Ok(q::setting(c, WRITE_KEY).await?.unwrap_or_default())
}

async fn set_write_key(c: &mut SqliteConnection, fp: &str) -> Result<(), sqlx::Error> {
    q::put_setting(c, WRITE_KEY, Some(fp)).await
}

/// The open rotation, if any.
pub async fn rotation(c: &mut SqliteConnection) -> Result<Option<KeyRotation>, sqlx::Error> {
    q::rotation(c, ROTATION).await
}

pub async fn key_holders(c: &mut SqliteConnection) -> Result<Vec<KeyHolder>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM key_holders ORDER BY role, id")
        .fetch_all(&mut *c)
        .await?;
    Ok(rows
        .iter()
        .map(|r| KeyHolder {
            id: r.get("id"),
            role: r.get("role"),
            current_fp: r.get("current_fp"),
            next_fp: r.get("next_fp"),
            last_seen_ms: r.get("last_seen_ms"),
        })
        .collect())
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
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Every key still on `fp`: data keys and sealed S3 secrets.
pub async fn count_on(c: &mut SqliteConnection, fp: &str) -> Result<u64, sqlx::Error> {
    Ok(q::count_keys_wrapped_by(c, fp).await? + count_secrets_sealed_by(c, fp).await?)
}

/// Up to `limit` keys still wrapped (or sealed) by `fp`, with their bytes.
pub async fn wrapped_by(
    c: &mut SqliteConnection,
    fp: &str,
    limit: usize,
) -> Result<Vec<(RewrapTarget, Vec<u8>)>, sqlx::Error> {
    let lim = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    let rows = sqlx::query(
        "SELECT bucket, key, version_id, wrapped_dek FROM versions \
         WHERE kek_fingerprint = ? AND delete_marker = 0 LIMIT ?",
    )
    .bind(fp)
    .bind(lim)
    .fetch_all(&mut *c)
    .await?;
    for r in rows {
        let target = RewrapTarget::Version {
            bucket: r.get("bucket"),
            key: r.get("key"),
            version_id: r.get("version_id"),
        };
        out.push((target, r.get("wrapped_dek")));
    }
    let rows = sqlx::query(
        "SELECT v.bucket, v.key, v.version_id, p.value AS part FROM versions v, json_each(v.parts) p \
         WHERE v.parts <> '[]' AND json_extract(p.value, '$.kek_fingerprint') = ? LIMIT ?",
    )
    .bind(fp)
    .bind(lim)
    .fetch_all(&mut *c)
    .await?;
    for r in rows {
        let part: Part = serde_json::from_str(r.get("part")).map_err(codec)?;
        let target = RewrapTarget::VersionPart {
            bucket: r.get("bucket"),
            key: r.get("key"),
            version_id: r.get("version_id"),
            part_number: part.part_number,
        };
        out.push((target, part.wrapped_dek));
    }
    let rows = sqlx::query(
        "SELECT upload_id, part_number, wrapped_dek FROM parts WHERE kek_fingerprint = ? LIMIT ?",
    )
    .bind(fp)
    .bind(lim)
    .fetch_all(&mut *c)
    .await?;
    for r in rows {
        let n: i64 = r.get("part_number");
        let target = RewrapTarget::UploadPart {
            upload_id: r.get("upload_id"),
            part_number: u32::try_from(n).unwrap_or(0),
        };
        out.push((target, r.get("wrapped_dek")));
    }
    let rows =
        sqlx::query("SELECT id, sealed_secret FROM access_keys WHERE kek_fingerprint = ? LIMIT ?")
            .bind(fp)
            .bind(lim)
            .fetch_all(&mut *c)
            .await?;
    for r in rows {
        out.push((
            RewrapTarget::AccessKey { id: r.get("id") },
            r.get("sealed_secret"),
        ));
    }
    out.truncate(limit);
    Ok(out)
}

/// A commit's data key must be wrapped by the write key (once one is
/// recorded): a writer holding another key is refused.
pub async fn check_write_key(
    c: &mut SqliteConnection,
    fingerprint: &str,
) -> Result<Result<(), MetaError>, sqlx::Error> {
    let write = write_key(c).await?;
    if write.is_empty() || write == fingerprint {
        return Ok(Ok(()));
    }
    Ok(Err(MetaError::WrongMasterKey(format!(
        "the data key is wrapped by master key {fingerprint}; the cluster writes with {write}"
    ))))
}

pub async fn key_holder_seen(c: &mut SqliteConnection, at: i64, h: &KeyHolder) -> Outcome {
    if h.id.is_empty() || h.current_fp.is_empty() || !matches!(h.role.as_str(), "gateway" | "meta")
    {
        return Ok(Err(MetaError::InvalidArgument(
            "a key holder needs an id, the role gateway or meta, and a current key".into(),
        )));
    }
    sqlx::query(
        "INSERT OR REPLACE INTO key_holders (id, role, current_fp, next_fp, last_seen_ms) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&h.id)
    .bind(&h.role)
    .bind(&h.current_fp)
    .bind(&h.next_fp)
    .bind(at)
    .execute(&mut *c)
    .await?;
    // The cluster's first write key is the first meta-server's key.
    if h.role == "meta" && write_key(c).await?.is_empty() {
        set_write_key(c, &h.current_fp).await?;
    }
    Ok(Ok(Response::Ok))
}

fn refused(why: String) -> Outcome {
    Ok(Err(MetaError::RotationRefused(why)))
}

pub async fn start(c: &mut SqliteConnection, at: i64, old: &str, new: &str) -> Outcome {
    if let Some(r) = rotation(c).await? {
        // Asking again for the same rotation answers it (rotate-key resumes).
        if r.new == new && (old == r.old || old == new) {
            return Ok(Ok(Response::RotationStarted {
                to_rewrap: count_on(c, &r.old).await?,
            }));
        }
        return refused(format!(
            "a rotation from {} to {} is open; one at a time",
            r.old, r.new
        ));
    }
    let write = write_key(c).await?;
    if write.is_empty() {
        return refused("no write key is recorded yet".into());
    }
    if old != write {
        return refused(format!("the write key is {write}, not {old}"));
    }
    if new.is_empty() || new == old {
        return refused("the next key must differ from the current one".into());
    }
    let lacking: Vec<String> = key_holders(c)
        .await?
        .into_iter()
        .filter(|h| h.last_seen_ms >= at - LIVE_MS)
        .filter(|h| h.current_fp != new && h.next_fp != new)
        .map(|h| format!("{} {}", h.role, h.id))
        .collect();
    if !lacking.is_empty() {
        return refused(format!(
            "not every live key holder has the next key {new} loaded: {}",
            lacking.join(", ")
        ));
    }
    // S3 secrets sealed before rotations existed were sealed by this key.
    sqlx::query("UPDATE access_keys SET kek_fingerprint = ? WHERE kek_fingerprint = ''")
        .bind(old)
        .execute(&mut *c)
        .await?;
    let state = KeyRotation {
        old: old.into(),
        new: new.into(),
        started_at_ms: at,
    };
    q::put_rotation(c, ROTATION, Some(&state)).await?;
    set_write_key(c, new).await?;
    Ok(Ok(Response::RotationStarted {
        to_rewrap: count_on(c, old).await?,
    }))
}

pub async fn finish(c: &mut SqliteConnection) -> Outcome {
    let Some(r) = rotation(c).await? else {
        return refused("no rotation is open".into());
    };
    let left = count_on(c, &r.old).await?;
    if left > 0 {
        return refused(format!("{left} keys are still on the old key {}", r.old));
    }
    q::put_rotation::<KeyRotation>(c, ROTATION, None).await?;
    Ok(Ok(Response::Ok))
}

/// Applies one rewrapped key if it is still what was read: true if moved.
async fn move_one(
    c: &mut SqliteConnection,
    r: &KeyRotation,
    item: &Rewrapped,
) -> Result<bool, sqlx::Error> {
    let done = match &item.target {
        RewrapTarget::Version {
            bucket,
            key,
            version_id,
        } => sqlx::query(
            "UPDATE versions SET wrapped_dek = ?, kek_fingerprint = ? \
             WHERE bucket = ? AND key = ? AND version_id = ? AND kek_fingerprint = ? AND wrapped_dek = ?",
        )
        .bind(&item.new)
        .bind(&r.new)
        .bind(bucket)
        .bind(key)
        .bind(version_id)
        .bind(&r.old)
        .bind(&item.old)
        .execute(&mut *c)
        .await?
        .rows_affected(),
        RewrapTarget::VersionPart {
            bucket,
            key,
            version_id,
            part_number,
        } => {
            let Some((mut v, _)) = q::version(c, bucket, key, version_id).await? else {
                return Ok(false);
            };
            let Some(p) = v.parts.iter_mut().find(|p| {
                p.part_number == *part_number && p.kek_fingerprint == r.old && p.wrapped_dek == item.old
            }) else {
                return Ok(false);
            };
            p.wrapped_dek = item.new.clone();
            p.kek_fingerprint = r.new.clone();
            let parts =
                serde_json::to_string(&v.parts).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            sqlx::query("UPDATE versions SET parts = ? WHERE bucket = ? AND key = ? AND version_id = ?")
                .bind(parts)
                .bind(bucket)
                .bind(key)
                .bind(version_id)
                .execute(&mut *c)
                .await?
                .rows_affected()
        }
        RewrapTarget::UploadPart {
            upload_id,
            part_number,
        } => sqlx::query(
            "UPDATE parts SET wrapped_dek = ?, kek_fingerprint = ? \
             WHERE upload_id = ? AND part_number = ? AND kek_fingerprint = ? AND wrapped_dek = ?",
        )
        .bind(&item.new)
        .bind(&r.new)
        .bind(upload_id)
        .bind(i64::from(*part_number))
        .bind(&r.old)
        .bind(&item.old)
        .execute(&mut *c)
        .await?
        .rows_affected(),
        RewrapTarget::AccessKey { id } => sqlx::query(
            "UPDATE access_keys SET sealed_secret = ?, kek_fingerprint = ? \
             WHERE id = ? AND kek_fingerprint = ? AND sealed_secret = ?",
        )
        .bind(&item.new)
        .bind(&r.new)
        .bind(id)
        .bind(&r.old)
        .bind(&item.old)
        .execute(&mut *c)
        .await?
        .rows_affected(),
    };
    Ok(done > 0)
}

pub async fn rewrap(c: &mut SqliteConnection, new: &str, items: &[Rewrapped]) -> Outcome {
    let Some(r) = rotation(c).await? else {
        return refused("no rotation is open".into());
    };
    if r.new != new {
        return refused(format!(
            "the open rotation moves keys to {}, not {new}",
            r.new
        ));
    }
    let mut moved = 0;
    for item in items {
        if item.new.is_empty() {
            return Ok(Err(MetaError::InvalidArgument(
                "an empty rewrapped key".into(),
            )));
        }
        if move_one(c, &r, item).await? {
            moved += 1;
        }
    }
    Ok(Ok(Response::Rewrapped { moved }))
}
