//! ListObjectsV2: prefix, delimiter and common prefixes, start-after and
//! continuation tokens, max-keys up to 1000 (the meta tier pages).

use hamster_proto::pb;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{Gateway, timestamp};
use crate::meta_call;

const MAX_KEYS: i32 = 1000;

pub async fn list_v2(
    gw: &Gateway,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let i = req.input;
    let max_keys = i.max_keys.unwrap_or(MAX_KEYS);
    if max_keys < 0 {
        return Err(s3_error!(InvalidArgument, "max-keys must not be negative"));
    }
    let max_keys = max_keys.min(MAX_KEYS);
    let mut out = ListObjectsV2Output {
        name: Some(i.bucket.clone()),
        prefix: i.prefix.clone(),
        delimiter: i.delimiter.clone(),
        max_keys: Some(max_keys),
        continuation_token: i.continuation_token.clone(),
        start_after: i.start_after.clone(),
        encoding_type: i.encoding_type.clone(),
        ..Default::default()
    };
    if max_keys == 0 {
        // Still answers NoSuchBucket for a missing bucket.
        gw.bucket(&i.bucket).await?;
        out.key_count = Some(0);
        out.is_truncated = Some(false);
        return Ok(S3Response::new(out));
    }
    let call = pb::ListObjectsRequest {
        bucket: i.bucket.clone(),
        prefix: i.prefix.clone().unwrap_or_default(),
        delimiter: i.delimiter.clone().unwrap_or_default(),
        start_after: i.start_after.clone().unwrap_or_default(),
        continuation_token: i.continuation_token.clone().unwrap_or_default(),
        max_keys: max_keys as u32,
    };
    let r = meta_call!(gw.meta, list_objects, call)
        .await
        .map_err(|e| match e.code() {
            Some("InvalidArgument") => s3_error!(InvalidArgument, "invalid continuation token"),
            _ => e.into(),
        })?;
    let contents: Vec<Object> = r
        .objects
        .into_iter()
        .map(|v| Object {
            e_tag: Some(ETag::Strong(v.etag)),
            key: Some(v.key),
            last_modified: Some(timestamp(v.created_at_ms)),
            size: i64::try_from(v.size).ok(),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            ..Default::default()
        })
        .collect();
    let prefixes: Vec<CommonPrefix> = r
        .common_prefixes
        .into_iter()
        .map(|p| CommonPrefix { prefix: Some(p) })
        .collect();
    out.key_count = i32::try_from(contents.len() + prefixes.len()).ok();
    out.contents = Some(contents);
    out.common_prefixes = (!prefixes.is_empty()).then_some(prefixes);
    out.is_truncated = Some(r.is_truncated);
    out.next_continuation_token = (r.is_truncated && !r.next_continuation_token.is_empty())
        .then_some(r.next_continuation_token);
    Ok(S3Response::new(out))
}
