//! PutObject: the body through [`ingest`] (the write pipeline and the
//! checks the client asked for), then the commit — the one moment the
//! object exists. A failed commit removes the shards that landed.

use std::collections::HashMap;

use hamster_proto::pb;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::ingest::{declared, ingest};
use super::{Gateway, lock};
use crate::meta_call;
use crate::pipeline::write::Stored;

/// The stored headers a GET gives back (PutObject, CreateMultipartUpload).
pub fn stored_headers(
    cache_control: &Option<String>,
    content_disposition: &Option<String>,
    content_encoding: &Option<String>,
    content_language: &Option<String>,
    expires: &Option<Timestamp>,
) -> HashMap<String, String> {
    let mut h = HashMap::new();
    for (k, v) in [
        ("cache-control", cache_control),
        ("content-disposition", content_disposition),
        ("content-encoding", content_encoding),
        ("content-language", content_language),
    ] {
        if let Some(v) = v {
            h.insert(k.to_string(), v.clone());
        }
    }
    if let Some(e) = expires {
        let mut buf = Vec::new();
        if e.format(TimestampFormat::HttpDate, &mut buf).is_ok() {
            h.insert("expires".into(), String::from_utf8_lossy(&buf).into_owned());
        }
    }
    h
}

pub async fn put(
    gw: &Gateway,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let S3Request {
        mut input,
        trailing_headers,
        ..
    } = req;
    super::check_key(&input.key)?;
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
    // A missing bucket, or lock headers it cannot honour, are refused
    // before any shard is written (the meta tier checks again at commit).
    lock::check_bucket(&gw.bucket(&input.bucket).await?, &template)?;
    let declared = declared!(input);
    let (stored, checksums) = ingest(gw, input.body.take(), declared, trailing_headers).await?;

    let (size, md5) = (stored.size, stored.md5.clone());
    let committed = commit(gw, stored, template).await?;
    let version_id = super::version_header(&committed);
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

/// Commits stored shards as a new version of `template` (bucket, key,
/// metadata): the one moment the object exists. Shards of the version it
/// replaced are freed; a refused commit removes the new shards.
pub async fn commit(
    gw: &Gateway,
    stored: Stored,
    template: pb::ObjectVersion,
) -> S3Result<pb::ObjectVersion> {
    let version = pb::ObjectVersion {
        size: stored.size,
        etag: stored.md5.clone(),
        shard_map: Some(stored.shard_map.clone()),
        ..template
    };
    let committed = gw
        .commit_under_write_key(
            &stored.wrapped_dek,
            &stored.kek_fingerprint,
            |wrapped_dek, kek_fingerprint| {
                let version = pb::ObjectVersion {
                    wrapped_dek,
                    kek_fingerprint,
                    ..version.clone()
                };
                meta_call!(
                    gw.meta,
                    commit_version,
                    pb::CommitVersionRequest {
                        version: Some(version),
                    }
                )
            },
        )
        .await;
    match committed {
        Ok(c) => {
            gw.free(c.freed);
            Ok(c.version.unwrap_or_default())
        }
        Err(e) => {
            discard_after(gw, stored, &e).await;
            Err(e.into())
        }
    }
}

/// A failed commit: the shards go, unless the meta tier may yet have
/// committed (it was unreachable mid-call); those the sweep judges later.
pub async fn discard_after(gw: &Gateway, stored: Stored, e: &crate::meta::MetaError) {
    if matches!(e, crate::meta::MetaError::Refused { .. }) {
        stored.discard(&gw.pool).await;
    }
}
