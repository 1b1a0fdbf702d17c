//! The master keys a key holder (meta-server, gateway) has in memory: the
//! current one from `--master-key-file` and, during a rotation, the next
//! one from `--next-master-key-file`, a path that may not exist yet. Both
//! files are read again on SIGHUP, without restart.
//!
//! Keys are found by fingerprint: a wrapped data key names the master key
//! that wrapped it, and the meta tier names the key new writes must use.
//! Only fingerprints are ever logged or sent.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::secrets::{MasterKey, SecretError};

#[derive(Clone)]
struct Keys {
    current: Arc<MasterKey>,
    next: Option<Arc<MasterKey>>,
}

pub struct Keyring {
    current_path: PathBuf,
    next_path: Option<PathBuf>,
    keys: RwLock<Keys>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (current, next) = self.fingerprints();
        write!(f, "Keyring(current {current}, next {next:?})")
    }
}

fn load_next(path: Option<&Path>) -> Result<Option<Arc<MasterKey>>, SecretError> {
    match path {
        Some(p) if p.exists() => Ok(Some(Arc::new(MasterKey::load(p)?))),
        _ => Ok(None),
    }
}

impl Keyring {
    /// Loads the current key (which must exist) and the next one if its
    /// file exists.
    pub fn load(current: &Path, next: Option<&Path>) -> Result<Self, SecretError> {
        let keys = Keys {
            current: Arc::new(MasterKey::load(current)?),
            next: load_next(next)?,
        };
        Ok(Self {
            current_path: current.to_path_buf(),
            next_path: next.map(Path::to_path_buf),
            keys: RwLock::new(keys),
        })
    }

    /// A keyring of given keys (tests, tools).
    pub fn of(current: MasterKey, next: Option<MasterKey>) -> Self {
        Self {
            current_path: PathBuf::new(),
            next_path: None,
            keys: RwLock::new(Keys {
                current: Arc::new(current),
                next: next.map(Arc::new),
            }),
        }
    }

    fn keys(&self) -> Keys {
        // A poisoned lock still holds whole keys: a writer only swaps them.
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Reads both files again. A file that fails to load changes nothing:
    /// the error says why and the keys in memory stay.
    pub fn reload(&self) -> Result<(), SecretError> {
        let keys = Keys {
            current: Arc::new(MasterKey::load(&self.current_path)?),
            next: load_next(self.next_path.as_deref())?,
        };
        let (current, next) = (
            keys.current.fingerprint(),
            keys.next.as_ref().map(|k| k.fingerprint()),
        );
        match self.keys.write() {
            Ok(mut k) => *k = keys,
            Err(p) => *p.into_inner() = keys,
        }
        tracing::info!(current = %current, next = ?next, "master keys reloaded");
        Ok(())
    }

    pub fn current(&self) -> Arc<MasterKey> {
        self.keys().current
    }

    pub fn next(&self) -> Option<Arc<MasterKey>> {
        self.keys().next
    }

    /// The key with this fingerprint, if held.
    pub fn get(&self, fingerprint: &str) -> Option<Arc<MasterKey>> {
        let k = self.keys();
        std::iter::once(k.current)
            .chain(k.next)
            .find(|key| key.fingerprint() == fingerprint)
    }

    /// The key to write under, given the cluster's write key `fingerprint`
    /// ("" before the cluster recorded one: this holder's current key).
    /// None: this holder does not hold the write key (a split key).
    pub fn for_write(&self, fingerprint: &str) -> Option<Arc<MasterKey>> {
        if fingerprint.is_empty() {
            return Some(self.current());
        }
        self.get(fingerprint)
    }

    /// (current, next) fingerprints.
    pub fn fingerprints(&self) -> (String, Option<String>) {
        let k = self.keys();
        (
            k.current.fingerprint(),
            k.next.as_ref().map(|n| n.fingerprint()),
        )
    }

    /// Both fingerprints, as a log line shows them.
    pub fn describe(&self) -> String {
        match self.fingerprints() {
            (c, Some(n)) => format!("current {c}, next {n}"),
            (c, None) => format!("current {c}, no next key"),
        }
    }

    /// Reloads on every SIGHUP, for as long as the process runs.
    pub fn reload_on_sighup(self: &Arc<Self>) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup())?;
        let ring = self.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                if let Err(e) = ring.reload() {
                    tracing::error!(error = %e, "master keys not reloaded; keeping the keys in memory");
                }
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_key_appears_on_reload_and_a_bad_file_changes_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let (cur, next) = (dir.path().join("master.key"), dir.path().join("next.key"));
        let a = MasterKey::generate();
        a.write_new(&cur).expect("write");
        let ring = Keyring::load(&cur, Some(&next)).expect("load");
        assert_eq!(ring.fingerprints(), (a.fingerprint(), None));
        let b = MasterKey::generate();
        b.write_new(&next).expect("write");
        ring.reload().expect("reload");
        assert_eq!(
            ring.fingerprints(),
            (a.fingerprint(), Some(b.fingerprint()))
        );
        assert!(ring.get(&b.fingerprint()).is_some());
        assert!(ring.get("00").is_none());
        std::fs::write(&next, b"short").expect("write");
        assert!(ring.reload().is_err());
        assert_eq!(
            ring.fingerprints(),
            (a.fingerprint(), Some(b.fingerprint()))
        );
        assert!(!format!("{ring:?}").contains(&hex::encode(a.expose())));
    }

    #[test]
    fn the_write_key_is_the_clusters_or_none() {
        let (a, b) = (MasterKey::generate(), MasterKey::generate());
        let (fa, fb) = (a.fingerprint(), b.fingerprint());
        let ring = Keyring::of(a, Some(b));
        let fp = |k: Option<Arc<MasterKey>>| k.map(|k| k.fingerprint());
        assert_eq!(fp(ring.for_write("")), Some(fa.clone()));
        assert_eq!(fp(ring.for_write(&fa)), Some(fa));
        assert_eq!(fp(ring.for_write(&fb)), Some(fb));
        assert_eq!(fp(ring.for_write("00")), None);
    }
}
