//! Segment encryption. An object's plaintext is cut into `SEGMENT_SIZE`
//! segments (the last may be shorter, or empty for an empty object); each
//! is sealed with AES-256-GCM under the object's own data key:
//!
//! ```text
//! nonce = 0u32 (BE) | segment index u64 (BE)      unique per key
//! AAD   = "hamster/segment/v1" | index u64 BE | last (1 byte)
//! out   = ciphertext | 16-byte tag
//! ```
//! The "last" flag in the AAD means dropping trailing segments (or
//! passing a middle segment off as the end) fails to open. A fresh key
//! per object makes index nonces unique without any counter state.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, AeadInOut, KeyInit, Payload};
use hamster_proto::envelope::DataKey;

/// Plaintext bytes per segment.
pub const SEGMENT_SIZE: usize = 1 << 20;
/// AES-GCM tag bytes added to each segment.
pub const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("segment {0} does not open (wrong key, position or data)")]
    Open(u64),
}

pub struct SegmentCipher {
    aead: Aes256Gcm,
}

fn nonce(index: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&index.to_be_bytes());
    n
}

fn aad(index: u64, last: bool) -> [u8; 27] {
    let mut a = [0u8; 27];
    a[..18].copy_from_slice(b"hamster/segment/v1");
    a[18..26].copy_from_slice(&index.to_be_bytes());
    a[26] = u8::from(last);
    a
}

impl SegmentCipher {
    pub fn new(dek: &DataKey) -> Self {
        Self {
            aead: Aes256Gcm::new(&(*dek.expose()).into()),
        }
    }

    /// Seals segment `index`; `last` marks the object's final segment.
    pub fn seal(&self, index: u64, last: bool, plain: &[u8]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(plain.len() + TAG_LEN);
        buf.extend_from_slice(plain);
        self.seal_in_place(index, last, &mut buf);
        buf
    }

    /// Seals `buf` in place, appending the tag: no copy, and no
    /// reallocation when `buf` has room for [`TAG_LEN`] more bytes (the
    /// chunker's segments do).
    pub fn seal_in_place(&self, index: u64, last: bool, buf: &mut Vec<u8>) {
        // Fails only past aes-gcm's length bound (~64 GiB), far above a
        // segment.
        let _ = self
            .aead
            .encrypt_in_place(&nonce(index).into(), &aad(index, last), buf);
    }

    pub fn open(&self, index: u64, last: bool, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.aead
            .decrypt(
                &nonce(index).into(),
                Payload {
                    msg: sealed,
                    aad: &aad(index, last),
                },
            )
            .map_err(|_| CryptoError::Open(index))
    }

    /// [`Self::open`] without a copy: `buf` (the sealed segment) becomes
    /// its plaintext. On failure its contents are unspecified.
    pub fn open_in_place(
        &self,
        index: u64,
        last: bool,
        buf: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        self.aead
            .decrypt_in_place(&nonce(index).into(), &aad(index, last), buf)
            .map_err(|_| CryptoError::Open(index))
    }
}

/// Number of segments of an object of `size` bytes (an empty object has
/// one, empty, segment: its tag still proves the object is empty).
pub fn segment_count(size: u64) -> u64 {
    size.div_ceil(SEGMENT_SIZE as u64).max(1)
}

/// Plaintext length of segment `index` of an object of `size` bytes.
pub fn segment_len(size: u64, index: u64) -> usize {
    let seg = SEGMENT_SIZE as u64;
    size.saturating_sub(index * seg).min(seg) as usize
}

/// The segments holding plaintext bytes `start..=end` (end < size).
pub fn segments_for_range(start: u64, end: u64) -> std::ops::RangeInclusive<u64> {
    let seg = SEGMENT_SIZE as u64;
    (start / seg)..=(end / seg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_open_only_in_their_place() {
        let dek = DataKey::generate();
        let c = SegmentCipher::new(&dek);
        let plain = b"marker-plaintext-abcdef".repeat(100);
        let s = c.seal(7, false, &plain);
        assert_eq!(s.len(), plain.len() + TAG_LEN);
        assert!(
            !s.windows(16).any(|w| w == &plain[..16]),
            "plaintext visible"
        );
        assert_eq!(c.open(7, false, &s).expect("open"), plain);
        assert_eq!(
            c.open(8, false, &s),
            Err(CryptoError::Open(8)),
            "moved segment"
        );
        assert_eq!(
            c.open(7, true, &s),
            Err(CryptoError::Open(7)),
            "passed off as last"
        );
        assert!(
            SegmentCipher::new(&DataKey::generate())
                .open(7, false, &s)
                .is_err()
        );
        let mut bad = s.clone();
        bad[3] ^= 1;
        assert!(c.open(7, false, &bad).is_err());
        // An empty last segment still authenticates.
        let e = c.seal(0, true, b"");
        assert_eq!(c.open(0, true, &e).expect("empty"), b"");
        // In place: the same plaintext, and the same refusals.
        let mut buf = s.clone();
        c.open_in_place(7, false, &mut buf).expect("in place");
        assert_eq!(buf, plain);
        let mut buf = s.clone();
        assert_eq!(
            c.open_in_place(7, true, &mut buf),
            Err(CryptoError::Open(7))
        );
        let mut buf = bad;
        assert!(c.open_in_place(7, false, &mut buf).is_err());
    }

    #[test]
    fn segment_arithmetic() {
        let seg = SEGMENT_SIZE as u64;
        assert_eq!(segment_count(0), 1);
        assert_eq!(segment_count(1), 1);
        assert_eq!(segment_count(seg), 1);
        assert_eq!(segment_count(seg + 1), 2);
        assert_eq!(segment_len(seg + 1, 0), SEGMENT_SIZE);
        assert_eq!(segment_len(seg + 1, 1), 1);
        assert_eq!(segment_len(0, 0), 0);
        assert_eq!(segments_for_range(seg - 1, seg), 0..=1);
        assert_eq!(segments_for_range(5, 6), 0..=0);
    }
}
