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
    seal_with_nonce(key, rand::random(), msg, aad)
}

/// [`seal`] with a given nonce: the golden tests reproduce their bytes.
fn seal_with_nonce(key: &[u8; 32], nonce: [u8; NONCE_LEN], msg: &[u8], aad: &[u8]) -> Vec<u8> {
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

    /// Golden envelopes (version 1) under a fixed test master key: the
    /// format every tier and every stored key depends on. Never edit
    /// them; a new format is a new version byte and new goldens.
    mod golden {
        use super::*;

        /// The test master key: bytes 0, 1, ..., 31.
        pub fn master_key() -> MasterKey {
            let dir = tempfile::tempdir().expect("tmp");
            let path = dir.path().join("kek");
            let bytes: Vec<u8> = (0..32).collect();
            std::fs::write(&path, bytes).expect("write");
            MasterKey::load(&path).expect("load")
        }
        pub const KEK_FINGERPRINT: &str = "fd191ca4f5d2dcc6c5b84adb098106b2";
        /// The DEK: bytes 0xa0, 0xa1, ..., 0xbf.
        pub fn dek() -> DataKey {
            let mut k = Zeroizing::new([0u8; DEK_LEN]);
            for (i, b) in k.iter_mut().enumerate() {
                *b = 0xa0 + i as u8;
            }
            DataKey(k)
        }
        pub const NONCE: [u8; NONCE_LEN] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        pub const WRAPPED_DEK: &str = concat!(
            "01",
            "0102030405060708090a0b0c",
            "a54bf87648315621e40bc9ecbcbe4487f2f2534d23d8e67219e6439f220bc87a",
            "556dc6c8512ec28c06ab7c61f1593384",
        );
        pub const ACCESS_KEY_ID: &str = "HKEXAMPLE01";
        pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        pub const SEALED_SECRET: &str = concat!(
            "01",
            "0102030405060708090a0b0c",
            "36d479d7e63b4544b7ca691ee64284b7ea0a2b351079234f8c031441e7770f2772c6826be9d304fa",
            "e7b771a8bd30b5864f37c95c5349f5ac",
        );
    }

    #[test]
    fn the_golden_wrapped_dek_unwraps_and_rewraps_to_the_same_bytes() {
        let kek = golden::master_key();
        assert_eq!(kek.fingerprint(), golden::KEK_FINGERPRINT);
        let g = hex::decode(golden::WRAPPED_DEK).expect("hex");
        assert_eq!(g.len(), WRAPPED_LEN);
        assert_eq!((g[0], &g[1..13]), (VERSION, &golden::NONCE[..]));
        let dek = unwrap_dek(&kek, &g).expect("the golden unwraps");
        assert_eq!(dek.expose(), golden::dek().expose());
        let again = seal_with_nonce(kek.expose(), golden::NONCE, dek.expose(), &dek_aad(&kek));
        assert_eq!(
            hex::encode(again),
            golden::WRAPPED_DEK,
            "the DEK envelope changed"
        );
    }

    #[test]
    fn the_golden_sealed_secret_opens_and_reseals_to_the_same_bytes() {
        let kek = golden::master_key();
        let g = hex::decode(golden::SEALED_SECRET).expect("hex");
        assert_eq!(g.len(), 1 + NONCE_LEN + golden::SECRET.len() + TAG_LEN);
        assert_eq!((g[0], &g[1..13]), (VERSION, &golden::NONCE[..]));
        let secret = open_secret(&kek, golden::ACCESS_KEY_ID, &g).expect("the golden opens");
        assert_eq!(secret.as_str(), golden::SECRET);
        let again = seal_with_nonce(
            &secret_key(&kek),
            golden::NONCE,
            secret.as_bytes(),
            &secret_aad(golden::ACCESS_KEY_ID),
        );
        assert_eq!(
            hex::encode(again),
            golden::SEALED_SECRET,
            "the secret envelope changed"
        );
    }

    #[test]
    fn a_version_byte_other_than_1_is_refused() {
        let kek = golden::master_key();
        let dek = hex::decode(golden::WRAPPED_DEK).expect("hex");
        let secret = hex::decode(golden::SEALED_SECRET).expect("hex");
        for v in [0u8, 2, 0x7f, 0xff] {
            let (mut d, mut s) = (dek.clone(), secret.clone());
            d[0] = v;
            s[0] = v;
            assert_eq!(
                unwrap_dek(&kek, &d).expect_err("version"),
                EnvelopeError::Version(v)
            );
            assert_eq!(
                open_secret(&kek, golden::ACCESS_KEY_ID, &s).expect_err("version"),
                EnvelopeError::Version(v)
            );
        }
    }

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
