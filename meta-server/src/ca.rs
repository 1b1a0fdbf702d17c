//! CA custody and issuance (ADR 0019).
//!
//! - [`CaStore`]: the CA directory of a meta-server started with
//!   `--ca-dir`. The initial CA is `ca.crt`/`ca.key` (from `hamster init`);
//!   each CA a rotation mints here is `ca-<fp>.crt`/`ca-<fp>.key` (0600).
//!   The directory is read at each use, so a key copied in later counts,
//!   and a lost one only stops this node signing.
//! - [`Issuer`]: signs a CSR with the issuing CA named in the trust
//!   bundle: here if this node holds that CA's key, otherwise on the
//!   meta-server that does (the bundle names the one that minted it;
//!   the others are asked after it). Only CSRs and certificates travel.

use std::path::PathBuf;
use std::sync::Arc;

use hamster_proto::pb::{RenewRequest, certs_client::CertsClient};
use hamster_proto::pki::{self, CertAuthority, Validity};
use hamster_proto::secrets::{write_private, write_public};
use hamster_proto::{PeerIdentity, Role};

use crate::cluster::Meta;
use crate::grpc::errors::ServiceError;
use crate::state::ca_rotation;

/// A meta-server's CA directory, if it has one.
#[derive(Clone, Debug, Default)]
pub struct CaStore {
    pub dir: Option<PathBuf>,
}

impl CaStore {
    /// The CA whose certificate has fingerprint `fp`, if its key is here.
    pub fn authority(&self, fp: &str) -> Option<CertAuthority> {
        pki::authority_in_dir(self.dir.as_ref()?, fp)
    }

    /// Mints a new CA: the key is written here (0600) before anything
    /// else, and only the certificate (PEM) is returned.
    pub fn mint(&self) -> anyhow::Result<String> {
        let dir = self
            .dir
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("this meta-server has no --ca-dir"))?;
        let pair = pki::generate_ca(
            &crate::cluster::now_ms().to_string(),
            Validity::starting_now(pki::CA_VALIDITY),
        )?;
        let fp = ca_rotation::ca_fingerprint(&pair.cert_pem)
            .ok_or_else(|| anyhow::anyhow!("the minted CA does not parse"))?;
        let stem = format!("ca-{}", &fp[..16]);
        write_private(&dir.join(format!("{stem}.key")), pair.key_pem.as_bytes())?;
        write_public(&dir.join(format!("{stem}.crt")), pair.cert_pem.as_bytes())?;
        tracing::info!(ca = %fp, dir = %dir.display(), "new CA minted; its key stays in this directory");
        Ok(pair.cert_pem)
    }
}

/// Signs CSRs with the cluster's issuing CA, wherever its key is.
pub struct Issuer {
    pub meta: Arc<Meta>,
    pub store: CaStore,
}

impl Issuer {
    /// The issuing CA's fingerprint and the node that minted it.
    async fn issuing(&self) -> Result<(String, String), ServiceError> {
        let b = self
            .meta
            .read(async |c| ca_rotation::bundle(c).await)
            .await?
            .ok_or(ServiceError::NoTrustBundle)?;
        Ok((b.issuing, b.issuer))
    }

    /// Signs here only: for a CSR another meta-server forwarded.
    pub async fn sign_here(
        &self,
        csr: &str,
        identity: &PeerIdentity,
    ) -> Result<(String, String), ServiceError> {
        let (fp, _) = self.issuing().await?;
        let ca = self.store.authority(&fp).ok_or_else(|| {
            ServiceError::NoCaKey(format!("this node does not hold the key of CA {fp}"))
        })?;
        Ok((signed(&ca, csr, identity)?, fp))
    }

    /// Signs here if this node holds the issuing key, else forwards the
    /// CSR to the meta-servers in turn, the minting one first.
    /// Answers the certificate and the CA that signed it.
    pub async fn sign(
        &self,
        csr: &str,
        identity: &PeerIdentity,
    ) -> Result<(String, String), ServiceError> {
        let (fp, issuer) = self.issuing().await?;
        if let Some(ca) = self.store.authority(&fp) {
            return Ok((signed(&ca, csr, identity)?, fp));
        }
        let me = self.meta.tls.identity().node_id.clone();
        let (nodes, _) = self.meta.members();
        let mut others: Vec<_> = nodes.into_values().filter(|n| n.name != me).collect();
        others.sort_by_key(|n| n.name != issuer);
        let mut last =
            ServiceError::Unavailable(format!("no meta-server holds the key of CA {fp}"));
        for n in others {
            // A key holder that stopped answering costs one deadline.
            let ch = match hamster_proto::transport::channel_with_deadline(
                &n.addr,
                &self.meta.tls,
                &[Role::Meta],
                hamster_proto::transport::MEMBER_CALL_TIMEOUT,
            ) {
                Ok(ch) => ch,
                Err(e) => {
                    last = ServiceError::Unavailable(e.to_string());
                    continue;
                }
            };
            let r = CertsClient::new(ch)
                .renew(RenewRequest {
                    csr_pem: csr.to_string(),
                    for_identity: identity.uri(),
                })
                .await;
            match r {
                Ok(r) => {
                    let r = r.into_inner();
                    return Ok((r.cert_pem, r.issuing_ca_fingerprint));
                }
                // The CSR or the identity itself refused: every holder of
                // the key would refuse it alike. Judged by the gRPC class,
                // which a peer without error codes sends too.
                Err(e)
                    if matches!(
                        e.code(),
                        tonic::Code::InvalidArgument | tonic::Code::PermissionDenied
                    ) =>
                {
                    return Err(e.into());
                }
                Err(e) => last = e.into(),
            }
        }
        Err(last)
    }
}

fn signed(ca: &CertAuthority, csr: &str, identity: &PeerIdentity) -> Result<String, ServiceError> {
    ca.sign_csr(csr, identity, Validity::starting_now(pki::LEAF_VALIDITY))
        .map_err(|e| ServiceError::InvalidArgument(format!("CSR: {e}")))
}
