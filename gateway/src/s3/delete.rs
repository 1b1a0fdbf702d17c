//! DeleteObject: removes the key (or the named version) in the meta tier,
//! then frees the shards that no version uses any more (both through the
//! commit stage, `pipeline/commit.rs`). Deleting a key that does not
//! exist succeeds, as in S3.

use hamster_proto::{ErrorCode, pb};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::Gateway;

/// Deleting what is not there succeeds, as in S3.
fn gone(e: &crate::meta::MetaError) -> bool {
    matches!(
        e.code(),
        Some(ErrorCode::NoSuchKey | ErrorCode::NoSuchVersion)
    )
}

pub async fn delete(
    gw: &Gateway,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let by = super::access::key_id(&req);
    let i = req.input;
    let call = pb::DeleteObjectRequest {
        bucket: i.bucket.clone(),
        key: i.key.clone(),
        version_id: i.version_id.clone().unwrap_or_default(),
        bypass_governance: i.bypass_governance_retention.unwrap_or(false),
        // Named (request id, marker id) by the commit stage.
        ..Default::default()
    };
    match gw.committer(&by).delete(call).await {
        Ok(r) => Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: r.delete_marker.then_some(true),
            version_id: (r.delete_marker || i.version_id.is_some())
                .then_some(r.version_id)
                .filter(|v| !v.is_empty()),
            ..Default::default()
        })),
        Err(e) if gone(&e) => Ok(S3Response::new(DeleteObjectOutput::default())),
        Err(e) => Err(e.into()),
    }
}

/// Keys one DeleteObjects request may name.
const MAX_BATCH: usize = 1000;
/// Deletes in flight at once within one request.
const PARALLEL: usize = 16;

pub async fn delete_many(
    gw: &Gateway,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    use futures::StreamExt;
    let by = super::access::key_id(&req);
    let i = req.input;
    let objects = i.delete.objects;
    if objects.is_empty() || objects.len() > MAX_BATCH {
        return Err(s3s::s3_error!(
            MalformedXML,
            "a DeleteObjects request names 1 to 1000 keys"
        ));
    }
    let quiet = i.delete.quiet.unwrap_or(false);
    let bypass = i.bypass_governance_retention.unwrap_or(false);
    gw.bucket(&i.bucket).await?;
    let results: Vec<_> = futures::stream::iter(objects)
        .map(|o| {
            let call = pb::DeleteObjectRequest {
                bucket: i.bucket.clone(),
                key: o.key.clone(),
                version_id: o.version_id.clone().unwrap_or_default(),
                bypass_governance: bypass,
                // Each key its own request id (and marker id), set by
                // the commit stage: one outcome per key.
                ..Default::default()
            };
            let by = &by;
            async move { (o, gw.committer(by).delete(call).await) }
        })
        .buffered(PARALLEL)
        .collect()
        .await;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for (o, r) in results {
        match r {
            Ok(r) => {
                deleted.push(DeletedObject {
                    key: Some(o.key),
                    version_id: o.version_id.clone(),
                    delete_marker: r.delete_marker.then_some(true),
                    delete_marker_version_id: (r.delete_marker && !r.version_id.is_empty())
                        .then_some(r.version_id),
                });
            }
            Err(e) if gone(&e) => {
                deleted.push(DeletedObject {
                    key: Some(o.key),
                    version_id: o.version_id,
                    ..Default::default()
                });
            }
            Err(e) => {
                let s3: s3s::S3Error = e.into();
                errors.push(Error {
                    code: Some(s3.code().as_str().to_string()),
                    key: Some(o.key),
                    message: s3.message().map(str::to_string),
                    version_id: o.version_id,
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: (!quiet).then_some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}
