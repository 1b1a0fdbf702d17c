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
//!   buckets;
//! - no retention (a version's, an upload's, a default) reaches beyond
//!   the bucket's maximum (`access::check_retention_limit`).
//!
//! Who may ask for these (the owner, for every change here) is
//! [`super::access`]'s, checked before.

use sqlx::SqliteConnection;

use super::commands::{Actor, MetaError, Response};
use super::model::{Bucket, DefaultRetention, LockMode, Version, Versioning};
use super::outcome::{ApplyError, Outcome, reject};
use super::{access, reads, writes};

const DAY_MS: i64 = 86_400_000;
/// S3's limits on a default retention period.
const MAX_DAYS: u32 = 36_500;
const MAX_YEARS: u32 = 100;

fn invalid(why: &str) -> MetaError {
    MetaError::InvalidArgument(why.into())
}

/// A retention as a command states it: (None, 0) is none.
fn check_retention(mode: LockMode, until: i64, at: i64) -> Result<(), MetaError> {
    match mode {
        LockMode::None if until == 0 => Ok(()),
        LockMode::None => Err(invalid("a retain-until date needs a retention mode")),
        _ if until <= 0 => Err(invalid("a retention mode needs a retain-until date")),
        _ if until <= at => Err(invalid("the retain-until date must be in the future")),
        LockMode::Governance | LockMode::Compliance => Ok(()),
    }
}

/// The lock settings a new version (or an upload's template) carries.
pub fn check_new_lock(bucket: &Bucket, v: &Version, at: i64) -> Result<(), MetaError> {
    if v.lock_mode == LockMode::None && v.retain_until_ms == 0 && !v.legal_hold {
        return Ok(());
    }
    if !bucket.object_lock_enabled {
        return Err(MetaError::InvalidRequest(
            "the bucket has no object lock configuration".into(),
        ));
    }
    check_retention(v.lock_mode, v.retain_until_ms, at)
}

/// A new version with the bucket's default retention, if it carries none.
/// That never reaches beyond the bucket's maximum retention: a default
/// longer than the limit in force is refused when set, and so is a limit
/// below the default (ADR 0027). An old log's default, set unchecked, is
/// within S3's 100 years, the default limit.
pub fn with_default(bucket: &Bucket, mut v: Version, at: i64) -> Version {
    if let Some(d) = bucket.default_retention.as_ref()
        && bucket.object_lock_enabled
        && v.lock_mode == LockMode::None
    {
        let days = i64::from(d.days) + 365 * i64::from(d.years);
        v.lock_mode = d.mode;
        v.retain_until_ms = at.saturating_add(days.saturating_mul(DAY_MS));
    }
    v
}

