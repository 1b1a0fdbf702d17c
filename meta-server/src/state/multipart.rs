//! Multipart uploads: begin, store a part, complete into a version (stored
//! as [`super::objects`] stores any version), abort.

use md5::{Digest, Md5};
use sqlx::SqliteConnection;

use super::commands::{Actor, MetaError, Response};
use super::model::{Part, ShardMap, Upload, Version, Versioning};
use super::object_lock;
use super::objects::{Condition, store_version, valid_key};
use super::outcome::{ApplyError, Outcome, invalid, reject};
use super::{access, durability, key_rotation, lifecycle};
use super::{reads, writes};

/// S3's minimum size of every part but the last.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// TEST HOOK, never for production (`--test-min-part-size`, hidden): a
/// smaller minimum, so a test can complete a 10,000-part object of small
/// parts (ADR 0031). Set once at start, before anything applies; apply
/// must agree on every node, so a test sets it on every meta-server.
static TEST_MIN_PART_SIZE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Sets the test hook above (0: S3's minimum).
pub fn set_test_min_part_size(n: u64) {
    TEST_MIN_PART_SIZE.store(n, std::sync::atomic::Ordering::Relaxed);
}

mod composite;

fn min_part_size() -> u64 {
    match TEST_MIN_PART_SIZE.load(std::sync::atomic::Ordering::Relaxed) {
        0 => MIN_PART_SIZE,
        n => n,
    }
}

/// Opens an upload. Its template's retention is checked against the
/// bucket's maximum here, once (for a command naming an actor, ADR
/// 0027): [`complete`] does not check it again, so an upload begun within
/// the limit completes even if the limit was lowered since.
pub async fn begin(c: &mut SqliteConnection, at: i64, by: Option<&Actor>, u: &Upload) -> Outcome {
    let Some(bucket) = reads::bucket(c, &u.bucket).await? else {
        return reject(MetaError::NoSuchBucket(u.bucket.clone()));
    };
    // The lock settings the completed object will carry, checked now.
    object_lock::check_new_lock(&bucket, &u.template, at)?;
    access::check_retention_limit(c, by, &bucket, at, u.template.retain_until_ms).await?;
    if !valid_key(&u.key) {
        return invalid("key must be 1 to 1024 bytes");
    }
    if u.upload_id.is_empty() || reads::upload(c, &u.upload_id).await?.is_some() {
        return invalid("upload id missing or already used");
    }
    writes::insert_upload(c, u).await?;
    Ok(Response::Upload(u.clone()))
}

/// The upload, if it exists and belongs to bucket/key.
async fn upload_for(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<Upload, ApplyError> {
    match reads::upload(c, upload_id).await? {
        Some(u) if u.bucket == bucket && u.key == key => Ok(u),
        _ => reject(MetaError::NoSuchUpload(upload_id.into())),
    }
}

pub async fn commit_part(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
    upload_id: &str,
    part: &Part,
) -> Outcome {
    upload_for(c, bucket, key, upload_id).await?;
    key_rotation::check_write_key(c, &part.kek_fingerprint).await?;
    if !(1..=10_000).contains(&part.part_number) {
        return invalid("part number must be 1 to 10000");
    }
    if let Some(map) = &part.shard_map {
        lifecycle::check_new_map(c, map).await?;
    }
    // Only this part's row: reading every part made 10,000 commits
    // quadratic (ADR 0031).
    let previous = reads::upload_part(c, upload_id, part.part_number).await?;
    // A retried commit of the same part replaces nothing: answering its
    // own shards as replaced would get them deleted under the upload.
    let replaced = match previous {
        Some(p) if p.shard_map == part.shard_map => None,
        Some(p) => p.shard_map,
        None => None,
    };
    writes::upsert_part(c, upload_id, part).await?;
    let replaced = durability::unnamed(c, replaced.into_iter().collect())
        .await?
        .pop();
    Ok(Response::PartStored { replaced })
}

/// S3's multipart ETag: MD5 of the parts' binary MD5s, then "-N".
pub fn multipart_etag(part_etags: &[String]) -> Option<String> {
    let mut h = Md5::new();
    for e in part_etags {
        h.update(hex::decode(e.trim_matches('"')).ok()?);
    }
    Some(format!(
        "{}-{}",
        hex::encode(h.finalize()),
        part_etags.len()
    ))
}

/// A CompleteMultipart repeated after it succeeded (its first answer
/// lost): the upload is gone, but a version of the key records it. With
/// the same parts (the same multipart ETag) it is answered as the first
/// one was, changing nothing; otherwise the upload is no more.
async fn completed_before(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
    upload_id: &str,
    wanted: &[(u32, String)],
) -> Outcome {
    let gone = || reject(MetaError::NoSuchUpload(upload_id.into()));
    let Some(b) = reads::bucket(c, bucket).await? else {
        return gone();
    };
    if upload_id.is_empty() {
        return gone();
    }
    let Some(version) = reads::version_of_upload(c, bucket, key, upload_id).await? else {
        return gone();
    };
    let etags: Vec<String> = wanted.iter().map(|(_, e)| e.clone()).collect();
    if multipart_etag(&etags).is_none_or(|e| e != version.etag.trim_matches('"')) {
        return gone();
    }
    Ok(Response::Completed {
        version,
        freed: Vec::new(),
        versioned: b.versioning != Versioning::Unversioned,
    })
}

/// The version's checksum: the composite of its parts' when the upload
/// asked for an algorithm that has one and every part carries its value;
/// otherwise none (the algorithm stays, naming what the parts carry).
fn with_checksum(mut v: Version) -> Version {
    let full_object = v.checksum_type == "FULL_OBJECT";
    let sums: Vec<&str> = v.parts.iter().map(|p| p.checksum_value.as_str()).collect();
    match composite::composite(&v.checksum_algorithm, &sums) {
        Some(value) if !full_object => {
            v.checksum_value = value;
            v.checksum_type = composite::COMPOSITE.into();
        }
        // A full-object checksum of a multipart object needs the CRCs
        // combined; not kept (ADR): the parts keep theirs.
        _ => {
            v.checksum_value.clear();
            v.checksum_type.clear();
        }
    }
    v
}

#[allow(clippy::too_many_arguments)]
pub async fn complete(
    c: &mut SqliteConnection,
    seq: i64,
    at: i64,
    bucket: &str,
    key: &str,
    upload_id: &str,
    wanted: &[(u32, String)],
    version_id: &str,
    cond: Condition<'_>,
) -> Outcome {
    let upload = match upload_for(c, bucket, key, upload_id).await {
        Ok(u) => u,
        Err(ApplyError::Rejected(MetaError::NoSuchUpload(_))) => {
            return completed_before(c, bucket, key, upload_id, wanted).await;
        }
        Err(e) => return Err(e),
    };
    // Refused before anything changes: the upload stays for a retry.
    cond.check(c, bucket, key, |_| false).await?;
    if wanted.is_empty() {
        return invalid("a multipart upload needs at least one part");
    }
    if wanted.windows(2).any(|w| w[0].0 >= w[1].0) {
        return reject(MetaError::InvalidPartOrder);
    }
    // By number: a search per wanted part made 10,000 parts quadratic.
    let mut stored: std::collections::BTreeMap<u32, Part> = reads::parts(c, upload_id)
        .await?
        .into_iter()
        .map(|p| (p.part_number, p))
        .collect();
    let mut chosen = Vec::with_capacity(wanted.len());
    for (i, (number, etag)) in wanted.iter().enumerate() {
        let Some(part) = stored.remove(number) else {
            return reject(MetaError::InvalidPart(format!(
                "part {number} was not uploaded"
            )));
        };
        if part.etag.trim_matches('"') != etag.trim_matches('"') {
            return reject(MetaError::InvalidPart(format!(
                "part {number} has another ETag"
            )));
        }
        if i + 1 < wanted.len() && part.size < min_part_size() {
            return reject(MetaError::EntityTooSmall(*number));
        }
        chosen.push(part);
    }
    let etags: Vec<String> = chosen.iter().map(|p| p.etag.clone()).collect();
    let Some(etag) = multipart_etag(&etags) else {
        return reject(MetaError::InvalidPart("a part ETag is not an MD5".into()));
    };
    let version = Version {
        bucket: bucket.into(),
        key: key.into(),
        version_id: version_id.into(),
        size: chosen.iter().map(|p| p.size).sum(),
        etag,
        created_at_ms: at,
        delete_marker: false,
        shard_map: None,
        wrapped_dek: Vec::new(),
        kek_fingerprint: String::new(),
        parts: chosen,
        upload_id: upload_id.into(),
        ..upload.template
    };
    let version = with_checksum(version);
    let (version, mut freed, versioned) = store_version(c, seq, at, version).await?;
    // Parts uploaded but left out of the object are garbage now.
    freed.extend(stored.into_values().filter_map(|p| p.shard_map));
    writes::delete_upload(c, upload_id).await?;
    let freed = durability::unnamed(c, freed).await?;
    Ok(Response::Completed {
        version,
        freed,
        versioned,
    })
}

pub async fn abort(c: &mut SqliteConnection, bucket: &str, key: &str, upload_id: &str) -> Outcome {
    upload_for(c, bucket, key, upload_id).await?;
    let freed = drop_upload(c, upload_id).await?;
    let freed = durability::unnamed(c, freed).await?;
    Ok(Response::Aborted { freed })
}

/// Deletes an upload and its parts; the parts' shard maps, to free
/// (after [`durability::unnamed`]).
pub(super) async fn drop_upload(
    c: &mut SqliteConnection,
    upload_id: &str,
) -> Result<Vec<ShardMap>, ApplyError> {
    let freed = reads::parts(c, upload_id)
        .await?
        .into_iter()
        .filter_map(|p| p.shard_map)
        .collect();
    writes::delete_upload(c, upload_id).await?;
    Ok(freed)
}
