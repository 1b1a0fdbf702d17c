//! The one place the meta-server's refusals become gRPC statuses.
//!
//! Every service (and the Raft codec) refuses with a [`ServiceError`];
//! `From<ServiceError> for Status` is the only code that builds a status,
//! always through [`ErrorCode::status`], so every refusal carries its
//! stable code in the `hamster-error` metadata (the contract the gateway
//! and the CLI match on). [`MetaError::code`] says which code a state
//! machine refusal travels under.

use hamster_proto::ErrorCode;
use tonic::Status;

use crate::cluster::CallError;
use crate::state::commands::{MetaError, Response};
use crate::state::model::UnknownName;

/// Why a meta-server call was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The state machine refused the command, or a read found nothing.
    #[error(transparent)]
    Rejected(#[from] MetaError),
    /// A write's shards are older than the write window: the sweep may
    /// already have judged them orphans, so nothing was proposed.
    #[error("the write took longer than the write window; its shards may be swept")]
    RequestTimeout,
    /// No leader with a quorum in time (for a write: outcome unknown).
    #[error("{0}")]
    Unavailable(String),
    /// A required field is missing or a payload does not decode: a bug in
    /// the caller.
    #[error("{0}")]
    Malformed(String),
    /// A value the caller chose is not acceptable.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("no verified peer identity")]
    Unauthenticated,
    /// The caller's role may not do this.
    #[error("{0}")]
    RoleNotAdmitted(String),
    /// The caller may not do this (its identity, token or target).
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    NodeExists(String),
    /// This node cannot sign or mint for the CA asked for.
    #[error("{0}")]
    NoCaKey(String),
    #[error("the meta tier has no trust bundle yet")]
    NoTrustBundle,
    /// A rotation cannot open or move on yet; the message says why.
    #[error("{0}")]
    RotationRefused(String),
    /// This node does not hold the key it must use (a split key).
    #[error("{0}")]
    WrongMasterKey(String),
    #[error("{0}")]
    NoSuchMember(String),
    /// A bug or a storage failure here; never the caller's fault. The
    /// text must not carry internals (SQL, paths of secrets).
    #[error("{0}")]
    Internal(String),
    /// The identity was removed or forgotten (ADR 0030): refused for good.
    #[error("{0}")]
    MemberRemoved(String),
    /// An admin-only change asked of a follower, which never forwards one
    /// (ADR 0030); carries the leader's address ("" : none known yet).
    #[error("this meta-server is not the leader; ask the leader{}", if .0.is_empty() { String::new() } else { format!(" at {}", .0) })]
    NotLeader(String),
    /// Another meta-server's answer, passed on as it came: it already
    /// carries that server's code.
    #[error("{}", .0.message())]
    Peer(Status),
}

impl ServiceError {
    /// The code this refusal travels under.
    pub fn code(&self) -> Option<ErrorCode> {
        Some(match self {
            ServiceError::Rejected(e) => e.code(),
            ServiceError::RequestTimeout => ErrorCode::RequestTimeout,
            ServiceError::Unavailable(_) => ErrorCode::Unavailable,
            ServiceError::Malformed(_) => ErrorCode::MalformedRequest,
            ServiceError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            ServiceError::Unauthenticated => ErrorCode::Unauthenticated,
            ServiceError::RoleNotAdmitted(_) => ErrorCode::RoleNotAdmitted,
            ServiceError::AccessDenied(_) => ErrorCode::AccessDenied,
            ServiceError::NodeExists(_) => ErrorCode::NodeExists,
            ServiceError::NoCaKey(_) => ErrorCode::NoCaKey,
            ServiceError::NoTrustBundle => ErrorCode::NoTrustBundle,
            ServiceError::RotationRefused(_) => ErrorCode::RotationRefused,
            ServiceError::WrongMasterKey(_) => ErrorCode::WrongMasterKey,
            ServiceError::NoSuchMember(_) => ErrorCode::NoSuchMember,
            ServiceError::Internal(_) => ErrorCode::Internal,
            ServiceError::MemberRemoved(_) => ErrorCode::MemberRemoved,
            ServiceError::NotLeader(_) => ErrorCode::NotLeader,
            ServiceError::Peer(s) => return ErrorCode::of(s),
        })
    }
}

