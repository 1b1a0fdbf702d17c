//! Which roles each service admits — the one table — and the tower layer
//! that enforces it before any handler runs. Deny by default: a service
//! missing from the table admits nobody. A peer the cluster removed is
//! refused first, per call, so a connection opened before its removal
//! stops at once ([`crate::revoke`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use crate::error::ErrorCode;
use crate::identity::Role;
use crate::transport::PeerInfo;

/// Roles admitted by each gRPC service, by full service name.
pub const ADMISSION: &[(&str, &[Role])] = &[
    // Liveness and identity: anyone in the cluster.
    (
        "hamster.v1.Node",
        &[Role::Meta, Role::Blob, Role::Gateway, Role::Admin],
    ),
    // Metadata: gateways, and meta followers forwarding to the leader.
    ("hamster.v1.Meta", &[Role::Gateway, Role::Meta]),
    // Blob registry: blob-servers register (each only as itself, checked
    // in the handler); gateways, meta and the admin read. (ConfirmFree:
    // blob-servers only, below.)
    (
        "hamster.v1.Registry",
        &[Role::Blob, Role::Gateway, Role::Meta, Role::Admin],
    ),
    // Trust bundles and certificate renewal: every member and the admin,
    // each only for its own identity (checked in the handler).
    (
        "hamster.v1.Certs",
        &[Role::Meta, Role::Blob, Role::Gateway, Role::Admin],
    ),
    // Operations: the admin certificate only.
    ("hamster.v1.Admin", &[Role::Admin]),
    // Consensus: meta-servers only.
    ("hamster.v1.Raft", &[Role::Meta]),
    // Shards: gateways write and read; meta drives repair and GC (and
    // alone deletes, below).
    ("hamster.v1.Blob", &[Role::Gateway, Role::Meta]),
];

/// Methods whose roles differ from their service's entry, by full method
/// name ("pkg.Service/Method"); looked up before [`ADMISSION`].
pub const METHOD_ADMISSION: &[(&str, &[Role])] = &[
    // A repairing blob-server reads sources and writes rebuilt shards; it
    // can never delete, list, scrub or start a rebuild elsewhere.
    (
        "hamster.v1.Blob/GetShard",
        &[Role::Gateway, Role::Meta, Role::Blob],
    ),
    (
        "hamster.v1.Blob/PutShard",
        &[Role::Gateway, Role::Meta, Role::Blob],
    ),
    // Only the meta tier deletes shards, and the blob-server deletes only
    // what the meta tier confirms no version, part or upload names
    // (ADR 0029): a gateway certificate cannot delete at all.
    ("hamster.v1.Blob/DeleteShard", &[Role::Meta]),
    // Listing shard ids is the sweep's: a gateway that could list them
    // could name another gateway's not-yet-committed shards to FreeShards
    // (ids are otherwise unguessable, 128 random bits).
    ("hamster.v1.Blob/ListShards", &[Role::Meta]),
    // The check a blob-server makes before deleting: theirs alone.
    ("hamster.v1.Registry/ConfirmFree", &[Role::Blob]),
    // Scrub and repair are driven by the meta tier alone.
    ("hamster.v1.Blob/Scrub", &[Role::Meta]),
    ("hamster.v1.Blob/ScrubStatus", &[Role::Meta]),
    ("hamster.v1.Blob/Rebuild", &[Role::Meta]),
];

/// The roles admitted to the method at `path` ("/pkg.Service/Method").
pub fn admitted(path: &str) -> &'static [Role] {
    let method = path.trim_start_matches('/');
    if let Some((_, roles)) = METHOD_ADMISSION.iter().find(|(name, _)| *name == method) {
        return roles;
    }
    let service = method.split('/').next().unwrap_or("");
    ADMISSION
        .iter()
        .find(|(name, _)| *name == service)
        .map(|(_, roles)| *roles)
        .unwrap_or(&[])
}

