//! The `Certs` service (ADR 0019): members report the trust generation
//! they loaded and the CA of their certificate, and learn the published
//! bundle; members renew their certificate by CSR over mTLS. Identities
//! come from the caller's certificate, never from the request (a meta
//! forwarding a CSR to the key holder is the one exception, and never for
//! an admin identity: the admin renews where the key is).
//!
//! Every answer to `Sync` lists the deny list (ADR 0030: members removed
//! or forgotten, removed blob-servers included, ADR 0025), which every
//! member then refuses; a denied identity itself can neither sync nor
//! renew (the transport refuses it first; this is the same rule where the
//! state is). Renewal is only for members the meta tier knows
//! ([`may_renew`]), so a stolen certificate of a forgotten member, or a
//! CA-signed one the cluster never saw, cannot renew itself into a new CA.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hamster_proto::pb;
use hamster_proto::pki;
use hamster_proto::transport::{peer, peer_info};
use hamster_proto::{PeerIdentity, Role};
use tonic::{Request, Response, Status};

use super::errors::{ServiceError, expect_ok};
use crate::ca::Issuer;
use crate::cluster::Meta;
use crate::state::commands::{MetaError, Op};
use crate::state::model::{Lifecycle, Role as ModelRole};
use crate::state::reads as q;
use crate::state::{ca_rotation, deny};

/// A report unchanged since it was last recorded here is recorded again
/// only after this long: members sync every 2 s, liveness is 20 s.
const RECORD_EVERY: Duration = Duration::from_secs(5);

type Recorded = HashMap<(String, String), (u64, String, Instant)>;

pub struct CertsService {
    meta: Arc<Meta>,
    issuer: Arc<Issuer>,
    /// This node's trust file: the first bundle comes from it.
    trust_file: PathBuf,
    /// What this node last recorded for each member, and when.
    recorded: Mutex<Recorded>,
}

impl CertsService {
    pub fn new(meta: Arc<Meta>, issuer: Arc<Issuer>, trust_file: PathBuf) -> Self {
        Self {
            meta,
            issuer,
            trust_file,
            recorded: Mutex::new(HashMap::new()),
        }
    }

    /// Records a member's report through Raft, unless this node recorded
    /// the same one moments ago.
    async fn record(
        &self,
        who: &PeerIdentity,
        generation: u64,
        cert_ca: String,
    ) -> Result<(), ServiceError> {
        let key = (who.role.to_string(), who.node_id.clone());
        let fresh = {
            let seen = self.recorded.lock().unwrap_or_else(|p| p.into_inner());
            seen.get(&key).is_some_and(|(g, ca, at)| {
                *g == generation && *ca == cert_ca && at.elapsed() < RECORD_EVERY
            })
        };
        if fresh {
            return Ok(());
        }
        let op = Op::MemberSeen {
            id: key.1.clone(),
            role: who.role.into(),
            generation,
            cert_ca: cert_ca.clone(),
        };
        expect_ok(self.meta.write(op).await?)?;
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (generation, cert_ca, Instant::now()));
        Ok(())
    }

    /// What the state says of `who`, on a linearizable read.
    async fn standing(&self, who: &PeerIdentity) -> Result<Standing, ServiceError> {
        let role: ModelRole = who.role.into();
        let id = who.node_id.clone();
        let raft_member = who.role == Role::Meta
            && self
                .meta
                .members()
                .0
                .values()
                .any(|n| n.name == who.node_id);
        let s = self
            .meta
            .read(async |c| {
                Ok(Standing {
                    denied: deny::is_denied(c, role, &id).await?,
                    seen: q::members(c)
                        .await?
                        .iter()
                        .any(|m| m.role == role && m.id == id),
                    registered: q::blob_lifecycle(c, &id)
                        .await?
                        .is_some_and(|l| l != Lifecycle::Removed)
                        && role == ModelRole::Blob,
                    raft_member,
                })
            })
            .await?;
        Ok(s)
    }

    /// Records the first bundle from this node's own trust file and
    /// certificate: the cluster starts out trusting what its meta-servers
    /// were given, issuing from the CA that signed them.
    async fn init_trust(&self) -> Result<(), ServiceError> {
        let text = std::fs::read_to_string(&self.trust_file)
            .map_err(|e| ServiceError::Internal(format!("reading the trust file: {e}")))?;
        let op = Op::InitTrust {
            cas: pki::split_pem(&text),
            issuing: self.meta.tls.own_issuer_fingerprint().unwrap_or_default(),
            issuer: self.meta.tls.identity().node_id.clone(),
        };
        expect_ok(self.meta.write(op).await?)?;
        Ok(())
    }
}

