//! Who a peer is: its role and node id, carried in its certificate as the
//! SAN URI `hamster://ROLE/ID`.

use std::fmt;
use std::str::FromStr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// URI scheme of the identity SAN.
pub const SCHEME: &str = "hamster://";

/// The part a node plays; services admit peers by role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Meta,
    Blob,
    Gateway,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Meta, Role::Blob, Role::Gateway, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Meta => "meta",
            Role::Blob => "blob",
            Role::Gateway => "gateway",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("unknown role {0:?} (expected meta, blob, gateway or admin)")]
    UnknownRole(String),
    #[error("invalid node id {0:?}: use 1-64 of [A-Za-z0-9._-]")]
    BadNodeId(String),
    #[error("not a hamster identity URI: {0:?}")]
    BadUri(String),
    #[error("certificate cannot be parsed")]
    BadCertificate,
    #[error("certificate carries no hamster:// identity")]
    Missing,
    #[error("certificate carries more than one hamster:// identity")]
    Ambiguous,
}

impl FromStr for Role {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| IdentityError::UnknownRole(s.to_string()))
    }
}

/// A peer's verified identity, as its certificate states it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerIdentity {
    pub role: Role,
    pub node_id: String,
}

impl PeerIdentity {
    pub fn new(role: Role, node_id: &str) -> Result<Self, IdentityError> {
        validate_node_id(node_id)?;
        Ok(Self {
            role,
            node_id: node_id.to_string(),
        })
    }

    pub fn uri(&self) -> String {
        format!("{SCHEME}{}/{}", self.role, self.node_id)
    }

    pub fn parse_uri(uri: &str) -> Result<Self, IdentityError> {
        let rest = uri
            .strip_prefix(SCHEME)
            .ok_or_else(|| IdentityError::BadUri(uri.to_string()))?;
        let (role, id) = rest
            .split_once('/')
            .ok_or_else(|| IdentityError::BadUri(uri.to_string()))?;
        Self::new(role.parse()?, id)
    }

    /// Reads the identity SAN from a DER certificate. Exactly one
    /// `hamster://` URI must be present, so a certificate cannot claim two roles.
    pub fn from_cert_der(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|_| IdentityError::BadCertificate)?;
        let san = cert
            .subject_alternative_name()
            .map_err(|_| IdentityError::BadCertificate)?;
        let mut found = None;
        for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
            if let GeneralName::URI(uri) = name
                && uri.starts_with(SCHEME)
            {
                if found.is_some() {
                    return Err(IdentityError::Ambiguous);
                }
                found = Some(Self::parse_uri(uri)?);
            }
        }
        found.ok_or(IdentityError::Missing)
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.role, self.node_id)
    }
}

fn validate_node_id(id: &str) -> Result<(), IdentityError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(IdentityError::BadNodeId(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_round_trips() {
        let id = PeerIdentity::new(Role::Gateway, "gw-1").expect("valid");
        assert_eq!(id.uri(), "hamster://gateway/gw-1");
        assert_eq!(PeerIdentity::parse_uri(&id.uri()), Ok(id));
    }

    #[test]
    fn bad_uris_are_refused() {
        for bad in [
            "hamster://root/x",
            "hamster://meta/",
            "hamster://meta/a/b",
            "http://meta/x",
            "hamster://meta",
        ] {
            assert!(PeerIdentity::parse_uri(bad).is_err(), "{bad} accepted");
        }
    }
}
