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
        public_access_block: None,
    }))
}

/// Deletes an empty bucket (for admins too: a version or a delete
/// marker keeps it), and the grants on it. With `abort_uploads`, as in
/// S3, open uploads do not keep it: they and their parts are deleted with
/// it. The answer is `Ok` however many parts there were (ADR 0031: no
/// answer grows with the part count); the handler that proposed it read
/// the parts' shards beforehand and frees them (ADR 0029). Without it (a
/// command from before issue 21), an upload keeps it, as it did then.
pub async fn delete(c: &mut SqliteConnection, name: &str, abort_uploads: bool) -> Outcome {
    if reads::bucket(c, name).await?.is_none() {
        return reject(MetaError::NoSuchBucket(name.into()));
    }
    // A version keeps the bucket whatever else: refused before any row
    // is touched.
    if abort_uploads && !reads::bucket_has_versions(c, name).await? {
        loop {
            // Always the first page: each upload read is deleted below.
            let page = reads::upload_ids(c, name, "", reads::MAX_PAGE).await?;
            if page.is_empty() {
                break;
            }
            for id in page {
                writes::delete_upload(c, &id).await?;
            }
        }
    }
    if !reads::bucket_is_empty(c, name).await? {
        return reject(MetaError::BucketNotEmpty(name.into()));
    }
    writes::delete_bucket(c, name).await?;
    Ok(Response::Ok)
}