fn caller<T>(req: &Request<T>) -> Result<PeerIdentity, ServiceError> {
    peer(req).cloned().ok_or(ServiceError::Unauthenticated)
}

/// The answer to a denied identity: BlobServerRemoved for a blob-server
/// (the code it always had), MemberRemoved for any other role.
fn removed(who: &PeerIdentity) -> ServiceError {
    if who.role == Role::Blob {
        return MetaError::BlobServerRemoved(who.node_id.clone()).into();
    }
    ServiceError::MemberRemoved(format!(
        "{} was removed from the cluster; its certificate is refused",
        who.uri()
    ))
}

/// Refuses an identity the cluster revoked (on the deny list).
fn refuse_revoked(who: &PeerIdentity, revoked: &[String]) -> Result<(), ServiceError> {
    if revoked.contains(&who.uri()) {
        return Err(removed(who));
    }
    Ok(())
}

/// What the meta tier knows of an identity asking to be renewed.
#[derive(Clone, Copy, Debug, Default)]
struct Standing {
    /// On the deny list (removed or forgotten).
    denied: bool,
    /// Recorded by MemberSeen (it synced), not forgotten since.
    seen: bool,
    /// A blob-server in the registry, not removed.
    registered: bool,
    /// A meta-server in the Raft membership.
    raft_member: bool,
}

/// Whether the meta tier renews a certificate for `who` (ADR 0030): a
/// meta-server in the membership, a registered blob-server, a member that
/// reported (gateways, and blob-servers that synced before registering);
/// never a denied one. An admin renews only where the CA key is (not
/// judged here). Anything else: PermissionDenied, saying why.
/// `forwarded`: a CSR another meta-server passed on (`for_identity`),
/// which is also how a meta-server joining through a node without the CA
/// key gets its first certificate: Join recorded it (MemberSeen) just
/// before, and it enters the membership only once it has that certificate.
fn may_renew(who: &PeerIdentity, s: Standing, forwarded: bool) -> Result<(), ServiceError> {
    if s.denied {
        return Err(removed(who));
    }
    let known = match who.role {
        Role::Admin => true,
        Role::Meta => s.raft_member || (forwarded && s.seen),
        Role::Blob => s.registered || s.seen,
        Role::Gateway => s.seen,
    };
    if known {
        return Ok(());
    }
    Err(ServiceError::AccessDenied(format!(
        "{} is not a member the meta tier knows (never seen, or forgotten): \
         certificates are renewed only for known members",
        who.uri()
    )))
}

#[tonic::async_trait]
impl pb::certs_server::Certs for CertsService {
    async fn sync(
        &self,
        req: Request<pb::SyncRequest>,
    ) -> Result<Response<pb::SyncResponse>, Status> {
        let who = caller(&req)?;
        // The CA of the certificate this call came with, as this server
        // verified it: not the member's own word.
        let cert_ca = peer_info(&req)
            .and_then(|p| p.cert.as_ref())
            .and_then(|c| self.meta.tls.issuer_fingerprint(c))
            .unwrap_or_default();
        let r = req.into_inner();
        if r.cert_ca_fingerprint != cert_ca {
            tracing::debug!(identity = %who.uri(), said = %r.cert_ca_fingerprint, presented = %cert_ca, "member reported another CA than it presented");
        }
        let (mut bundle, revoked) = self
            .meta
            .read(async |c| {
                Ok((
                    ca_rotation::bundle(c).await?,
                    deny::revoked_identities(c).await?,
                ))
            })
            .await?;
        refuse_revoked(&who, &revoked)?;
        if bundle.is_none() {
            self.init_trust().await?;
            bundle = self
                .meta
                .read(async |c| ca_rotation::bundle(c).await)
                .await?;
        }
        let bundle = bundle.ok_or(ServiceError::NoTrustBundle)?;
        // The admin CLI syncs too, but is not a member that rotations wait on.
        if who.role != Role::Admin {
            self.record(&who, r.trust_generation, cert_ca).await?;
        }
        Ok(Response::new(pb::SyncResponse {
            trust_generation: bundle.generation,
            trust_pem: bundle.cas.concat(),
            issuing_ca_fingerprint: bundle.issuing,
            revoked,
        }))
    }