/// Decides a call: Ok, or the gRPC status to answer with
/// (`Unauthenticated`, `BlobServerRemoved` / `MemberRemoved`, or
/// `RoleNotAdmitted`).
pub fn check(path: &str, peer: Option<&PeerInfo>) -> Result<(), tonic::Status> {
    let Some(peer) = peer else {
        return Err(ErrorCode::Unauthenticated.status("no verified peer identity"));
    };
    if peer.revoked.contains(&peer.identity) {
        return Err(crate::revoke::refusal(&peer.identity));
    }
    if admitted(path).contains(&peer.identity.role) {
        Ok(())
    } else {
        Err(ErrorCode::RoleNotAdmitted
            .status(format!("role {} may not call {path}", peer.identity.role)))
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct AuthzLayer;

impl<S> Layer<S> for AuthzLayer {
    type Service = Authz<S>;
    fn layer(&self, inner: S) -> Authz<S> {
        Authz { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Authz<S> {
    inner: S,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> Service<http::Request<B>> for Authz<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        match check(&path, req.extensions().get::<PeerInfo>()) {
            Ok(()) => Box::pin(self.inner.call(req)),
            Err(status) => {
                if let Some(p) = req.extensions().get::<PeerInfo>() {
                    // Operators grep for these two lines.
                    if p.revoked.contains(&p.identity) {
                        tracing::info!(peer = %p.identity, %path, "call refused: removed from the cluster");
                    } else {
                        tracing::info!(peer = %p.identity, %path, reason = %status.message(), "call refused by role");
                    }
                }
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::PeerIdentity;

    fn peer(role: Role) -> PeerInfo {
        PeerInfo {
            identity: PeerIdentity::new(role, "x").expect("id"),
            remote_addr: None,
            cert: None,
            revoked: Default::default(),
        }
    }

    #[test]
    fn table_admits_only_the_roles_that_belong() {
        assert!(check("/hamster.v1.Admin/Status", Some(&peer(Role::Admin))).is_ok());
        for role in [Role::Meta, Role::Blob, Role::Gateway] {
            let e = check("/hamster.v1.Admin/Status", Some(&peer(role))).expect_err("refused");
            assert_eq!(e.code(), tonic::Code::PermissionDenied);
            assert_eq!(ErrorCode::of(&e), Some(ErrorCode::RoleNotAdmitted));
        }
        assert!(check("/hamster.v1.Raft/Vote", Some(&peer(Role::Meta))).is_ok());
        assert!(check("/hamster.v1.Raft/Vote", Some(&peer(Role::Gateway))).is_err());
        // A blob peer may read and write shards (repair), nothing else.
        for ok in ["GetShard", "PutShard"] {
            let path = format!("/hamster.v1.Blob/{ok}");
            assert!(check(&path, Some(&peer(Role::Blob))).is_ok(), "{path}");
        }
        for refused in [
            "DeleteShard",
            "ListShards",
            "StatShard",
            "Scrub",
            "ScrubStatus",
            "Rebuild",
        ] {
            let path = format!("/hamster.v1.Blob/{refused}");
            let e = check(&path, Some(&peer(Role::Blob))).expect_err("refused");
            assert_eq!(
                ErrorCode::of(&e),
                Some(ErrorCode::RoleNotAdmitted),
                "{path}"
            );
        }
        assert!(check("/hamster.v1.Blob/PutShard/x", Some(&peer(Role::Blob))).is_err());
        assert!(check("/hamster.v1.Blob/GetShard", Some(&peer(Role::Admin))).is_err());
        for method in ["Scrub", "ScrubStatus", "Rebuild", "DeleteShard"] {
            let path = format!("/hamster.v1.Blob/{method}");
            assert!(check(&path, Some(&peer(Role::Meta))).is_ok(), "{path}");
            assert!(check(&path, Some(&peer(Role::Gateway))).is_err(), "{path}");
        }
    }

    /// ADR 0029: only the meta tier deletes shards; only a blob-server
    /// asks whether a shard is free; other Registry calls are unchanged.
    #[test]
    fn shard_deletion_authority() {
        let del = "/hamster.v1.Blob/DeleteShard";
        assert!(check(del, Some(&peer(Role::Meta))).is_ok());
        for role in [Role::Gateway, Role::Blob, Role::Admin] {
            let e = check(del, Some(&peer(role))).expect_err("refused");
            assert_eq!(
                ErrorCode::of(&e),
                Some(ErrorCode::RoleNotAdmitted),
                "{role}"
            );
        }
        let confirm = "/hamster.v1.Registry/ConfirmFree";
        assert!(check(confirm, Some(&peer(Role::Blob))).is_ok());
        for role in [Role::Gateway, Role::Meta, Role::Admin] {
            let e = check(confirm, Some(&peer(role))).expect_err("refused");
            assert_eq!(
                ErrorCode::of(&e),
                Some(ErrorCode::RoleNotAdmitted),
                "{role}"
            );
        }
        for role in [Role::Blob, Role::Gateway, Role::Meta, Role::Admin] {
            assert!(check("/hamster.v1.Registry/ListBlobs", Some(&peer(role))).is_ok());
        }
        // Gateways still write and read shards, but cannot list them.
        for ok in ["PutShard", "GetShard", "StatShard"] {
            let path = format!("/hamster.v1.Blob/{ok}");
            assert!(check(&path, Some(&peer(Role::Gateway))).is_ok(), "{path}");
        }
        let list = "/hamster.v1.Blob/ListShards";
        assert!(check(list, Some(&peer(Role::Meta))).is_ok());
        let e = check(list, Some(&peer(Role::Gateway))).expect_err("refused");
        assert_eq!(ErrorCode::of(&e), Some(ErrorCode::RoleNotAdmitted));
    }

    #[test]
    fn a_revoked_peer_is_refused_whatever_its_role() {
        let p = peer(Role::Blob);
        assert!(check("/hamster.v1.Node/Health", Some(&p)).is_ok());
        p.revoked
            .replace([PeerIdentity::new(Role::Blob, "x").expect("id")]);
        for path in ["/hamster.v1.Node/Health", "/hamster.v1.Registry/Heartbeat"] {
            let e = check(path, Some(&p)).expect_err("revoked");
            assert_eq!(e.code(), tonic::Code::PermissionDenied);
            assert_eq!(
                ErrorCode::of(&e),
                Some(ErrorCode::BlobServerRemoved),
                "{path}"
            );
        }
        // Another peer of the same node is unaffected.
        let other = PeerInfo {
            identity: PeerIdentity::new(Role::Blob, "y").expect("id"),
            ..p.clone()
        };
        assert!(check("/hamster.v1.Node/Health", Some(&other)).is_ok());
    }

    #[test]
    fn a_forgotten_member_of_another_role_is_refused_as_member_removed() {
        for role in [Role::Gateway, Role::Meta, Role::Admin] {
            let p = peer(role);
            let path = "/hamster.v1.Certs/Renew";
            assert!(check(path, Some(&p)).is_ok(), "{role}");
            p.revoked
                .replace([PeerIdentity::new(role, "x").expect("id")]);
            let e = check(path, Some(&p)).expect_err("revoked");
            assert_eq!(e.code(), tonic::Code::PermissionDenied);
            assert_eq!(ErrorCode::of(&e), Some(ErrorCode::MemberRemoved), "{role}");
            assert!(
                e.message().contains(&format!("hamster://{role}/x")),
                "{e:?}"
            );
        }
    }

    #[test]
    fn unknown_services_and_anonymous_callers_are_refused() {
        assert!(check("/evil.Service/Do", Some(&peer(Role::Admin))).is_err());
        assert!(check("/", Some(&peer(Role::Admin))).is_err());
        let e = check("/hamster.v1.Node/Health", None).expect_err("refused");
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        assert_eq!(ErrorCode::of(&e), Some(ErrorCode::Unauthenticated));
    }
}
