//! Ids one S3 request may create, minted the same way by gateways and the
//! meta tier (ADR 0024): the request's own id, which makes its retries one
//! command, and the version ids it may lay.

use rand::Rng;

/// Longest request id the meta tier takes.
pub const MAX_REQUEST_ID: usize = 64;

/// A new version id: creation time then randomness, so ids of one key
/// sort roughly by age and never collide. 32 lowercase hex digits.
pub fn new_version_id(at_ms: i64) -> String {
    let r: u128 = rand::rng().random();
    format!("{:012x}{:020x}", at_ms.max(0), r >> 48)
}

/// Whether `id` has the shape [`new_version_id`] makes (so never "null").
pub fn is_version_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A new request id: 128 random bits, 32 hex digits.
pub fn new_request_id() -> String {
    let r: u128 = rand::rng().random();
    format!("{r:032x}")
}

/// Whether `id` is an acceptable request id: 1 to 64 of `[A-Za-z0-9_-]`.
pub fn is_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_have_the_shape_they_are_checked_for() {
        let v = new_version_id(1_700_000_000_123);
        assert!(is_version_id(&v), "{v}");
        assert!(v.starts_with(&format!("{:012x}", 1_700_000_000_123_i64)));
        assert_ne!(new_version_id(1), new_version_id(1));
        assert!(is_version_id(&new_version_id(-5)));
        let r = new_request_id();
        assert!(is_request_id(&r), "{r}");
        assert_ne!(new_request_id(), new_request_id());
    }

    #[test]
    fn odd_ids_are_refused() {
        for bad in [
            "",
            "null",
            "0123456789abcdef0123456789ABCDEF",
            "g".repeat(32).as_str(),
        ] {
            assert!(!is_version_id(bad), "{bad}");
        }
        assert!(!is_version_id(&"a".repeat(33)));
        for bad in ["", "a:b", "a b", "a/b", "é", &"a".repeat(65)] {
            assert!(!is_request_id(bad), "{bad:?}");
        }
        assert!(is_request_id(&"a".repeat(64)));
        assert!(is_request_id("Ab_9-r"));
    }
}
