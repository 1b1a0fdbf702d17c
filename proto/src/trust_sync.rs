//! A member's side of CA rotation (ADR 0019), the same in every tier.
//!
//! Every few seconds a member calls `Certs.Sync` on a meta-server: it
//! reports the trust generation it has loaded and the CA of its own
//! certificate, and learns the published bundle and the issuing CA.
//! - A newer bundle is written to the member's trust file (atomically,
//!   so a restart comes back with it) and swapped into the transport.
//! - If the issuing CA is not the one that signed its certificate, and
//!   the member already trusts it, the member makes a new key, sends a
//!   CSR over its existing mTLS channel (`Certs.Renew`), writes key and
//!   certificate, and presents the new certificate from the next
//!   handshake on. The key never leaves this process and its disk.
//! - The revoked identities (removed blob-servers, ADR 0025, and members
//!   removed or forgotten, ADR 0030: any role), the whole
//!   list every round, are swapped into the transport at once and kept
//!   beside the trust file (`<trust>.revoked`), so a restart refuses them
//!   before its first sync.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::Channel;

use crate::Role;
use crate::pb::{RenewRequest, SyncRequest, certs_client::CertsClient};
use crate::pki;
use crate::revoke;
use crate::tls::{NodeTls, TlsPaths};

/// How often a member syncs.
pub const SYNC_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("calling the meta tier: {0}")]
    Call(String),
    #[error("the published trust bundle is unusable: {0}")]
    Bundle(String),
    #[error("renewing the certificate: {0}")]
    Renew(String),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn write_err(path: &Path) -> impl Fn(std::io::Error) -> SyncError + '_ {
    move |source| SyncError::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes `data` to `path` with `mode` so that a crash leaves the old file
/// or the new one, never a mix: a synced temporary file, then a rename.
pub fn replace_file(path: &Path, data: &[u8], mode: u32) -> Result<(), SyncError> {
    // Unique per process and call: nodes may share one trust file.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp = sibling(
        path,
        &format!(
            ".tmp.{}.{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ),
    );
    write_synced(&tmp, data, mode)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(write_err(path)(e));
    }
    sync_dir(path)
}

fn write_synced(path: &Path, data: &[u8], mode: u32) -> Result<(), SyncError> {
    let _ = std::fs::remove_file(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(write_err(path))?;
    f.write_all(data).map_err(write_err(path))?;
    f.sync_all().map_err(write_err(path))
}

fn sync_dir(path: &Path) -> Result<(), SyncError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(write_err(dir))?;
    }
    Ok(())
}

/// Installs a new key and certificate: both written beside the old ones
/// first (`.new`), then the key renamed, then the certificate. A crash in
/// between is finished by [`recover_pending`] at the next start.
pub fn install_certified(paths: &TlsPaths, cert_pem: &str, key_pem: &str) -> Result<(), SyncError> {
    let (key_new, cert_new) = (sibling(&paths.key, ".new"), sibling(&paths.cert, ".new"));
    write_synced(&key_new, key_pem.as_bytes(), 0o600)?;
    write_synced(&cert_new, cert_pem.as_bytes(), 0o644)?;
    std::fs::rename(&key_new, &paths.key).map_err(write_err(&paths.key))?;
    std::fs::rename(&cert_new, &paths.cert).map_err(write_err(&paths.cert))?;
    sync_dir(&paths.cert)?;
    sync_dir(&paths.key)
}

/// Finishes (or drops) an [`install_certified`] a crash interrupted.
/// Both `.new` files are complete and synced before the first rename, so:
/// no `key.new` means the key was renamed and the certificate must follow;
/// both present means no rename happened, and they are installed only if
/// they form a whole pair (a crash while writing leaves a partial one,
/// which is dropped, the old pair untouched).
pub fn recover_pending(paths: &TlsPaths) {
    let (key_new, cert_new) = (sibling(&paths.key, ".new"), sibling(&paths.cert, ".new"));
    if !cert_new.exists() {
        let _ = std::fs::remove_file(&key_new);
        return;
    }
    if !key_new.exists() {
        let _ = std::fs::rename(&cert_new, &paths.cert);
        tracing::info!(cert = %paths.cert.display(), "finished installing a renewed certificate");
        return;
    }
    let pair = std::fs::read_to_string(&cert_new)
        .ok()
        .zip(std::fs::read_to_string(&key_new).ok())
        .zip(std::fs::read_to_string(&paths.trust).ok());
    let Some(((cert, key), trust)) = pair else {
        return;
    };
    if NodeTls::from_pem(&cert, &key, &trust).is_ok() {
        let _ = std::fs::rename(&key_new, &paths.key);
        let _ = std::fs::rename(&cert_new, &paths.cert);
        tracing::info!(cert = %paths.cert.display(), "finished installing a renewed certificate");
    } else {
        let _ = std::fs::remove_file(&key_new);
        let _ = std::fs::remove_file(&cert_new);
    }
}

