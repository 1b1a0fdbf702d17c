//! PutObject: the body through [`ingest`] (the write pipeline and the
//! checks the client asked for), then the commit stage — the one moment
//! the object exists; a refused commit removes the shards that landed.

use hamster_proto::pb;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::fields::{check_key, check_metadata, stored_headers, version_header};
use super::ingest::{declared, ingest};
use super::{Gateway, lock};

pub async fn put(
    gw: &Gateway,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let by = super::access::key_id(&req);
    let S3Request {
        mut input,
        trailing_headers,
        ..
    } = req;
    check_key(&input.key)?;
    check_metadata(&input.metadata)?;
    let mut template = pb::ObjectVersion {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        content_type: input.content_type.clone().unwrap_or_default(),
        user_metadata: input
            .metadata
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        stored_headers: stored_headers(
            &input.cache_control,
            &input.content_disposition,
            &input.content_encoding,
            &input.content_language,
            &input.expires,
        ),
        ..Default::default()
    };
    lock::apply_requested(
        &mut template,
        input.object_lock_mode.as_ref(),
        input.object_lock_retain_until_date.as_ref(),
        input.object_lock_legal_hold_status.as_ref(),
    )?;
    // A missing bucket, or lock headers it cannot honour (no object lock,
    // a retention beyond its maximum), are refused before any shard is
    // written (the meta tier checks again at commit).
    lock::check_bucket(&gw.bucket(&input.bucket).await?, &template)?;
    let declared = declared!(input);
    let (stored, checksums) = ingest(gw, input.body.take(), declared, trailing_headers).await?;

    let (size, md5) = (stored.size, stored.md5.clone());
    let committed = gw.committer(&by).version(stored, template).await?;
    let version_id = version_header(&committed);
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(ETag::Strong(md5)),
        checksum_crc32: checksums.checksum_crc32,
        checksum_crc32c: checksums.checksum_crc32c,
        checksum_sha1: checksums.checksum_sha1,
        checksum_sha256: checksums.checksum_sha256,
        checksum_crc64nvme: checksums.checksum_crc64nvme,
        version_id,
        size: i64::try_from(size).ok(),
        ..Default::default()
    }))
}
