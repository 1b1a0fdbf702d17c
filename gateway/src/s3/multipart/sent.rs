//! An object checksum sent with CompleteMultipartUpload (an
//! x-amz-checksum-* header): AWS compares it with the composite it makes
//! and answers 400 BadDigest on a mismatch. Here the composite is made
//! by the meta tier when the completion applies — too late to refuse —
//! so the gateway checks the value before proposing, from the part
//! checksums the request lists (the meta tier checks those against the
//! stored ones before proposing, so the composite it makes from them is
//! the one computed here):
//!
//! - an algorithm other than the upload's (or an upload with none):
//!   400 InvalidRequest;
//! - the parts' checksums not all listed, or an algorithm with no
//!   composite form (CRC64NVME): 501 NotImplemented — the value could
//!   not be checked, and is not silently ignored;
//! - otherwise the value must be the composite, with or without its
//!   "-N" suffix (N the number of parts): else 400 BadDigest.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use s3s::checksum::ChecksumHasher;
use s3s::dto::{Checksum, ChecksumAlgorithm, CompleteMultipartUploadInput, CompletedPart};
use s3s::{S3Result, s3_error};

use crate::s3::checksums::{single, value_of};

/// The object checksum a completion sent (algorithm, value), if any; more
/// than one: 400 InvalidRequest, as on a PUT.
pub fn of_request(i: &CompleteMultipartUploadInput) -> S3Result<Option<(&'static str, String)>> {
    let sent = Checksum {
        checksum_crc32: i.checksum_crc32.clone(),
        checksum_crc32c: i.checksum_crc32c.clone(),
        checksum_sha1: i.checksum_sha1.clone(),
        checksum_sha256: i.checksum_sha256.clone(),
        checksum_crc64nvme: i.checksum_crc64nvme.clone(),
        ..Default::default()
    };
    Ok(single(&sent)?.map(|(a, v)| (a, v.to_string())))
}

/// A listed part's checksum in `algorithm`, if the client listed one.
pub fn listed(p: &CompletedPart, algorithm: &str) -> Option<String> {
    let c = Checksum {
        checksum_crc32: p.checksum_crc32.clone(),
        checksum_crc32c: p.checksum_crc32c.clone(),
        checksum_sha1: p.checksum_sha1.clone(),
        checksum_sha256: p.checksum_sha256.clone(),
        checksum_crc64nvme: p.checksum_crc64nvme.clone(),
        ..Default::default()
    };
    value_of(&c, algorithm).map(str::to_string)
}

/// The composite checksum of `parts` (each base64) under `algorithm`:
/// the algorithm over the concatenated binary checksums, base64, "-N".
/// None for an algorithm with no composite form; Err for a part value
/// that is not base64 (it cannot be the part's stored checksum).
fn composite(algorithm: &str, parts: &[&str]) -> S3Result<Option<String>> {
    let mut h = ChecksumHasher::default();
    match algorithm {
        ChecksumAlgorithm::CRC32 => h.crc32 = Some(Default::default()),
        ChecksumAlgorithm::CRC32C => h.crc32c = Some(Default::default()),
        ChecksumAlgorithm::SHA1 => h.sha1 = Some(Default::default()),
        ChecksumAlgorithm::SHA256 => h.sha256 = Some(Default::default()),
        _ => return Ok(None),
    }
    for (i, p) in parts.iter().enumerate() {
        let raw = STANDARD.decode(p).map_err(|_| {
            s3_error!(
                InvalidPart,
                "the checksum listed for part {} is not base64",
                i + 1
            )
        })?;
        h.update(&raw);
    }
    let c = h.finalize();
    let value = [
        c.checksum_crc32,
        c.checksum_crc32c,
        c.checksum_sha1,
        c.checksum_sha256,
    ]
    .into_iter()
    .flatten()
    .next();
    Ok(value.map(|v| format!("{v}-{}", parts.len())))
}