/// The one conversion to a status.
impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Status {
        match e {
            ServiceError::Peer(s) => s,
            ServiceError::NotLeader(ref addr) => {
                let mut s = ErrorCode::NotLeader.status(e.to_string());
                if let Ok(v) = addr.parse() {
                    s.metadata_mut().insert(hamster_proto::error::LEADER_KEY, v);
                }
                s
            }
            e => {
                let code = e.code().unwrap_or(ErrorCode::Internal);
                code.status(e.to_string())
            }
        }
    }
}

impl From<CallError> for ServiceError {
    fn from(e: CallError) -> ServiceError {
        match e {
            CallError::Unavailable { .. } => ServiceError::Unavailable(e.to_string()),
            CallError::Failed(m) => ServiceError::Internal(m),
            CallError::NotLeader(addr) => ServiceError::NotLeader(addr),
        }
    }
}

/// A state's name the caller sent that is none of its values (a lock
/// mode, a role…): refused before anything is proposed.
impl From<UnknownName> for ServiceError {
    fn from(e: UnknownName) -> ServiceError {
        ServiceError::InvalidArgument(e.to_string())
    }
}

/// A peer's refusal (a forwarded call, a blob-server's answer).
impl From<Status> for ServiceError {
    fn from(s: Status) -> ServiceError {
        ServiceError::Peer(s)
    }
}

// So `?` works in the tonic handlers, which must answer a `Status`: both
// go through `ServiceError`, never build one themselves.
impl From<MetaError> for Status {
    fn from(e: MetaError) -> Status {
        ServiceError::from(e).into()
    }
}

impl From<CallError> for Status {
    fn from(e: CallError) -> Status {
        ServiceError::from(e).into()
    }
}

impl From<UnknownName> for Status {
    fn from(e: UnknownName) -> Status {
        ServiceError::from(e).into()
    }
}

impl MetaError {
    /// The stable code of this refusal (its variant name on the wire).
    pub fn code(&self) -> ErrorCode {
        match self {
            MetaError::NoSuchBucket(_) => ErrorCode::NoSuchBucket,
            MetaError::BucketAlreadyExists(_) => ErrorCode::BucketAlreadyExists,
            MetaError::BucketAlreadyOwnedByYou(_) => ErrorCode::BucketAlreadyOwnedByYou,
            MetaError::BucketNotEmpty(_) => ErrorCode::BucketNotEmpty,
            MetaError::NoSuchKey(_) => ErrorCode::NoSuchKey,
            MetaError::NoSuchVersion(_) => ErrorCode::NoSuchVersion,
            MetaError::NoSuchUpload(_) => ErrorCode::NoSuchUpload,
            MetaError::InvalidPart(_) => ErrorCode::InvalidPart,
            MetaError::InvalidPartOrder => ErrorCode::InvalidPartOrder,
            MetaError::EntityTooSmall(_) => ErrorCode::EntityTooSmall,
            MetaError::AccessDenied(_) => ErrorCode::AccessDenied,
            MetaError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            MetaError::NoSuchAccessKey(_) => ErrorCode::NoSuchAccessKey,
            MetaError::NoSuchBlobServer(_) => ErrorCode::NoSuchBlobServer,
            MetaError::InvalidRequest(_) => ErrorCode::InvalidRequest,
            MetaError::InvalidBucketState(_) => ErrorCode::InvalidBucketState,
            MetaError::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            MetaError::RotationRefused(_) => ErrorCode::RotationRefused,
            MetaError::WrongMasterKey(_) => ErrorCode::WrongMasterKey,
            MetaError::ShardMapChanged(_) => ErrorCode::ShardMapChanged,
            MetaError::BlobServerInUse(..) => ErrorCode::BlobServerInUse,
            MetaError::BlobServerRemoved(_) => ErrorCode::BlobServerRemoved,
            MetaError::BlobServerRetired(_) => ErrorCode::BlobServerRetired,
            MetaError::NotEnoughBlobServers(_) => ErrorCode::NotEnoughBlobServers,
            MetaError::ConditionalRequestConflict(_) => ErrorCode::ConditionalRequestConflict,
        }
    }
}

/// A response that is not the expected kind is a bug on our side, never
/// the caller's: say so without panicking.
pub fn unexpected(r: Response) -> ServiceError {
    match r {
        Response::Err(e) => e.into(),
        other => ServiceError::Internal(format!("unexpected state machine response {other:?}")),
    }
}

