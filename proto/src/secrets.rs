//! Secret material: the master key, S3 secrets, private-key files.
//!
//! Secrets are read from files into memory, zeroed when dropped, and their
//! `Debug` says `[redacted]`: a secret cannot reach a log line by accident.
//! Files holding secrets are created mode 0600 and fsynced.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rand::Rng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Length of the master key (KEK) in bytes: an AES-256 key.
pub const MASTER_KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: a master key file holds exactly {MASTER_KEY_LEN} bytes, found {found}")]
    BadLength { path: String, found: usize },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SecretError + '_ {
    move |source| SecretError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The cluster master key (KEK). Memory only.
pub struct MasterKey(Zeroizing<[u8; MASTER_KEY_LEN]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({}, [redacted])", self.fingerprint())
    }
}

impl MasterKey {
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        rand::rng().fill(&mut k[..]);
        Self(k)
    }

    /// Reads a key file: exactly 32 raw bytes.
    pub fn load(path: &Path) -> Result<Self, SecretError> {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(io_err(path))?);
        if bytes.len() != MASTER_KEY_LEN {
            return Err(SecretError::BadLength {
                path: path.display().to_string(),
                found: bytes.len(),
            });
        }
        warn_if_readable_by_others(path);
        let mut k = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        k.copy_from_slice(&bytes);
        Ok(Self(k))
    }

    /// Writes the key to a new file, mode 0600.
    pub fn write_new(&self, path: &Path) -> Result<(), SecretError> {
        write_private(path, &self.0[..])
    }

    /// A one-way name for the key, safe to log, replicate and compare:
    /// hex of SHA-256 over a domain tag and the key, first 16 bytes.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"hamster/kek-fingerprint/v1\0");
        h.update(&self.0[..]);
        hex::encode(&h.finalize()[..16])
    }

    pub fn expose(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.0
    }
}

/// An S3 access key: a public id and a signing secret.
pub struct AccessKey {
    pub id: String,
    secret: Zeroizing<String>,
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessKey({}, [redacted])", self.id)
    }
}

const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

impl AccessKey {
    /// A new key: id "HK" + 18 base32 characters (20, like AWS ids), secret
    /// 40 characters of base64 alphabet (238 bits).
    pub fn generate() -> Self {
        Self {
            id: format!("HK{}", random_string(ID_ALPHABET, 18)),
            secret: Zeroizing::new(random_string(SECRET_ALPHABET, 40)),
        }
    }

    pub fn new(id: String, secret: String) -> Self {
        Self {
            id,
            secret: Zeroizing::new(secret),
        }
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }
}

/// Creates `path` with mode 0600 (refusing to overwrite) and writes `data`,
/// fsynced. The mode is set at creation, so the secret is never readable by
/// others, not even for an instant.
pub fn write_private(path: &Path, data: &[u8]) -> Result<(), SecretError> {
    write_new(path, data, 0o600)
}

/// Creates `path` with mode 0644 (refusing to overwrite): certificates, CSRs.
pub fn write_public(path: &Path, data: &[u8]) -> Result<(), SecretError> {
    write_new(path, data, 0o644)
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), SecretError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_err(path))?;
    // The umask may have removed bits; never added any. Set exactly.
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io_err(path))?;
    f.write_all(data).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))?;
    Ok(())
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "secret file is readable by group or others; chmod 600 it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_key_round_trips_through_a_0600_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("master.key");
        let key = MasterKey::generate();
        key.write_new(&path).expect("write");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = MasterKey::load(&path).expect("load");
        assert_eq!(back.expose(), key.expose());
        assert_eq!(back.fingerprint(), key.fingerprint());
        assert!(key.write_new(&path).is_err(), "must not overwrite");
    }

    #[test]
    fn debug_never_shows_secret_bytes() {
        let key = MasterKey::generate();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&hex::encode(key.expose())));
        let ak = AccessKey::generate();
        assert!(!format!("{ak:?}").contains(ak.secret()));
    }

    #[test]
    fn wrong_length_key_file_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("short.key");
        write_private(&path, b"too short").expect("write");
        assert!(matches!(
            MasterKey::load(&path),
            Err(SecretError::BadLength { found: 9, .. })
        ));
    }
}
