//! The one place gateway errors become S3 errors. Client mistakes keep
//! their S3 code; everything else is logged here with its cause and the
//! client gets a code that says "not your fault" (500 or 503).

use hamster_proto::ErrorCode;
use s3s::{S3Error, S3ErrorCode, s3_error};

use crate::meta::MetaError;
use crate::pipeline::commit::SplitKey;
use crate::pipeline::read::ReadError;
use crate::pipeline::write::{BodyError, WriteError};

/// A 503 for a write this gateway cannot make: it does not hold the
/// cluster's write key (it refused itself, or the meta tier refused it).
pub fn split_key() -> S3Error {
    s3_error!(
        ServiceUnavailable,
        "this gateway does not hold the cluster's current master key"
    )
}

impl From<SplitKey> for S3Error {
    fn from(_: SplitKey) -> S3Error {
        // Logged where it was found, with both fingerprints.
        split_key()
    }
}

/// The S3 code of a meta tier refusal; None for codes no S3 client should
/// see (they are a bug or a cluster problem, not the client's doing).
fn s3_code(code: ErrorCode) -> Option<S3ErrorCode> {
    Some(match code {
        // Another key's bucket, and one's own (ADR 0027): both 409.
        ErrorCode::BucketAlreadyExists => S3ErrorCode::BucketAlreadyExists,
        ErrorCode::BucketAlreadyOwnedByYou => S3ErrorCode::BucketAlreadyOwnedByYou,
        ErrorCode::NoSuchBucket => S3ErrorCode::NoSuchBucket,
        ErrorCode::NoSuchKey => S3ErrorCode::NoSuchKey,
        ErrorCode::NoSuchVersion => S3ErrorCode::NoSuchVersion,
        ErrorCode::BucketNotEmpty => S3ErrorCode::BucketNotEmpty,
        ErrorCode::ConditionalRequestConflict => {
            S3ErrorCode::Custom("ConditionalRequestConflict".into())
        }
        ErrorCode::AccessDenied => S3ErrorCode::AccessDenied,
        ErrorCode::InvalidArgument => S3ErrorCode::InvalidArgument,
        ErrorCode::NoSuchUpload => S3ErrorCode::NoSuchUpload,
        ErrorCode::InvalidPart => S3ErrorCode::InvalidPart,
        ErrorCode::InvalidPartOrder => S3ErrorCode::InvalidPartOrder,
        ErrorCode::EntityTooSmall => S3ErrorCode::EntityTooSmall,
        ErrorCode::RequestTimeout => S3ErrorCode::RequestTimeout,
        ErrorCode::InvalidRequest => S3ErrorCode::InvalidRequest,
        ErrorCode::InvalidBucketState => S3ErrorCode::InvalidBucketState,
        ErrorCode::MethodNotAllowed => S3ErrorCode::MethodNotAllowed,
        // A write placed on a server drained or removed meanwhile (the
        // view was a few seconds old): the client retries, placed anew.
        ErrorCode::BlobServerRetired => S3ErrorCode::SlowDown,
        // The 503 of `split_key`, chosen by the caller.
        ErrorCode::WrongMasterKey
        // Answered by the gateway itself where they can occur (auth.rs).
        | ErrorCode::NoSuchAccessKey
        // Cluster operations and service-level refusals: never from a
        // call the gateway makes for a client, so a bug if seen here
        // (Unavailable and Internal are not refusals at all: `meta.rs`).
        | ErrorCode::NoSuchBlobServer
        | ErrorCode::ShardMapChanged
        | ErrorCode::RotationRefused
        | ErrorCode::NoSuchMember
        | ErrorCode::BlobServerInUse
        | ErrorCode::BlobServerRemoved
        | ErrorCode::NotEnoughBlobServers
        | ErrorCode::Unauthenticated
        | ErrorCode::RoleNotAdmitted
        | ErrorCode::MalformedRequest
        | ErrorCode::NodeExists
        | ErrorCode::NoCaKey
        | ErrorCode::NoTrustBundle
        | ErrorCode::Unavailable
        | ErrorCode::Internal
        | ErrorCode::NoSuchShard
        | ErrorCode::ShardCorrupt
        | ErrorCode::OutOfRange
        | ErrorCode::ShardInUse
        | ErrorCode::ShardExists
        | ErrorCode::MemberRemoved
        | ErrorCode::NotLeader => return None,
    })
}