/// A member's trust and certificate, kept in step with the meta tier.
pub struct TrustSync {
    tls: Arc<NodeTls>,
    paths: TlsPaths,
    /// The generation loaded (0: none learned yet this run).
    generation: AtomicU64,
    /// Revoked entries that did not parse, as last logged (logged again
    /// only when they change, not every round).
    unparsed: Mutex<Vec<String>>,
}

impl TrustSync {
    pub fn new(tls: Arc<NodeTls>, paths: TlsPaths) -> Arc<Self> {
        Arc::new(Self {
            tls,
            paths,
            generation: AtomicU64::new(0),
            unparsed: Mutex::default(),
        })
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// One round with a meta-server: report, load a newer bundle, renew
    /// if the issuing CA changed. Returns whether anything changed.
    pub async fn round(&self, ch: Channel) -> Result<bool, SyncError> {
        let call = |e: tonic::Status| SyncError::Call(format!("{:?}: {}", e.code(), e.message()));
        let mut client = CertsClient::new(ch);
        let own_ca = self.tls.own_issuer_fingerprint().unwrap_or_default();
        let r = client
            .sync(SyncRequest {
                trust_generation: self.generation(),
                cert_ca_fingerprint: own_ca.clone(),
            })
            .await
            .map_err(call)?
            .into_inner();
        // First, so a removal takes effect whatever else this round meets;
        // a failure to keep it on disk is answered after the rest.
        let revoked = self.apply_revoked(&r.revoked);
        let mut changed = false;
        if r.trust_generation > self.generation() && !r.trust_pem.is_empty() {
            self.load_trust(&r.trust_pem)?;
            self.generation.store(r.trust_generation, Ordering::Relaxed);
            changed = true;
        }
        let issuing = r.issuing_ca_fingerprint;
        let trusted = self.tls.trusted_fingerprints();
        if !issuing.is_empty() && issuing != own_ca && trusted.contains(&issuing) {
            let identity = self.tls.identity().clone();
            let extra = pki::extra_names_of(&self.tls.own_cert_der());
            let (csr, key) = pki::generate_csr(&identity, &extra)
                .map_err(|e| SyncError::Renew(e.to_string()))?;
            let key = zeroize::Zeroizing::new(key);
            let cert = client
                .renew(RenewRequest {
                    csr_pem: csr,
                    for_identity: String::new(),
                })
                .await
                .map_err(call)?
                .into_inner()
                .cert_pem;
            // Checked, then on disk, then presented: a certificate that does
            // not fit is never written, and one in use is always on disk
            // (else a restart would come back with a certificate the
            // cluster may no longer trust).
            self.tls
                .check_certified(&cert, &key)
                .map_err(|e| SyncError::Renew(e.to_string()))?;
            install_certified(&self.paths, &cert, &key)?;
            self.tls
                .set_certified(&cert, &key)
                .map_err(|e| SyncError::Renew(e.to_string()))?;
            tracing::info!(
                ca = %self.tls.own_issuer_fingerprint().unwrap_or_default(),
                "certificate renewed from the issuing CA; new key made here"
            );
            changed = true;
        }
        revoked?;
        Ok(changed)
    }

    /// Takes the cluster's revoked list (whole): into the transport at
    /// once, then to `<trust>.revoked` if that file says otherwise.
    /// Entries that do not parse are skipped (logged), never fatal.
    pub fn apply_revoked(&self, uris: &[String]) -> Result<(), SyncError> {
        let (ids, bad) = revoke::parse(uris.iter().map(String::as_str));
        {
            let mut unparsed = self.unparsed.lock().unwrap_or_else(|p| p.into_inner());
            if *unparsed != bad {
                for entry in &bad {
                    tracing::warn!(%entry, "revoked entry is not an identity URI; skipped");
                }
                *unparsed = bad;
            }
        }
        if self.tls.set_revoked(ids) {
            let list: Vec<String> = self.tls.revoked().iter().map(|p| p.uri()).collect();
            tracing::info!(revoked = ?list, "revoked identities changed");
        }
        let path = revoke::file_for(&self.paths.trust);
        let text = revoke::render(&self.tls.revoked());
        let on_disk = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(write_err(&path)(e)),
        };
        if on_disk != text {
            replace_file(&path, text.as_bytes(), 0o644)?;
        }
        Ok(())
    }

