//! Buckets: creating and deleting them. (Versioning and lock settings
//! are object lock's, in [`super::object_lock`]; grants and owners after
//! creation, [`super::grants`]'.)

use sqlx::SqliteConnection;

use super::access;
use super::commands::{Actor, MetaError, Response};
use super::model::{Bucket, Versioning};
use super::outcome::{Outcome, invalid, reject};
use super::{reads, writes};

/// S3 bucket naming: 3-63 of [a-z0-9.-], starting and ending alphanumeric.
pub fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && !name.contains("..")
}

/// A new bucket. Who owns it and whether `by` may create it is
/// [`access::creator`]'s; a name taken answers BucketAlreadyOwnedByYou
/// to the key that owns it, BucketAlreadyExists to anyone else.
pub async fn create(
    c: &mut SqliteConnection,
    at: i64,
    by: Option<&Actor>,
    name: &str,
    lock: bool,
    owner: Option<&str>,
) -> Outcome {
    let owner = access::creator(c, by, owner).await?;
    if !valid_bucket_name(name) {
        return invalid(format!("invalid bucket name {name:?}"));
    }
    if let Some(b) = reads::bucket(c, name).await? {
        return reject(if access::owns(by, &b) {
            MetaError::BucketAlreadyOwnedByYou(name.into())
        } else {
            MetaError::BucketAlreadyExists(name.into())
        });
    }
    // Object lock needs versioning, so a lock bucket starts versioned.
    let versioning = if lock {
        Versioning::Enabled
    } else {
        Versioning::Unversioned
    };
    writes::insert_bucket(c, name, at, versioning, lock, &owner).await?;
    Ok(Response::Bucket(Bucket {
        name: name.into(),
        created_at_ms: at,
        versioning,
        object_lock_enabled: lock,
        default_retention: None,
        owner,
        max_retention_days: None,
    }))
}

/// Deletes an empty bucket (for admins too: a version, a delete marker
/// or an open upload keeps it), and the grants on it.
pub async fn delete(c: &mut SqliteConnection, name: &str) -> Outcome {
    if reads::bucket(c, name).await?.is_none() {
        return reject(MetaError::NoSuchBucket(name.into()));
    }
    if !reads::bucket_is_empty(c, name).await? {
        return reject(MetaError::BucketNotEmpty(name.into()));
    }
    writes::delete_bucket(c, name).await?;
    Ok(Response::Ok)
}