/// Expects the plain `Ok` answer.
pub fn expect_ok(r: Response) -> Result<(), ServiceError> {
    match r {
        Response::Ok => Ok(()),
        other => Err(unexpected(other)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tonic::Code;

    use super::*;

    /// One of each variant; the match makes a new variant fail to compile
    /// here until it is given a code and a row below.
    fn every_meta_error() -> Vec<(MetaError, &'static str, Code)> {
        let s = || "x".to_string();
        let all = vec![
            MetaError::NoSuchBucket(s()),
            MetaError::BucketAlreadyExists(s()),
            MetaError::BucketAlreadyOwnedByYou(s()),
            MetaError::BucketNotEmpty(s()),
            MetaError::NoSuchKey(s()),
            MetaError::NoSuchVersion(s()),
            MetaError::NoSuchUpload(s()),
            MetaError::InvalidPart(s()),
            MetaError::InvalidPartOrder,
            MetaError::EntityTooSmall(1),
            MetaError::AccessDenied(s()),
            MetaError::InvalidArgument(s()),
            MetaError::NoSuchAccessKey(s()),
            MetaError::NoSuchBlobServer(s()),
            MetaError::InvalidRequest(s()),
            MetaError::InvalidBucketState(s()),
            MetaError::MethodNotAllowed(s()),
            MetaError::RotationRefused(s()),
            MetaError::WrongMasterKey(s()),
            MetaError::ShardMapChanged(s()),
            MetaError::BlobServerInUse(s(), 3),
            MetaError::BlobServerRemoved(s()),
            MetaError::BlobServerRetired(s()),
            MetaError::NotEnoughBlobServers(s()),
            MetaError::ConditionalRequestConflict(s()),
        ];
        all.into_iter()
            .map(|e| {
                // The name and gRPC code each refusal was sent with before
                // the codes moved to hamster_proto: peers depend on them.
                let (name, code) = match &e {
                    MetaError::NoSuchBucket(_) => ("NoSuchBucket", Code::NotFound),
                    MetaError::BucketAlreadyExists(_) => {
                        ("BucketAlreadyExists", Code::AlreadyExists)
                    }
                    MetaError::BucketAlreadyOwnedByYou(_) => {
                        ("BucketAlreadyOwnedByYou", Code::AlreadyExists)
                    }
                    MetaError::BucketNotEmpty(_) => ("BucketNotEmpty", Code::FailedPrecondition),
                    MetaError::NoSuchKey(_) => ("NoSuchKey", Code::NotFound),
                    MetaError::NoSuchVersion(_) => ("NoSuchVersion", Code::NotFound),
                    MetaError::NoSuchUpload(_) => ("NoSuchUpload", Code::NotFound),
                    MetaError::InvalidPart(_) => ("InvalidPart", Code::InvalidArgument),
                    MetaError::InvalidPartOrder => ("InvalidPartOrder", Code::InvalidArgument),
                    MetaError::EntityTooSmall(_) => ("EntityTooSmall", Code::InvalidArgument),
                    MetaError::AccessDenied(_) => ("AccessDenied", Code::PermissionDenied),
                    MetaError::InvalidArgument(_) => ("InvalidArgument", Code::InvalidArgument),
                    MetaError::NoSuchAccessKey(_) => ("NoSuchAccessKey", Code::NotFound),
                    MetaError::NoSuchBlobServer(_) => ("NoSuchBlobServer", Code::NotFound),
                    MetaError::InvalidRequest(_) => ("InvalidRequest", Code::InvalidArgument),
                    MetaError::InvalidBucketState(_) => {
                        ("InvalidBucketState", Code::FailedPrecondition)
                    }
                    MetaError::MethodNotAllowed(_) => {
                        ("MethodNotAllowed", Code::FailedPrecondition)
                    }
                    MetaError::RotationRefused(_) => ("RotationRefused", Code::FailedPrecondition),
                    MetaError::WrongMasterKey(_) => ("WrongMasterKey", Code::FailedPrecondition),
                    MetaError::ShardMapChanged(_) => ("ShardMapChanged", Code::Aborted),
                    MetaError::BlobServerInUse(..) => ("BlobServerInUse", Code::FailedPrecondition),
                    MetaError::BlobServerRemoved(_) => {
                        ("BlobServerRemoved", Code::PermissionDenied)
                    }
                    MetaError::BlobServerRetired(_) => {
                        ("BlobServerRetired", Code::FailedPrecondition)
                    }
                    MetaError::NotEnoughBlobServers(_) => {
                        ("NotEnoughBlobServers", Code::FailedPrecondition)
                    }
                    MetaError::ConditionalRequestConflict(_) => {
                        ("ConditionalRequestConflict", Code::Aborted)
                    }
                };
                (e, name, code)
            })
            .collect()
    }

    #[test]
    fn every_meta_error_keeps_its_name_and_grpc_code() {
        for (e, name, grpc) in every_meta_error() {
            assert_eq!(e.code().as_str(), name, "{e:?}");
            let s = Status::from(e.clone());
            assert_eq!(s.code(), grpc, "{e:?}");
            assert_eq!(ErrorCode::of(&s), Some(e.code()), "{e:?}");
            assert_eq!(s.message(), e.to_string());
        }
    }

    #[test]
    fn a_refused_removal_names_how_many_shards_are_still_named() {
        let s = Status::from(MetaError::BlobServerInUse("blob-2".into(), 1234));
        assert_eq!(ErrorCode::of(&s), Some(ErrorCode::BlobServerInUse));
        assert!(
            s.message().contains("1234") && s.message().contains("blob-2"),
            "{s:?}"
        );
    }

    #[test]
    fn a_service_error_becomes_a_status_carrying_its_code() {
        let cases = [
            (ServiceError::RequestTimeout, ErrorCode::RequestTimeout),
            (
                ServiceError::Malformed("version is required".into()),
                ErrorCode::MalformedRequest,
            ),
            (ServiceError::Unauthenticated, ErrorCode::Unauthenticated),
            (
                ServiceError::RoleNotAdmitted("blob holds no master key".into()),
                ErrorCode::RoleNotAdmitted,
            ),
            (ServiceError::NoTrustBundle, ErrorCode::NoTrustBundle),
            (ServiceError::NoCaKey("no key".into()), ErrorCode::NoCaKey),
            (ServiceError::Internal("bug".into()), ErrorCode::Internal),
            (
                MetaError::NoSuchBucket("b".into()).into(),
                ErrorCode::NoSuchBucket,
            ),
        ];
        for (e, code) in cases {
            let message = e.to_string();
            let s = Status::from(e);
            assert_eq!(ErrorCode::of(&s), Some(code));
            assert_eq!(s.code(), code.grpc_code());
            assert_eq!(s.message(), message);
        }
    }

    #[test]
    fn call_errors_keep_their_class_and_text() {
        let e = CallError::Unavailable {
            waited: Duration::from_secs(1),
            why: "no leader elected".into(),
        };
        let s = Status::from(e);
        assert_eq!(s.code(), Code::Unavailable);
        assert_eq!(ErrorCode::of(&s), Some(ErrorCode::Unavailable));
        assert!(s.message().starts_with("meta tier unavailable"), "{s:?}");
        let s = Status::from(CallError::Failed("metadata store error".into()));
        assert_eq!(
            (s.code(), s.message()),
            (Code::Internal, "metadata store error")
        );
    }

    #[test]
    fn a_peers_status_passes_unchanged() {
        let theirs = ErrorCode::NoCaKey.status("not here");
        let s = Status::from(ServiceError::from(theirs));
        assert_eq!(ErrorCode::of(&s), Some(ErrorCode::NoCaKey));
        assert_eq!(s.message(), "not here");
        let bare = Status::from(ServiceError::from(Status::invalid_argument("old peer")));
        assert_eq!(
            (bare.code(), ErrorCode::of(&bare)),
            (Code::InvalidArgument, None)
        );
    }

    #[test]
    fn unexpected_answers_are_internal_and_refusals_keep_their_code() {
        let s = Status::from(unexpected(Response::Ok));
        assert_eq!(ErrorCode::of(&s), Some(ErrorCode::Internal));
        let refused = expect_ok(Response::Err(MetaError::InvalidPartOrder));
        let s = Status::from(refused.expect_err("a refusal"));
        assert_eq!(ErrorCode::of(&s), Some(ErrorCode::InvalidPartOrder));
    }
}
