//! rustls configs whose own certificate and trust roots are read at every
//! handshake (ADR 0002).
//!
//! [`NodeTls`] holds a node's current certified key and its current trust
//! set behind locks. The server's cert resolver, the client's cert
//! resolver and both verifiers hold an `Arc<NodeTls>` and read it on each
//! handshake, so [`NodeTls::set_certified`] or [`NodeTls::set_trust`]
//! changes the next handshake — no restart, and established connections are
//! untouched.
//!
//! It also holds the identities the cluster revoked (removed
//! blob-servers, [`crate::revoke`]): both verifiers refuse them, whatever
//! CA signed them.
//!
//! Peers are named by their `hamster://ROLE/ID` URI, not by DNS name: a
//! client checks the server's chain against the trust set and its role
//! against the roles it expects.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::identity::{IdentityError, PeerIdentity, Role};
use crate::pki::cert_fingerprint;
use crate::revoke::{self, Revoked};

/// ALPN for gRPC over HTTP/2.
const ALPN_H2: &[u8] = b"h2";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Parse { path: PathBuf, msg: String },
    #[error("trust set is empty")]
    EmptyTrust,
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("building verifier: {0}")]
    Verifier(String),
    #[error("own certificate: {0}")]
    Identity(#[from] IdentityError),
    #[error("refusing to change identity from {from} to {to} on reload")]
    IdentityChanged {
        from: PeerIdentity,
        to: PeerIdentity,
    },
}

/// The one crypto provider every config uses, passed explicitly so a second
/// provider elsewhere in the build (aws-lc-rs) can never make a builder panic.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Where a node's certificate, key and trust bundle live on disk.
#[derive(Clone, Debug)]
pub struct TlsPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub trust: PathBuf,
}

/// What a node loads from its TLS files, checked before anything is swapped in.
struct Loaded {
    certified: Arc<CertifiedKey>,
    identity: PeerIdentity,
    trust: TrustState,
}

/// A trust set and the client verifier built from it; rebuilt on change,
/// never per handshake.
struct TrustState {
    roots: Arc<RootCertStore>,
    ders: Vec<CertificateDer<'static>>,
    client_verifier: Arc<dyn ClientCertVerifier>,
}

impl TrustState {
    fn build(
        ders: Vec<CertificateDer<'static>>,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        if ders.is_empty() {
            return Err(TlsError::EmptyTrust);
        }
        let mut roots = RootCertStore::empty();
        for der in &ders {
            roots.add(der.clone())?;
        }
        let roots = Arc::new(roots);
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
        Ok(Self {
            roots,
            ders,
            client_verifier,
        })
    }
}

/// A node's live TLS state: its certificate and key, and the CAs it trusts.
pub struct NodeTls {
    provider: Arc<CryptoProvider>,
    identity: PeerIdentity,
    certified: RwLock<Arc<CertifiedKey>>,
    trust: RwLock<Arc<TrustState>>,
    /// Identities refused whatever signed them (removed blob-servers).
    revoked: Revoked,
    /// This node's own removal was logged (once is enough).
    told_removed: AtomicBool,
}

impl fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeTls")
            .field("identity", &self.identity)
            .field("trusted", &self.trusted_fingerprints())
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

