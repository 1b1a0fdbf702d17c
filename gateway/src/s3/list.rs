//! Listings: ListObjectsV2 and ListObjects (V1) — prefix, delimiter and
//! common prefixes, continuation tokens, start-after and marker,
//! encoding-type=url, max-keys up to 1000 (the meta tier pages) — and
//! GetBucketLocation. Every entry's Owner is the bucket's owner (objects
//! are the bucket owner's, ADR 0027): V1 always, V2 with fetch-owner.

use hamster_proto::{ErrorCode, pb};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::fields::{owner, timestamp};
use crate::meta_call;

const MAX_KEYS: i32 = 1000;

/// Percent-encodes for encoding-type=url: everything but unreserved
/// characters and '/' (what S3 itself leaves alone).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn max_keys(m: Option<i32>) -> S3Result<i32> {
    let m = m.unwrap_or(MAX_KEYS);
    if m < 0 {
        return Err(s3_error!(InvalidArgument, "max-keys must not be negative"));
    }
    Ok(m.min(MAX_KEYS))
}

fn wants_url(e: &Option<EncodingType>) -> S3Result<bool> {
    match e {
        None => Ok(false),
        Some(e) if e.as_str() == EncodingType::URL => Ok(true),
        Some(_) => Err(s3_error!(InvalidArgument, "encoding-type must be url")),
    }
}

/// One page from the meta tier, as S3 objects and common prefixes.
struct Page {
    contents: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
    is_truncated: bool,
    token: String,
    last: Option<String>,
}

/// `with_owner`: each object carries the bucket's owner (V1 always, V2
/// with fetch-owner), read beside the page.
async fn page(
    gw: &Gateway,
    call: pb::ListObjectsRequest,
    url: bool,
    with_owner: bool,
) -> S3Result<Page> {
    if call.max_keys == 0 {
        // Nothing asked for; a missing bucket is still NoSuchBucket.
        gw.bucket(&call.bucket).await?;
        return Ok(Page {
            contents: Vec::new(),
            prefixes: Vec::new(),
            is_truncated: false,
            token: String::new(),
            last: None,
        });
    }
    let bucket = call.bucket.clone();
    let list = async {
        meta_call!(gw.meta, list_objects, call)
            .await
            .map_err(|e| match e.code() {
                Some(ErrorCode::InvalidArgument) => {
                    s3_error!(InvalidArgument, "invalid continuation token")
                }
                _ => e.into(),
            })
    };
    let (owner, r) = if with_owner {
        let (b, r) = gw.bucket_and(&bucket, list).await?;
        (owner(&b), r)
    } else {
        (None, list.await?)
    };
    let enc = |s: String| if url { url_encode(&s) } else { s };
    let last = [
        r.objects.last().map(|o| o.key.clone()),
        r.common_prefixes.last().cloned(),
    ]
    .into_iter()
    .flatten()
    .max();
    Ok(Page {
        contents: r
            .objects
            .into_iter()
            .map(|v| Object {
                e_tag: Some(ETag::Strong(v.etag)),
                key: Some(enc(v.key)),
                last_modified: Some(timestamp(v.created_at_ms)),
                size: i64::try_from(v.size).ok(),
                storage_class: Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                )),
                owner: owner.clone(),
                ..Default::default()
            })
            .collect(),
        prefixes: r
            .common_prefixes
            .into_iter()
            .map(|p| CommonPrefix {
                prefix: Some(enc(p)),
            })
            .collect(),
        is_truncated: r.is_truncated,
        token: r.next_continuation_token,
        last: last.map(enc),
    })
}

pub async fn list_v2(
    gw: &Gateway,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let i = req.input;
    let max = max_keys(i.max_keys)?;
    let url = wants_url(&i.encoding_type)?;
    let call = pb::ListObjectsRequest {
        bucket: i.bucket.clone(),
        prefix: i.prefix.clone().unwrap_or_default(),
        delimiter: i.delimiter.clone().unwrap_or_default(),
        start_after: i.start_after.clone().unwrap_or_default(),
        continuation_token: i.continuation_token.clone().unwrap_or_default(),
        max_keys: max as u32,
    };
    let p = page(gw, call, url, i.fetch_owner == Some(true)).await?;
    let enc = |s: Option<String>| if url { s.map(|s| url_encode(&s)) } else { s };
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(i.bucket),
        prefix: enc(i.prefix),
        delimiter: enc(i.delimiter),
        start_after: enc(i.start_after),
        max_keys: Some(max),
        continuation_token: i.continuation_token,
        encoding_type: i.encoding_type,
        key_count: i32::try_from(p.contents.len() + p.prefixes.len()).ok(),
        is_truncated: Some(p.is_truncated),
        next_continuation_token: (p.is_truncated && !p.token.is_empty()).then_some(p.token),
        common_prefixes: (!p.prefixes.is_empty()).then_some(p.prefixes),
        contents: Some(p.contents),
        ..Default::default()
    }))
}

