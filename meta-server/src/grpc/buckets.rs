//! Buckets as both services answer them (the owner's display name, the
//! retention limit in force), bucket listing pages, and the Admin
//! service's bucket RPCs (ADR 0027): create with an owner, info, allow,
//! deny, set, adopt (ownerless buckets), and the cluster's defaults. Admin writes act as
//! [`Actor::Admin`]; what is checked here (names, ranges) only gives a
//! clear answer early: apply checks it again.

use std::collections::HashMap;

use hamster_proto::access::display_name;
use hamster_proto::{Role, pb, transport};
use sqlx::SqliteConnection;
use tonic::Request;

use super::errors::{ServiceError, expect_ok, unexpected};
use crate::cluster::Meta;
use crate::state::access;
use crate::state::buckets::valid_bucket_name;
use crate::state::commands::{Actor, MetaError, Op, Response as R};
use crate::state::model::{AccessKey, Bucket, BucketGrant};
use crate::state::outcome::reject;
use crate::state::reads as q;

pub use access::MAX_RETENTION_DAYS_LIMIT as MAX_RETENTION_DAYS;
pub use q::MAX_BUCKETS_PAGE;

/// ListBuckets' page size: 0 or more than the cap is the cap.
pub fn buckets_page_size(max: u32) -> u32 {
    if max == 0 {
        MAX_BUCKETS_PAGE
    } else {
        max.min(MAX_BUCKETS_PAGE)
    }
}

/// S3's DisplayName of a bucket's owner: the key's name, else its id;
/// "" when the bucket has no owner or the key no longer exists.
pub fn owner_name(owner: &str, key: Option<&AccessKey>) -> String {
    match key {
        _ if owner.is_empty() => String::new(),
        Some(k) => display_name(&k.id, &k.name),
        None => String::new(),
    }
}

/// A bucket as answered: with its owner's display name and the limit in
/// force (its own, else the cluster's).
fn bucket_pb(b: Bucket, owner_name: String, cluster_max_days: u32) -> pb::Bucket {
    let max_retention_days = b
        .max_retention_days
        .filter(|d| *d > 0)
        .unwrap_or(cluster_max_days);
    pb::Bucket {
        owner_name,
        max_retention_days,
        ..b.into()
    }
}

async fn name_of(c: &mut SqliteConnection, owner: &str) -> Result<String, sqlx::Error> {
    if owner.is_empty() {
        return Ok(String::new());
    }
    Ok(owner_name(owner, q::access_key(c, owner).await?.as_ref()))
}

/// Every bucket a service answers goes through here (or
/// [`answer_buckets`]), so each carries its owner's name and its limit.
pub async fn answer_bucket(c: &mut SqliteConnection, b: Bucket) -> Result<pb::Bucket, sqlx::Error> {
    let cluster = access::cluster_max_retention_days(c).await?;
    let name = name_of(c, &b.owner).await?;
    Ok(bucket_pb(b, name, cluster))
}

/// [`answer_bucket`] for a page: each owner's name is looked up once.
pub async fn answer_buckets(
    c: &mut SqliteConnection,
    buckets: Vec<Bucket>,
) -> Result<Vec<pb::Bucket>, sqlx::Error> {
    let cluster = access::cluster_max_retention_days(c).await?;
    let mut names: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(buckets.len());
    for b in buckets {
        let name = match names.get(&b.owner) {
            Some(n) => n.clone(),
            None => {
                let n = name_of(c, &b.owner).await?;
                names.insert(b.owner.clone(), n.clone());
                n
            }
        };
        out.push(bucket_pb(b, name, cluster));
    }
    Ok(out)
}

/// A grant as answered. Owner implies read and write, so the flags say
/// so whatever the row holds: a gateway may test `read` alone.
pub fn grant_pb(g: BucketGrant) -> pb::BucketGrant {
    pb::BucketGrant {
        read: g.read || g.owner,
        write: g.write || g.owner,
        owner: g.owner,
        bucket: g.bucket,
        access_key_id: g.key_id,
    }
}