// A poisoned lock only means a writer panicked mid-swap of an Arc, which
// cannot leave a half-written value: keep serving with what is there.
fn read<T: Clone>(lock: &RwLock<T>) -> T {
    match lock.read() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

fn write<T>(lock: &RwLock<T>, value: T) {
    match lock.write() {
        Ok(mut g) => *g = value,
        Err(p) => *p.into_inner() = value,
    }
}

impl NodeTls {
    /// Builds the state from PEM texts (certificate chain, private key, trust bundle).
    pub fn from_pem(cert_pem: &str, key_pem: &str, trust_pem: &str) -> Result<Arc<Self>, TlsError> {
        let provider = provider();
        let loaded = load(
            cert_pem,
            key_pem,
            trust_pem,
            &provider,
            Path::new("<memory>"),
        )?;
        Ok(Arc::new(Self {
            provider,
            identity: loaded.identity,
            certified: RwLock::new(loaded.certified),
            trust: RwLock::new(Arc::new(loaded.trust)),
            revoked: Revoked::default(),
            told_removed: AtomicBool::new(false),
        }))
    }

    /// Loads the state from files, with the revoked set kept beside the
    /// trust file (none there: nothing revoked).
    pub fn load(paths: &TlsPaths) -> Result<Arc<Self>, TlsError> {
        let (c, k, t) = read_files(paths)?;
        let revoked = read_revoked(paths)?;
        let tls = Self::from_pem(&c, &k, &t)?;
        tls.set_revoked(revoked);
        Ok(tls)
    }

    /// Re-reads the files and swaps in what they hold. Everything is parsed
    /// and checked first, so a bad file changes nothing.
    pub fn reload(&self, paths: &TlsPaths) -> Result<(), TlsError> {
        let (c, k, t) = read_files(paths)?;
        let revoked = read_revoked(paths)?;
        let loaded = load(&c, &k, &t, &self.provider, &paths.cert)?;
        if loaded.identity != self.identity {
            return Err(TlsError::IdentityChanged {
                from: self.identity.clone(),
                to: loaded.identity,
            });
        }
        // Widen trust before presenting a certificate from a new CA.
        write(&self.trust, Arc::new(loaded.trust));
        write(&self.certified, loaded.certified);
        self.set_revoked(revoked);
        Ok(())
    }

    /// Replaces the node's own certificate and key (same identity).
    pub fn set_certified(&self, cert_pem: &str, key_pem: &str) -> Result<(), TlsError> {
        let (certified, identity) =
            certified_key(cert_pem, key_pem, &self.provider, Path::new("<memory>"))?;
        if identity != self.identity {
            return Err(TlsError::IdentityChanged {
                from: self.identity.clone(),
                to: identity,
            });
        }
        write(&self.certified, certified);
        Ok(())
    }

    /// Checks a certificate and key as [`NodeTls::set_certified`] would
    /// (they match, same identity) without swapping them in.
    pub fn check_certified(&self, cert_pem: &str, key_pem: &str) -> Result<(), TlsError> {
        let (_, identity) =
            certified_key(cert_pem, key_pem, &self.provider, Path::new("<memory>"))?;
        if identity != self.identity {
            return Err(TlsError::IdentityChanged {
                from: self.identity.clone(),
                to: identity,
            });
        }
        Ok(())
    }

    /// Replaces the trust set with the CAs in `trust_pem`.
    pub fn set_trust(&self, trust_pem: &str) -> Result<(), TlsError> {
        let ders = parse_certs(trust_pem, Path::new("<memory>"))?;
        write(
            &self.trust,
            Arc::new(TrustState::build(ders, &self.provider)?),
        );
        Ok(())
    }

    /// Replaces the revoked set (the cluster's whole list); true if it
    /// changed. Takes effect at the next handshake and the next call on
    /// every open connection. A node finding itself in the list keeps
    /// running (every other tier refuses it anyway) and says so, once.
    pub fn set_revoked(&self, ids: impl IntoIterator<Item = PeerIdentity>) -> bool {
        let changed = self.revoked.replace(ids);
        if self.revoked.contains(&self.identity) && !self.told_removed.swap(true, Ordering::Relaxed)
        {
            tracing::error!(
                identity = %self.identity.uri(),
                "this node was removed from the cluster by an operator: every other node refuses it"
            );
        }
        changed
    }

    /// Whether `id` is refused as removed from the cluster.
    pub fn is_revoked(&self, id: &PeerIdentity) -> bool {
        self.revoked.contains(id)
    }

    /// The revoked identities, ordered by URI.
    pub fn revoked(&self) -> Vec<PeerIdentity> {
        self.revoked.list()
    }

    /// The live revoked set itself, for connections that check it per call.
    pub fn revocations(&self) -> Revoked {
        self.revoked.clone()
    }

    pub fn identity(&self) -> &PeerIdentity {
        &self.identity
    }

    /// Hex SHA-256 of each trusted CA certificate.
    pub fn trusted_fingerprints(&self) -> Vec<String> {
        read(&self.trust)
            .ders
            .iter()
            .map(|d| cert_fingerprint(d))
            .collect()
    }

    /// The node's current end-entity certificate.
    pub fn own_cert_der(&self) -> CertificateDer<'static> {
        let ck = read(&self.certified);
        // CertifiedKey::from_der was given a non-empty chain.
        ck.cert
            .first()
            .cloned()
            .unwrap_or_else(|| CertificateDer::from(Vec::new()))
    }

    /// Fingerprint of the trusted CA whose signature the node's own
    /// certificate carries, if any.
    pub fn own_issuer_fingerprint(&self) -> Option<String> {
        self.issuer_fingerprint(&self.own_cert_der())
    }

    /// Fingerprint of the trusted CA whose signature `cert_der` carries
    /// (a peer's certificate, once its handshake verified it).
    pub fn issuer_fingerprint(&self, cert_der: &[u8]) -> Option<String> {
        let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
        read(&self.trust).ders.iter().find_map(|ca_der| {
            let (_, ca) = X509Certificate::from_der(ca_der).ok()?;
            cert.verify_signature(Some(ca.public_key()))
                .ok()
                .map(|()| cert_fingerprint(ca_der))
        })
    }

    /// Seconds until the node's own certificate expires (negative once expired).
    pub fn own_cert_expires_in_secs(&self) -> i64 {
        let own = self.own_cert_der();
        X509Certificate::from_der(&own)
            .map(|(_, c)| {
                c.validity().not_after.timestamp()
                    - time::OffsetDateTime::now_utc().unix_timestamp()
            })
            .unwrap_or(0)
    }

    /// Server side: require a client certificate from the trust set.
    pub fn server_config(self: &Arc<Self>) -> Arc<ServerConfig> {
        let mut cfg = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("ring supports TLS 1.3") // a fixed, known-good combination
            .with_client_cert_verifier(Arc::new(LiveClientVerifier(self.clone())))
            .with_cert_resolver(Arc::new(LiveCert(self.clone())));
        cfg.alpn_protocols = vec![ALPN_H2.to_vec()];
        // A resumed session skips the verifier: every connection must meet
        // the trust and revoked set of its moment, so none is resumed.
        cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        cfg.send_tls13_tickets = 0;
        Arc::new(cfg)
    }

    /// Server side for joins: no client certificate (a joiner has none
    /// yet); the join token, checked by the handler, is the credential.
    pub fn join_server_config(self: &Arc<Self>) -> Arc<ServerConfig> {
        let mut cfg = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("ring supports TLS 1.3") // a fixed, known-good combination
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(LiveCert(self.clone())));
        cfg.alpn_protocols = vec![ALPN_H2.to_vec()];
        Arc::new(cfg)
    }

    /// Client side: present our certificate, accept a server whose chain
    /// reaches the trust set and whose role is one of `expect`.
    pub fn client_config(self: &Arc<Self>, expect: &[Role]) -> Arc<ClientConfig> {
        let mut cfg = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("ring supports TLS 1.3") // a fixed, known-good combination
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(LiveServerVerifier {
                roots: ServerRoots::Live(self.clone()),
                provider: self.provider.clone(),
                expect: expect.to_vec(),
            }))
            .with_client_cert_resolver(Arc::new(LiveCert(self.clone())));
        cfg.alpn_protocols = vec![ALPN_H2.to_vec()];
        // A resumed session skips the verifier (see `server_config`).
        cfg.resumption = rustls::client::Resumption::disabled();
        Arc::new(cfg)
    }
}

