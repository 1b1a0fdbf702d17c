//! Certificates: the cluster CA, node and admin certificates, CSRs.
//!
//! Every key is ECDSA P-256 with SHA-256 (ADR 0003). A node makes its own
//! key and a CSR; only the CSR travels. The signer, not the CSR, decides the
//! role and id a certificate carries.

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
    string::Ia5String,
};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::identity::{IdentityError, PeerIdentity, Role};

/// Lifetime of a cluster CA certificate.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Default lifetime of a node or admin certificate.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Certificates start a little in the past so peers with a slow clock accept them.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("CSR asks for identity {asked} but the signer was told {told}")]
    IdentityMismatch { asked: String, told: String },
    #[error("invalid subject alternative name {0:?}")]
    BadSan(String),
    #[error("no PEM certificate found")]
    NoCertificate,
    #[error("PEM: {0}")]
    Pem(String),
}

/// A certificate and the private key that goes with it, both PEM.
/// The key is private: never log it, write it only with `secrets::write_private`.
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

/// Extra names a server certificate may carry besides its identity URI
/// (for S3 clients that check a DNS name or IP).
#[derive(Clone, Debug, Default)]
pub struct ExtraNames {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

/// Validity window for a new certificate, from `now` back-dated a little.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    pub fn starting_now(lifetime: Duration) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - BACKDATE,
            not_after: now + lifetime,
        }
    }
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // a positive INTEGER
    SerialNumber::from_slice(&bytes)
}

/// Mints a new self-signed cluster CA. `label` distinguishes CA generations.
pub fn generate_ca(label: &str, validity: Validity) -> Result<Pair, PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Hamster");
    params
        .distinguished_name
        .push(DnType::CommonName, format!("Hamster cluster CA {label}"));
    // Path length 0: the CA signs leaves only, no intermediates.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params.serial_number = Some(random_serial());
    let cert = params.self_signed(&key)?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Leaf parameters shared by direct issuance and CSR signing: the identity
/// URI plus extra names, and the usages a node (server and client) needs.
fn leaf_params(
    identity: &PeerIdentity,
    extra: &ExtraNames,
    validity: Validity,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, identity.to_string());
    let uri = Ia5String::try_from(identity.uri()).map_err(|_| PkiError::BadSan(identity.uri()))?;
    params.subject_alt_names.push(SanType::URI(uri));
    for dns in &extra.dns {
        let name = Ia5String::try_from(dns.clone()).map_err(|_| PkiError::BadSan(dns.clone()))?;
        params.subject_alt_names.push(SanType::DnsName(name));
    }
    for ip in &extra.ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = if identity.role == Role::Admin {
        vec![ExtendedKeyUsagePurpose::ClientAuth]
    } else {
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ]
    };
    params.use_authority_key_identifier_extension = true;
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params.serial_number = Some(random_serial());
    Ok(params)
}

/// A CA able to sign: its certificate and key, loaded from PEM.
pub struct CertAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
}

impl CertAuthority {
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let cert_der = first_cert_der(cert_pem)?;
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)?;
        Ok(Self { issuer, cert_der })
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Issues a certificate together with a fresh key. Only for holders that
    /// live beside the CA key (the admin certificate at `init`); nodes use CSRs.
    pub fn issue_with_new_key(
        &self,
        identity: &PeerIdentity,
        extra: &ExtraNames,
        validity: Validity,
    ) -> Result<Pair, PkiError> {
        let key = KeyPair::generate()?;
        let cert = leaf_params(identity, extra, validity)?.signed_by(&key, &self.issuer)?;
        Ok(Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs a node's CSR for `identity`. If the CSR names a hamster identity
    /// it must be the same one; DNS and IP names it asks for are kept.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        identity: &PeerIdentity,
        validity: Validity,
    ) -> Result<String, PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)?;
        let mut extra = ExtraNames::default();
        for san in &csr.params.subject_alt_names {
            match san {
                SanType::URI(uri) => {
                    let asked = PeerIdentity::parse_uri(uri.as_str())?;
                    if &asked != identity {
                        return Err(PkiError::IdentityMismatch {
                            asked: asked.to_string(),
                            told: identity.to_string(),
                        });
                    }
                }
                SanType::DnsName(name) => extra.dns.push(name.as_str().to_string()),
                SanType::IpAddress(ip) => extra.ips.push(*ip),
                other => return Err(PkiError::BadSan(format!("{other:?}"))),
            }
        }
        let cert =
            leaf_params(identity, &extra, validity)?.signed_by(&csr.public_key, &self.issuer)?;
        Ok(cert.pem())
    }
}

/// A node's own key and the CSR asking for `identity`. The key stays with
/// the caller; only the CSR is meant to travel.
pub fn generate_csr(
    identity: &PeerIdentity,
    extra: &ExtraNames,
) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate()?;
    // A CSR asks only for names; usages, serial and validity are the signer's.
    let full = leaf_params(identity, extra, Validity::starting_now(LEAF_VALIDITY))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = full.distinguished_name;
    params.subject_alt_names = full.subject_alt_names;
    let csr = params.serialize_request(&key)?;
    Ok((csr.pem()?, key.serialize_pem()))
}

