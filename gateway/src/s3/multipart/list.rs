//! ListMultipartUploads and ListParts (each part with its checksum in
//! the upload's algorithm).

use hamster_proto::pb;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::super::Gateway;
use super::super::checksums::{shown, upload_type};
use super::super::fields::{initiator, owner, timestamp};
use super::MAX_PAGE;
use crate::meta_call;

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
        checksum_type: upload_type(&r.checksum_algorithm),
        checksum_algorithm: (!r.checksum_algorithm.is_empty())
            .then(|| ChecksumAlgorithm::from(r.checksum_algorithm.clone())),
        parts: Some(
            r.parts
                .into_iter()
                .map(|p| {
                    let sum = shown(&r.checksum_algorithm, &p.checksum_value);
                    Part {
                        part_number: Some(p.part_number as i32),
                        size: i64::try_from(p.size).ok(),
                        e_tag: Some(ETag::Strong(p.etag)),
                        checksum_crc32: sum.checksum_crc32,
                        checksum_crc32c: sum.checksum_crc32c,
                        checksum_sha1: sum.checksum_sha1,
                        checksum_sha256: sum.checksum_sha256,
                        checksum_crc64nvme: sum.checksum_crc64nvme,
                        ..Default::default()
                    }
                })
                .collect(),
        ),
        ..Default::default()
    }))
}
