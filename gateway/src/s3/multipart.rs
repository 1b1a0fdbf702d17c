//! Multipart uploads. Each part is its own unit on the erasure-coded path:
//! its own data key, its own shards, committed with `CommitPart`. The
//! completed object is the parts in order (the meta tier checks order,
//! sizes and ETags, and computes the MD5-of-MD5s ETag); parts replaced,
//! left out or aborted free their shards.
//!
//! Checksums (issue 21): an upload created with a ChecksumAlgorithm
//! keeps it in its template; each part's checksum in that algorithm is
//! computed (and checked against any the client sent) and kept with the
//! part; the meta tier makes the composite ("-N") at completion. An
//! object checksum sent with the completion is checked first (`sent.rs`).

use hamster_proto::pb;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::checksums::{
    algorithm_name, declared_algorithm, kept, shown, single, trailer_algorithm, upload_type,
};
use super::conditions::{Write, current};
use super::copy::{copy_source_body, source_range};
use super::fields::{check_key, check_metadata, stored_headers, timestamp, version_header};
use super::ingest::{Declared, declared, ingest};
use super::{Gateway, sse};
use crate::meta_call;
use crate::pipeline::commit::Precondition;

mod list;
mod sent;
pub use list::{list_parts, list_uploads};

const MAX_PART_NUMBER: i32 = 10_000;
const MAX_PAGE: i32 = 1000;

pub async fn create(
    gw: &Gateway,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let by = super::access::key_id(&req);
    sse::check(&req.headers)?;
    let mut i = req.input;
    // User metadata as sent, not as s3s decoded it (issue 21 point 9).
    i.metadata = super::fields::user_metadata(&req.headers);
    check_key(&i.key)?;
    let checksum_algorithm = algorithm_name(i.checksum_algorithm.as_ref())?;
    refuse_full_object(i.checksum_type.as_ref())?;
    check_metadata(&i.metadata)?;
    let mut template = pb::ObjectVersion {
        bucket: i.bucket.clone(),
        key: i.key.clone(),
        content_type: i.content_type.clone().unwrap_or_default(),
        user_metadata: i.metadata.clone().unwrap_or_default().into_iter().collect(),
        stored_headers: stored_headers(
            &i.cache_control,
            &i.content_disposition,
            &i.content_encoding,
            &i.content_language,
            &i.expires,
        ),
        // The completed object's checksum is the composite of its parts'.
        checksum_algorithm: checksum_algorithm.clone(),
        ..Default::default()
    };
    // Checked by the meta tier when the upload begins; kept until complete.
    super::lock::apply_requested(
        &mut template,
        i.object_lock_mode.as_ref(),
        i.object_lock_retain_until_date.as_ref(),
        i.object_lock_legal_hold_status.as_ref(),
    )?;
    if !template.lock_mode.is_empty() || template.legal_hold {
        // Early, as PutObject: no lock on a bucket without it, nothing
        // beyond its maximum retention (the meta tier checks again).
        super::lock::check_bucket(&gw.bucket(&i.bucket).await?, &template)?;
    }
    let r = meta_call!(
        gw.meta,
        begin_multipart,
        pb::BeginMultipartRequest {
            upload: Some(pb::MultipartUpload {
                bucket: i.bucket.clone(),
                key: i.key.clone(),
                ..Default::default()
            }),
            template: Some(template),
            // A retry after a lost answer gets the first upload, not a second.
            request_id: hamster_proto::ids::new_request_id(),
            access_key_id: by,
        }
    )
    .await?;
    let upload = r.upload.unwrap_or_default();
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(upload.upload_id),
        checksum_type: upload_type(&checksum_algorithm),
        checksum_algorithm: i.checksum_algorithm,
        server_side_encryption: sse::aes256(),
        ..Default::default()
    }))
}

fn part_number(n: i32) -> S3Result<u32> {
    if (1..=MAX_PART_NUMBER).contains(&n) {
        Ok(n as u32)
    } else {
        Err(s3_error!(InvalidArgument, "part numbers are 1 to 10000"))
    }
}

/// A multipart object's checksum here is the composite of its parts'
/// (the meta tier makes it); a whole-object (FULL_OBJECT) one, combined
/// from part CRCs, is not made, so asking for it is refused rather than
/// answered with a checksum of another type or left unverified.
fn refuse_full_object(t: Option<&ChecksumType>) -> S3Result<()> {
    if t.is_some_and(|t| t.as_str() == ChecksumType::FULL_OBJECT) {
        return Err(s3_error!(
            NotImplemented,
            "full-object checksums of multipart uploads are not supported; use COMPOSITE"
        ));
    }
    Ok(())
}

