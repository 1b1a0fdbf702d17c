//! Flexible checksums kept (issue 21): which one a write stores, and how
//! a stored one is shown. `ingest` verifies what the client declared;
//! this picks the one value the version (or part) keeps — base64 as S3
//! shows it, a multipart composite ending "-N" (computed by the meta
//! tier at completion) — and shows it back on GET/HEAD with
//! x-amz-checksum-mode: ENABLED, CompleteMultipartUpload and ListParts.

use s3s::dto::{Checksum, ChecksumAlgorithm, ChecksumMode, ChecksumType};
use s3s::{S3Result, s3_error};

/// S3's names of the algorithms, in the order a value header is taken
/// when the client named none.
const ALGORITHMS: [&str; 5] = [
    ChecksumAlgorithm::CRC32,
    ChecksumAlgorithm::CRC32C,
    ChecksumAlgorithm::SHA1,
    ChecksumAlgorithm::SHA256,
    ChecksumAlgorithm::CRC64NVME,
];

fn slot<'a>(c: &'a Checksum, algorithm: &str) -> &'a Option<String> {
    match algorithm {
        ChecksumAlgorithm::CRC32 => &c.checksum_crc32,
        ChecksumAlgorithm::CRC32C => &c.checksum_crc32c,
        ChecksumAlgorithm::SHA1 => &c.checksum_sha1,
        ChecksumAlgorithm::SHA256 => &c.checksum_sha256,
        ChecksumAlgorithm::CRC64NVME => &c.checksum_crc64nvme,
        _ => &None,
    }
}

/// The one checksum value a request sent (algorithm, value), if any:
/// AWS refuses more than one x-amz-checksum-* value header.
pub fn single(sent: &Checksum) -> S3Result<Option<(&'static str, &str)>> {
    let mut found = ALGORITHMS
        .iter()
        .filter_map(|a| slot(sent, a).as_deref().map(|v| (*a, v)));
    let first = found.next();
    if found.next().is_some() {
        return Err(s3_error!(
            InvalidRequest,
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        ));
    }
    Ok(first)
}

/// The value `c` holds for `algorithm` (S3's name), if any.
pub fn value_of<'a>(c: &'a Checksum, algorithm: &str) -> Option<&'a str> {
    slot(c, algorithm).as_deref()
}

/// An algorithm S3 names, as stored ("" for none).
pub fn algorithm_name(a: Option<&ChecksumAlgorithm>) -> S3Result<String> {
    match a {
        None => Ok(String::new()),
        Some(a) => ALGORITHMS
            .iter()
            .find(|n| **n == a.as_str())
            .map(|n| (*n).to_string())
            .ok_or_else(|| s3_error!(InvalidArgument, "unknown checksum algorithm")),
    }
}

/// The (algorithm, value) a write keeps from the checksums `ingest`
/// computed: the algorithm the client named, else the one whose value
/// it sent; None when it asked for none.
pub fn kept(named: &str, computed: &Checksum) -> Option<(String, String)> {
    let algorithm = if named.is_empty() {
        ALGORITHMS.iter().find(|a| slot(computed, a).is_some())?
    } else {
        ALGORITHMS.iter().find(|a| **a == named)?
    };
    let value = slot(computed, algorithm).clone()?;
    Some(((*algorithm).to_string(), value))
}

/// The algorithm of the checksums a client declared for a part, if any
/// (the named one, else the first value header sent).
pub fn declared_algorithm(named: Option<&ChecksumAlgorithm>, sent: &Checksum) -> Option<String> {
    match named {
        Some(a) => Some(a.as_str().to_string()),
        None => ALGORITHMS
            .iter()
            .find(|a| slot(sent, a).is_some())
            .map(|a| (*a).to_string()),
    }
}

/// The algorithm of a checksum trailer the request announces
/// (`x-amz-trailer: x-amz-checksum-crc32`): a client may name it only
/// there, and the value arriving at the end must then be computed too.
pub fn trailer_algorithm(headers: &http::HeaderMap) -> Option<ChecksumAlgorithm> {
    let t = headers.get("x-amz-trailer")?.to_str().ok()?;
    t.split(',').find_map(|name| {
        let a = name.trim().strip_prefix("x-amz-checksum-")?;
        ALGORITHMS
            .iter()
            .find(|n| n.eq_ignore_ascii_case(a))
            .map(|n| ChecksumAlgorithm::from_static(n))
    })
}