fn read_files(paths: &TlsPaths) -> Result<(String, String, String), TlsError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| TlsError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    Ok((read(&paths.cert)?, read(&paths.key)?, read(&paths.trust)?))
}

fn read_revoked(paths: &TlsPaths) -> Result<Vec<PeerIdentity>, TlsError> {
    let path = revoke::file_for(&paths.trust);
    revoke::read_file(&path).map_err(|source| TlsError::Read { path, source })
}

fn parse_certs(pem: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    crate::pki::certs_from_pem(pem).map_err(|e| TlsError::Parse {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

fn certified_key(
    cert_pem: &str,
    key_pem: &str,
    provider: &CryptoProvider,
    path: &Path,
) -> Result<(Arc<CertifiedKey>, PeerIdentity), TlsError> {
    let chain = parse_certs(cert_pem, path)?;
    let leaf = chain.first().ok_or_else(|| TlsError::Parse {
        path: path.to_path_buf(),
        msg: "no certificate".into(),
    })?;
    let identity = PeerIdentity::from_cert_der(leaf)?;
    // Never echo key material in an error: say only that it did not parse.
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| TlsError::Parse {
        path: path.with_extension("key"),
        msg: "private key does not parse as PEM".into(),
    })?;
    let certified = CertifiedKey::from_der(chain, key, provider)?;
    Ok((Arc::new(certified), identity))
}

fn load(
    cert_pem: &str,
    key_pem: &str,
    trust_pem: &str,
    provider: &Arc<CryptoProvider>,
    path: &Path,
) -> Result<Loaded, TlsError> {
    let (certified, identity) = certified_key(cert_pem, key_pem, provider, path)?;
    let trust = TrustState::build(parse_certs(trust_pem, path)?, provider)?;
    Ok(Loaded {
        certified,
        identity,
        trust,
    })
}

/// Presents the node's current certificate, as server and as client.
#[derive(Debug)]
struct LiveCert(Arc<NodeTls>);

impl ResolvesServerCert for LiveCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(read(&self.0.certified))
    }
}

