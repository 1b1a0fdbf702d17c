//! CopyObject, done server-side on the erasure-coded path: the source is
//! read (fan-in, decrypt) and written again as a new object under a new
//! data key (encrypt, erasure, fan-out), then committed. Shards are never
//! shared between objects, so deleting either side frees only its own.
//! The copy keeps the source's whole-object checksum (the bytes are the
//! same), or one of the algorithm the request names, computed as the
//! bytes are written; a multipart source's composite is of its parts,
//! which the copy does not have, so it is not kept.

use hamster_proto::pb;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::checksums::{algorithm_name, kept, shown};
use super::conditions::Conditions;
use super::fields::{check_key, check_metadata, stored_headers, timestamp, version_header};
use super::get::{object_body, resolve};
use super::ingest::{Declared, ingest};
use super::{Gateway, sse};

/// `bytes=FIRST-LAST` of x-amz-copy-source-range.
pub fn source_range(s: &str) -> S3Result<(u64, u64)> {
    let bad = || {
        s3_error!(
            InvalidArgument,
            "x-amz-copy-source-range must be bytes=FIRST-LAST"
        )
    };
    let (a, b) = s
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(bad)?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a > b {
        return Err(bad());
    }
    Ok((a, b))
}

/// The source object of a copy, checked against the copy conditions, as
/// a body (all of it, or `range` inclusive).
pub async fn copy_source_body(
    gw: &Gateway,
    source: &CopySource,
    conditions: &Conditions<'_>,
    range: Option<(u64, u64)>,
) -> S3Result<(StreamingBlob, pb::ObjectVersion)> {
    let CopySource::Bucket {
        bucket,
        key,
        version_id,
    } = source
    else {
        return Err(s3_error!(NotImplemented, "access point copy sources"));
    };
    let v = resolve(gw, bucket, key, version_id.as_deref()).await?;
    conditions.check_copy_source(&v.etag, v.created_at_ms)?;
    let range = match range {
        None => 0..v.size,
        Some((a, b)) if b < v.size => a..b + 1,
        Some(_) => {
            return Err(s3_error!(
                InvalidRange,
                "the copy range is outside the source object"
            ));
        }
    };
    let body = StreamingBlob::wrap(object_body(gw, &v, range).await?);
    Ok((body, v))
}

pub async fn copy(
    gw: &Gateway,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let by = super::access::key_id(&req);
    sse::check(&req.headers)?;
    // A conditional copy destination (If-Match / If-None-Match, not the
    // x-amz-copy-source-if-* forms): not made here, so refused rather
    // than ignored.
    if [http::header::IF_MATCH, http::header::IF_NONE_MATCH]
        .iter()
        .any(|h| req.headers.contains_key(h))
    {
        return Err(s3_error!(
            NotImplemented,
            "conditional writes on CopyObject are not supported"
        ));
    }
    let mut i = req.input;
    // User metadata as sent, not as s3s decoded it (issue 21 point 9).
    i.metadata = super::fields::user_metadata(&req.headers);
    check_key(&i.key)?;
    let named = algorithm_name(i.checksum_algorithm.as_ref())?;
    let replace = i
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    if replace {
        check_metadata(&i.metadata)?;
    }
    if let CopySource::Bucket {
        bucket,
        key,
        version_id: None,
    } = &i.copy_source
        && **bucket == *i.bucket
        && **key == *i.key
        && !replace
    {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    let mut lock = pb::ObjectVersion::default();
    super::lock::apply_requested(
        &mut lock,
        i.object_lock_mode.as_ref(),
        i.object_lock_retain_until_date.as_ref(),
        i.object_lock_legal_hold_status.as_ref(),
    )?;
    super::lock::check_bucket(&gw.bucket(&i.bucket).await?, &lock)?;
    let conditions = Conditions {
        if_match: i.copy_source_if_match.as_ref(),
        if_none_match: i.copy_source_if_none_match.as_ref(),
        if_modified_since: i.copy_source_if_modified_since.as_ref(),
        if_unmodified_since: i.copy_source_if_unmodified_since.as_ref(),
    };
    let (body, src) = copy_source_body(gw, &i.copy_source, &conditions, None).await?;
    let declared = Declared {
        algorithm: i.checksum_algorithm.clone(),
        size: Some(src.size),
        ..Declared::none()
    };
    let (stored, computed) = ingest(gw, Some(body), declared, None).await?;
    let checksum = if named.is_empty() {
        (src.checksum_type == ChecksumType::FULL_OBJECT)
            .then(|| (src.checksum_algorithm.clone(), src.checksum_value.clone()))
    } else {
        kept(&named, &computed)
    };
    let (checksum_algorithm, checksum_value) = checksum.unwrap_or_default();
    let (content_type, user_metadata, headers) = if replace {
        (
            i.content_type.clone().unwrap_or_default(),
            i.metadata.clone().unwrap_or_default().into_iter().collect(),
            stored_headers(
                &i.cache_control,
                &i.content_disposition,
                &i.content_encoding,
                &i.content_language,
                &i.expires,
            ),
        )
    } else {
        (
            src.content_type.clone(),
            src.user_metadata.clone(),
            src.stored_headers.clone(),
        )
    };
    let template = pb::ObjectVersion {
        bucket: i.bucket.clone(),
        key: i.key.clone(),
        content_type,
        user_metadata,
        stored_headers: headers.into_iter().collect(),
        // The copy's own lock headers; the source's lock is not copied.
        lock_mode: lock.lock_mode,
        retain_until_ms: lock.retain_until_ms,
        legal_hold: lock.legal_hold,
        checksum_type: if checksum_value.is_empty() {
            String::new()
        } else {
            ChecksumType::FULL_OBJECT.into()
        },
        checksum_algorithm,
        checksum_value,
        ..Default::default()
    };
    let sum = shown(&template.checksum_algorithm, &template.checksum_value);
    let v = gw
        .committer(&by)
        .version(stored, template, &Default::default())
        .await?;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(ETag::Strong(v.etag.clone())),
            last_modified: Some(timestamp(v.created_at_ms)),
            checksum_crc32: sum.checksum_crc32,
            checksum_crc32c: sum.checksum_crc32c,
            checksum_sha1: sum.checksum_sha1,
            checksum_sha256: sum.checksum_sha256,
            checksum_crc64nvme: sum.checksum_crc64nvme,
            checksum_type: sum.checksum_type,
        }),
        server_side_encryption: sse::aes256(),
        version_id: version_header(&v),
        copy_source_version_id: version_header(&src),
        ..Default::default()
    }))
}