fn check_default(d: &DefaultRetention) -> Result<(), MetaError> {
    if d.mode == LockMode::None {
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
        match v.lock_mode {
            LockMode::Compliance => {
                return Some("the version is under COMPLIANCE retention".into());
            }
            LockMode::Governance if !bypass_governance => {
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
    mode: LockMode,
    until: i64,
    at: i64,
    bypass: bool,
) -> Result<(), MetaError> {
    if v.lock_mode == LockMode::None || v.retain_until_ms <= at {
        return Ok(());
    }
    let kept = mode != LockMode::None && until >= v.retain_until_ms;
    match v.lock_mode {
        LockMode::Compliance if kept && mode == LockMode::Compliance => Ok(()),
        LockMode::Compliance => Err(MetaError::AccessDenied(
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
) -> Result<(Bucket, Version), ApplyError> {
    let Some(b) = reads::bucket(c, bucket).await? else {
        return reject(MetaError::NoSuchBucket(bucket.into()));
    };
    if !b.object_lock_enabled {
        return reject(MetaError::InvalidRequest(
            "the bucket has no object lock configuration".into(),
        ));
    }
    let v = if version_id.is_empty() {
        reads::latest(c, bucket, key)
            .await?
            .ok_or_else(|| MetaError::NoSuchKey(key.into()))?
    } else {
        reads::version(c, bucket, key, version_id)
            .await?
            .map(|(v, _)| v)
            .ok_or_else(|| MetaError::NoSuchVersion(version_id.into()))?
    };
    if v.delete_marker {
        return reject(MetaError::MethodNotAllowed(
            "a delete marker has no retention or legal hold".into(),
        ));
    }
    Ok((b, v))
}

pub async fn put_bucket_versioning(
    c: &mut SqliteConnection,
    bucket: &str,
    status: Versioning,
) -> Outcome {
    let Some(b) = reads::bucket(c, bucket).await? else {
        return reject(MetaError::NoSuchBucket(bucket.into()));
    };
    match status {
        Versioning::Enabled => {}
        Versioning::Suspended if b.object_lock_enabled => {
            return reject(MetaError::InvalidBucketState(
                "versioning cannot be suspended on a bucket with object lock".into(),
            ));
        }
        Versioning::Suspended => {}
        Versioning::Unversioned => {
            return reject(invalid("versioning status must be Enabled or Suspended"));
        }
    }
    writes::set_versioning(c, bucket, status).await?;
    Ok(Response::Ok)
}

/// A lock bucket's default retention. `by` is the command's actor: the
/// bucket's maximum retention binds a command that names one (ADR 0027).
/// `enable` turns object lock on first, as AWS does for an existing
/// bucket since 2023: only on a versioning-enabled one (a lock bucket
/// stays versioned), and a no-op on a lock bucket.
pub async fn put_lock_configuration(
    c: &mut SqliteConnection,
    by: Option<&Actor>,
    bucket: &str,
    default: Option<&DefaultRetention>,
    enable: bool,
) -> Outcome {
    let Some(mut b) = reads::bucket(c, bucket).await? else {
        return reject(MetaError::NoSuchBucket(bucket.into()));
    };
    if enable && !b.object_lock_enabled {
        if b.versioning != Versioning::Enabled {
            return reject(MetaError::InvalidBucketState(
                "object lock can only be enabled on a versioning-enabled bucket".into(),
            ));
        }
        // Rolled back with the rest if the default below is refused.
        writes::enable_object_lock(c, bucket).await?;
        b.object_lock_enabled = true;
    }
    if !b.object_lock_enabled {
        return reject(MetaError::InvalidRequest(
            "object lock can only be configured on a bucket created with it".into(),
        ));
    }
    if let Some(d) = default {
        check_default(d)?;
        // A default within the limit in force stays within it: lowering
        // the limit below it is refused (`grants`).
        access::check_default_limit(c, by, &b, d).await?;
    }
    // A default applies to versions written later: existing versions keep
    // their own retention whatever happens to the default.
    writes::set_default_retention(c, bucket, default).await?;
    Ok(Response::Ok)
}

#[allow(clippy::too_many_arguments)]
pub async fn put_retention(
    c: &mut SqliteConnection,
    at: i64,
    by: Option<&Actor>,
    bucket: &str,
    key: &str,
    version_id: &str,
    mode: LockMode,
    until: i64,
    bypass: bool,
) -> Outcome {
    let (b, mut v) = lockable(c, bucket, key, version_id).await?;
    check_retention(mode, until, at)?;
    access::check_retention_limit(c, by, &b, at, until).await?;
    check_retention_change(&v, mode, until, at, bypass)?;
    v.lock_mode = mode;
    v.retain_until_ms = until;
    writes::set_lock(c, &v).await?;
    Ok(Response::Locked {
        version_id: v.version_id,
    })
}

pub async fn put_legal_hold(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
    version_id: &str,
    on: bool,
) -> Outcome {
    let (_, mut v) = lockable(c, bucket, key, version_id).await?;
    v.legal_hold = on;
    writes::set_lock(c, &v).await?;
    Ok(Response::Locked {
        version_id: v.version_id,
    })
}