/// The grants on `b` other than its owner's own (that one is
/// `Bucket.owner`): what Get*Acl and `hamster bucket info` show.
pub async fn grants_on(
    c: &mut SqliteConnection,
    b: &Bucket,
) -> Result<Vec<pb::BucketGrant>, sqlx::Error> {
    let grants = q::bucket_grants(c, &b.name).await?;
    Ok(grants.into_iter().map(grant_pb).collect())
}

/// One page of buckets in name order after the token: those `key` owns
/// or is granted on, or (None: an admin) all. The next token is the last
/// name of a page that has more after it.
pub async fn list(
    meta: &Meta,
    key: Option<&str>,
    r: &pb::ListBucketsRequest,
) -> Result<pb::ListBucketsResponse, ServiceError> {
    let limit = buckets_page_size(r.max_buckets);
    let (buckets, more) = meta
        .read(async |c| {
            let (page, more) =
                q::buckets_page(c, key, &r.prefix, &r.continuation_token, limit).await?;
            Ok((answer_buckets(c, page).await?, more))
        })
        .await?;
    let next_continuation_token = match buckets.last() {
        Some(b) if more => b.name.clone(),
        _ => String::new(),
    };
    Ok(pb::ListBucketsResponse {
        buckets,
        next_continuation_token,
    })
}

/// The bucket a create or set answered.
pub fn bucket_of(r: R) -> Result<Bucket, ServiceError> {
    match r {
        R::Bucket(b) => Ok(b),
        other => Err(unexpected(other)),
    }
}

/// `b` as answered, read after the write that made it (linearizable).
pub async fn answered(meta: &Meta, b: Bucket) -> Result<pb::Bucket, ServiceError> {
    Ok(meta.read(async |c| answer_bucket(c, b).await).await?)
}

/// Who an Admin call acts for: the admin certificate's node id.
pub fn admin<T>(req: &Request<T>) -> Result<Actor, ServiceError> {
    let p = transport::peer(req).ok_or(ServiceError::Unauthenticated)?;
    if p.role != Role::Admin {
        return Err(ServiceError::RoleNotAdmitted(format!(
            "{} may not manage buckets",
            p.role
        )));
    }
    Ok(Actor::Admin(p.node_id.clone()))
}

fn check_bucket(name: &str) -> Result<(), ServiceError> {
    if valid_bucket_name(name) {
        Ok(())
    } else {
        Err(ServiceError::InvalidArgument(format!(
            "invalid bucket name {name:?}: 3 to 63 of a-z, 0-9, '.', '-', starting and ending with a letter or digit"
        )))
    }
}

/// Access key ids are ASCII letters and digits (ours: "HK" and 18 more).
pub fn check_key_id(id: &str) -> Result<(), ServiceError> {
    if (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(ServiceError::InvalidArgument(format!(
            "invalid access key id {id:?}: 1 to 128 ASCII letters and digits"
        )))
    }
}

/// A maximum retention: 1 to [`MAX_RETENTION_DAYS`] days, or (where
/// `zero_is_default`) 0 for "the cluster's default".
fn check_days(days: u32, zero_is_default: bool) -> Result<(), ServiceError> {
    if (days == 0 && zero_is_default) || (1..=MAX_RETENTION_DAYS).contains(&days) {
        return Ok(());
    }
    let zero = if zero_is_default {
        " (0: the cluster default)"
    } else {
        ""
    };
    Err(ServiceError::InvalidArgument(format!(
        "max_retention_days must be 1 to {MAX_RETENTION_DAYS}{zero}, not {days}"
    )))
}

/// Admin's CreateBucket: owned by the key named ("": none yet).
pub async fn create(
    meta: &Meta,
    by: Actor,
    r: pb::AdminCreateBucketRequest,
) -> Result<pb::CreateBucketResponse, ServiceError> {
    check_bucket(&r.name)?;
    let owner = (!r.owner.is_empty()).then_some(r.owner);
    if let Some(k) = &owner {
        check_key_id(k)?;
    }
    let op = Op::CreateBucket {
        name: r.name,
        object_lock_enabled: r.object_lock_enabled,
        owner,
    };
    let b = bucket_of(meta.write_for(by, None, op).await?)?;
    Ok(pb::CreateBucketResponse {
        bucket: Some(answered(meta, b).await?),
    })
}

