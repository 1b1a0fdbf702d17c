//! The error contract between tiers.
//!
//! A server that refuses a call for a reason the caller may act on sends a
//! gRPC status with an [`ErrorCode`] in the `hamster-error` metadata. The
//! code is the contract: callers (the gateway, the CLI, another
//! meta-server) match on it, never on the status message, which is prose
//! for people. Each code has one gRPC status code, so a caller that does
//! not know a code (a newer peer) still gets the right broad class.
//!
//! Codes are spelled as their variant names on the wire; a name is never
//! reused for another meaning (renaming one breaks older peers).

use tonic::{Code, Status};

/// Metadata key carrying the stable error code.
pub const ERROR_CODE_KEY: &str = "hamster-error";

/// Metadata key carrying the leader's host:port with a `NotLeader` answer.
pub const LEADER_KEY: &str = "hamster-leader";

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident => $grpc:ident, )*) => {
        /// A stable, machine-readable reason for a refusal.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $name, )*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            /// The name on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( ErrorCode::$name => stringify!($name), )*
                }
            }

            /// The code named `s`; None for a name this binary does not know.
            pub fn from_name(s: &str) -> Option<ErrorCode> {
                match s {
                    $( stringify!($name) => Some(ErrorCode::$name), )*
                    _ => None,
                }
            }

            /// The gRPC status code this refusal travels under.
            pub fn grpc_code(self) -> Code {
                match self {
                    $( ErrorCode::$name => Code::$grpc, )*
                }
            }
        }
    };
}

