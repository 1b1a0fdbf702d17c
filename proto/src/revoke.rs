//! Identities the cluster no longer talks to: removed blob-servers (ADR
//! 0025) and the meta tier's deny list, members removed or forgotten (ADR
//! 0030). Such a member keeps a certificate that still chains to the
//! trusted CA, so trust alone cannot refuse it; every tier keeps this set
//! and refuses its members:
//!
//! - at the handshake, as server and as client (the verifiers in
//!   [`crate::tls`]);
//! - per call on a connection opened before the removal: the server's
//!   authz layer answers `BlobServerRemoved` for a blob-server and
//!   `MemberRemoved` for any other role ([`crate::authz`]), and a
//!   client's connection to a revoked server fails its next read or write
//!   (`Guarded`).
//!
//! The meta tier publishes the whole list in every `Certs.Sync` answer
//! ([`crate::trust_sync`]); a member keeps it beside its trust file
//! (`<trust>.revoked`, one `hamster://ROLE/ID` a line) so that after a
//! restart it refuses removed servers before its first sync.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use rustls::{AlertDescription, CertificateError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::ErrorCode;
use crate::identity::PeerIdentity;

/// A node's revoked set, shared by its verifiers, its server connections
/// and its client connections: a change is seen by all at once.
#[derive(Clone, Default)]
pub struct Revoked {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    set: RwLock<Arc<HashSet<PeerIdentity>>>,
    /// Bumped on every change, so a connection re-checks its peer only
    /// when something changed (see [`Guarded`]).
    generation: AtomicU64,
}

impl std::fmt::Debug for Revoked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.list().iter().map(|p| p.uri()))
            .finish()
    }
}

impl Revoked {
    fn current(&self) -> Arc<HashSet<PeerIdentity>> {
        // A poisoned lock only means a writer panicked mid-swap of an Arc.
        match self.inner.set.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn contains(&self, id: &PeerIdentity) -> bool {
        self.current().contains(id)
    }

    pub fn is_empty(&self) -> bool {
        self.current().is_empty()
    }

    /// Changes with every change of the set.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// Replaces the set; true if it changed.
    pub fn replace(&self, ids: impl IntoIterator<Item = PeerIdentity>) -> bool {
        let new: HashSet<PeerIdentity> = ids.into_iter().collect();
        let mut guard = match self.inner.set.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if **guard == new {
            return false;
        }
        *guard = Arc::new(new);
        drop(guard);
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// The set, ordered by URI.
    pub fn list(&self) -> Vec<PeerIdentity> {
        let mut out: Vec<PeerIdentity> = self.current().iter().cloned().collect();
        out.sort_by_key(PeerIdentity::uri);
        out
    }
}

/// Where a node keeps its revoked set: beside its trust file.
pub fn file_for(trust: &Path) -> PathBuf {
    let mut s = trust.as_os_str().to_owned();
    s.push(".revoked");
    PathBuf::from(s)
}

/// The file's text for `ids`: one URI a line, sorted, so equal sets give
/// equal files (a rewrite happens only on a change).
pub fn render(ids: &[PeerIdentity]) -> String {
    let mut uris: Vec<String> = ids.iter().map(PeerIdentity::uri).collect();
    uris.sort();
    uris.dedup();
    uris.into_iter().map(|u| u + "\n").collect()
}

/// Parses identity URIs; answers those that parse and those that do not
/// (blank entries are neither).
pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> (Vec<PeerIdentity>, Vec<String>) {
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    for e in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
        match PeerIdentity::parse_uri(e) {
            Ok(id) => ok.push(id),
            Err(_) => bad.push(e.to_string()),
        }
    }
    (ok, bad)
}

/// Reads a revoked file (missing: nothing is revoked). Lines that do not
/// parse are logged and skipped: one bad line must not unrevoke the rest
/// nor stop the node.
pub fn read_file(path: &Path) -> io::Result<Vec<PeerIdentity>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let (ids, bad) = parse(text.lines());
    for line in bad {
        tracing::warn!(file = %path.display(), %line, "not an identity URI; skipped");
    }
    Ok(ids)
}

/// The answer to a call from a revoked identity: `BlobServerRemoved` for
/// a blob-server (the code it always had), `MemberRemoved` otherwise.
pub fn refusal(id: &PeerIdentity) -> tonic::Status {
    let code = if id.role == crate::Role::Blob {
        ErrorCode::BlobServerRemoved
    } else {
        ErrorCode::MemberRemoved
    };
    code.status(format!(
        "{} was removed from the cluster; its certificate is refused",
        id.uri()
    ))
}

/// How rustls words a `certificate_revoked` alert it received.
const REVOKED_ALERT: &str = "alert: CertificateRevoked";

