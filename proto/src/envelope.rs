//! Envelope formats every tier must agree on: a data key (DEK) wrapped by
//! the master key (KEK), and an S3 secret sealed under the master key
//! (ADR 0007). Only these wrapped forms ever reach the Raft log, the DB or
//! the wire; the keys themselves stay in memory.
//!
//! ```text
//! wrapped DEK, 61 bytes:  0x01 | nonce (12) | AES-256-GCM(KEK, DEK) (32 + 16 tag)
//!                         AAD = "hamster/dek/v1" | KEK fingerprint
//! sealed secret:          0x01 | nonce (12) | AES-256-GCM(K, secret) (+16 tag)
//!                         K = HKDF-SHA256(KEK, info "hamster/access-key-seal/v1")
//!                         AAD = "hamster/secret/v1" | access key id
//! ```
//! Binding the KEK fingerprint (and the key id) into the AAD means a
//! wrapped key cannot be passed off as wrapped by another key, nor a
//! sealed secret moved to another access key.

use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use rand::Rng;
use zeroize::Zeroizing;

use crate::secrets::MasterKey;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
pub const DEK_LEN: usize = 32;
/// Length of a wrapped DEK.
pub const WRAPPED_LEN: usize = 1 + NONCE_LEN + DEK_LEN + TAG_LEN;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("unknown envelope version {0}")]
    Version(u8),
    #[error("envelope is truncated")]
    Truncated,
    #[error("envelope does not open with this master key (wrong key, or tampered)")]
    Open,
}

/// A per-object data key. Memory only; zeroed on drop; never printed.
pub struct DataKey(Zeroizing<[u8; DEK_LEN]>);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

impl DataKey {
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; DEK_LEN]);
        rand::rng().fill(&mut k[..]);
        Self(k)
    }

    pub fn expose(&self) -> &[u8; DEK_LEN] {
        &self.0
    }
}

fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(&(*key).into())
}

fn seal(key: &[u8; 32], msg: &[u8], aad: &[u8]) -> Vec<u8> {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let ct = cipher(key)
        .encrypt(&nonce.into(), Payload { msg, aad })
        // AES-GCM encryption fails only for messages beyond 64 GiB.
        .unwrap_or_default();
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let (&version, rest) = sealed.split_first().ok_or(EnvelopeError::Truncated)?;
    if version != VERSION {
        return Err(EnvelopeError::Version(version));
    }
    if rest.len() < NONCE_LEN + TAG_LEN {
        return Err(EnvelopeError::Truncated);
    }
    let (nonce, ct) = rest.split_at(NONCE_LEN);
    let mut n = [0u8; NONCE_LEN];
    n.copy_from_slice(nonce);
    cipher(key)
        .decrypt(&n.into(), Payload { msg: ct, aad })
        .map(Zeroizing::new)
        .map_err(|_| EnvelopeError::Open)
}

fn dek_aad(kek: &MasterKey) -> Vec<u8> {
    let mut aad = b"hamster/dek/v1".to_vec();
    aad.extend_from_slice(kek.fingerprint().as_bytes());
    aad
}

/// Wraps a data key under the master key.
pub fn wrap_dek(kek: &MasterKey, dek: &DataKey) -> Vec<u8> {
    seal(kek.expose(), dek.expose(), &dek_aad(kek))
}

/// Unwraps a data key; fails unless `kek` is the key that wrapped it.
pub fn unwrap_dek(kek: &MasterKey, wrapped: &[u8]) -> Result<DataKey, EnvelopeError> {
    let plain = open(kek.expose(), wrapped, &dek_aad(kek))?;
    let mut k = Zeroizing::new([0u8; DEK_LEN]);
    if plain.len() != DEK_LEN {
        return Err(EnvelopeError::Truncated);
    }
    k.copy_from_slice(&plain);
    Ok(DataKey(k))
}

/// Rewraps a data key from one master key to another (rotation: metadata
/// only, the object's bytes are untouched).
pub fn rewrap_dek(
    old: &MasterKey,
    new: &MasterKey,
    wrapped: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    Ok(wrap_dek(new, &unwrap_dek(old, wrapped)?))
}

fn secret_key(kek: &MasterKey) -> Zeroizing<[u8; 32]> {
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(None, kek.expose());
    let mut k = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit.
    let _ = hk.expand(b"hamster/access-key-seal/v1", &mut k[..]);
    k
}

fn secret_aad(access_key_id: &str) -> Vec<u8> {
    let mut aad = b"hamster/secret/v1".to_vec();
    aad.extend_from_slice(access_key_id.as_bytes());
    aad
}

/// Seals an S3 secret for storage in the meta tier.
pub fn seal_secret(kek: &MasterKey, access_key_id: &str, secret: &str) -> Vec<u8> {
    seal(
        &secret_key(kek),
        secret.as_bytes(),
        &secret_aad(access_key_id),
    )
}

/// Opens a sealed S3 secret.
pub fn open_secret(
    kek: &MasterKey,
    access_key_id: &str,
    sealed: &[u8],
) -> Result<Zeroizing<String>, EnvelopeError> {
    let plain = open(&secret_key(kek), sealed, &secret_aad(access_key_id))?;
    String::from_utf8(plain.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| EnvelopeError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deks_wrap_and_unwrap_only_under_their_master_key() {
        let (a, b) = (MasterKey::generate(), MasterKey::generate());
        let dek = DataKey::generate();
        let w = wrap_dek(&a, &dek);
        assert_eq!(w.len(), WRAPPED_LEN);
        assert!(
            !w.windows(DEK_LEN).any(|x| x == dek.expose()),
            "plain key inside the envelope"
        );
        assert_eq!(unwrap_dek(&a, &w).expect("unwrap").expose(), dek.expose());
        assert_eq!(
            unwrap_dek(&b, &w).expect_err("other key"),
            EnvelopeError::Open
        );
        // Rewrapping moves it to the new key and off the old one.
        let r = rewrap_dek(&a, &b, &w).expect("rewrap");
        assert_eq!(unwrap_dek(&b, &r).expect("unwrap").expose(), dek.expose());
        assert!(unwrap_dek(&a, &r).is_err());
        // Any flipped bit is refused.
        for i in 0..w.len() {
            let mut bad = w.clone();
            bad[i] ^= 1;
            assert!(unwrap_dek(&a, &bad).is_err(), "byte {i}");
        }
        assert_eq!(
            unwrap_dek(&a, &w[..20]).expect_err("short"),
            EnvelopeError::Truncated
        );
        assert_eq!(
            unwrap_dek(&a, &[]).expect_err("empty"),
            EnvelopeError::Truncated
        );
    }

    #[test]
    fn secrets_are_bound_to_their_access_key_id() {
        let kek = MasterKey::generate();
        let sealed = seal_secret(&kek, "HKID1", "s3cr3t-value");
        assert!(!sealed.windows(6).any(|x| x == b"s3cr3t"));
        assert_eq!(
            open_secret(&kek, "HKID1", &sealed).expect("open").as_str(),
            "s3cr3t-value"
        );
        assert!(
            open_secret(&kek, "HKID2", &sealed).is_err(),
            "moved to another key id"
        );
        assert!(open_secret(&MasterKey::generate(), "HKID1", &sealed).is_err());
    }
}
