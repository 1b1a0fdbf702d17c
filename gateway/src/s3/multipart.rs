//! Multipart uploads. Each part is its own unit on the erasure-coded path:
//! its own data key, its own shards, committed with `CommitPart`. The
//! completed object is the parts in order (the meta tier checks order,
//! sizes and ETags, and computes the MD5-of-MD5s ETag); parts replaced,
//! left out or aborted free their shards.

use hamster_proto::pb;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::copy::{copy_source_body, source_range};
use super::fields::{
    check_key, check_metadata, initiator, owner, stored_headers, timestamp, version_header,
};
use super::ingest::{Declared, declared, ingest};
use crate::meta_call;

const MAX_PART_NUMBER: i32 = 10_000;
const MAX_PAGE: i32 = 1000;

pub async fn create(
    gw: &Gateway,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let by = super::access::key_id(&req);
    let i = req.input;
    check_key(&i.key)?;
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
        checksum_algorithm: i.checksum_algorithm,
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

/// NoSuchUpload before any shard is written for a part.
async fn upload_exists(gw: &Gateway, bucket: &str, key: &str, upload_id: &str) -> S3Result<()> {
    meta_call!(
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
    Ok(())
}

pub async fn upload_part(
    gw: &Gateway,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let by = super::access::key_id(&req);
    let S3Request {
        mut input,
        trailing_headers,
        ..
    } = req;
    let number = part_number(input.part_number)?;
    upload_exists(gw, &input.bucket, &input.key, &input.upload_id).await?;
    let declared = declared!(input);
    let (stored, sums) = ingest(gw, input.body.take(), declared, trailing_headers).await?;
    let etag = gw
        .committer(&by)
        .part(&input.bucket, &input.key, &input.upload_id, number, stored)
        .await?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(ETag::Strong(etag)),
        checksum_crc32: sums.checksum_crc32,
        checksum_crc32c: sums.checksum_crc32c,
        checksum_sha1: sums.checksum_sha1,
        checksum_sha256: sums.checksum_sha256,
        checksum_crc64nvme: sums.checksum_crc64nvme,
        ..Default::default()
    }))
}

pub async fn upload_part_copy(
    gw: &Gateway,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let by = super::access::key_id(&req);
    let i = req.input;
    let number = part_number(i.part_number)?;
    upload_exists(gw, &i.bucket, &i.key, &i.upload_id).await?;
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
    let (body, _) = copy_source_body(gw, &i.copy_source, &conditions, range).await?;
    let (stored, _) = ingest(gw, Some(body), Declared::none(), None).await?;
    let etag = gw
        .committer(&by)
        .part(&i.bucket, &i.key, &i.upload_id, number, stored)
        .await?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(etag)),
            // A part has no stored time (the meta tier answers none);
            // CompleteMultipartUpload's version gets the meta tier's.
            last_modified: Some(timestamp(crate::now_ms())),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

pub async fn complete(
    gw: &Gateway,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let by = super::access::key_id(&req);
    let i = req.input;
    let listed = i.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
    if listed.is_empty() {
        return Err(s3_error!(MalformedXML, "the request names no part"));
    }
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
        parts.push(pb::Part {
            part_number: number,
            etag,
            ..Default::default()
        });
    }
    let v = gw
        .committer(&by)
        .complete(pb::CompleteMultipartRequest {
            bucket: i.bucket.clone(),
            key: i.key.clone(),
            upload_id: i.upload_id.clone(),
            parts,
            // Named (request id, version id) by the commit stage.
            ..Default::default()
        })
        .await?;
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(i.bucket.clone()),
        key: Some(i.key.clone()),
        e_tag: Some(ETag::Strong(v.etag.clone())),
        location: Some(format!("/{}/{}", i.bucket, i.key)),
        version_id: version_header(&v),
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

pub async fn list_uploads(
    gw: &Gateway,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let i = req.input;
    let max = i.max_uploads.unwrap_or(MAX_PAGE).clamp(0, MAX_PAGE);
    // The bucket for its owner (every upload's Owner and Initiator).
    let (bucket, r) = gw
        .bucket_and(
            &i.bucket,
            meta_call!(
                gw.meta,
                list_uploads,
                pb::ListUploadsRequest {
                    bucket: i.bucket.clone(),
                    prefix: i.prefix.clone().unwrap_or_default(),
                    key_marker: i.key_marker.clone().unwrap_or_default(),
                    upload_id_marker: i.upload_id_marker.clone().unwrap_or_default(),
                    max_uploads: max.max(1) as u32,
                }
            ),
        )
        .await?;
    let uploads = if max == 0 { Vec::new() } else { r.uploads };
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(i.bucket),
        prefix: i.prefix,
        key_marker: i.key_marker,
        upload_id_marker: i.upload_id_marker,
        max_uploads: Some(max),
        is_truncated: Some(max > 0 && r.is_truncated),
        next_key_marker: (r.is_truncated && max > 0).then_some(r.next_key_marker),
        next_upload_id_marker: (r.is_truncated && max > 0).then_some(r.next_upload_id_marker),
        uploads: Some(
            uploads
                .into_iter()
                .map(|u| MultipartUpload {
                    key: Some(u.key),
                    upload_id: Some(u.upload_id),
                    initiated: Some(timestamp(u.initiated_at_ms)),
                    storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                    owner: owner(&bucket),
                    initiator: initiator(&bucket),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

pub async fn list_parts(
    gw: &Gateway,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let i = req.input;
    let max = i.max_parts.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    let marker = i.part_number_marker.unwrap_or(0).max(0);
    let (bucket, r) = gw
        .bucket_and(
            &i.bucket,
            meta_call!(
                gw.meta,
                list_parts,
                pb::ListPartsRequest {
                    bucket: i.bucket.clone(),
                    key: i.key.clone(),
                    upload_id: i.upload_id.clone(),
                    part_number_marker: marker as u32,
                    max_parts: max as u32,
                }
            ),
        )
        .await?;
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(i.upload_id),
        max_parts: Some(max),
        part_number_marker: Some(marker),
        is_truncated: Some(r.is_truncated),
        next_part_number_marker: r.is_truncated.then_some(r.next_part_number_marker as i32),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        owner: owner(&bucket),
        initiator: initiator(&bucket),
        parts: Some(
            r.parts
                .into_iter()
                .map(|p| Part {
                    part_number: Some(p.part_number as i32),
                    size: i64::try_from(p.size).ok(),
                    e_tag: Some(ETag::Strong(p.etag)),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }))
}
