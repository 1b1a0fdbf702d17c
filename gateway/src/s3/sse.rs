//! Server-side encryption as S3 clients see it. Every object here is
//! sealed with AES-256-GCM under its own data key, wrapped by the
//! cluster's master key (`pipeline/encrypt.rs`): what S3 calls SSE-S3,
//! so every object answer says `x-amz-server-side-encryption: AES256`.
//! Customer-provided keys (SSE-C) and KMS keys are not supported; their
//! request headers are refused, never silently ignored (a client that
//! thinks its data is under its own key must learn that it is not).

use http::HeaderMap;
use s3s::dto::ServerSideEncryption;
use s3s::{S3Result, s3_error};

/// What every object answer carries.
pub fn aes256() -> Option<ServerSideEncryption> {
    Some(ServerSideEncryption::from_static(
        ServerSideEncryption::AES256,
    ))
}

/// Header name prefixes of SSE-C, on the object and on a copy source.
const CUSTOMER_KEY: [&str; 2] = [
    "x-amz-server-side-encryption-customer-",
    "x-amz-copy-source-server-side-encryption-customer-",
];
/// Headers only SSE-KMS gives meaning to.
const KMS: [&str; 2] = [
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-context",
];

/// Refuses a request for encryption other than SSE-S3: SSE-C or SSE-KMS
/// headers are 501 NotImplemented; an `x-amz-server-side-encryption`
/// naming no S3 mode is 400 InvalidArgument (as AWS); AES256 is what
/// happens anyway. Checked before any work, so a refusal changes nothing.
pub fn check(headers: &HeaderMap) -> S3Result<()> {
    for name in headers.keys() {
        let name = name.as_str();
        if CUSTOMER_KEY.iter().any(|p| name.starts_with(p)) {
            return Err(s3_error!(
                NotImplemented,
                "server-side encryption with customer-provided keys (SSE-C) is not supported"
            ));
        }
        if KMS.contains(&name) {
            return Err(s3_error!(
                NotImplemented,
                "server-side encryption with KMS keys is not supported"
            ));
        }
    }
    for v in headers.get_all("x-amz-server-side-encryption") {
        match v.to_str().unwrap_or_default() {
            ServerSideEncryption::AES256 => {}
            ServerSideEncryption::AWS_KMS | ServerSideEncryption::AWS_KMS_DSSE => {
                return Err(s3_error!(
                    NotImplemented,
                    "server-side encryption with KMS keys is not supported"
                ));
            }
            _ => {
                return Err(s3_error!(
                    InvalidArgument,
                    "The encryption method specified is not supported"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::S3ErrorCode;

    fn code(pairs: &[(&'static str, &'static str)]) -> Option<S3ErrorCode> {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        check(&h).err().map(|e| e.code().clone())
    }

    #[test]
    fn only_sse_s3_passes() {
        assert_eq!(code(&[]), None);
        assert_eq!(code(&[("x-amz-server-side-encryption", "AES256")]), None);
        assert_eq!(
            code(&[("x-amz-server-side-encryption", "aws:kms")]),
            Some(S3ErrorCode::NotImplemented)
        );
        assert_eq!(
            code(&[("x-amz-server-side-encryption", "aws:kms:dsse")]),
            Some(S3ErrorCode::NotImplemented)
        );
        assert_eq!(
            code(&[("x-amz-server-side-encryption", "AES128")]),
            Some(S3ErrorCode::InvalidArgument)
        );
        assert_eq!(
            code(&[("x-amz-server-side-encryption-customer-algorithm", "AES256")]),
            Some(S3ErrorCode::NotImplemented)
        );
        assert_eq!(
            code(&[(
                "x-amz-copy-source-server-side-encryption-customer-key",
                "a2V5"
            )]),
            Some(S3ErrorCode::NotImplemented)
        );
        assert_eq!(
            code(&[
                ("x-amz-server-side-encryption", "AES256"),
                ("x-amz-server-side-encryption-aws-kms-key-id", "k")
            ]),
            Some(S3ErrorCode::NotImplemented)
        );
    }
}