    /// Writes a bundle to the trust file, then swaps it in.
    fn load_trust(&self, pem: &str) -> Result<(), SyncError> {
        let current = std::fs::read_to_string(&self.paths.trust).unwrap_or_default();
        let same = pki::certs_from_pem(&current).ok() == pki::certs_from_pem(pem).ok();
        let ders = pki::certs_from_pem(pem).map_err(|e| SyncError::Bundle(e.to_string()))?;
        if ders.is_empty() {
            return Err(SyncError::Bundle("no CA certificate".into()));
        }
        // Built (and so checked) before it is written: a bundle that is
        // not a usable trust set never reaches the disk.
        self.tls
            .set_trust(pem)
            .map_err(|e| SyncError::Bundle(e.to_string()))?;
        if !same {
            replace_file(&self.paths.trust, pem.as_bytes(), 0o644)?;
        }
        tracing::info!(cas = ders.len(), "trust bundle loaded");
        Ok(())
    }

    /// Syncs every [`SYNC_EVERY`] with the first of `addrs` that answers,
    /// until the process ends.
    pub fn spawn(self: Arc<Self>, addrs: Vec<String>) {
        tokio::spawn(async move {
            let mut warned = String::new();
            let mut at = 0usize;
            loop {
                let mut result = Err(SyncError::Call("no meta address".into()));
                for i in 0..addrs.len() {
                    let addr = &addrs[(at + i) % addrs.len()];
                    // Unary calls only: each gets a deadline (ADR 0032).
                    let ch = match crate::transport::channel_with_deadline(
                        addr,
                        &self.tls,
                        &[Role::Meta],
                        crate::transport::MEMBER_CALL_TIMEOUT,
                    ) {
                        Ok(ch) => ch,
                        Err(e) => {
                            result = Err(SyncError::Call(e.to_string()));
                            continue;
                        }
                    };
                    result = self.round(ch).await;
                    if matches!(result, Err(SyncError::Call(_))) {
                        continue;
                    }
                    at = (at + i) % addrs.len();
                    break;
                }
                let pause = match result {
                    // Report what changed at once: rotations wait on it.
                    Ok(true) => Duration::from_millis(100),
                    Ok(false) => {
                        warned.clear();
                        SYNC_EVERY
                    }
                    Err(e) => {
                        let e = e.to_string();
                        if e != warned {
                            tracing::warn!(error = %e, "trust sync failed");
                            warned = e;
                        }
                        SYNC_EVERY
                    }
                };
                tokio::time::sleep(pause).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PeerIdentity;
    use crate::pki::{CertAuthority, ExtraNames, Validity};

    /// A node's files signed by a fresh CA, and a second key and
    /// certificate for the same identity (a renewal).
    fn setup(dir: &Path) -> (TlsPaths, String, String) {
        let ca = pki::generate_ca("t", Validity::starting_now(pki::CA_VALIDITY)).expect("ca");
        let auth = CertAuthority::from_pem(&ca.cert_pem, &ca.key_pem).expect("authority");
        let id = PeerIdentity::new(Role::Blob, "b1").expect("id");
        let issue = || {
            let (csr, key) = pki::generate_csr(&id, &ExtraNames::default()).expect("csr");
            let cert = auth
                .sign_csr(&csr, &id, Validity::starting_now(pki::LEAF_VALIDITY))
                .expect("sign");
            (cert, key)
        };
        let paths = TlsPaths {
            cert: dir.join("node.crt"),
            key: dir.join("node.key"),
            trust: dir.join("trust.pem"),
        };
        let (cert, key) = issue();
        std::fs::write(&paths.cert, &cert).expect("cert");
        std::fs::write(&paths.key, &key).expect("key");
        std::fs::write(&paths.trust, &ca.cert_pem).expect("trust");
        let (cert2, key2) = issue();
        (paths, cert2, key2)
    }

    fn loads_as(paths: &TlsPaths, cert: &str) -> bool {
        NodeTls::load(paths).is_ok()
            && std::fs::read_to_string(&paths.cert).ok().as_deref() == Some(cert)
    }

    #[test]
    fn the_revoked_list_is_applied_and_kept_for_the_next_start() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().expect("dir");
        let (paths, _, _) = setup(d.path());
        let sync = TrustSync::new(NodeTls::load(&paths).expect("load"), paths.clone());
        let file = revoke::file_for(&paths.trust);
        let b2 = PeerIdentity::new(Role::Blob, "b2").expect("id");
        let b3 = PeerIdentity::new(Role::Blob, "b3").expect("id");
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();

        // Nothing revoked and no file: nothing written.
        sync.apply_revoked(&[]).expect("apply");
        assert!(!file.exists());

        // A bad entry is skipped; the others take effect and are kept.
        sync.apply_revoked(&list(&[
            "hamster://blob/b3",
            "garbage",
            "hamster://blob/b2",
        ]))
        .expect("apply");
        assert!(sync.tls.is_revoked(&b2) && sync.tls.is_revoked(&b3));
        assert_eq!(
            std::fs::read_to_string(&file).expect("file"),
            "hamster://blob/b2\nhamster://blob/b3\n"
        );
        let inode = std::fs::metadata(&file).expect("stat").ino();

        // The same list again: the file is not rewritten.
        sync.apply_revoked(&list(&["hamster://blob/b2", "hamster://blob/b3"]))
            .expect("apply");
        assert_eq!(std::fs::metadata(&file).expect("stat").ino(), inode);

        // A restarted node refuses them before any sync.
        let restarted = NodeTls::load(&paths).expect("load");
        assert_eq!(restarted.revoked(), vec![b2.clone(), b3.clone()]);

        // The list shrinks (an operator's mistake undone): so do both.
        sync.apply_revoked(&list(&["hamster://blob/b3"]))
            .expect("apply");
        assert!(!sync.tls.is_revoked(&b2));
        assert_eq!(NodeTls::load(&paths).expect("load").revoked(), vec![b3]);

        // Its own identity in the list: kept (and logged), the node runs on.
        sync.apply_revoked(&list(&["hamster://blob/b1"]))
            .expect("apply");
        assert!(sync.tls.is_revoked(sync.tls.identity()));
    }

    #[test]
    fn an_interrupted_certificate_install_is_finished_or_dropped_whole() {
        // Crashed before any rename: both .new files complete.
        let d = tempfile::tempdir().expect("dir");
        let (paths, cert, key) = setup(d.path());
        std::fs::write(sibling(&paths.key, ".new"), &key).expect("w");
        std::fs::write(sibling(&paths.cert, ".new"), &cert).expect("w");
        recover_pending(&paths);
        assert!(loads_as(&paths, &cert), "the new pair is installed");

        // Crashed between the renames: the key is new, the certificate old.
        let d = tempfile::tempdir().expect("dir");
        let (paths, cert, key) = setup(d.path());
        std::fs::write(&paths.key, &key).expect("w");
        std::fs::write(sibling(&paths.cert, ".new"), &cert).expect("w");
        assert!(NodeTls::load(&paths).is_err(), "mismatched before recovery");
        recover_pending(&paths);
        assert!(loads_as(&paths, &cert), "the certificate follows its key");

        // Crashed while writing the certificate: the old pair stays.
        let d = tempfile::tempdir().expect("dir");
        let (paths, cert, key) = setup(d.path());
        let old = std::fs::read_to_string(&paths.cert).expect("old");
        std::fs::write(sibling(&paths.key, ".new"), &key).expect("w");
        std::fs::write(sibling(&paths.cert, ".new"), &cert[..cert.len() / 2]).expect("w");
        recover_pending(&paths);
        assert!(loads_as(&paths, &old), "the old pair is kept");
        assert!(!sibling(&paths.cert, ".new").exists() && !sibling(&paths.key, ".new").exists());

        // A whole install leaves nothing behind and loads.
        let d = tempfile::tempdir().expect("dir");
        let (paths, cert, key) = setup(d.path());
        install_certified(&paths, &cert, &key).expect("install");
        assert!(loads_as(&paths, &cert));
        replace_file(
            &paths.trust,
            std::fs::read(&paths.trust).expect("t").as_slice(),
            0o644,
        )
        .expect("replace");
        let left: Vec<_> = std::fs::read_dir(d.path())
            .expect("dir")
            .flatten()
            .collect();
        assert_eq!(left.len(), 3, "temporary files left: {left:?}");
    }
}
