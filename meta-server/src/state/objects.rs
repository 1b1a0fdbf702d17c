//! Objects: committing a version (a PUT's linearization point) and
//! deleting one, by id or by writing a delete marker. Which version a
//! bucket's versioning state keeps or replaces is decided here; what
//! object lock forbids, in [`super::object_lock`]. What is answered as
//! freed never holds a shard another row still names
//! (`durability::unnamed`).

use sqlx::SqliteConnection;

use super::commands::{Actor, MetaError, Response};
use super::model::{Bucket, ShardMap, Version, Versioning};
use super::object_lock::{self, deletion_blocked};
use super::outcome::{ApplyError, Outcome, invalid, reject};
use super::{access, durability, key_rotation, lifecycle};
use super::{reads, writes};

/// The version id of the "null" version (unversioned and suspended buckets).
pub const NULL_VERSION: &str = "null";

/// S3 keys: 1 to 1024 bytes of UTF-8 (a `String` is UTF-8 already).
pub fn valid_key(key: &str) -> bool {
    (1..=1024).contains(&key.len())
}

/// Shard maps a version holds: its own, or each of its parts'.
pub(super) fn shards_of(v: &Version) -> Vec<ShardMap> {
    v.shard_map
        .iter()
        .cloned()
        .chain(v.parts.iter().filter_map(|p| p.shard_map.clone()))
        .collect()
}

/// Whether `new` is a retried proposal of the write that stored `old`.
/// Shard ids are fresh per write, so the same non-empty shards, size, ETag
/// and wrapped key mean the same upload. A retry is stamped anew, so its
/// timestamps (and a default retention counted from them) do not count.
fn same_write(old: &Version, new: &Version) -> bool {
    let shards = shards_of(old);
    !shards.is_empty()
        && shards == shards_of(new)
        && old.size == new.size
        && old.etag == new.etag
        && old.wrapped_dek == new.wrapped_dek
}

/// What storing a version answers: the version as stored, the shards of
/// the version it replaced, and whether the bucket was ever versioned.
pub(super) type Stored = (Version, Vec<ShardMap>, bool);

/// Stores `v` at `seq`, with the bucket's default retention if it carries
/// none. On a bucket that is not versioning-enabled the version becomes
/// the "null" version and replaces the previous one.
pub(super) async fn store_version(
    c: &mut SqliteConnection,
    seq: i64,
    at: i64,
    v: Version,
) -> Result<Stored, ApplyError> {
    let bucket = reads::bucket(c, &v.bucket).await?;
    store_version_in(c, seq, at, v, bucket).await
}

/// [`store_version`] with the bucket row already read in this command
/// (nothing between wrote it): one statement fewer per commit.
async fn store_version_in(
    c: &mut SqliteConnection,
    seq: i64,
    at: i64,
    v: Version,
    bucket: Option<Bucket>,
) -> Result<Stored, ApplyError> {
    let Some(bucket) = bucket else {
        return reject(MetaError::NoSuchBucket(v.bucket));
    };
    if !valid_key(&v.key) {
        return invalid("key must be 1 to 1024 bytes");
    }
    let mut v = object_lock::with_default(&bucket, v, at);
    let versioned = bucket.versioning != Versioning::Unversioned;
    let mut freed = Vec::new();
    if bucket.versioning == Versioning::Enabled {
        if v.version_id.is_empty() || v.version_id == NULL_VERSION {
            return invalid("a versioned commit needs a version id");
        }
        if let Some((existing, _)) = reads::version(c, &v.bucket, &v.key, &v.version_id).await? {
            // A retried proposal of the same commit is answered, not doubled.
            return if same_write(&existing, &v) {
                Ok((existing, Vec::new(), versioned))
            } else {
                invalid(format!("version id {} already used", v.version_id))
            };
        }
    } else {
        v.version_id = NULL_VERSION.into();
        if let Some((old, _)) = reads::version(c, &v.bucket, &v.key, NULL_VERSION).await? {
            // A retried proposal is answered, not redone: redoing it would
            // answer the kept object's own shards as freed.
            if same_write(&old, &v) {
                return Ok((old, Vec::new(), versioned));
            }
            // Replacing the null version destroys it: the lock rules apply.
            if let Some(why) = deletion_blocked(&old, at, false) {
                return reject(MetaError::AccessDenied(why));
            }
            freed = shards_of(&old);
            writes::delete_version(c, &v.bucket, &v.key, NULL_VERSION).await?;
        }
    }
    writes::insert_version(c, seq, &v).await?;
    Ok((v, freed, versioned))
}

/// S3's conditional write (If-Match / If-None-Match: *), as a command
/// carries it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Condition<'a> {
    pub if_match: Option<&'a str>,
    pub if_none_match: bool,
}