pub async fn list_v1(
    gw: &Gateway,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let i = req.input;
    let max = max_keys(i.max_keys)?;
    let url = wants_url(&i.encoding_type)?;
    let call = pb::ListObjectsRequest {
        bucket: i.bucket.clone(),
        prefix: i.prefix.clone().unwrap_or_default(),
        delimiter: i.delimiter.clone().unwrap_or_default(),
        start_after: i.marker.clone().unwrap_or_default(),
        max_keys: max as u32,
        ..Default::default()
    };
    let p = page(gw, call, url, true).await?;
    let enc = |s: Option<String>| if url { s.map(|s| url_encode(&s)) } else { s };
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(i.bucket),
        prefix: enc(i.prefix),
        delimiter: enc(i.delimiter),
        marker: enc(i.marker).or(Some(String::new())),
        max_keys: Some(max),
        encoding_type: i.encoding_type,
        is_truncated: Some(p.is_truncated),
        // The last key or prefix of the page: where the next page starts.
        next_marker: if p.is_truncated { p.last } else { None },
        common_prefixes: (!p.prefixes.is_empty()).then_some(p.prefixes),
        contents: Some(p.contents),
        ..Default::default()
    }))
}

pub async fn location(
    gw: &Gateway,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    gw.bucket(&req.input.bucket).await?;
    // One region; S3 answers an empty constraint for us-east-1.
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint: None,
    }))
}

/// ListObjectVersions: versions and delete markers in S3 order (keys
/// ascending, newest version first), paged by key and version-id markers.
/// The version-id-marker is a position, not a reference: the meta tier
/// resumes after it, or, if it was deleted since, at key-marker's first
/// remaining version (`reads::after_version`), so listing a page and
/// deleting it before the next one empties a bucket.
pub async fn list_versions(
    gw: &Gateway,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let i = req.input;
    let max = max_keys(i.max_keys)?;
    let url = wants_url(&i.encoding_type)?;
    if i.version_id_marker.is_some() && i.key_marker.is_none() {
        return Err(s3_error!(
            InvalidArgument,
            "a version-id-marker needs a key-marker"
        ));
    }
    let enc = |s: String| if url { url_encode(&s) } else { s };
    let mut out = ListObjectVersionsOutput {
        name: Some(i.bucket.clone()),
        prefix: i.prefix.clone().map(enc),
        delimiter: i.delimiter.clone().map(enc),
        key_marker: i.key_marker.clone().map(enc),
        version_id_marker: i.version_id_marker.clone(),
        max_keys: Some(max),
        encoding_type: i.encoding_type.clone(),
        is_truncated: Some(false),
        ..Default::default()
    };
    if max == 0 {
        gw.bucket(&i.bucket).await?;
        return Ok(S3Response::new(out));
    }
    // The bucket for its owner: every version's and marker's Owner.
    let (bucket, r) = gw
        .bucket_and(
            &i.bucket,
            meta_call!(
                gw.meta,
                list_versions,
                pb::ListVersionsRequest {
                    bucket: i.bucket.clone(),
                    prefix: i.prefix.clone().unwrap_or_default(),
                    delimiter: i.delimiter.clone().unwrap_or_default(),
                    key_marker: i.key_marker.clone().unwrap_or_default(),
                    version_id_marker: i.version_id_marker.clone().unwrap_or_default(),
                    max_keys: max as u32,
                }
            ),
        )
        .await?;
    let owner = owner(&bucket);
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    for v in r.versions {
        let version_id = Some(if v.version_id.is_empty() {
            "null".to_string()
        } else {
            v.version_id.clone()
        });
        if v.delete_marker {
            markers.push(DeleteMarkerEntry {
                is_latest: Some(v.is_latest),
                key: Some(enc(v.key)),
                last_modified: Some(timestamp(v.created_at_ms)),
                version_id,
                owner: owner.clone(),
            });
        } else {
            versions.push(ObjectVersion {
                e_tag: Some(ETag::Strong(v.etag)),
                is_latest: Some(v.is_latest),
                key: Some(enc(v.key)),
                last_modified: Some(timestamp(v.created_at_ms)),
                size: i64::try_from(v.size).ok(),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                version_id,
                owner: owner.clone(),
                ..Default::default()
            });
        }
    }
    out.versions = Some(versions);
    out.delete_markers = (!markers.is_empty()).then_some(markers);
    out.common_prefixes = (!r.common_prefixes.is_empty()).then(|| {
        r.common_prefixes
            .into_iter()
            .map(|p| CommonPrefix {
                prefix: Some(enc(p)),
            })
            .collect()
    });
    out.is_truncated = Some(r.is_truncated);
    if r.is_truncated {
        out.next_key_marker = Some(enc(r.next_key_marker));
        out.next_version_id_marker =
            (!r.next_version_id_marker.is_empty()).then_some(r.next_version_id_marker);
    }
    Ok(S3Response::new(out))
}
