//! Master-key rotation as the state machine sees it: the cluster's write
//! key, the key holders and the fingerprints they report, the open
//! rotation, and the rewrapped keys it applies.
//!
//! No key is ever here: only fingerprints and wrapped (or sealed) bytes.
//! The leader's rewrapper (`crate::rewrapper`) does the cryptography and
//! proposes the results; apply checks each result is still current and
//! that the rotation may open or close, at the command's time.

use std::collections::{HashMap, HashSet};

use sqlx::SqliteConnection;

use super::commands::{MetaError, Response};
use super::model::{KeyHolder, KeyRotation, RewrapTarget, Rewrapped, Role};
use super::outcome::{ApplyError, Outcome, invalid, refused, reject};
use super::{reads, writes};

/// A key holder is live if it reported within this long of a command.
pub const LIVE_MS: i64 = 20_000;

const WRITE_KEY: &str = "write_kek";
const ROTATION: &str = "kek";

/// The fingerprint new data keys must be wrapped with ("" before any).
pub async fn write_key(c: &mut SqliteConnection) -> Result<String, sqlx::Error> {
    Ok(reads::setting(c, WRITE_KEY).await?.unwrap_or_default())
}

/// Sets the write key as given, without checks: apply's own steps, and
/// an offline restore that rewrapped every key to `fp` (ADR 0026).
pub async fn set_write_key(c: &mut SqliteConnection, fp: &str) -> Result<(), sqlx::Error> {
    writes::put_setting(c, WRITE_KEY, Some(fp)).await
}

/// Records (or, None, removes) the open rotation without start's checks:
/// only an offline restore's rewrap uses it, to apply `Op::Rewrap` from
/// a key no rotation names (ADR 0026).
pub async fn set_rotation(
    c: &mut SqliteConnection,
    r: Option<&KeyRotation>,
) -> Result<(), sqlx::Error> {
    writes::put_rotation(c, ROTATION, r).await
}

/// The open rotation, if any.
pub async fn rotation(c: &mut SqliteConnection) -> Result<Option<KeyRotation>, sqlx::Error> {
    reads::rotation(c, ROTATION).await
}

/// Every key still on `fp`: data keys and sealed S3 secrets.
pub async fn count_on(c: &mut SqliteConnection, fp: &str) -> Result<u64, sqlx::Error> {
    Ok(reads::count_keys_wrapped_by(c, fp).await? + reads::count_secrets_sealed_by(c, fp).await?)
}

/// A commit's data key must be wrapped by the write key (once one is
/// recorded): a writer holding another key is refused.
pub async fn check_write_key(
    c: &mut SqliteConnection,
    fingerprint: &str,
) -> Result<(), ApplyError> {
    let write = write_key(c).await?;
    if write.is_empty() || write == fingerprint {
        return Ok(());
    }
    reject(MetaError::WrongMasterKey(format!(
        "the data key is wrapped by master key {fingerprint}; the cluster writes with {write}"
    )))
}

pub async fn key_holder_seen(c: &mut SqliteConnection, at: i64, h: &KeyHolder) -> Outcome {
    if h.id.is_empty() || h.current_fp.is_empty() || !matches!(h.role, Role::Gateway | Role::Meta) {
        return invalid("a key holder needs an id, the role gateway or meta, and a current key");
    }
    writes::put_key_holder(c, h, at).await?;
    // The cluster's first write key is the first meta-server's key.
    if h.role == Role::Meta && write_key(c).await?.is_empty() {
        set_write_key(c, &h.current_fp).await?;
    }
    Ok(Response::Ok)
}