/// A bucket, its grants, its counts and its limits (linearizable).
pub async fn info(meta: &Meta, name: String) -> Result<pb::BucketInfoResponse, ServiceError> {
    let out = meta
        .read_or_refuse(async |c| {
            let Some(b) = q::bucket(c, &name).await? else {
                return reject(MetaError::NoSuchBucket(name.clone()));
            };
            let grants = grants_on(c, &b).await?;
            let stats = q::bucket_stats(c, &name).await?;
            let own_max_retention_days = b.max_retention_days.unwrap_or(0);
            Ok(pb::BucketInfoResponse {
                bucket: Some(answer_bucket(c, b).await?),
                grants,
                objects: stats.objects,
                bytes: stats.bytes,
                versions: stats.versions,
                version_bytes: stats.version_bytes,
                own_max_retention_days,
                cluster_max_retention_days: access::cluster_max_retention_days(c).await?,
                uploads: stats.uploads,
            })
        })
        .await??;
    Ok(out)
}

pub async fn allow(
    meta: &Meta,
    by: Actor,
    r: pb::AllowBucketRequest,
) -> Result<pb::AllowBucketResponse, ServiceError> {
    check_bucket(&r.bucket)?;
    check_key_id(&r.access_key_id)?;
    if !(r.read || r.write || r.owner) {
        return Err(ServiceError::InvalidArgument(
            "allow at least one of read, write, owner".into(),
        ));
    }
    let op = Op::AllowBucket {
        bucket: r.bucket,
        key_id: r.access_key_id,
        read: r.read,
        write: r.write,
        owner: r.owner,
    };
    match meta.write_for(by, None, op).await? {
        R::Grant(g) => Ok(pb::AllowBucketResponse {
            grant: Some(grant_pb(g)),
        }),
        other => Err(unexpected(other)),
    }
}

pub async fn deny(meta: &Meta, by: Actor, r: pb::DenyBucketRequest) -> Result<(), ServiceError> {
    check_bucket(&r.bucket)?;
    check_key_id(&r.access_key_id)?;
    let op = Op::DenyBucket {
        bucket: r.bucket,
        key_id: r.access_key_id,
    };
    expect_ok(meta.write_for(by, None, op).await?)
}

/// Sets what is given; with nothing given, answers the bucket as it is.
pub async fn set(
    meta: &Meta,
    by: Actor,
    r: pb::SetBucketRequest,
) -> Result<pb::SetBucketResponse, ServiceError> {
    check_bucket(&r.name)?;
    if let Some(k) = r.owner.as_deref().filter(|k| !k.is_empty()) {
        check_key_id(k)?;
    }
    if let Some(d) = r.max_retention_days {
        check_days(d, true)?;
    }
    let bucket = if r.owner.is_none() && r.max_retention_days.is_none() {
        let name = r.name;
        meta.read_or_refuse(async |c| match q::bucket(c, &name).await? {
            Some(b) => Ok(answer_bucket(c, b).await?),
            None => reject(MetaError::NoSuchBucket(name.clone())),
        })
        .await??
    } else {
        let op = Op::SetBucket {
            bucket: r.name,
            owner: r.owner,
            max_retention_days: r.max_retention_days,
        };
        answered(meta, bucket_of(meta.write_for(by, None, op).await?)?).await?
    };
    Ok(pb::SetBucketResponse {
        bucket: Some(bucket),
    })
}

/// Gives every ownerless bucket an owner: the key named, or ("") the
/// cluster's only key (apply refuses when there are several or none).
pub async fn adopt(
    meta: &Meta,
    by: Actor,
    r: pb::AdoptBucketsRequest,
) -> Result<pb::AdoptBucketsResponse, ServiceError> {
    let owner = (!r.owner.is_empty()).then_some(r.owner);
    if let Some(k) = &owner {
        check_key_id(k)?;
    }
    match meta.write_for(by, None, Op::AdoptBuckets { owner }).await? {
        R::Adopted { owner, buckets } => Ok(pb::AdoptBucketsResponse { owner, buckets }),
        other => Err(unexpected(other)),
    }
}

