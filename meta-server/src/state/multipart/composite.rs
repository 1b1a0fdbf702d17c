//! S3's composite checksum of a multipart object: the upload's algorithm
//! over the concatenated binary checksums of its parts, base64, then
//! "-N" (N parts). Computed at apply from what CommitPart stored, so
//! every node derives the same value.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha1::Digest as _;
use sha2::Digest as _;

/// The type S3 shows for a composite checksum.
pub const COMPOSITE: &str = "COMPOSITE";

/// The composite checksum of `parts` (each base64, as stored) under
/// `algorithm`; None if the algorithm has no composite form here or a
/// part has no checksum (or an undecodable one). CRC64NVME is left out:
/// S3 supports only full-object checksums for it.
pub fn composite(algorithm: &str, parts: &[&str]) -> Option<String> {
    let mut joined = Vec::with_capacity(parts.len() * 32);
    for p in parts {
        if p.is_empty() {
            return None;
        }
        joined.extend(STANDARD.decode(p).ok()?);
    }
    let digest = digest(algorithm, &joined)?;
    Some(format!("{}-{}", STANDARD.encode(digest), parts.len()))
}

/// `algorithm` of `data`, as the bytes S3 encodes (CRCs big-endian).
pub fn digest(algorithm: &str, data: &[u8]) -> Option<Vec<u8>> {
    Some(match algorithm {
        "CRC32" => crc32fast::hash(data).to_be_bytes().to_vec(),
        "CRC32C" => crc32c::crc32c(data).to_be_bytes().to_vec(),
        "SHA1" => sha1::Sha1::digest(data).to_vec(),
        "SHA256" => sha2::Sha256::digest(data).to_vec(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_of_known_parts() {
        // CRC32 of "hello" is 0x3610a686; of two parts, the CRC32 of the
        // two 4-byte values concatenated.
        let a = STANDARD.encode(crc32fast::hash(b"hello").to_be_bytes());
        let b = STANDARD.encode(crc32fast::hash(b"world").to_be_bytes());
        let mut both = crc32fast::hash(b"hello").to_be_bytes().to_vec();
        both.extend(crc32fast::hash(b"world").to_be_bytes());
        let want = format!(
            "{}-2",
            STANDARD.encode(crc32fast::hash(&both).to_be_bytes())
        );
        assert_eq!(composite("CRC32", &[&a, &b]), Some(want));
        assert_eq!(composite("CRC32", &[&a, ""]), None);
        assert_eq!(composite("CRC64NVME", &[&a]), None);
        assert_eq!(composite("CRC32", &["not base64!"]), None);
    }
}
