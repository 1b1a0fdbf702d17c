//! PutObject: the body through [`ingest`] (the write pipeline and the
//! checks the client asked for), then the commit stage — the one moment
//! the object exists; a refused commit removes the shards that landed.
//! A conditional PUT (If-None-Match: *, If-Match) is checked before the
//! body is taken and decided again by the meta tier at commit; the
//! checksum the client sent or asked for is kept on the version.

use hamster_proto::pb;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::checksums::{algorithm_name, kept, trailer_algorithm};
use super::conditions::Write;
use super::fields::{check_key, check_metadata, stored_headers, version_header};
use super::ingest::{declared, ingest};
use super::{Gateway, lock, sse};

pub async fn put(
    gw: &Gateway,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let by = super::access::key_id(&req);
    // User metadata as sent, not as s3s decoded it (issue 21 point 9).
    let mut req = req;
    req.input.metadata = super::fields::user_metadata(&req.headers);
    let S3Request {
        mut input,
        headers,
        trailing_headers,
        ..
    } = req;
    sse::check(&headers)?;
    check_key(&input.key)?;
    check_metadata(&input.metadata)?;
    let condition = Write::of(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    if input.checksum_algorithm.is_none() {
        input.checksum_algorithm = trailer_algorithm(&headers);
    }
    let named = algorithm_name(input.checksum_algorithm.as_ref())?;
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
    // 412 (or 404) before the body is taken; the meta tier decides again.
    condition.check(gw, &input.bucket, &input.key).await?;
    let declared = declared!(input);
    let (stored, checksums) = ingest(gw, input.body.take(), declared, trailing_headers).await?;
    // A single PUT's checksum is of the whole object.
    let checksum_type = kept(&named, &checksums).map(|(algorithm, value)| {
        template.checksum_algorithm = algorithm;
        template.checksum_value = value;
        template.checksum_type = ChecksumType::FULL_OBJECT.into();
        ChecksumType::from_static(ChecksumType::FULL_OBJECT)
    });

    let (size, md5) = (stored.size, stored.md5.clone());
    let committed = gw
        .committer(&by)
        .version(stored, template, &condition.precondition())
        .await?;
    let version_id = version_header(&committed);
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(ETag::Strong(md5)),
        checksum_crc32: checksums.checksum_crc32,
        checksum_crc32c: checksums.checksum_crc32c,
        checksum_sha1: checksums.checksum_sha1,
        checksum_sha256: checksums.checksum_sha256,
        checksum_crc64nvme: checksums.checksum_crc64nvme,
        checksum_type,
        server_side_encryption: sse::aes256(),
        version_id,
        size: i64::try_from(size).ok(),
        ..Default::default()
    }))
}