impl Condition<'_> {
    /// Checked at apply, where writes are ordered: the gateway checked it
    /// before taking the body, so failing here means a racing write won
    /// (409, never 412). A delete marker counts as no object. `retry`
    /// says whether the current version is this very write (a retried
    /// proposal), which its own condition must not refuse.
    pub(super) async fn check(
        self,
        c: &mut SqliteConnection,
        bucket: &str,
        key: &str,
        retry: impl Fn(&Version) -> bool,
    ) -> Result<(), ApplyError> {
        if self.if_match.is_none() && !self.if_none_match {
            return Ok(());
        }
        let current = reads::latest(c, bucket, key)
            .await?
            .filter(|v| !v.delete_marker);
        if current.as_ref().is_some_and(retry) {
            return Ok(());
        }
        if self.if_none_match && current.is_some() {
            return reject(MetaError::ConditionalRequestConflict(
                "an object was written at this key meanwhile".into(),
            ));
        }
        if let Some(want) = self.if_match {
            let want = want.trim_matches('"');
            match &current {
                Some(v) if want == "*" || v.etag.trim_matches('"') == want => {}
                Some(_) => {
                    return reject(MetaError::ConditionalRequestConflict(
                        "the object changed meanwhile".into(),
                    ));
                }
                None => {
                    return reject(MetaError::ConditionalRequestConflict(
                        "the object was deleted meanwhile".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A PUT's version. `by` is the command's actor: the bucket's maximum
/// retention binds a command that names one (ADR 0027).
pub async fn commit(
    c: &mut SqliteConnection,
    seq: i64,
    at: i64,
    by: Option<&Actor>,
    mut v: Version,
    cond: Condition<'_>,
) -> Outcome {
    // Only CompleteMultipart's apply names the upload a version completed
    // (a repeated completion is answered with that version): a caller's
    // could plant one. No command from before issue 21 carries it.
    v.upload_id.clear();
    if v.delete_marker {
        return invalid("delete markers are made by DeleteObject");
    }
    // Parts are chosen by CompleteMultipartUpload from what was uploaded;
    // a caller naming its own could point at another object's shards.
    if !v.parts.is_empty() {
        return invalid("parts are committed by CompleteMultipartUpload");
    }
    // `created_at_ms` is the leader's time, written into the command when
    // it stamped `at` (batch::stamp): stored as the command carries it, so
    // an old log replays to the times it had.
    let bucket = reads::bucket(c, &v.bucket).await?;
    if let Some(b) = &bucket {
        object_lock::check_new_lock(b, &v, at)?;
        access::check_retention_limit(c, by, b, at, v.retain_until_ms).await?;
        cond.check(c, &v.bucket, &v.key, |cur| same_write(cur, &v))
            .await?;
    }
    key_rotation::check_write_key(c, &v.kek_fingerprint).await?;
    if let Some(map) = &v.shard_map {
        lifecycle::check_new_map(c, map).await?;
    }
    // None of the checks above writes: the bucket row read is current.
    let (version, freed, versioned) = store_version_in(c, seq, at, v, bucket).await?;
    let freed = durability::unnamed(c, freed).await?;
    Ok(Response::Committed {
        version,
        freed,
        versioned,
    })
}

/// A delete marker at `at`.
fn marker(bucket: &str, key: &str, id: &str, at: i64) -> Version {
    Version {
        bucket: bucket.into(),
        key: key.into(),
        version_id: id.into(),
        created_at_ms: at,
        delete_marker: true,
        ..Version::default()
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn delete(
    c: &mut SqliteConnection,
    seq: i64,
    at: i64,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    marker_version_id: &str,
    bypass: bool,
) -> Outcome {
    let Some(b) = reads::bucket(c, bucket).await? else {
        return reject(MetaError::NoSuchBucket(bucket.into()));
    };
    if let Some(id) = version_id {
        let Some((v, _)) = reads::version(c, bucket, key, id).await? else {
            return reject(MetaError::NoSuchVersion(id.into()));
        };
        if let Some(why) = deletion_blocked(&v, at, bypass) {
            return reject(MetaError::AccessDenied(why));
        }
        writes::delete_version(c, bucket, key, id).await?;
        return Ok(Response::Deleted {
            version_id: id.into(),
            delete_marker: v.delete_marker,
            freed: durability::unnamed(c, shards_of(&v)).await?,
        });
    }
    match b.versioning {
        Versioning::Enabled => {
            if marker_version_id.is_empty() || marker_version_id == NULL_VERSION {
                return invalid("a delete marker needs a version id");
            }
            let new = marker(bucket, key, marker_version_id, at);
            // The id may be taken: by this same marker (a retried proposal,
            // answered, not redone) or by another version (refused). The
            // insert would fail and stop the state machine.
            if let Some((existing, _)) = reads::version(c, bucket, key, marker_version_id).await? {
                if existing != new {
                    return invalid(format!("version id {marker_version_id} already used"));
                }
            } else {
                writes::insert_version(c, seq, &new).await?;
            }
            Ok(Response::Deleted {
                version_id: marker_version_id.into(),
                delete_marker: true,
                freed: Vec::new(),
            })
        }
        Versioning::Suspended => {
            // The null version gives way to a null delete marker.
            let mut freed = Vec::new();
            if let Some((old, _)) = reads::version(c, bucket, key, NULL_VERSION).await? {
                if let Some(why) = deletion_blocked(&old, at, bypass) {
                    return reject(MetaError::AccessDenied(why));
                }
                freed = shards_of(&old);
                writes::delete_version(c, bucket, key, NULL_VERSION).await?;
            }
            writes::insert_version(c, seq, &marker(bucket, key, NULL_VERSION, at)).await?;
            Ok(Response::Deleted {
                version_id: NULL_VERSION.into(),
                delete_marker: true,
                freed: durability::unnamed(c, freed).await?,
            })
        }
        Versioning::Unversioned => {
            // Remove the object if there is one; S3 answers
            // success either way.
            let mut freed = Vec::new();
            if let Some((old, _)) = reads::version(c, bucket, key, NULL_VERSION).await? {
                freed = shards_of(&old);
                writes::delete_version(c, bucket, key, NULL_VERSION).await?;
            }
            Ok(Response::Deleted {
                version_id: String::new(),
                delete_marker: false,
                freed: durability::unnamed(c, freed).await?,
            })
        }
    }
}