/// A stored checksum as the response fields that show it.
pub fn shown(algorithm: &str, value: &str) -> Checksum {
    let mut c = Checksum::default();
    if value.is_empty() {
        return c;
    }
    let v = Some(value.to_string());
    match algorithm {
        ChecksumAlgorithm::CRC32 => c.checksum_crc32 = v,
        ChecksumAlgorithm::CRC32C => c.checksum_crc32c = v,
        ChecksumAlgorithm::SHA1 => c.checksum_sha1 = v,
        ChecksumAlgorithm::SHA256 => c.checksum_sha256 = v,
        ChecksumAlgorithm::CRC64NVME => c.checksum_crc64nvme = v,
        _ => return c,
    }
    c.checksum_type = kind(algorithm, value);
    c
}

/// The type of an upload's object checksum: COMPOSITE, made by the meta
/// tier at completion; none for CRC64NVME, which S3 has only whole-object
/// and this store does not compute over parts (nor for no algorithm).
pub fn upload_type(algorithm: &str) -> Option<ChecksumType> {
    (!algorithm.is_empty() && algorithm != ChecksumAlgorithm::CRC64NVME)
        .then(|| ChecksumType::from_static(ChecksumType::COMPOSITE))
}

/// A stored checksum's type; a composite one ends "-N".
fn kind(algorithm: &str, value: &str) -> Option<ChecksumType> {
    if algorithm.is_empty() || value.is_empty() {
        return None;
    }
    let composite = value
        .rsplit_once('-')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    Some(ChecksumType::from_static(if composite {
        ChecksumType::COMPOSITE
    } else {
        ChecksumType::FULL_OBJECT
    }))
}

/// A version's checksum for a GET or HEAD: only when the client asked
/// (x-amz-checksum-mode: ENABLED) and reads the whole object — a range's
/// bytes are not what the checksum is of.
pub fn for_read(
    v: &hamster_proto::pb::ObjectVersion,
    mode: Option<&ChecksumMode>,
    whole: bool,
) -> Checksum {
    let enabled = mode.is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
    if !enabled || !whole {
        return Checksum::default();
    }
    shown(&v.checksum_algorithm, &v.checksum_value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_algorithm_or_the_one_sent_is_kept() {
        let computed = Checksum {
            checksum_crc32: Some("AAAAAA==".into()),
            ..Default::default()
        };
        assert_eq!(
            kept("", &computed),
            Some(("CRC32".into(), "AAAAAA==".into()))
        );
        assert_eq!(
            kept("CRC32", &computed),
            Some(("CRC32".into(), "AAAAAA==".into()))
        );
        assert_eq!(kept("SHA256", &computed), None);
        assert_eq!(kept("", &Checksum::default()), None);
    }

    #[test]
    fn only_one_value_header_is_taken() {
        let mut c = Checksum::default();
        assert_eq!(single(&c).ok(), Some(None));
        c.checksum_sha1 = Some("x".into());
        assert_eq!(single(&c).ok(), Some(Some(("SHA1", "x"))));
        c.checksum_crc32 = Some("y".into());
        let e = single(&c).err().map(|e| e.code().as_str().to_string());
        assert_eq!(e.as_deref(), Some("InvalidRequest"));
    }

    #[test]
    fn stored_checksums_show_with_their_type() {
        let c = shown("SHA256", "abc=-3");
        assert_eq!(c.checksum_sha256.as_deref(), Some("abc=-3"));
        assert_eq!(
            c.checksum_type.as_ref().map(|t| t.as_str()),
            Some("COMPOSITE")
        );
        let c = shown("CRC32", "AAAAAA==");
        assert_eq!(c.checksum_crc32.as_deref(), Some("AAAAAA=="));
        assert_eq!(
            c.checksum_type.as_ref().map(|t| t.as_str()),
            Some("FULL_OBJECT")
        );
        assert_eq!(shown("", ""), Checksum::default());
    }

    #[test]
    fn a_trailer_names_its_algorithm() {
        let mut h = http::HeaderMap::new();
        assert_eq!(trailer_algorithm(&h), None);
        h.insert(
            "x-amz-trailer",
            http::HeaderValue::from_static("x-amz-checksum-crc32c"),
        );
        let a = trailer_algorithm(&h).map(|a| a.as_str().to_string());
        assert_eq!(a.as_deref(), Some("CRC32C"));
    }
}
