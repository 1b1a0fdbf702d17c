//! An admin's management of who reaches a bucket (ADR 0027): grants,
//! the owner (one bucket, or every ownerless one: AdoptBuckets), the
//! bucket's retention limit and the cluster's. Only an
//! admin may send these ([`super::access::check`] refuses anyone else
//! before they get here).

use sqlx::SqliteConnection;

use super::access::{self, MAX_RETENTION_SETTING};
use super::commands::{MetaError, Response};
use super::model::{Bucket, BucketGrant};
use super::outcome::{ApplyError, Outcome, invalid, reject};
use super::{reads, writes};

async fn existing_bucket(c: &mut SqliteConnection, bucket: &str) -> Result<Bucket, ApplyError> {
    match reads::bucket(c, bucket).await? {
        Some(b) => Ok(b),
        None => reject(MetaError::NoSuchBucket(bucket.into())),
    }
}

/// Adds rights (never removes one): the key's grant becomes the union of
/// what it had and what is asked. Owner implies read and write, and the
/// row says so. The bucket's owner has every right already: it answers
/// the full grant and stores nothing (a row would outlive its ownership).
pub async fn allow(
    c: &mut SqliteConnection,
    bucket: &str,
    key_id: &str,
    read: bool,
    write: bool,
    owner: bool,
) -> Outcome {
    if !(read || write || owner) {
        return invalid("a grant needs at least one of read, write and owner");
    }
    let b = existing_bucket(c, bucket).await?;
    if reads::access_key(c, key_id).await?.is_none() {
        return reject(MetaError::NoSuchAccessKey(key_id.into()));
    }
    if b.owner == key_id {
        return Ok(Response::Grant(BucketGrant {
            bucket: bucket.into(),
            key_id: key_id.into(),
            read: true,
            write: true,
            owner: true,
        }));
    }
    let had = reads::grant(c, bucket, key_id).await?.unwrap_or_default();
    let owner = owner || had.owner;
    let g = BucketGrant {
        bucket: bucket.into(),
        key_id: key_id.into(),
        read: read || had.read || owner,
        write: write || had.write || owner,
        owner,
    };
    writes::put_grant(c, &g).await?;
    Ok(Response::Grant(g))
}

/// Removes every right the key's grant gives (its ownership cannot be
/// removed this way). Answers Ok whether or not it had a grant.
pub async fn deny(c: &mut SqliteConnection, bucket: &str, key_id: &str) -> Outcome {
    let b = existing_bucket(c, bucket).await?;
    if !key_id.is_empty() && b.owner == key_id {
        return reject(MetaError::InvalidRequest(format!(
            "{key_id} owns bucket {bucket}: give the bucket another owner first"
        )));
    }
    writes::delete_grant(c, bucket, key_id).await?;
    Ok(Response::Ok)
}

/// Changes a bucket's owner (`Some("")`: none) and/or its own retention
/// limit (`Some(0)`: the cluster's). A limit below the bucket's default
/// retention is refused, so a default never exceeds the limit in force.
/// The new owner's grant row goes (ownership includes it), so a later
/// transfer leaves it nothing it was not given after.
pub async fn set_bucket(
    c: &mut SqliteConnection,
    bucket: &str,
    owner: Option<&str>,
    max_retention_days: Option<u32>,
) -> Outcome {
    if owner.is_none() && max_retention_days.is_none() {
        return invalid("nothing to set: name an owner or a maximum retention");
    }
    let mut b = existing_bucket(c, bucket).await?;
    if let Some(k) = owner
        && !k.is_empty()
        && reads::access_key(c, k).await?.is_none()
    {
        return reject(MetaError::NoSuchAccessKey(k.into()));
    }
    if let Some(days) = max_retention_days {
        let own = (days != 0).then_some(days);
        if let Some(d) = own {
            access::check_limit(d)?;
        }
        b.max_retention_days = own;
        if let Some(d) = &b.default_retention {
            let limit = access::max_retention_days(c, &b).await?;
            if access::default_days(d) > u64::from(limit) {
                return reject(MetaError::InvalidRequest(format!(
                    "bucket {bucket}'s default retention of {} days is beyond a maximum of \
                     {limit} days: shorten the default first",
                    access::default_days(d)
                )));
            }
        }
        writes::set_bucket_max_retention(c, bucket, own).await?;
    }
    if let Some(k) = owner {
        b.owner = k.into();
        writes::set_bucket_owner(c, bucket, k).await?;
        if !k.is_empty() {
            writes::delete_grant(c, bucket, k).await?;
        }
    }
    Ok(Response::Bucket(b))
}

/// Gives every ownerless bucket `owner`, or (None) the cluster's only
/// access key (after an upgrade, the one that can have made them; ADR
/// 0027); refused when there are several or none. The new
/// owner's grant rows on them go, as in [`set_bucket`]. Buckets with an
/// owner are left alone; with none ownerless the answer is empty.
pub async fn adopt(c: &mut SqliteConnection, owner: Option<&str>) -> Outcome {
    let owner = match owner {
        Some("") => return invalid("name the owner's access key id, or none for the only key"),
        Some(k) => {
            if reads::access_key(c, k).await?.is_none() {
                return reject(MetaError::NoSuchAccessKey(k.into()));
            }
            k.to_string()
        }
        None => match reads::access_key_ids(c, 2).await?.as_slice() {
            [k] => k.clone(),
            [] => return reject(MetaError::InvalidRequest("no access key".into())),
            _ => {
                return reject(MetaError::InvalidRequest(
                    "several access keys: name the owner".into(),
                ));
            }
        },
    };
    let buckets = reads::ownerless_buckets(c).await?;
    writes::adopt_buckets(c, &owner).await?;
    Ok(Response::Adopted { owner, buckets })
}

/// Sets the cluster's default maximum retention, refused if a bucket
/// bound by it has a longer default retention.
pub async fn set_defaults(c: &mut SqliteConnection, max_retention_days: u32) -> Outcome {
    access::check_limit(max_retention_days)?;
    for b in reads::buckets_on_cluster_limit(c).await? {
        if let Some(d) = &b.default_retention
            && access::default_days(d) > u64::from(max_retention_days)
        {
            return reject(MetaError::InvalidRequest(format!(
                "bucket {}'s default retention of {} days is beyond {max_retention_days} days: \
                 shorten it or give the bucket its own maximum first",
                b.name,
                access::default_days(d)
            )));
        }
    }
    writes::put_setting(
        c,
        MAX_RETENTION_SETTING,
        Some(&max_retention_days.to_string()),
    )
    .await?;
    Ok(Response::Defaults { max_retention_days })
}
