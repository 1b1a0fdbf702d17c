//! Versioning and object lock (WORM), as the state machine enforces them.
//!
//! Every rule lives here and runs where commands are applied, at the
//! command's time (`at`), so no route — S3, admin gRPC, a forwarded or
//! replayed command — can express a forbidden change:
//!
//! - a legal hold blocks deleting its version, with no expiry;
//! - an unexpired GOVERNANCE retention blocks deleting, shortening and
//!   removing, unless the command carries the bypass flag;
//! - an unexpired COMPLIANCE retention can only be lengthened: nothing
//!   deletes, shortens, removes or downgrades it until it expires;
//! - a lock bucket stays versioned, and lock settings exist only on lock
//!   buckets.

use sqlx::SqliteConnection;

use super::apply::Outcome;
use super::commands::{MetaError, Response};
use super::model::{Bucket, DefaultRetention, Version};
use super::queries as q;

pub const GOVERNANCE: &str = "GOVERNANCE";
pub const COMPLIANCE: &str = "COMPLIANCE";
pub const ENABLED: &str = "Enabled";
pub const SUSPENDED: &str = "Suspended";

const DAY_MS: i64 = 86_400_000;
/// S3's limits on a default retention period.
const MAX_DAYS: u32 = 36_500;
const MAX_YEARS: u32 = 100;

fn invalid(why: &str) -> MetaError {
    MetaError::InvalidArgument(why.into())
}

/// A retention as a command states it: ("", 0) is none.
fn check_retention(mode: &str, until: i64, at: i64) -> Result<(), MetaError> {
    match mode {
        "" if until == 0 => Ok(()),
        "" => Err(invalid("a retain-until date needs a retention mode")),
        GOVERNANCE | COMPLIANCE if until <= 0 => {
            Err(invalid("a retention mode needs a retain-until date"))
        }
        GOVERNANCE | COMPLIANCE if until <= at => {
            Err(invalid("the retain-until date must be in the future"))
        }
        GOVERNANCE | COMPLIANCE => Ok(()),
        _ => Err(invalid(
            "the retention mode must be GOVERNANCE or COMPLIANCE",
        )),
    }
}

/// The lock settings a new version (or an upload's template) carries.
pub fn check_new_lock(bucket: &Bucket, v: &Version, at: i64) -> Result<(), MetaError> {
    if v.lock_mode.is_empty() && v.retain_until_ms == 0 && !v.legal_hold {
        return Ok(());
    }
    if !bucket.object_lock_enabled {
        return Err(MetaError::InvalidRequest(
            "the bucket has no object lock configuration".into(),
        ));
    }
    check_retention(&v.lock_mode, v.retain_until_ms, at)
}

/// A new version with the bucket's default retention, if it carries none.
pub fn with_default(bucket: &Bucket, mut v: Version, at: i64) -> Version {
    if let Some(d) = bucket.default_retention.as_ref()
        && bucket.object_lock_enabled
        && v.lock_mode.is_empty()
    {
        let days = i64::from(d.days) + 365 * i64::from(d.years);
        v.lock_mode = d.mode.clone();
        v.retain_until_ms = at.saturating_add(days.saturating_mul(DAY_MS));
    }
    v
}

fn check_default(d: &DefaultRetention) -> Result<(), MetaError> {
    if !matches!(d.mode.as_str(), GOVERNANCE | COMPLIANCE) {
        return Err(MetaError::InvalidArgument(
            "a default retention needs the mode GOVERNANCE or COMPLIANCE".into(),
        ));
    }
    match (d.days, d.years) {
        (1..=MAX_DAYS, 0) | (0, 1..=MAX_YEARS) => Ok(()),
        (0, 0) => Err(invalid("a default retention needs Days or Years")),
        (d, y) if d > 0 && y > 0 => Err(invalid("a default retention has Days or Years, not both")),
        _ => Err(invalid(
            "a default retention is at most 36500 days or 100 years",
        )),
    }
}

/// Why object lock forbids deleting `v` at time `at`, if it does.
pub fn deletion_blocked(v: &Version, at: i64, bypass_governance: bool) -> Option<String> {
    if v.legal_hold {
        return Some("the version is under legal hold".into());
    }
    if v.retain_until_ms > at {
        match v.lock_mode.as_str() {
            COMPLIANCE => return Some("the version is under COMPLIANCE retention".into()),
            GOVERNANCE if !bypass_governance => {
                return Some("the version is under GOVERNANCE retention".into());
            }
            _ => {}
        }
    }
    None
}

