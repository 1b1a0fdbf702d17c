//! Shard names, as gateways make them and the meta tier reads them:
//! `{created_ms:012x}{random:020x}-{index}`. The creation time lets the
//! meta tier refuse to commit shards older than the sweep's write window,
//! so the sweep never deletes a shard that a commit could still name
//! (ADR 0013).

use rand::Rng;

/// The object part of a new object's shard names, stamped `now_ms`.
pub fn new_object(now_ms: i64) -> String {
    let r: u128 = rand::rng().random();
    format!("{:012x}{:020x}", now_ms.max(0), r >> 48)
}

/// Shard `index` of the object named `object`.
pub fn shard(object: &str, index: usize) -> String {
    format!("{object}-{index}")
}

/// When a shard named by [`shard`] was created; None for other names.
pub fn created_ms(shard_id: &str) -> Option<i64> {
    let stamp = shard_id.get(..12)?;
    if shard_id.as_bytes().get(32) != Some(&b'-') {
        return None;
    }
    i64::from_str_radix(stamp, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_creation_time() {
        let o = new_object(1_700_000_000_123);
        assert_eq!(o.len(), 32);
        let s = shard(&o, 5);
        assert!(s.ends_with("-5"));
        assert_eq!(created_ms(&s), Some(1_700_000_000_123));
        assert_ne!(new_object(1), new_object(1));
        assert_eq!(created_ms("key/1"), None);
        assert_eq!(created_ms("obj1.s0"), None);
        assert_eq!(created_ms(""), None);
    }
}