/// NoSuchUpload before any shard is written for a part; else the
/// upload's checksum algorithm ("" none).
async fn upload_exists(gw: &Gateway, bucket: &str, key: &str, upload_id: &str) -> S3Result<String> {
    let r = meta_call!(
        gw.meta,
        list_parts,
        pb::ListPartsRequest {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.into(),
            max_parts: 1,
            ..Default::default()
        }
    )
    .await?;
    Ok(r.checksum_algorithm)
}

pub async fn upload_part(
    gw: &Gateway,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let by = super::access::key_id(&req);
    let S3Request {
        mut input,
        headers,
        trailing_headers,
        ..
    } = req;
    sse::check(&headers)?;
    let number = part_number(input.part_number)?;
    let algorithm = upload_exists(gw, &input.bucket, &input.key, &input.upload_id).await?;
    let mut declared = declared!(input);
    single(&declared.checksum)?;
    if declared.algorithm.is_none() {
        declared.algorithm = trailer_algorithm(&headers);
    }
    if !algorithm.is_empty() {
        // A part's checksum is in its upload's algorithm (AWS refuses
        // another); computed here when the client sent none.
        match declared_algorithm(declared.algorithm.as_ref(), &declared.checksum) {
            Some(a) if a != algorithm => {
                return Err(s3_error!(
                    InvalidRequest,
                    "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                    algorithm.to_lowercase(),
                    a.to_lowercase()
                ));
            }
            _ => declared.algorithm = Some(ChecksumAlgorithm::from(algorithm.clone())),
        }
    }
    let (stored, sums) = ingest(gw, input.body.take(), declared, trailing_headers).await?;
    let checksum = kept(&algorithm, &sums).map(|(_, v)| v).unwrap_or_default();
    let etag = gw
        .committer(&by)
        .part(
            (&input.bucket, &input.key, &input.upload_id),
            number,
            stored,
            checksum,
        )
        .await?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(ETag::Strong(etag)),
        checksum_crc32: sums.checksum_crc32,
        checksum_crc32c: sums.checksum_crc32c,
        checksum_sha1: sums.checksum_sha1,
        checksum_sha256: sums.checksum_sha256,
        checksum_crc64nvme: sums.checksum_crc64nvme,
        server_side_encryption: sse::aes256(),
        ..Default::default()
    }))
}

pub async fn upload_part_copy(
    gw: &Gateway,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let by = super::access::key_id(&req);
    sse::check(&req.headers)?;
    let i = req.input;
    let number = part_number(i.part_number)?;
    let algorithm = upload_exists(gw, &i.bucket, &i.key, &i.upload_id).await?;
    let conditions = super::conditions::Conditions {
        if_match: i.copy_source_if_match.as_ref(),
        if_none_match: i.copy_source_if_none_match.as_ref(),
        if_modified_since: i.copy_source_if_modified_since.as_ref(),
        if_unmodified_since: i.copy_source_if_unmodified_since.as_ref(),
    };
    let range = i
        .copy_source_range
        .as_deref()
        .map(source_range)
        .transpose()?;
    let (body, src) = copy_source_body(gw, &i.copy_source, &conditions, range).await?;
    // The copied part's checksum in the upload's algorithm, as it is written.
    let declared = Declared {
        algorithm: (!algorithm.is_empty()).then(|| ChecksumAlgorithm::from(algorithm.clone())),
        size: Some(range.map_or(src.size, |(a, b)| b.saturating_sub(a).saturating_add(1))),
        ..Declared::none()
    };
    let (stored, sums) = ingest(gw, Some(body), declared, None).await?;
    let checksum = kept(&algorithm, &sums).map(|(_, v)| v).unwrap_or_default();
    let etag = gw
        .committer(&by)
        .part((&i.bucket, &i.key, &i.upload_id), number, stored, checksum)
        .await?;
    Ok(S3Response::new(UploadPartCopyOutput {
        server_side_encryption: sse::aes256(),
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(etag)),
            checksum_crc32: sums.checksum_crc32,
            checksum_crc32c: sums.checksum_crc32c,
            checksum_sha1: sums.checksum_sha1,
            checksum_sha256: sums.checksum_sha256,
            checksum_crc64nvme: sums.checksum_crc64nvme,
            // A part has no stored time (the meta tier answers none);
            // CompleteMultipartUpload's version gets the meta tier's.
            last_modified: Some(timestamp(crate::now_ms())),
        }),
        ..Default::default()
    }))
}