/// Whether `v`'s retention may become (`mode`, `until`) at `at`: an
/// active retention may always be kept or lengthened (GOVERNANCE may also
/// become COMPLIANCE); GOVERNANCE yields to the bypass flag; COMPLIANCE
/// to nothing.
fn check_retention_change(
    v: &Version,
    mode: &str,
    until: i64,
    at: i64,
    bypass: bool,
) -> Result<(), MetaError> {
    if v.lock_mode.is_empty() || v.retain_until_ms <= at {
        return Ok(());
    }
    let kept = !mode.is_empty() && until >= v.retain_until_ms;
    match v.lock_mode.as_str() {
        COMPLIANCE if kept && mode == COMPLIANCE => Ok(()),
        COMPLIANCE => Err(MetaError::AccessDenied(
            "a COMPLIANCE retention can be lengthened, never shortened, removed or changed".into(),
        )),
        _ if kept || bypass => Ok(()),
        _ => Err(MetaError::AccessDenied(
            "shortening or removing a GOVERNANCE retention needs the bypass".into(),
        )),
    }
}

/// The version a retention or legal-hold command names: on a lock bucket,
/// by id or the current one, and not a delete marker.
async fn lockable(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
    version_id: &str,
) -> Result<Result<Version, MetaError>, sqlx::Error> {
    let Some(b) = q::bucket(c, bucket).await? else {
        return Ok(Err(MetaError::NoSuchBucket(bucket.into())));
    };
    if !b.object_lock_enabled {
        return Ok(Err(MetaError::InvalidRequest(
            "the bucket has no object lock configuration".into(),
        )));
    }
    let v = if version_id.is_empty() {
        q::latest(c, bucket, key)
            .await?
            .ok_or_else(|| MetaError::NoSuchKey(key.into()))
    } else {
        q::version(c, bucket, key, version_id)
            .await?
            .map(|(v, _)| v)
            .ok_or_else(|| MetaError::NoSuchVersion(version_id.into()))
    };
    Ok(v.and_then(|v| {
        if v.delete_marker {
            Err(MetaError::MethodNotAllowed(
                "a delete marker has no retention or legal hold".into(),
            ))
        } else {
            Ok(v)
        }
    }))
}

pub async fn put_bucket_versioning(
    c: &mut SqliteConnection,
    bucket: &str,
    status: &str,
) -> Outcome {
    let Some(b) = q::bucket(c, bucket).await? else {
        return Ok(Err(MetaError::NoSuchBucket(bucket.into())));
    };
    match status {
        ENABLED => {}
        SUSPENDED if b.object_lock_enabled => {
            return Ok(Err(MetaError::InvalidBucketState(
                "versioning cannot be suspended on a bucket with object lock".into(),
            )));
        }
        SUSPENDED => {}
        _ => {
            return Ok(Err(invalid(
                "versioning status must be Enabled or Suspended",
            )));
        }
    }
    q::set_versioning(c, bucket, status).await?;
    Ok(Ok(Response::Ok))
}

pub async fn put_lock_configuration(
    c: &mut SqliteConnection,
    bucket: &str,
    default: Option<&DefaultRetention>,
) -> Outcome {
    let Some(b) = q::bucket(c, bucket).await? else {
        return Ok(Err(MetaError::NoSuchBucket(bucket.into())));
    };
    if !b.object_lock_enabled {
        return Ok(Err(MetaError::InvalidRequest(
            "object lock can only be configured on a bucket created with it".into(),
        )));
    }
    if let Some(d) = default
        && let Err(e) = check_default(d)
    {
        return Ok(Err(e));
    }
    // A default applies to versions written later: existing versions keep
    // their own retention whatever happens to the default.
    q::set_default_retention(c, bucket, default).await?;
    Ok(Ok(Response::Ok))
}

#[allow(clippy::too_many_arguments)]
pub async fn put_retention(
    c: &mut SqliteConnection,
    at: i64,
    bucket: &str,
    key: &str,
    version_id: &str,
    mode: &str,
    until: i64,
    bypass: bool,
) -> Outcome {
    let mut v = match lockable(c, bucket, key, version_id).await? {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    if let Err(e) = check_retention(mode, until, at)
        .and_then(|()| check_retention_change(&v, mode, until, at, bypass))
    {
        return Ok(Err(e));
    }
    v.lock_mode = mode.into();
    v.retain_until_ms = until;
    q::set_lock(c, &v).await?;
    Ok(Ok(Response::Locked {
        version_id: v.version_id,
    }))
}

pub async fn put_legal_hold(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
    version_id: &str,
    on: bool,
) -> Outcome {
    let mut v = match lockable(c, bucket, key, version_id).await? {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    v.legal_hold = on;
    q::set_lock(c, &v).await?;
    Ok(Ok(Response::Locked {
        version_id: v.version_id,
    }))
}