    async fn renew(
        &self,
        req: Request<pb::RenewRequest>,
    ) -> Result<Response<pb::RenewResponse>, Status> {
        let who = caller(&req)?;
        let r = req.into_inner();
        may_renew(&who, self.standing(&who).await?, false)?;
        let (cert, issuing) = if who.role == Role::Meta && !r.for_identity.is_empty() {
            let identity = PeerIdentity::parse_uri(&r.for_identity)
                .map_err(|e| ServiceError::Malformed(format!("for_identity: {e}")))?;
            // A meta certificate must not be a way to an admin one.
            if identity.role == Role::Admin {
                return Err(ServiceError::AccessDenied(
                    "admin certificates are renewed only where the CA key is".into(),
                )
                .into());
            }
            // The same rule for whom a meta-server forwards (a join records
            // its joiner before signing, so it is known here).
            may_renew(&identity, self.standing(&identity).await?, true)?;
            self.issuer.sign_here(&r.csr_pem, &identity).await?
        } else if who.role == Role::Admin {
            self.issuer.sign_here(&r.csr_pem, &who).await?
        } else {
            self.issuer.sign(&r.csr_pem, &who).await?
        };
        tracing::info!(identity = %who.uri(), forwarded_for = %r.for_identity, "certificate renewed by CSR");
        Ok(Response::new(pb::RenewResponse {
            cert_pem: cert,
            issuing_ca_fingerprint: issuing,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hamster_proto::ErrorCode;

    #[test]
    fn a_removed_servers_identity_is_refused_with_its_code() {
        let gone = PeerIdentity::new(Role::Blob, "blob-3").expect("identity");
        let other = PeerIdentity::new(Role::Blob, "blob-4").expect("identity");
        let revoked = vec![gone.uri()];
        let e = refuse_revoked(&gone, &revoked).expect_err("refused");
        let s = Status::from(e);
        assert_eq!(ErrorCode::of(&s), Some(ErrorCode::BlobServerRemoved));
        assert_eq!(s.code(), tonic::Code::PermissionDenied);
        assert!(s.message().contains("blob-3"), "{s:?}");
        assert!(refuse_revoked(&other, &revoked).is_ok());
        // The same id under another role is another identity.
        let gw = PeerIdentity::new(Role::Gateway, "blob-3").expect("identity");
        assert!(refuse_revoked(&gw, &revoked).is_ok());
        // A forgotten gateway is refused as a removed member.
        let s = Status::from(refuse_revoked(&gw, &[gw.uri()]).expect_err("refused"));
        assert_eq!(ErrorCode::of(&s), Some(ErrorCode::MemberRemoved));
    }

    #[test]
    fn only_known_members_renew() {
        let id = |role, name: &str| PeerIdentity::new(role, name).expect("identity");
        let code =
            |r: Result<(), ServiceError>| ErrorCode::of(&Status::from(r.expect_err("refused")));
        let none = Standing::default();
        // Unknown (a CA-signed certificate the cluster never saw), any role.
        for role in [Role::Meta, Role::Blob, Role::Gateway] {
            assert_eq!(
                code(may_renew(&id(role, "x"), none, false)),
                Some(ErrorCode::AccessDenied)
            );
        }
        let seen = Standing { seen: true, ..none };
        let registered = Standing {
            registered: true,
            ..none
        };
        let raft = Standing {
            raft_member: true,
            ..none
        };
        assert!(may_renew(&id(Role::Gateway, "g"), seen, false).is_ok());
        assert!(may_renew(&id(Role::Blob, "b"), registered, false).is_ok());
        assert!(may_renew(&id(Role::Blob, "b"), seen, false).is_ok());
        assert!(may_renew(&id(Role::Meta, "m"), raft, false).is_ok());
        // A record is not enough for a meta-server outside the membership,
        // nor a blob's registration for a gateway.
        assert!(may_renew(&id(Role::Meta, "m"), seen, false).is_err());
        // ...except a joiner's first certificate, passed on by the meta-server
        // that took its Join (which recorded it) and lacks the CA key.
        assert!(may_renew(&id(Role::Meta, "m"), seen, true).is_ok());
        assert!(may_renew(&id(Role::Meta, "m"), none, true).is_err());
        assert!(may_renew(&id(Role::Gateway, "g"), registered, false).is_err());
        // Denied beats everything.
        let all = Standing {
            denied: true,
            seen: true,
            registered: true,
            raft_member: true,
        };
        assert_eq!(
            code(may_renew(&id(Role::Gateway, "g"), all, false)),
            Some(ErrorCode::MemberRemoved)
        );
        assert_eq!(
            code(may_renew(&id(Role::Meta, "m"), all, false)),
            Some(ErrorCode::MemberRemoved)
        );
        assert_eq!(
            code(may_renew(&id(Role::Blob, "b"), all, false)),
            Some(ErrorCode::BlobServerRemoved)
        );
        assert!(may_renew(&id(Role::Admin, "a"), none, false).is_ok());
    }
}