fn is_revocation(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::AlertReceived(AlertDescription::CertificateRevoked)
            | rustls::Error::InvalidCertificate(CertificateError::Revoked)
    )
}

/// Whether a call failed because the callee (or the handshake) refused
/// this node as removed from the cluster: a `BlobServerRemoved` or
/// `MemberRemoved` answer, or
/// a TLS handshake ended by a `certificate_revoked` alert.
pub fn refused_as_revoked(status: &tonic::Status) -> bool {
    if matches!(
        ErrorCode::of(status),
        Some(ErrorCode::BlobServerRemoved | ErrorCode::MemberRemoved)
    ) {
        return true;
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(status);
    while let Some(e) = next {
        if e.downcast_ref::<rustls::Error>().is_some_and(is_revocation) {
            return true;
        }
        // An io::Error's source() skips the error it wraps: look inside.
        // After a TLS 1.3 handshake the alert arrives on the first read,
        // where rustls reports it as text only.
        if let Some(inner) = e.downcast_ref::<io::Error>().and_then(|io| io.get_ref())
            && (inner
                .downcast_ref::<rustls::Error>()
                .is_some_and(is_revocation)
                || inner.to_string().contains(REVOKED_ALERT))
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// A client connection that fails its next read or write once its server
/// is revoked, so calls on a connection opened before the removal stop at
/// once. The set is looked at only when its generation moved.
pub(crate) struct Guarded<S> {
    inner: S,
    /// The server's identity and the set to check it against; None: not
    /// checked (a joiner's connection, which has no revoked set).
    guard: Option<(PeerIdentity, Revoked)>,
    seen: u64,
}

impl<S> Guarded<S> {
    /// Fails if `peer` is already revoked.
    pub(crate) fn new(inner: S, guard: Option<(PeerIdentity, Revoked)>) -> io::Result<Self> {
        let mut me = Self {
            inner,
            guard,
            seen: u64::MAX,
        };
        me.check()?;
        Ok(me)
    }

    fn check(&mut self) -> io::Result<()> {
        let Some((peer, revoked)) = &self.guard else {
            return Ok(());
        };
        let generation = revoked.generation();
        if generation == self.seen {
            return Ok(());
        }
        if revoked.contains(peer) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} was removed from the cluster", peer.uri()),
            ));
        }
        self.seen = generation;
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    fn blob(id: &str) -> PeerIdentity {
        PeerIdentity::new(Role::Blob, id).expect("id")
    }

    #[test]
    fn replace_reports_changes_and_moves_the_generation() {
        let r = Revoked::default();
        assert!(!r.contains(&blob("a")));
        let g0 = r.generation();
        assert!(r.replace([blob("a"), blob("b")]));
        assert!(r.contains(&blob("a")) && !r.contains(&blob("c")));
        let g1 = r.generation();
        assert_ne!(g0, g1);
        assert!(!r.replace([blob("b"), blob("a")]), "same set, any order");
        assert_eq!(r.generation(), g1);
        assert!(r.replace([]));
        assert!(r.is_empty());
    }

    #[test]
    fn text_round_trips_sorted_and_bad_entries_are_set_apart() {
        let text = render(&[blob("z"), blob("a"), blob("a")]);
        assert_eq!(text, "hamster://blob/a\nhamster://blob/z\n");
        let (ok, bad) = parse(format!("{text}\n  \nnot-a-uri\nhamster://root/x\n").lines());
        assert_eq!(ok, vec![blob("a"), blob("z")]);
        assert_eq!(bad, vec!["not-a-uri", "hamster://root/x"]);
        assert_eq!(render(&[]), "");
    }

    #[test]
    fn a_missing_file_revokes_nothing() {
        let d = tempfile::tempdir().expect("dir");
        let path = file_for(&d.path().join("trust.pem"));
        assert!(path.ends_with("trust.pem.revoked"));
        assert!(read_file(&path).expect("read").is_empty());
    }

    #[test]
    fn the_refusal_a_removed_server_meets_is_recognised() {
        let removed = ErrorCode::BlobServerRemoved.status("gone");
        assert!(refused_as_revoked(&removed));
        assert!(refused_as_revoked(&ErrorCode::MemberRemoved.status("gone")));
        let gw = PeerIdentity::new(Role::Gateway, "g").expect("id");
        assert_eq!(ErrorCode::of(&refusal(&gw)), Some(ErrorCode::MemberRemoved));
        assert_eq!(
            ErrorCode::of(&refusal(&blob("b"))),
            Some(ErrorCode::BlobServerRemoved)
        );
        assert!(!refused_as_revoked(
            &ErrorCode::RoleNotAdmitted.status("no")
        ));
        assert!(!refused_as_revoked(&tonic::Status::unavailable("down")));
    }
}
