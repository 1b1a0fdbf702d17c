//! Who may do what (ADR 0027): the one place apply decides a command's
//! rights, before its topic runs, with the state at the command's place
//! in the log.
//!
//! - `by: None` is a command from before actors existed (or the
//!   cluster's own): it may do what it always could, so an old log
//!   replays to the state it built. The admin ops refuse it (no old log
//!   holds them), and the forward edge refuses any bucket op without
//!   an actor, so no caller can claim "legacy".
//! - `Admin(_)` may do anything here; object lock still binds it (its
//!   rules are in the topics, for everyone).
//! - `Key(k)`: the key must exist and be enabled. The bucket's owner (or
//!   a grant with owner) has read, write and owner; else the grant's read
//!   and write, independent of each other. A bucket that does not exist
//!   passes, so the topic answers NoSuchBucket as before.
//!
//! Also the bucket's maximum retention: its own limit, else the cluster
//! default (the settings row), else [`DEFAULT_MAX_RETENTION_DAYS`]. Like
//! the rights, it binds commands that name an actor, not an old log's.

use std::fmt;

pub use hamster_proto::access::Rights;
use sqlx::SqliteConnection;

use super::commands::{Actor, Command, MetaError, Op};
use super::model::{AccessKey, Bucket, BucketGrant, DefaultRetention};
use super::outcome::{ApplyError, reject};
use super::reads;

/// A right on a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
    Owner,
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Need::Read => "read",
            Need::Write => "write",
            Need::Owner => "owner",
        })
    }
}

impl Need {
    /// Whether `r` includes this right (owner implies read and write).
    pub fn met_by(self, r: Rights) -> bool {
        match self {
            Need::Read => r.can_read(),
            Need::Write => r.can_write(),
            Need::Owner => r.owner,
        }
    }
}

/// The rights `key_id` has on bucket `b`, given its grant row there.
fn rights_on(b: &Bucket, key_id: &str, grant: Option<&BucketGrant>) -> Rights {
    if !key_id.is_empty() && b.owner == key_id {
        return Rights::ALL;
    }
    match grant {
        Some(g) if g.owner => Rights::ALL,
        Some(g) => Rights {
            read: g.read,
            write: g.write,
            owner: false,
        },
        None => Rights::NONE,
    }
}

/// The rights of `key_id` on `bucket`: none for a missing, disabled or
/// empty key, or a missing bucket.
pub async fn rights(
    c: &mut SqliteConnection,
    key_id: &str,
    bucket: &str,
) -> Result<Rights, sqlx::Error> {
    if key_id.is_empty()
        || !reads::access_key(c, key_id)
            .await?
            .is_some_and(|k| k.enabled)
    {
        return Ok(Rights::NONE);
    }
    let Some(b) = reads::bucket(c, bucket).await? else {
        return Ok(Rights::NONE);
    };
    let grant = reads::grant(c, bucket, key_id).await?;
    Ok(rights_on(&b, key_id, grant.as_ref()))
}

/// The key, refused (AccessDenied) if it does not exist or is disabled.
async fn require_key(c: &mut SqliteConnection, key_id: &str) -> Result<AccessKey, ApplyError> {
    match reads::access_key(c, key_id).await? {
        Some(k) if k.enabled => Ok(k),
        Some(_) => reject(MetaError::AccessDenied(format!(
            "access key {key_id} is disabled"
        ))),
        None => reject(MetaError::AccessDenied(format!(
            "access key {key_id:?} does not exist"
        ))),
    }
}

/// Refuses (AccessDenied) an actor without `need` on `bucket`. A missing
/// bucket passes: the topic answers NoSuchBucket.
pub async fn require(
    c: &mut SqliteConnection,
    by: Option<&Actor>,
    bucket: &str,
    need: Need,
) -> Result<(), ApplyError> {
    let key_id = match by {
        None | Some(Actor::Admin(_)) => return Ok(()),
        Some(Actor::Key(k)) => k,
    };
    require_key(c, key_id).await?;
    let Some(b) = reads::bucket(c, bucket).await? else {
        return Ok(());
    };
    let grant = reads::grant(c, bucket, key_id).await?;
    if need.met_by(rights_on(&b, key_id, grant.as_ref())) {
        return Ok(());
    }
    reject(MetaError::AccessDenied(format!(
        "access key {key_id} has no {need} right on bucket {bucket}"
    )))
}

/// The bucket an old bucket op acts on and the right it needs (None: not
/// a bucket op, or CreateBucket, whose rules are [`creator`]'s).
pub fn need_of(op: &Op) -> Option<(&str, Need)> {
    Some(match op {
        Op::CommitVersion { version, .. } => (&version.bucket, Need::Write),
        Op::BeginMultipart { upload } => (&upload.bucket, Need::Write),
        Op::CommitPart { bucket, .. }
        | Op::CompleteMultipart { bucket, .. }
        | Op::AbortMultipart { bucket, .. } => (bucket, Need::Write),
        // Bypassing GOVERNANCE is an owner's power, asked for or not.
        Op::DeleteObject {
            bucket,
            bypass_governance,
            ..
        } => {
            let need = if *bypass_governance {
                Need::Owner
            } else {
                Need::Write
            };
            (bucket, need)
        }
        Op::PutBucketVersioning { bucket, .. }
        | Op::PutLockConfiguration { bucket, .. }
        | Op::PutPublicAccessBlock { bucket, .. }
        | Op::PutRetention { bucket, .. }
        | Op::PutLegalHold { bucket, .. } => (bucket, Need::Owner),
        Op::DeleteBucket { name, .. } => (name, Need::Owner),
        _ => return None,
    })
}