pub async fn complete(
    gw: &Gateway,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let by = super::access::key_id(&req);
    sse::check(&req.headers)?;
    let i = req.input;
    let condition = Write::of(i.if_match.as_ref(), i.if_none_match.as_ref())?;
    refuse_full_object(i.checksum_type.as_ref())?;
    let sent = sent::of_request(&i)?;
    let listed = i.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
    if listed.is_empty() {
        return Err(s3_error!(MalformedXML, "the request names no part"));
    }
    // Each listed part's checksum in the sent object checksum's algorithm.
    let listed_sums: Vec<_> = match &sent {
        Some((a, _)) => listed.iter().map(|p| sent::listed(p, a)).collect(),
        None => Vec::new(),
    };
    let mut parts = Vec::with_capacity(listed.len());
    for p in listed {
        let number = part_number(
            p.part_number
                .ok_or_else(|| s3_error!(MalformedXML, "a part has no PartNumber"))?,
        )?;
        let etag = p
            .e_tag
            .map(ETag::into_value)
            .ok_or_else(|| s3_error!(MalformedXML, "a part has no ETag"))?;
        // The part's checksum if the client listed one (any algorithm
        // field: a part has one, in its upload's).
        let checksum_value = [
            p.checksum_crc32,
            p.checksum_crc32c,
            p.checksum_sha1,
            p.checksum_sha256,
            p.checksum_crc64nvme,
        ]
        .into_iter()
        .flatten()
        .next()
        .unwrap_or_default();
        parts.push(pb::Part {
            part_number: number,
            etag,
            checksum_value,
            ..Default::default()
        });
    }
    // An object checksum sent is checked before proposing (`sent.rs`).
    // The upload gone: a completion repeated after success (or none);
    // the meta tier answers, and the value is compared with the version's.
    let mut check_after = false;
    if let Some((a, v)) = &sent {
        match upload_exists(gw, &i.bucket, &i.key, &i.upload_id).await {
            Ok(upload) => sent::check(&upload, (a, v), &listed_sums)?,
            Err(e) if *e.code() == s3s::S3ErrorCode::NoSuchUpload => check_after = true,
            Err(e) => return Err(e),
        }
    }
    // 412 (or 404) before completing; the meta tier decides again. A
    // repeat of a completion that succeeded (its answer lost) made the
    // current object: it is answered as the first was, not refused.
    let pre = if condition.is_none() {
        Precondition::default()
    } else {
        let current = current(gw, &i.bucket, &i.key).await?;
        match current {
            Some(v) if v.upload_id == i.upload_id => Precondition::default(),
            v => {
                condition.holds(v.as_ref().map(|v| v.etag.as_str()))?;
                condition.precondition()
            }
        }
    };
    let v = gw
        .committer(&by)
        .complete(pb::CompleteMultipartRequest {
            bucket: i.bucket.clone(),
            key: i.key.clone(),
            upload_id: i.upload_id.clone(),
            parts,
            if_match: pre.if_match,
            if_none_match: pre.if_none_match,
            // Named (request id, version id) by the commit stage.
            ..Default::default()
        })
        .await?;
    if let Some((a, value)) = &sent
        && check_after
        && (v.checksum_algorithm != *a || !sent::matches(value, &v.checksum_value))
    {
        // A repeat changed nothing: refusing it leaves the object as it was.
        return Err(s3_error!(
            BadDigest,
            "the x-amz-checksum-{} sent is not the object's",
            a.to_lowercase()
        ));
    }
    let sum = shown(&v.checksum_algorithm, &v.checksum_value);
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(i.bucket.clone()),
        key: Some(i.key.clone()),
        e_tag: Some(ETag::Strong(v.etag.clone())),
        location: Some(format!("/{}/{}", i.bucket, i.key)),
        version_id: version_header(&v),
        checksum_crc32: sum.checksum_crc32,
        checksum_crc32c: sum.checksum_crc32c,
        checksum_sha1: sum.checksum_sha1,
        checksum_sha256: sum.checksum_sha256,
        checksum_crc64nvme: sum.checksum_crc64nvme,
        checksum_type: sum.checksum_type,
        server_side_encryption: sse::aes256(),
        ..Default::default()
    }))
}

pub async fn abort(
    gw: &Gateway,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let by = super::access::key_id(&req);
    let i = req.input;
    gw.committer(&by)
        .abort(pb::AbortMultipartRequest {
            bucket: i.bucket,
            key: i.key,
            upload_id: i.upload_id,
            ..Default::default()
        })
        .await?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}
