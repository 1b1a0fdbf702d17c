//! Bucket configuration that answers truthfully (issue 21):
//!
//! - Default encryption: every object here is always encrypted with a
//!   per-object key under the cluster's master key, which S3 calls SSE-S3
//!   (AES256). Get answers that rule always; Put accepts AES256 (nothing
//!   to change) and refuses KMS (501: there is no KMS here); Delete is
//!   accepted and changes nothing, as AWS since 2023 (SSE-S3 remains).
//! - PublicAccessBlock: stored in the meta tier and shown back as set.
//!   Nothing here is ever public, so it changes no access decision.

use hamster_proto::pb;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::access::key_id;
use crate::meta_call;

/// The one default-encryption rule there is: SSE-S3.
fn sse_s3_rule() -> ServerSideEncryptionRule {
    ServerSideEncryptionRule {
        apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
            sse_algorithm: ServerSideEncryption::from_static(ServerSideEncryption::AES256),
            kms_master_key_id: None,
        }),
        bucket_key_enabled: Some(false),
    }
}

pub async fn get_encryption(
    gw: &Gateway,
    req: S3Request<GetBucketEncryptionInput>,
) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
    gw.bucket(&req.input.bucket).await?;
    Ok(S3Response::new(GetBucketEncryptionOutput {
        server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration {
            rules: vec![sse_s3_rule()],
        }),
    }))
}

/// Whether a default-encryption configuration can be honoured: AES256
/// is what is done anyway; KMS is 501; anything else is malformed.
fn check_encryption(c: &ServerSideEncryptionConfiguration) -> S3Result<()> {
    if c.rules.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "a ServerSideEncryptionConfiguration needs a Rule"
        ));
    }
    for rule in &c.rules {
        let Some(d) = &rule.apply_server_side_encryption_by_default else {
            return Err(s3_error!(
                MalformedXML,
                "a Rule needs ApplyServerSideEncryptionByDefault"
            ));
        };
        match d.sse_algorithm.as_str() {
            ServerSideEncryption::AES256 if d.kms_master_key_id.is_some() => {
                return Err(s3_error!(
                    InvalidArgument,
                    "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms or aws:kms:dsse"
                ));
            }
            ServerSideEncryption::AES256 => {}
            ServerSideEncryption::AWS_KMS | ServerSideEncryption::AWS_KMS_DSSE => {
                return Err(s3_error!(
                    NotImplemented,
                    "SSE-KMS is not supported: every object is always encrypted with SSE-S3 (AES256)"
                ));
            }
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "SSEAlgorithm must be AES256, aws:kms or aws:kms:dsse"
                ));
            }
        }
    }
    Ok(())
}

pub async fn put_encryption(
    gw: &Gateway,
    req: S3Request<PutBucketEncryptionInput>,
) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
    let i = &req.input;
    check_encryption(&i.server_side_encryption_configuration)?;
    // Nothing to store: AES256 is what every write does already.
    gw.bucket(&i.bucket).await?;
    Ok(S3Response::new(PutBucketEncryptionOutput::default()))
}

pub async fn delete_encryption(
    gw: &Gateway,
    req: S3Request<DeleteBucketEncryptionInput>,
) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
    // SSE-S3 stays on, as on AWS: nothing to delete.
    gw.bucket(&req.input.bucket).await?;
    Ok(S3Response::new(DeleteBucketEncryptionOutput::default()))
}

/// 404 NoSuchPublicAccessBlockConfiguration (a code s3s does not name).
fn no_public_access_block() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
        "The public access block configuration was not found",
    );
    e.set_status_code(http::StatusCode::NOT_FOUND);
    e
}

pub async fn get_public_access_block(
    gw: &Gateway,
    req: S3Request<GetPublicAccessBlockInput>,
) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
    let b = gw.bucket(&req.input.bucket).await?;
    let p = b.public_access_block.ok_or_else(no_public_access_block)?;
    Ok(S3Response::new(GetPublicAccessBlockOutput {
        public_access_block_configuration: Some(PublicAccessBlockConfiguration {
            block_public_acls: Some(p.block_public_acls),
            ignore_public_acls: Some(p.ignore_public_acls),
            block_public_policy: Some(p.block_public_policy),
            restrict_public_buckets: Some(p.restrict_public_buckets),
        }),
    }))
}

pub async fn put_public_access_block(
    gw: &Gateway,
    req: S3Request<PutPublicAccessBlockInput>,
) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
    let by = key_id(&req);
    let i = req.input;
    let c = i.public_access_block_configuration;
    // An element left out is false, as AWS stores it.
    let config = pb::PublicAccessBlock {
        block_public_acls: c.block_public_acls.unwrap_or(false),
        ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
        block_public_policy: c.block_public_policy.unwrap_or(false),
        restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
    };
    let call = pb::PutPublicAccessBlockRequest {
        bucket: i.bucket,
        config: Some(config),
        access_key_id: by,
    };
    meta_call!(gw.meta, put_public_access_block, call).await?;
    Ok(S3Response::new(PutPublicAccessBlockOutput::default()))
}

pub async fn delete_public_access_block(
    gw: &Gateway,
    req: S3Request<DeletePublicAccessBlockInput>,
) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
    let by = key_id(&req);
    let call = pb::PutPublicAccessBlockRequest {
        bucket: req.input.bucket,
        config: None,
        access_key_id: by,
    };
    meta_call!(gw.meta, put_public_access_block, call).await?;
    Ok(S3Response::new(DeletePublicAccessBlockOutput::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(alg: &str, kms: Option<&str>) -> ServerSideEncryptionConfiguration {
        ServerSideEncryptionConfiguration {
            rules: vec![ServerSideEncryptionRule {
                apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                    sse_algorithm: ServerSideEncryption::from(alg.to_string()),
                    kms_master_key_id: kms.map(str::to_string),
                }),
                bucket_key_enabled: None,
            }],
        }
    }

    #[test]
    fn only_sse_s3_is_accepted() {
        assert!(check_encryption(&config("AES256", None)).is_ok());
        let code = |c: &ServerSideEncryptionConfiguration| {
            check_encryption(c)
                .expect_err("refused")
                .code()
                .as_str()
                .to_string()
        };
        assert_eq!(code(&config("aws:kms", Some("k"))), "NotImplemented");
        assert_eq!(code(&config("aws:kms:dsse", None)), "NotImplemented");
        assert_eq!(code(&config("AES256", Some("k"))), "InvalidArgument");
        assert_eq!(code(&config("ROT13", None)), "MalformedXML");
        let empty = ServerSideEncryptionConfiguration { rules: vec![] };
        assert_eq!(code(&empty), "MalformedXML");
        let e = no_public_access_block();
        assert_eq!(e.status_code().map(|s| s.as_u16()), Some(404));
    }
}