impl ResolvesClientCert for LiveCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(read(&self.0.certified))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn identity_of(cert: &CertificateDer<'_>) -> Result<PeerIdentity, rustls::Error> {
    PeerIdentity::from_cert_der(cert).map_err(|_| {
        rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
    })
}

/// Refuses a peer the cluster removed; the peer is sent a
/// `certificate_revoked` alert, so it can tell why.
fn not_revoked(tls: &NodeTls, peer: &PeerIdentity) -> Result<(), rustls::Error> {
    if tls.is_revoked(peer) {
        tracing::debug!(peer = %peer.uri(), "handshake refused: removed from the cluster");
        return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
    }
    Ok(())
}

/// Checks a client certificate against the trust set of this moment, and
/// that it names a hamster identity.
#[derive(Debug)]
struct LiveClientVerifier(Arc<NodeTls>);

impl ClientCertVerifier for LiveClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Hints are optional; ours are behind a lock, and every hamster
        // client presents its one certificate regardless.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        read(&self.0.trust)
            .client_verifier
            .verify_client_cert(end_entity, intermediates, now)?;
        not_revoked(&self.0, &identity_of(end_entity)?)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0
            .provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Checks a server certificate against the trust set of this moment and
/// the roles the caller expects to reach. DNS names are not checked: the
/// identity URI is the name (ADR 0002).
#[derive(Debug)]
struct LiveServerVerifier {
    roots: ServerRoots,
    provider: Arc<CryptoProvider>,
    expect: Vec<Role>,
}

/// Where a client's trust in servers comes from.
#[derive(Debug)]
enum ServerRoots {
    /// The node's live trust set, read per handshake.
    Live(Arc<NodeTls>),
    /// A fixed set (a joiner's pinned CA).
    Fixed(Arc<RootCertStore>),
    /// None: any certificate is accepted. Only for fetching public data
    /// that is verified afterwards (a joiner's trust bundle, checked
    /// against the fingerprint pinned in its token); never for secrets.
    Unverified,
}

impl ServerCertVerifier for LiveServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        let roots = match &self.roots {
            ServerRoots::Live(tls) => Some(read(&tls.trust).roots.clone()),
            ServerRoots::Fixed(roots) => Some(roots.clone()),
            ServerRoots::Unverified => None,
        };
        if let Some(roots) = roots {
            verify_server_cert_signed_by_trust_anchor(
                &parsed,
                &roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        let peer = identity_of(end_entity)?;
        if let ServerRoots::Live(tls) = &self.roots {
            not_revoked(tls, &peer)?;
        }
        if !self.expect.is_empty() && !self.expect.contains(&peer.role) {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client with no certificate of its own that accepts servers chaining
/// to `cas` whose role is in `expect` (a joiner, once it has checked the
/// bundle against its pinned fingerprint).
pub fn pinned_client_config(
    cas: &[CertificateDer<'static>],
    expect: &[Role],
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for der in cas {
        roots.add(der.clone())?;
    }
    Ok(anonymous_client(
        ServerRoots::Fixed(Arc::new(roots)),
        expect,
    ))
}

/// A client that checks nothing about the server: for public data that is
/// verified by other means afterwards. Never send a secret over it.
pub fn unverified_client_config() -> Arc<ClientConfig> {
    anonymous_client(ServerRoots::Unverified, &[])
}

fn anonymous_client(roots: ServerRoots, expect: &[Role]) -> Arc<ClientConfig> {
    let provider = provider();
    let mut cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring supports TLS 1.3") // a fixed, known-good combination
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(LiveServerVerifier {
            roots,
            provider,
            expect: expect.to_vec(),
        }))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![ALPN_H2.to_vec()];
    Arc::new(cfg)
}
