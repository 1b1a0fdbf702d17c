//! The `Certs` service (ADR 0019): members report the trust generation
//! they loaded and the CA of their certificate, and learn the published
//! bundle; members renew their certificate by CSR over mTLS. Identities
//! come from the caller's certificate, never from the request (a meta
//! forwarding a CSR to the key holder is the one exception, and never for
//! an admin identity: the admin renews where the key is).
//!
//! Every answer to `Sync` lists the identities of removed blob-servers
//! (ADR 0025), which every member then refuses; a removed server itself
//! can neither sync nor renew (the transport refuses it first; this is
//! the same rule where the state is).

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
use crate::state::ca_rotation;
use crate::state::commands::{MetaError, Op};
use crate::state::reads as q;

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

/// Refuses an identity the cluster revoked (a removed blob-server).
fn refuse_revoked(who: &PeerIdentity, revoked: &[String]) -> Result<(), ServiceError> {
    if revoked.contains(&who.uri()) {
        return Err(MetaError::BlobServerRemoved(who.node_id.clone()).into());
    }
    Ok(())
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
                    q::revoked_identities(c).await?,
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
        let revoked = self
            .meta
            .read(async |c| q::revoked_identities(c).await)
            .await?;
        refuse_revoked(&who, &revoked)?;
        let (cert, issuing) = if who.role == Role::Meta && !r.for_identity.is_empty() {
            let identity = PeerIdentity::parse_uri(&r.for_identity)
                .map_err(|e| ServiceError::Malformed(format!("for_identity: {e}")))?;
            refuse_revoked(&identity, &revoked)?;
            // A meta certificate must not be a way to an admin one.
            if identity.role == Role::Admin {
                return Err(ServiceError::AccessDenied(
                    "admin certificates are renewed only where the CA key is".into(),
                )
                .into());
            }
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
    }
}