impl From<MetaError> for S3Error {
    fn from(e: MetaError) -> S3Error {
        match &e {
            MetaError::Refused {
                code: ErrorCode::WrongMasterKey,
                message,
            } => {
                tracing::error!(%message, "split key: the meta tier refused this gateway's write");
                split_key()
            }
            MetaError::Refused { code, message } => match s3_code(*code) {
                Some(s3) => {
                    let mut e = S3Error::with_message(s3, message.clone());
                    // s3s knows no status for a code it does not name.
                    if *code == ErrorCode::ConditionalRequestConflict {
                        e.set_status_code(http::StatusCode::CONFLICT);
                    }
                    e
                }
                None => {
                    tracing::error!(%code, %message, "meta tier refusal with no S3 meaning");
                    s3_error!(InternalError)
                }
            },
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
            WriteError::Body(BodyError::ChunkSignature) => {
                s3_error!(SignatureDoesNotMatch, "a chunk signature does not match")
            }
            WriteError::Body(BodyError::PayloadHash) => sha256_mismatch(),
            WriteError::Body(BodyError::Other(m)) => s3_error!(IncompleteBody, "{m}"),
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

/// An answer as the unit tests compare it: "" if it is Ok, else its S3
/// error code.
#[cfg(test)]
pub(crate) fn code_of<T>(r: s3s::S3Result<T>) -> String {
    r.err()
        .map(|e| e.code().as_str().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: ErrorCode) -> S3Error {
        MetaError::Refused {
            code,
            message: "why".into(),
        }
        .into()
    }

    fn status(e: &S3Error) -> Option<u16> {
        e.status_code()
            .or_else(|| e.code().status_code())
            .map(|s| s.as_u16())
    }

    /// What clients see for each refusal (tests/tests/s3*.rs assert the
    /// same end to end).
    #[test]
    fn refusals_keep_their_s3_codes() {
        for (code, s3, http) in [
            (ErrorCode::BucketAlreadyExists, "BucketAlreadyExists", 409),
            (
                ErrorCode::BucketAlreadyOwnedByYou,
                "BucketAlreadyOwnedByYou",
                409,
            ),
            (ErrorCode::NoSuchBucket, "NoSuchBucket", 404),
            (ErrorCode::NoSuchKey, "NoSuchKey", 404),
            (ErrorCode::NoSuchVersion, "NoSuchVersion", 404),
            (ErrorCode::BucketNotEmpty, "BucketNotEmpty", 409),
            (
                ErrorCode::ConditionalRequestConflict,
                "ConditionalRequestConflict",
                409,
            ),
            (ErrorCode::AccessDenied, "AccessDenied", 403),
            (ErrorCode::InvalidArgument, "InvalidArgument", 400),
            (ErrorCode::NoSuchUpload, "NoSuchUpload", 404),
            (ErrorCode::InvalidPart, "InvalidPart", 400),
            (ErrorCode::InvalidPartOrder, "InvalidPartOrder", 400),
            (ErrorCode::EntityTooSmall, "EntityTooSmall", 400),
            (ErrorCode::RequestTimeout, "RequestTimeout", 400),
            (ErrorCode::InvalidRequest, "InvalidRequest", 400),
            (ErrorCode::InvalidBucketState, "InvalidBucketState", 409),
            (ErrorCode::MethodNotAllowed, "MethodNotAllowed", 405),
            (ErrorCode::WrongMasterKey, "ServiceUnavailable", 503),
        ] {
            let e = refused(code);
            assert_eq!(e.code().as_str(), s3, "{code}");
            assert_eq!(status(&e), Some(http), "{code}");
        }
        assert_eq!(refused(ErrorCode::NoSuchKey).message(), Some("why"));
    }

    #[test]
    fn refusals_with_no_s3_meaning_are_internal() {
        for &code in ErrorCode::ALL {
            if s3_code(code).is_none() && code != ErrorCode::WrongMasterKey {
                let e = refused(code);
                assert_eq!(e.code().as_str(), "InternalError", "{code}");
            }
        }
        let e: S3Error = MetaError::Failed("x".into()).into();
        assert_eq!(e.code().as_str(), "InternalError");
        let e: S3Error = MetaError::Unavailable("x".into()).into();
        assert_eq!(status(&e), Some(503));
    }

    #[test]
    fn the_split_key_503_is_the_same_both_ways() {
        let mine: S3Error = SplitKey("fp".into()).into();
        let theirs = refused(ErrorCode::WrongMasterKey);
        assert_eq!(mine.code(), theirs.code());
        assert_eq!(mine.message(), theirs.message());
        assert_eq!(status(&mine), Some(503));
    }

    #[test]
    fn body_errors_keep_their_s3_codes() {
        for (body, s3, http) in [
            (BodyError::ChunkSignature, "SignatureDoesNotMatch", 403),
            (BodyError::PayloadHash, "XAmzContentSHA256Mismatch", 400),
            (BodyError::Other("cut".into()), "IncompleteBody", 400),
        ] {
            let e: S3Error = WriteError::Body(body).into();
            assert_eq!(e.code().as_str(), s3);
            assert_eq!(status(&e), Some(http), "{s3}");
        }
    }
}
