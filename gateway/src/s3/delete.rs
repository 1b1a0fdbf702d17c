//! DeleteObject: removes the key (or the named version) in the meta tier,
//! then frees the shards that no version uses any more. Deleting a key
//! that does not exist succeeds, as in S3.

use hamster_proto::pb;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::Gateway;
use crate::meta_call;

pub async fn delete(
    gw: &Gateway,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let i = req.input;
    let call = pb::DeleteObjectRequest {
        bucket: i.bucket.clone(),
        key: i.key.clone(),
        version_id: i.version_id.clone().unwrap_or_default(),
        bypass_governance: i.bypass_governance_retention.unwrap_or(false),
    };
    let r = meta_call!(gw.meta, delete_object, call).await;
    match r {
        Ok(r) => {
            gw.free(r.freed);
            Ok(S3Response::new(DeleteObjectOutput {
                delete_marker: r.delete_marker.then_some(true),
                version_id: (r.delete_marker || i.version_id.is_some())
                    .then_some(r.version_id)
                    .filter(|v| !v.is_empty()),
                ..Default::default()
            }))
        }
        Err(e) if matches!(e.code(), Some("NoSuchKey" | "NoSuchVersion")) => {
            Ok(S3Response::new(DeleteObjectOutput::default()))
        }
        Err(e) => Err(e.into()),
    }
}
