//! The one place gateway errors become S3 errors. Client mistakes keep
//! their S3 code; everything else is logged here with its cause and the
//! client gets a code that says "not your fault" (500 or 503).

use s3s::{S3Error, S3ErrorCode, s3_error};

use crate::meta::MetaError;
use crate::pipeline::read::ReadError;
use crate::pipeline::write::WriteError;

impl From<MetaError> for S3Error {
    fn from(e: MetaError) -> S3Error {
        match &e {
            MetaError::Refused { code, message } if code == "WrongMasterKey" => {
                tracing::error!(%message, "split key: the meta tier refused this gateway's write");
                s3_error!(
                    ServiceUnavailable,
                    "this gateway does not hold the cluster's current master key"
                )
            }
            MetaError::Refused { code, message } => {
                let code = match code.as_str() {
                    // Buckets are one owner's: a second create is "yours".
                    "BucketAlreadyExists" => S3ErrorCode::BucketAlreadyOwnedByYou,
                    "NoSuchBucket" => S3ErrorCode::NoSuchBucket,
                    "NoSuchKey" => S3ErrorCode::NoSuchKey,
                    "NoSuchVersion" => S3ErrorCode::NoSuchVersion,
                    "BucketNotEmpty" => S3ErrorCode::BucketNotEmpty,
                    "AccessDenied" => S3ErrorCode::AccessDenied,
                    "InvalidArgument" => S3ErrorCode::InvalidArgument,
                    "NoSuchUpload" => S3ErrorCode::NoSuchUpload,
                    "InvalidPart" => S3ErrorCode::InvalidPart,
                    "InvalidPartOrder" => S3ErrorCode::InvalidPartOrder,
                    "EntityTooSmall" => S3ErrorCode::EntityTooSmall,
                    "RequestTimeout" => S3ErrorCode::RequestTimeout,
                    "InvalidRequest" => S3ErrorCode::InvalidRequest,
                    "InvalidBucketState" => S3ErrorCode::InvalidBucketState,
                    "MethodNotAllowed" => S3ErrorCode::MethodNotAllowed,
                    other => {
                        tracing::error!(code = other, %message, "meta tier refusal with no S3 meaning");
                        return s3_error!(InternalError);
                    }
                };
                S3Error::with_message(code, message.clone())
            }
            MetaError::Unavailable(m) => {
                tracing::warn!(error = %m, "meta tier unavailable");
                s3_error!(
                    ServiceUnavailable,
                    "the metadata tier is unavailable; retry"
                )
            }
            MetaError::Failed(m) => {
                tracing::error!(error = %m, "meta tier call failed");
                s3_error!(InternalError)
            }
        }
    }
}

impl From<WriteError> for S3Error {
    fn from(e: WriteError) -> S3Error {
        match &e {
            // s3s verifies aws-chunked signatures as the body streams and
            // reports a bad one as a body error (its error type is private:
            // only its text names the cause; tests/s3_auth.rs pins it).
            WriteError::Body(m) if m.contains("SignatureMismatch") => {
                s3_error!(SignatureDoesNotMatch, "a chunk signature does not match")
            }
            WriteError::Body(m) if m.contains("Sha256Mismatch") => sha256_mismatch(),
            WriteError::Body(m) => s3_error!(IncompleteBody, "{m}"),
            WriteError::Placement(_) | WriteError::Ack(_) => {
                tracing::warn!(error = %e, "write refused");
                s3_error!(SlowDown, "{e}")
            }
            WriteError::Profile(_) => {
                tracing::error!(error = %e, "write failed");
                s3_error!(InternalError)
            }
        }
    }
}

impl From<ReadError> for S3Error {
    fn from(e: ReadError) -> S3Error {
        tracing::error!(error = %e, "read failed");
        match e {
            ReadError::Shards { .. } => {
                s3_error!(
                    ServiceUnavailable,
                    "too few shards of the object are reachable"
                )
            }
            _ => s3_error!(InternalError),
        }
    }
}

/// A 400 the SDKs know, for a body that does not match its signed hash.
pub fn sha256_mismatch() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
        "the body does not match x-amz-content-sha256",
    );
    e.set_status_code(http::StatusCode::BAD_REQUEST);
    e
}

/// A server-side failure: logged with its cause, 500 to the client.
pub fn internal(what: &str, e: impl std::fmt::Display) -> S3Error {
    tracing::error!(error = %e, "{what}");
    s3_error!(InternalError)
}
