//! Joining by token: a new blob-server or gateway makes its own key and a
//! CSR, and a meta-server holding the CA key signs it (ADR 0015).
//!
//! A token is `HJ1.<role>.<id>.<secret>.<ca-fingerprint>`. The meta tier
//! keeps only SHA-256(secret), the role, an expiry and a use count. The
//! joiner first fetches the public trust bundle over TLS it does not yet
//! verify, keeps the CA whose fingerprint the token pins (or stops), and
//! only then, over TLS verified against that CA, sends the token and its
//! CSR. The private key never leaves the joiner.

use std::fmt;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::identity::{PeerIdentity, Role};
use crate::pb::{self, join_client::JoinClient};
use crate::pki::{self, ExtraNames};
use crate::secrets::{write_private, write_public};
use crate::tls::{TlsPaths, pinned_client_config, unverified_client_config};
use crate::transport::channel_with;

const PREFIX: &str = "HJ1";

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("not a join token (expected HJ1.ROLE.ID.SECRET.CA-FINGERPRINT)")]
    Malformed,
    #[error("the meta tier's CA does not match the fingerprint pinned in the token")]
    PinMismatch,
    #[error("join refused: {0}")]
    Refused(String),
    #[error("join: {0}")]
    Failed(String),
}

/// A join token. Debug output never shows the secret.
pub struct JoinToken {
    pub role: Role,
    pub id: String,
    secret: Zeroizing<String>,
    pub ca_fingerprint: String,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("role", &self.role)
            .field("id", &self.id)
            .field("ca_fingerprint", &self.ca_fingerprint)
            .finish_non_exhaustive()
    }
}

fn hexish(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl JoinToken {
    pub fn new(role: Role, id: String, secret: String, ca_fingerprint: String) -> Self {
        Self {
            role,
            id,
            secret: Zeroizing::new(secret),
            ca_fingerprint,
        }
    }

    pub fn parse(s: &str) -> Result<Self, JoinError> {
        let parts: Vec<&str> = s.trim().split('.').collect();
        let [prefix, role, id, secret, fp] = parts.as_slice() else {
            return Err(JoinError::Malformed);
        };
        if *prefix != PREFIX || !hexish(id) || !hexish(secret) || !hexish(fp) {
            return Err(JoinError::Malformed);
        }
        let role: Role = role.parse().map_err(|_| JoinError::Malformed)?;
        Ok(Self::new(
            role,
            id.to_string(),
            secret.to_string(),
            fp.to_string(),
        ))
    }

    pub fn encode(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "{PREFIX}.{}.{}.{}.{}",
            self.role,
            self.id,
            self.secret.as_str(),
            self.ca_fingerprint
        ))
    }

    /// What the meta tier stores and compares: never the secret itself.
    pub fn secret_hash(&self) -> String {
        hex::encode(Sha256::digest(self.secret.as_bytes()))
    }
}

fn status(e: tonic::Status) -> JoinError {
    match e.code() {
        tonic::Code::PermissionDenied | tonic::Code::InvalidArgument => {
            JoinError::Refused(e.message().to_string())
        }
        _ => JoinError::Failed(format!("{:?}: {}", e.code(), e.message())),
    }
}

/// Joins through the meta-server's join port at `addr` as `node_id`;
/// writes the new key (0600), certificate and trust bundle to `paths`.
pub async fn join(
    addr: &str,
    token: &JoinToken,
    node_id: &str,
    paths: &TlsPaths,
) -> Result<(), JoinError> {
    let failed = |e: &dyn fmt::Display| JoinError::Failed(e.to_string());
    // 1. The public trust bundle, over TLS not yet verified: nothing secret is sent.
    let ch = channel_with(addr, unverified_client_config()).map_err(|e| failed(&e))?;
    let trust = JoinClient::new(ch)
        .trust(pb::TrustRequest {})
        .await
        .map_err(status)?
        .into_inner()
        .trust_pem;
    let certs = pki::certs_from_pem(&trust).map_err(|e| failed(&e))?;
    let pinned = certs
        .iter()
        .find(|c| pki::cert_fingerprint(c) == token.ca_fingerprint)
        .ok_or(JoinError::PinMismatch)?;
    // 2. Over TLS verified against the pinned CA (a meta-server): the token and our CSR.
    let identity = PeerIdentity::new(token.role, node_id).map_err(|e| failed(&e))?;
    let (csr, key) =
        pki::generate_csr(&identity, &ExtraNames::default()).map_err(|e| failed(&e))?;
    let key = Zeroizing::new(key);
    let config = pinned_client_config(std::slice::from_ref(pinned), &[Role::Meta])
        .map_err(|e| failed(&e))?;
    let ch = channel_with(addr, config).map_err(|e| failed(&e))?;
    let r = JoinClient::new(ch)
        .join(pb::JoinRequest {
            token: token.encode().to_string(),
            node_id: node_id.to_string(),
            csr_pem: csr,
        })
        .await
        .map_err(status)?
        .into_inner();
    // The certificate last: its presence means the join is complete.
    write_private(&paths.key, key.as_bytes()).map_err(|e| failed(&e))?;
    write_public(&paths.trust, r.trust_pem.as_bytes()).map_err(|e| failed(&e))?;
    write_public(&paths.cert, r.cert_pem.as_bytes()).map_err(|e| failed(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_hide_their_secret() {
        let t = JoinToken::new(Role::Blob, "ab12".into(), "cafe".repeat(8), "f0".repeat(32));
        let s = t.encode();
        let back = JoinToken::parse(&s).expect("parse");
        assert_eq!((back.role, back.id.as_str()), (Role::Blob, "ab12"));
        assert_eq!(back.secret_hash(), t.secret_hash());
        assert!(!format!("{t:?}").contains("cafe"), "Debug shows the secret");
        for bad in [
            "",
            "HJ1.blob.ab.cd",
            "HJ2.blob.ab.cd.ef",
            "HJ1.nope.ab.cd.ef",
            "HJ1.blob.xy.cd.ef",
        ] {
            assert!(JoinToken::parse(bad).is_err(), "{bad}");
        }
    }
}
