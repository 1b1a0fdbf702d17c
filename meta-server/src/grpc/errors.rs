//! The one place internal errors become gRPC statuses. A rejected command
//! carries its reason in the `hamster-error` metadata as a stable code
//! (e.g. `NoSuchBucket`), which the gateway maps to the S3 error.

use tonic::{Code, Status};

use crate::cluster::CallError;
use crate::state::commands::{MetaError, Response};

/// Metadata key carrying the stable error code.
pub const ERROR_CODE_KEY: &str = "hamster-error";

impl MetaError {
    /// Stable, machine-readable name of the error.
    pub fn code(&self) -> &'static str {
        match self {
            MetaError::NoSuchBucket(_) => "NoSuchBucket",
            MetaError::BucketAlreadyExists(_) => "BucketAlreadyExists",
            MetaError::BucketNotEmpty(_) => "BucketNotEmpty",
            MetaError::NoSuchKey(_) => "NoSuchKey",
            MetaError::NoSuchVersion(_) => "NoSuchVersion",
            MetaError::NoSuchUpload(_) => "NoSuchUpload",
            MetaError::InvalidPart(_) => "InvalidPart",
            MetaError::InvalidPartOrder => "InvalidPartOrder",
            MetaError::EntityTooSmall(_) => "EntityTooSmall",
            MetaError::AccessDenied(_) => "AccessDenied",
            MetaError::InvalidArgument(_) => "InvalidArgument",
            MetaError::NoSuchAccessKey(_) => "NoSuchAccessKey",
            MetaError::NoSuchBlobServer(_) => "NoSuchBlobServer",
            MetaError::InvalidRequest(_) => "InvalidRequest",
            MetaError::InvalidBucketState(_) => "InvalidBucketState",
            MetaError::MethodNotAllowed(_) => "MethodNotAllowed",
            MetaError::RotationRefused(_) => "RotationRefused",
            MetaError::WrongMasterKey(_) => "WrongMasterKey",
        }
    }

    fn grpc_code(&self) -> Code {
        match self {
            MetaError::NoSuchBucket(_)
            | MetaError::NoSuchKey(_)
            | MetaError::NoSuchVersion(_)
            | MetaError::NoSuchUpload(_)
            | MetaError::NoSuchAccessKey(_)
            | MetaError::NoSuchBlobServer(_) => Code::NotFound,
            MetaError::BucketAlreadyExists(_) => Code::AlreadyExists,
            MetaError::BucketNotEmpty(_)
            | MetaError::InvalidBucketState(_)
            | MetaError::MethodNotAllowed(_)
            | MetaError::RotationRefused(_)
            | MetaError::WrongMasterKey(_) => Code::FailedPrecondition,
            MetaError::AccessDenied(_) => Code::PermissionDenied,
            MetaError::InvalidPart(_)
            | MetaError::InvalidPartOrder
            | MetaError::EntityTooSmall(_)
            | MetaError::InvalidArgument(_)
            | MetaError::InvalidRequest(_) => Code::InvalidArgument,
        }
    }
}

impl From<MetaError> for Status {
    fn from(e: MetaError) -> Status {
        let mut s = Status::new(e.grpc_code(), e.to_string());
        if let Ok(v) = e.code().parse() {
            s.metadata_mut().insert(ERROR_CODE_KEY, v);
        }
        s
    }
}

impl From<CallError> for Status {
    fn from(e: CallError) -> Status {
        match e {
            CallError::Unavailable { .. } => Status::unavailable(e.to_string()),
            CallError::Failed(m) => Status::internal(m),
        }
    }
}

/// A response that is not the expected kind is a bug on our side, never
/// the caller's: say so without panicking.
pub fn unexpected(r: &Response) -> Status {
    match r {
        Response::Err(e) => e.clone().into(),
        other => Status::internal(format!("unexpected state machine response {other:?}")),
    }
}

/// Expects the plain `Ok` answer.
pub fn expect_ok(r: Response) -> Result<(), Status> {
    match r {
        Response::Ok => Ok(()),
        other => Err(unexpected(&other)),
    }
}