/// The fingerprint of the one certificate in `pem` (None unless exactly one).
pub fn pem_fingerprint(pem: &str) -> Option<String> {
    match certs_from_pem(pem).ok()?.as_slice() {
        [one] => Some(cert_fingerprint(one)),
        _ => None,
    }
}

/// The CA in directory `dir` whose certificate's fingerprint starts with
/// `fingerprint` (a full one, or a prefix of 8 hex digits or more), if
/// its key (`NAME.key` beside `NAME.crt`) is there too. The directory is
/// read now, so what is on disk at this moment counts.
pub fn authority_in_dir(dir: &std::path::Path, fingerprint: &str) -> Option<CertAuthority> {
    if fingerprint.len() < 8 {
        return None;
    }
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let path = e.path();
        if path.extension()? != "crt" {
            return None;
        }
        let cert = std::fs::read_to_string(&path).ok()?;
        if !pem_fingerprint(&cert)?.starts_with(fingerprint) {
            return None;
        }
        let key = std::fs::read_to_string(path.with_extension("key")).ok()?;
        CertAuthority::from_pem(&cert, &key).ok()
    })
}

/// The DNS and IP names a certificate carries besides its identity URI,
/// so a renewal keeps them.
pub fn extra_names_of(der: &[u8]) -> ExtraNames {
    use x509_parser::extensions::GeneralName;
    let mut out = ExtraNames::default();
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return out;
    };
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => out.dns.push((*d).to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => {
                        let a: [u8; 4] = [b[0], b[1], b[2], b[3]];
                        out.ips.push(IpAddr::from(a));
                    }
                    16 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(b);
                        out.ips.push(IpAddr::from(a));
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    out
}

/// Each certificate of a PEM bundle as its own PEM block (text outside
/// the blocks is dropped). Blocks that do not parse are left out.
pub fn split_pem(bundle: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    bundle
        .split_inclusive(END)
        .filter_map(|chunk| {
            let start = chunk.find("-----BEGIN CERTIFICATE-----")?;
            let block = format!("{}\n", chunk[start..].trim_end());
            (block.ends_with(&format!("{END}\n"))
                && certs_from_pem(&block).is_ok_and(|c| c.len() == 1))
            .then_some(block)
        })
        .collect()
}

/// Hex SHA-256 of a certificate's DER: how CAs are named in status and trust bundles.
pub fn cert_fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// All certificates in a PEM text, in order.
pub fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Pem(e.to_string()))
}

fn first_cert_der(pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    certs_from_pem(pem)?
        .into_iter()
        .next()
        .ok_or(PkiError::NoCertificate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (Pair, CertAuthority) {
        let pair = generate_ca("test", Validity::starting_now(CA_VALIDITY)).expect("ca");
        let ca = CertAuthority::from_pem(&pair.cert_pem, &pair.key_pem).expect("load ca");
        (pair, ca)
    }

    #[test]
    fn csr_signing_keeps_the_key_with_the_node_and_sets_identity() {
        let (_, ca) = ca();
        let id = PeerIdentity::new(Role::Blob, "blob-7").expect("id");
        let extra = ExtraNames {
            dns: vec!["blob-7.local".into()],
            ips: vec![],
        };
        let (csr, key) = generate_csr(&id, &extra).expect("csr");
        assert!(!csr.contains("PRIVATE KEY"), "a CSR must not carry the key");
        assert!(key.contains("PRIVATE KEY"));
        let cert_pem = ca
            .sign_csr(&csr, &id, Validity::starting_now(LEAF_VALIDITY))
            .expect("sign");
        let der = first_cert_der(&cert_pem).expect("der");
        assert_eq!(PeerIdentity::from_cert_der(&der).expect("identity"), id);
    }

    #[test]
    fn csr_for_another_identity_is_refused() {
        let (_, ca) = ca();
        let asked = PeerIdentity::new(Role::Admin, "evil").expect("id");
        let told = PeerIdentity::new(Role::Blob, "blob-1").expect("id");
        let (csr, _) = generate_csr(&asked, &ExtraNames::default()).expect("csr");
        let err = ca
            .sign_csr(&csr, &told, Validity::starting_now(LEAF_VALIDITY))
            .expect_err("must refuse");
        assert!(matches!(err, PkiError::IdentityMismatch { .. }), "{err}");
    }

    #[test]
    fn tampered_csr_is_refused() {
        let (_, ca) = ca();
        let id = PeerIdentity::new(Role::Blob, "blob-1").expect("id");
        let (csr, _) = generate_csr(&id, &ExtraNames::default()).expect("csr");
        let bad = csr.replacen("MII", "MIJ", 1);
        assert!(
            ca.sign_csr(&bad, &id, Validity::starting_now(LEAF_VALIDITY))
                .is_err()
        );
    }
}