/// Sets the cluster's default maximum retention if given; answers the
/// value in force.
pub async fn defaults(
    meta: &Meta,
    by: Actor,
    r: pb::SetBucketDefaultsRequest,
) -> Result<pb::SetBucketDefaultsResponse, ServiceError> {
    let max_retention_days = match r.max_retention_days {
        None => {
            meta.read(async |c| access::cluster_max_retention_days(c).await)
                .await?
        }
        Some(days) => {
            check_days(days, false)?;
            let op = Op::SetBucketDefaults {
                max_retention_days: days,
            };
            match meta.write_for(by, None, op).await? {
                R::Defaults { max_retention_days } => max_retention_days,
                other => return Err(unexpected(other)),
            }
        }
    };
    Ok(pb::SetBucketDefaultsResponse { max_retention_days })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, name: &str) -> AccessKey {
        AccessKey {
            id: id.into(),
            name: name.into(),
            created_at_ms: 1,
            enabled: true,
            can_create_bucket: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_page_is_at_most_ten_thousand_buckets_and_zero_means_the_most() {
        assert_eq!(buckets_page_size(0), 10_000);
        assert_eq!(buckets_page_size(1), 1);
        assert_eq!(buckets_page_size(10_000), 10_000);
        assert_eq!(buckets_page_size(10_001), 10_000);
        assert_eq!(buckets_page_size(u32::MAX), 10_000);
    }

    #[test]
    fn the_owner_is_shown_by_name_else_by_id_and_never_when_gone() {
        let named = key("HKAAAA", "backups");
        let unnamed = key("HKBBBB", "");
        assert_eq!(owner_name("HKAAAA", Some(&named)), "backups");
        assert_eq!(owner_name("HKBBBB", Some(&unnamed)), "HKBBBB");
        assert_eq!(owner_name("HKGONE", None), "");
        assert_eq!(owner_name("", None), "");
    }

    #[test]
    fn a_bucket_answers_its_own_limit_else_the_clusters() {
        let b = |own| Bucket {
            name: "b1".into(),
            owner: "HKAAAA".into(),
            max_retention_days: own,
            ..Default::default()
        };
        let own = bucket_pb(b(Some(30)), "backups".into(), 36_500);
        assert_eq!(
            (
                own.max_retention_days,
                own.owner.as_str(),
                own.owner_name.as_str()
            ),
            (30, "HKAAAA", "backups")
        );
        assert_eq!(
            bucket_pb(b(None), String::new(), 36_500).max_retention_days,
            36_500
        );
        assert_eq!(
            bucket_pb(b(Some(0)), String::new(), 100).max_retention_days,
            100
        );
    }

    #[test]
    fn an_owner_grant_answers_read_and_write_too() {
        let g = grant_pb(BucketGrant {
            bucket: "b1".into(),
            key_id: "HKAAAA".into(),
            owner: true,
            ..Default::default()
        });
        assert!(g.read && g.write && g.owner, "{g:?}");
        let drop_box = grant_pb(BucketGrant {
            bucket: "b1".into(),
            key_id: "HKAAAA".into(),
            write: true,
            ..Default::default()
        });
        assert!(!drop_box.read && drop_box.write && !drop_box.owner);
        assert_eq!(drop_box.access_key_id, "HKAAAA");
    }

    #[test]
    fn arguments_are_checked_before_anything_is_proposed() {
        assert!(check_key_id("HKABCDEFGHIJKLMNOPQR").is_ok());
        for bad in ["", "HK AAAA", "HK/../x", &"A".repeat(129)] {
            let e = check_key_id(bad).expect_err(bad);
            assert!(matches!(e, ServiceError::InvalidArgument(_)), "{e:?}");
        }
        assert!(check_bucket("my-bucket").is_ok());
        assert!(check_bucket("My_Bucket").is_err());
        assert!(check_days(0, true).is_ok());
        assert!(check_days(0, false).is_err());
        assert!(check_days(365_000, false).is_ok());
        let e = check_days(365_001, true).expect_err("too long");
        assert!(e.to_string().contains("365000"), "{e}");
    }
}
