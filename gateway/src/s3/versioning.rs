//! PutBucketVersioning and GetBucketVersioning. A bucket starts never
//! versioned (""), and once versioned is "Enabled" or "Suspended" for
//! good; a lock bucket is "Enabled" for good (the meta tier refuses the
//! rest). MFA Delete is not supported: asking for it is 501.

use hamster_proto::pb;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use crate::meta_call;

pub async fn put(
    gw: &Gateway,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let by = super::access::key_id(&req);
    let i = req.input;
    let c = i.versioning_configuration;
    let mfa_delete = c.mfa_delete.as_ref().map(MFADelete::as_str);
    if i.mfa.is_some() || mfa_delete == Some(MFADelete::ENABLED) {
        return Err(s3_error!(NotImplemented, "MFA Delete is not supported"));
    }
    let status = c
        .status
        .ok_or_else(|| s3_error!(MalformedXML, "VersioningConfiguration needs a Status"))?;
    let status = match status.as_str() {
        s @ (BucketVersioningStatus::ENABLED | BucketVersioningStatus::SUSPENDED) => s,
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "the versioning Status must be Enabled or Suspended"
            ));
        }
    };
    let call = pb::PutBucketVersioningRequest {
        bucket: i.bucket,
        status: status.to_string(),
        access_key_id: by,
    };
    meta_call!(gw.meta, put_bucket_versioning, call).await?;
    Ok(S3Response::new(PutBucketVersioningOutput::default()))
}

pub async fn get(
    gw: &Gateway,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let b = gw.bucket(&req.input.bucket).await?;
    Ok(S3Response::new(GetBucketVersioningOutput {
        status: (!b.versioning.is_empty()).then(|| BucketVersioningStatus::from(b.versioning)),
        mfa_delete: None,
    }))
}