pub async fn start(c: &mut SqliteConnection, at: i64, old: &str, new: &str) -> Outcome {
    if let Some(r) = rotation(c).await? {
        // Asking again for the same rotation answers it (rotate-key resumes).
        if r.new == new && (old == r.old || old == new) {
            return Ok(Response::RotationStarted {
                to_rewrap: count_on(c, &r.old).await?,
            });
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
    let lacking: Vec<String> = reads::key_holders(c)
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
    writes::mark_unmarked_secrets(c, old).await?;
    let state = KeyRotation {
        old: old.into(),
        new: new.into(),
        started_at_ms: at,
    };
    writes::put_rotation(c, ROTATION, Some(&state)).await?;
    set_write_key(c, new).await?;
    Ok(Response::RotationStarted {
        to_rewrap: count_on(c, old).await?,
    })
}

pub async fn finish(c: &mut SqliteConnection) -> Outcome {
    let Some(r) = rotation(c).await? else {
        return refused("no rotation is open".into());
    };
    let left = count_on(c, &r.old).await?;
    if left > 0 {
        return refused(format!("{left} keys are still on the old key {}", r.old));
    }
    writes::put_rotation::<KeyRotation>(c, ROTATION, None).await?;
    Ok(Response::Ok)
}

/// Applies one rewrapped key if it is still what was read: true if moved.
async fn move_one(
    c: &mut SqliteConnection,
    r: &KeyRotation,
    item: &Rewrapped,
) -> Result<bool, sqlx::Error> {
    match &item.target {
        RewrapTarget::Version {
            bucket,
            key,
            version_id,
        } => writes::rewrap_version(c, bucket, key, version_id, r, item).await,
        RewrapTarget::VersionPart {
            bucket,
            key,
            version_id,
            ..
        } => Ok(move_parts(c, r, bucket, key, version_id, &[item]).await? > 0),
        RewrapTarget::UploadPart {
            upload_id,
            part_number,
        } => writes::rewrap_upload_part(c, upload_id, *part_number, r, item).await,
        RewrapTarget::AccessKey { id } => writes::rewrap_access_key(c, id, r, item).await,
    }
}

/// Applies `items` (parts of one completed object, in order) to its
/// parts list, each if the part still holds what was read; writes the
/// list once: how many moved.
async fn move_parts(
    c: &mut SqliteConnection,
    r: &KeyRotation,
    bucket: &str,
    key: &str,
    version_id: &str,
    items: &[&Rewrapped],
) -> Result<u64, sqlx::Error> {
    let Some((mut v, _)) = reads::version(c, bucket, key, version_id).await? else {
        return Ok(0);
    };
    let mut moved = 0;
    for item in items {
        let RewrapTarget::VersionPart { part_number, .. } = &item.target else {
            continue;
        };
        let Some(p) = v.parts.iter_mut().find(|p| {
            p.part_number == *part_number && p.kek_fingerprint == r.old && p.wrapped_dek == item.old
        }) else {
            continue;
        };
        p.wrapped_dek = item.new.clone();
        p.kek_fingerprint = r.new.clone();
        moved += 1;
    }
    if moved > 0 && !writes::set_version_parts(c, bucket, key, version_id, &v.parts).await? {
        return Ok(0);
    }
    Ok(moved)
}

/// (bucket, key, version id) of a completed object.
type ObjectId<'a> = (&'a str, &'a str, &'a str);

/// Applies `items` (no target twice) in few statements: versions, upload
/// parts and secrets in bulk, a completed object's parts with one write
/// of its list. Moves exactly what [`move_one`] in order would: each
/// item touches only its own target.
async fn move_all(
    c: &mut SqliteConnection,
    r: &KeyRotation,
    items: &[Rewrapped],
) -> Result<u64, sqlx::Error> {
    let mut moved = writes::rewrap_rows(c, r, items).await?;
    // A completed object's parts, grouped by object in first-seen order.
    let mut objects: Vec<(ObjectId, Vec<&Rewrapped>)> = Vec::new();
    let mut at: HashMap<ObjectId, usize> = HashMap::new();
    for item in items {
        if let RewrapTarget::VersionPart {
            bucket,
            key,
            version_id,
            ..
        } = &item.target
        {
            let id = (bucket.as_str(), key.as_str(), version_id.as_str());
            let i = *at.entry(id).or_insert_with(|| {
                objects.push((id, Vec::new()));
                objects.len() - 1
            });
            objects[i].1.push(item);
        }
    }
    for ((bucket, key, version_id), parts) in objects {
        moved += move_parts(c, r, bucket, key, version_id, &parts).await?;
    }
    Ok(moved)
}

/// What a target names, to find one named twice.
fn row_of(t: &RewrapTarget) -> (u8, &str, &str, &str, u32) {
    match t {
        RewrapTarget::Version {
            bucket,
            key,
            version_id,
        } => (0, bucket, key, version_id, 0),
        RewrapTarget::VersionPart {
            bucket,
            key,
            version_id,
            part_number,
        } => (1, bucket, key, version_id, *part_number),
        RewrapTarget::UploadPart {
            upload_id,
            part_number,
        } => (2, upload_id, "", "", *part_number),
        RewrapTarget::AccessKey { id } => (3, id, "", "", 0),
    }
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
    // Refused whole, so checking first changes nothing: apply rolls back
    // whatever a rejected command wrote.
    if items.iter().any(|item| item.new.is_empty()) {
        return invalid("an empty rewrapped key");
    }
    let mut seen = HashSet::with_capacity(items.len());
    let moved = if items.iter().all(|item| seen.insert(row_of(&item.target))) {
        move_all(c, &r, items).await?
    } else {
        // A target named twice: the first item that still matches wins,
        // so only one by one, in order, is sure to give the same result.
        let mut moved = 0;
        for item in items {
            if move_one(c, &r, item).await? {
                moved += 1;
            }
        }
        moved
    };
    Ok(Response::Rewrapped { moved })
}