error_codes! {
    // --- Refusals of the metadata state machine (S3-visible) ---
    NoSuchBucket => NotFound,
    BucketAlreadyExists => AlreadyExists,
    BucketNotEmpty => FailedPrecondition,
    NoSuchKey => NotFound,
    NoSuchVersion => NotFound,
    NoSuchUpload => NotFound,
    InvalidPart => InvalidArgument,
    InvalidPartOrder => InvalidArgument,
    EntityTooSmall => InvalidArgument,
    AccessDenied => PermissionDenied,
    /// A client-supplied value is out of range or malformed.
    InvalidArgument => InvalidArgument,
    InvalidRequest => InvalidArgument,
    InvalidBucketState => FailedPrecondition,
    MethodNotAllowed => FailedPrecondition,
    /// A write took longer than the write window (its shards may already
    /// be swept as orphans): refused before it was proposed, nothing
    /// applied; the whole write must be retried.
    RequestTimeout => FailedPrecondition,

    // --- Refusals of the metadata state machine (cluster operations) ---
    NoSuchAccessKey => NotFound,
    NoSuchBlobServer => NotFound,
    /// A repair's compare-and-set lost: the shard map changed (the unit
    /// was deleted, overwritten or repaired by someone else) since the
    /// repair was planned. Nothing changed; the rebuilt shards are freed.
    ShardMapChanged => Aborted,
    /// A rotation cannot open, advance or close yet; the message says why.
    RotationRefused => FailedPrecondition,
    /// A write's data key is wrapped by a master key other than the
    /// cluster's write key: the writer holds the wrong key.
    WrongMasterKey => FailedPrecondition,
    /// No member with this role and id is known.
    NoSuchMember => NotFound,
    /// Shard maps still name this blob-server (remove without --force,
    /// or a drain not finished); the message says how many.
    BlobServerInUse => FailedPrecondition,
    /// The blob-server was removed: its id and certificate are refused
    /// for good (ADR 0025).
    BlobServerRemoved => PermissionDenied,
    /// A write names a blob-server that takes no new shards (drained or
    /// removed): placement used a stale view; place again.
    BlobServerRetired => FailedPrecondition,
    /// Too few usable blob-servers for what was asked (a drain that
    /// would leave fewer than the widest map needs).
    NotEnoughBlobServers => FailedPrecondition,

    // --- Service-level refusals ---
    /// The call came without a verified peer identity.
    Unauthenticated => Unauthenticated,
    /// The peer's role may not use this service or method.
    RoleNotAdmitted => PermissionDenied,
    /// A request message lacks a required field or cannot be decoded: a
    /// bug in the caller, never an end user's mistake.
    MalformedRequest => InvalidArgument,
    /// A node id is already taken by another member.
    NodeExists => AlreadyExists,
    /// This node does not hold the key of the CA that must sign.
    NoCaKey => FailedPrecondition,
    /// The cluster has no trust bundle yet (it is still starting).
    NoTrustBundle => Unavailable,
    /// No leader or quorum could be reached; retry.
    Unavailable => Unavailable,
    /// A bug or a storage failure on the server; not the caller's fault.
    Internal => Internal,

    // --- Blob-server refusals ---
    /// No shard with this id is stored.
    NoSuchShard => NotFound,
    /// The shard failed its checksum: its bytes must not be used.
    ShardCorrupt => DataLoss,
    /// A range outside the shard.
    OutOfRange => OutOfRange,

    // --- Added later (kept last: the order is pinned) ---
    /// CreateBucket of a bucket the caller's key already owns (another
    /// key's bucket is BucketAlreadyExists).
    BucketAlreadyOwnedByYou => AlreadyExists,
    /// A blob-server refused to delete a shard the meta tier says a
    /// version, part or upload still names (ADR 0029); nothing deleted.
    ShardInUse => FailedPrecondition,
    /// A PutShard to an id already stored (or set aside): shards are
    /// written once (ADR 0029); the stored bytes are unchanged.
    ShardExists => AlreadyExists,
    /// The member (meta, gateway, or admin) was removed or forgotten: its
    /// id and certificate are refused for good (ADR 0030). A removed
    /// blob-server is still answered BlobServerRemoved.
    MemberRemoved => PermissionDenied,
    /// An admin-only change asked of a meta-server that does not lead:
    /// followers never forward those (ADR 0030). The leader's address,
    /// when known, is in the [`LEADER_KEY`] metadata: ask it there.
    NotLeader => Unavailable,
    /// A conditional write (If-Match, If-None-Match) whose condition held
    /// when the gateway checked it but not when the command applied:
    /// another write won the race (S3's 409 ConditionalRequestConflict).
    ConditionalRequestConflict => Aborted,
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ErrorCode {
    /// The status that carries this code and `message`.
    pub fn status(self, message: impl Into<String>) -> Status {
        let mut s = Status::new(self.grpc_code(), message.into());
        s.metadata_mut().insert(
            ERROR_CODE_KEY,
            tonic::metadata::MetadataValue::from_static(self.as_str()),
        );
        s
    }

    /// The code a status carries, if it carries one this binary knows.
    pub fn of(status: &Status) -> Option<ErrorCode> {
        status
            .metadata()
            .get(ERROR_CODE_KEY)
            .and_then(|v| v.to_str().ok())
            .and_then(ErrorCode::from_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_a_status() {
        for &code in ErrorCode::ALL {
            let s = code.status("why");
            assert_eq!(ErrorCode::of(&s), Some(code), "{code}");
            assert_eq!(s.code(), code.grpc_code());
            assert_eq!(s.message(), "why");
        }
    }

    #[test]
    fn names_are_unique_and_unknown_names_are_none() {
        let mut names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        assert_eq!(ErrorCode::from_name("NoSuchThing"), None);
        let mut s = Status::not_found("x");
        s.metadata_mut()
            .insert(ERROR_CODE_KEY, "FromTheFuture".parse().expect("ascii"));
        assert_eq!(ErrorCode::of(&s), None);
        assert_eq!(ErrorCode::of(&Status::not_found("x")), None);
    }

    /// The wire names are the contract: every one is pinned here, in
    /// order, so renaming a variant fails this test rather than a peer.
    #[test]
    fn wire_names_are_pinned() {
        let pinned = [
            "NoSuchBucket",
            "BucketAlreadyExists",
            "BucketNotEmpty",
            "NoSuchKey",
            "NoSuchVersion",
            "NoSuchUpload",
            "InvalidPart",
            "InvalidPartOrder",
            "EntityTooSmall",
            "AccessDenied",
            "InvalidArgument",
            "InvalidRequest",
            "InvalidBucketState",
            "MethodNotAllowed",
            "RequestTimeout",
            "NoSuchAccessKey",
            "NoSuchBlobServer",
            "ShardMapChanged",
            "RotationRefused",
            "WrongMasterKey",
            "NoSuchMember",
            "BlobServerInUse",
            "BlobServerRemoved",
            "BlobServerRetired",
            "NotEnoughBlobServers",
            "Unauthenticated",
            "RoleNotAdmitted",
            "MalformedRequest",
            "NodeExists",
            "NoCaKey",
            "NoTrustBundle",
            "Unavailable",
            "Internal",
            "NoSuchShard",
            "ShardCorrupt",
            "OutOfRange",
            "BucketAlreadyOwnedByYou",
            "ShardInUse",
            "ShardExists",
            "MemberRemoved",
            "NotLeader",
            "ConditionalRequestConflict",
        ];
        let names: Vec<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names, pinned);
    }
}