/// Ops only an admin may send (no old log holds them, so `None` is
/// refused too).
fn admin_only(op: &Op) -> bool {
    matches!(
        op,
        Op::AllowBucket { .. }
            | Op::DenyBucket { .. }
            | Op::SetBucket { .. }
            | Op::SetBucketDefaults { .. }
            | Op::AdoptBuckets { .. }
    )
}

/// The check apply runs before every command's topic.
pub async fn check(c: &mut SqliteConnection, cmd: &Command) -> Result<(), ApplyError> {
    if admin_only(&cmd.op) && !matches!(cmd.by, Some(Actor::Admin(_))) {
        return reject(MetaError::AccessDenied(format!(
            "{} is an admin's (hamster bucket ...)",
            cmd.op.name()
        )));
    }
    match need_of(&cmd.op) {
        Some((bucket, need)) => require(c, cmd.by.as_ref(), bucket, need).await,
        None => Ok(()),
    }
}

/// Who will own a bucket `by` creates, `owner` being the command's
/// field: a key owns what it creates (if it may create buckets; it names
/// no other owner); an admin (or an old command) names the owner or none.
pub async fn creator(
    c: &mut SqliteConnection,
    by: Option<&Actor>,
    owner: Option<&str>,
) -> Result<String, ApplyError> {
    match by {
        Some(Actor::Key(k)) => {
            if !require_key(c, k).await?.can_create_bucket {
                return reject(MetaError::AccessDenied(format!(
                    "access key {k} may not create buckets"
                )));
            }
            if owner.is_some() {
                return reject(MetaError::InvalidArgument(
                    "a key's new bucket is its own: only an admin names an owner".into(),
                ));
            }
            Ok(k.clone())
        }
        None | Some(Actor::Admin(_)) => match owner {
            None | Some("") => Ok(String::new()),
            Some(k) if reads::access_key(c, k).await?.is_some() => Ok(k.into()),
            Some(k) => reject(MetaError::NoSuchAccessKey(k.into())),
        },
    }
}

/// Whether `by` is the existing bucket `b`'s owner
/// (BucketAlreadyOwnedByYou). Only the owner column counts: a key with an
/// owner grant has the owner's powers, but the bucket is not its own.
pub fn owns(by: Option<&Actor>, b: &Bucket) -> bool {
    matches!(by, Some(Actor::Key(k)) if !k.is_empty() && b.owner == *k)
}

// ---------- maximum retention ----------

const DAY_MS: i64 = 86_400_000;
/// The cluster default when none is set: S3's longest default retention.
pub const DEFAULT_MAX_RETENTION_DAYS: u32 = 36_500;
/// The largest limit a bucket or the cluster may set (about 1000 years).
pub const MAX_RETENTION_DAYS_LIMIT: u32 = 365_000;
/// The settings row of the cluster default.
pub const MAX_RETENTION_SETTING: &str = "max_retention_days";

/// The cluster's default maximum retention, in days.
pub async fn cluster_max_retention_days(c: &mut SqliteConnection) -> Result<u32, sqlx::Error> {
    match reads::setting(c, MAX_RETENTION_SETTING).await? {
        None => Ok(DEFAULT_MAX_RETENTION_DAYS),
        Some(v) => v
            .parse()
            .map_err(|e: std::num::ParseIntError| sqlx::Error::Decode(Box::new(e))),
    }
}

/// The maximum retention in force on `b`, in days: its own, else the
/// cluster's.
pub async fn max_retention_days(c: &mut SqliteConnection, b: &Bucket) -> Result<u32, sqlx::Error> {
    match b.max_retention_days {
        Some(d) => Ok(d),
        None => cluster_max_retention_days(c).await,
    }
}

/// A valid limit to set (1..=[`MAX_RETENTION_DAYS_LIMIT`]).
pub fn check_limit(days: u32) -> Result<(), MetaError> {
    if (1..=MAX_RETENTION_DAYS_LIMIT).contains(&days) {
        return Ok(());
    }
    Err(MetaError::InvalidArgument(format!(
        "a maximum retention is 1 to {MAX_RETENTION_DAYS_LIMIT} days"
    )))
}

/// A default retention's length in days (a year is 365 days).
pub fn default_days(d: &DefaultRetention) -> u64 {
    u64::from(d.days) + 365 * u64::from(d.years)
}

/// Refuses a retain-until date beyond `b`'s maximum from `at` (the
/// command's time). 0 (no retention) passes, and so does any retention
/// of a command without an actor: an old log's command was accepted with
/// no limit, and replaying it must build the same state (ADR 0027).
pub async fn check_retention_limit(
    c: &mut SqliteConnection,
    by: Option<&Actor>,
    b: &Bucket,
    at: i64,
    until: i64,
) -> Result<(), ApplyError> {
    if by.is_none() {
        return Ok(());
    }
    let days = max_retention_days(c, b).await?;
    if until > at.saturating_add(i64::from(days).saturating_mul(DAY_MS)) {
        return reject(MetaError::InvalidRequest(format!(
            "retention beyond the bucket's maximum of {days} days"
        )));
    }
    Ok(())
}

/// Refuses a default retention longer than `b`'s maximum; like
/// [`check_retention_limit`], not for a command without an actor.
pub async fn check_default_limit(
    c: &mut SqliteConnection,
    by: Option<&Actor>,
    b: &Bucket,
    d: &DefaultRetention,
) -> Result<(), ApplyError> {
    if by.is_none() {
        return Ok(());
    }
    let days = max_retention_days(c, b).await?;
    if default_days(d) > u64::from(days) {
        return reject(MetaError::InvalidRequest(format!(
            "a default retention of {} days is beyond the bucket's maximum of {days} days",
            default_days(d)
        )));
    }
    Ok(())
}
