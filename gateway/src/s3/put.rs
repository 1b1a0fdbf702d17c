//! PutObject: the body through [`ingest`] (the write pipeline and the
//! checks the client asked for), then the commit — the one moment the
//! object exists. A failed commit removes the shards that landed.

use std::collections::HashMap;

use hamster_proto::pb;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::Gateway;
use super::ingest::{Declared, ingest};
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
    // A missing bucket is refused before any shard is written.
    gw.bucket(&input.bucket).await?;
    let declared = Declared {
        content_md5: input.content_md5.clone(),
        checksum: Checksum {
            checksum_type: None,
            checksum_crc32: input.checksum_crc32.clone(),
            checksum_crc32c: input.checksum_crc32c.clone(),
            checksum_sha1: input.checksum_sha1.clone(),
            checksum_sha256: input.checksum_sha256.clone(),
            checksum_crc64nvme: input.checksum_crc64nvme.clone(),
        },
        algorithm: input.checksum_algorithm.clone(),
    };
    let (stored, checksums) = ingest(gw, input.body.take(), declared, trailing_headers).await?;

    let version = pb::ObjectVersion {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        size: stored.size,
        etag: stored.md5.clone(),
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
        shard_map: Some(stored.shard_map.clone()),
        wrapped_dek: stored.wrapped_dek.clone(),
        kek_fingerprint: stored.kek_fingerprint.clone(),
        ..Default::default()
    };
    let committed = meta_call!(
        gw.meta,
        commit_version,
        pb::CommitVersionRequest {
            version: Some(version),
        }
    )
    .await;
    let committed = match committed {
        Ok(c) => c,
        Err(e) => {
            discard_after(gw, stored, &e).await;
            return Err(e.into());
        }
    };
    gw.free(committed.freed);
    let version_id = committed.version.as_ref().and_then(super::version_header);
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(ETag::Strong(stored.md5)),
        checksum_crc32: checksums.checksum_crc32,
        checksum_crc32c: checksums.checksum_crc32c,
        checksum_sha1: checksums.checksum_sha1,
        checksum_sha256: checksums.checksum_sha256,
        checksum_crc64nvme: checksums.checksum_crc64nvme,
        version_id,
        size: i64::try_from(stored.size).ok(),
        ..Default::default()
    }))
}

/// A failed commit: the shards go, unless the meta tier may yet have
/// committed (it was unreachable mid-call); those the sweep judges later.
pub async fn discard_after(gw: &Gateway, stored: Stored, e: &crate::meta::MetaError) {
    if matches!(e, crate::meta::MetaError::Refused { .. }) {
        stored.discard(&gw.pool).await;
    }
}