/// Checks the object checksum `sent` (algorithm, value) against the
/// upload's algorithm and the part checksums listed in that algorithm
/// (None where a part lists none), before the completion is proposed.
pub fn check(upload: &str, sent: (&str, &str), listed: &[Option<String>]) -> S3Result<()> {
    let (algorithm, value) = sent;
    if algorithm != upload {
        let expected = if upload.is_empty() {
            "none".to_string()
        } else {
            upload.to_lowercase()
        };
        return Err(s3_error!(
            InvalidRequest,
            "Checksum Type mismatch occurred, expected checksum Type: {expected}, actual checksum Type: {}",
            algorithm.to_lowercase()
        ));
    }
    let parts: Option<Vec<&str>> = listed.iter().map(|p| p.as_deref()).collect();
    let Some(parts) = parts else {
        return Err(s3_error!(
            NotImplemented,
            "an object checksum is checked only when every part's {algorithm} checksum is listed"
        ));
    };
    let Some(want) = composite(algorithm, &parts)? else {
        return Err(s3_error!(
            NotImplemented,
            "{algorithm} has no composite checksum of a multipart upload here"
        ));
    };
    if !matches(value, &want) {
        return Err(s3_error!(
            BadDigest,
            "the x-amz-checksum-{} sent is not the composite of the parts' checksums",
            algorithm.to_lowercase()
        ));
    }
    Ok(())
}

/// Whether a value sent is the composite `want` ("X-N"), with or
/// without its "-N" (clients send both forms).
pub fn matches(sent: &str, want: &str) -> bool {
    sent == want || want.rsplit_once('-').is_some_and(|(base, _)| sent == base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(b: &[u8]) -> String {
        STANDARD.encode(b)
    }

    fn code(r: S3Result<()>) -> String {
        r.err()
            .map(|e| e.code().as_str().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn the_composite_is_the_algorithm_over_the_part_checksums() {
        // SHA-256 of two parts' SHA-256 digests, then "-2" (independently
        // computed with the sha2 crate).
        use sha2::{Digest, Sha256};
        let (a, b) = (Sha256::digest(b"hello"), Sha256::digest(b"world"));
        let mut both = a.to_vec();
        both.extend_from_slice(&b);
        let want = format!("{}-2", b64(&Sha256::digest(&both)));
        let got = composite("SHA256", &[&b64(&a), &b64(&b)]).ok().flatten();
        assert_eq!(got, Some(want.clone()));
        let listed = [Some(b64(&a)), Some(b64(&b))];
        assert_eq!(code(check("SHA256", ("SHA256", &want), &listed)), "");
        // Without the "-N": the same.
        let base = want.rsplit_once('-').map(|(x, _)| x).unwrap_or_default();
        assert_eq!(code(check("SHA256", ("SHA256", base), &listed)), "");
        // Another value: BadDigest.
        let other = b64(&Sha256::digest(b"other"));
        assert_eq!(
            code(check("SHA256", ("SHA256", &other), &listed)),
            "BadDigest"
        );
        assert_eq!(
            code(check("SHA256", ("SHA256", &format!("{base}-3")), &listed)),
            "BadDigest"
        );
    }

    #[test]
    fn what_cannot_be_checked_is_refused() {
        let listed = [Some(b64(&[0, 0, 0, 1]))];
        // Not the upload's algorithm, or an upload with none.
        assert_eq!(
            code(check("SHA256", ("CRC32", "AAAAAA=="), &listed)),
            "InvalidRequest"
        );
        assert_eq!(
            code(check("", ("CRC32", "AAAAAA=="), &listed)),
            "InvalidRequest"
        );
        // A part's checksum not listed.
        assert_eq!(
            code(check(
                "CRC32",
                ("CRC32", "AAAAAA=="),
                &[listed[0].clone(), None]
            )),
            "NotImplemented"
        );
        // No composite form.
        assert_eq!(
            code(check("CRC64NVME", ("CRC64NVME", "AAAAAAAAAAA="), &listed)),
            "NotImplemented"
        );
        // A listed part value that is not base64.
        assert_eq!(
            code(check("CRC32", ("CRC32", "AAAAAA=="), &[Some("!!".into())])),
            "InvalidPart"
        );
    }
}
