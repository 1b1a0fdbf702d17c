//! PutObject: the body through the write pipeline, the checks the client
//! asked for (Content-MD5, a flexible checksum header or trailer, a signed
//! payload hash), then the commit — the one moment the object exists. Any
//! failure before the commit removes the shards that landed.

use base64::Engine;
use futures::StreamExt;
use hamster_proto::pb;
use md5::Digest as _;
use s3s::checksum::ChecksumHasher;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::error::sha256_mismatch;
use crate::meta_call;
use crate::pipeline::write::{Stored, write};

/// The checksums a client declared, filled in from trailers at the end.
fn expected_checksums(input: &PutObjectInput) -> S3Result<(ChecksumHasher, Checksum)> {
    let mut h = ChecksumHasher::default();
    let want = Checksum {
        checksum_type: None,
        checksum_crc32: input.checksum_crc32.clone(),
        checksum_crc32c: input.checksum_crc32c.clone(),
        checksum_sha1: input.checksum_sha1.clone(),
        checksum_sha256: input.checksum_sha256.clone(),
        checksum_crc64nvme: input.checksum_crc64nvme.clone(),
    };
    if want.checksum_crc32.is_some() {
        h.crc32 = Some(Default::default());
    }
    if want.checksum_crc32c.is_some() {
        h.crc32c = Some(Default::default());
    }
    if want.checksum_sha1.is_some() {
        h.sha1 = Some(Default::default());
    }
    if want.checksum_sha256.is_some() {
        h.sha256 = Some(Default::default());
    }
    if want.checksum_crc64nvme.is_some() {
        h.crc64nvme = Some(Default::default());
    }
    if let Some(alg) = &input.checksum_algorithm {
        match alg.as_str() {
            ChecksumAlgorithm::CRC32 => h.crc32 = Some(Default::default()),
            ChecksumAlgorithm::CRC32C => h.crc32c = Some(Default::default()),
            ChecksumAlgorithm::SHA1 => h.sha1 = Some(Default::default()),
            ChecksumAlgorithm::SHA256 => h.sha256 = Some(Default::default()),
            ChecksumAlgorithm::CRC64NVME => h.crc64nvme = Some(Default::default()),
            _ => return Err(s3_error!(InvalidArgument, "unknown checksum algorithm")),
        }
    }
    Ok((h, want))
}

/// Fills the declared checksums from the verified trailer, if any.
fn from_trailers(want: &mut Checksum, trailers: Option<http::HeaderMap>) -> S3Result<()> {
    let Some(t) = trailers else { return Ok(()) };
    let get = |name: &str| -> S3Result<Option<String>> {
        t.get(name)
            .map(|v| {
                v.to_str()
                    .map(str::to_owned)
                    .map_err(|_| s3_error!(InvalidArgument, "bad {name} trailer"))
            })
            .transpose()
    };
    let fill = |slot: &mut Option<String>, v: Option<String>| {
        if v.is_some() {
            *slot = v;
        }
    };
    fill(&mut want.checksum_crc32, get("x-amz-checksum-crc32")?);
    fill(&mut want.checksum_crc32c, get("x-amz-checksum-crc32c")?);
    fill(&mut want.checksum_sha1, get("x-amz-checksum-sha1")?);
    fill(&mut want.checksum_sha256, get("x-amz-checksum-sha256")?);
    fill(
        &mut want.checksum_crc64nvme,
        get("x-amz-checksum-crc64nvme")?,
    );
    Ok(())
}

/// Every declared checksum must match what was computed.
fn verify_checksums(want: &Checksum, got: &Checksum) -> S3Result<()> {
    let pairs = [
        ("crc32", &want.checksum_crc32, &got.checksum_crc32),
        ("crc32c", &want.checksum_crc32c, &got.checksum_crc32c),
        ("sha1", &want.checksum_sha1, &got.checksum_sha1),
        ("sha256", &want.checksum_sha256, &got.checksum_sha256),
        (
            "crc64nvme",
            &want.checksum_crc64nvme,
            &got.checksum_crc64nvme,
        ),
    ];
    for (name, w, g) in pairs {
        if let Some(w) = w
            && Some(w) != g.as_ref()
        {
            return Err(s3_error!(
                BadDigest,
                "x-amz-checksum-{name} does not match the body"
            ));
        }
    }
    Ok(())
}

/// A signed payload hash (x-amz-content-sha256 as 64 hex digits), if any.
fn signed_payload_hash(headers: &http::HeaderMap) -> Option<[u8; 32]> {
    let v = headers.get("x-amz-content-sha256")?.to_str().ok()?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(v, &mut out).ok()?;
    Some(out)
}

/// The stored headers a GET gives back.
fn stored_headers(input: &PutObjectInput) -> std::collections::HashMap<String, String> {
    let mut h = std::collections::HashMap::new();
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            h.insert(k.to_string(), v.clone());
        }
    };
    put("cache-control", &input.cache_control);
    put("content-disposition", &input.content_disposition);
    put("content-encoding", &input.content_encoding);
    put("content-language", &input.content_language);
    if let Some(e) = &input.expires {
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
        headers,
        trailing_headers,
        ..
    } = req;
    // A missing bucket is refused before any shard is written.
    gw.bucket(&input.bucket).await?;
    let content_md5 = match &input.content_md5 {
        Some(b64) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .ok()
                .filter(|d| d.len() == 16)
                .ok_or_else(|| s3_error!(InvalidDigest))?,
        ),
        None => None,
    };
    let (mut hasher, mut want) = expected_checksums(&input)?;
    let signed = signed_payload_hash(&headers);
    let mut sha = signed.map(|_| sha2::Sha256::new());

    let profile = gw.profile()?;
    let candidates = gw.candidates().await;
    let body = input
        .body
        .take()
        .map(|b| b.boxed())
        .unwrap_or_else(|| futures::stream::empty().boxed());
    let stored = write(body, profile, &candidates, &gw.kek, &gw.pool, |bytes| {
        hasher.update(bytes);
        if let Some(s) = &mut sha {
            s.update(bytes);
        }
    })
    .await?;

    let checked = (|| -> S3Result<()> {
        if let Some(want_md5) = &content_md5
            && hex::encode(want_md5) != stored.md5
        {
            return Err(s3_error!(BadDigest, "Content-MD5 does not match the body"));
        }
        if let (Some(want), Some(s)) = (signed, sha.take())
            && s.finalize().as_slice() != want
        {
            return Err(sha256_mismatch());
        }
        from_trailers(&mut want, trailing_headers.and_then(|t| t.take()))?;
        verify_checksums(&want, &hasher.finalize())
    })();
    if let Err(e) = checked {
        stored.discard(&gw.pool).await;
        return Err(e);
    }

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
        stored_headers: stored_headers(&input),
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
        version_id,
        size: i64::try_from(stored.size).ok(),
        ..Default::default()
    }))
}

/// A failed commit: the shards go, unless the meta tier may yet have
/// committed (it was unreachable mid-call); those the sweep judges later.
async fn discard_after(gw: &Gateway, stored: Stored, e: &crate::meta::MetaError) {
    if matches!(e, crate::meta::MetaError::Refused { .. }) {
        stored.discard(&gw.pool).await;
    }
}
