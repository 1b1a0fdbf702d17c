//! The erasure-coding profile a cluster uses by default, from the number
//! of blob-servers that stay in it — registered, not removed, draining or
//! drained; a server down still counts (k+m shards must land on k+m
//! distinct servers):
//!
//! | blob-servers | profile | survives the loss of | overhead |
//! |---|---|---|---|
//! | 6 or more | 4+2 | 2 servers | 1.5× |
//! | 5 | 3+2 | 2 | 1.67× |
//! | 4 | 2+2 | 2 | 2× |
//! | 3 | 2+1 | 1 | 1.5× |
//! | 2 | 1+1 | 1 (a mirror) | 2× |
//! | 1 | 1+0 | nothing (dev only) | 1× |
//!
//! A tiny object is mirrored instead ([`for_object`]): 1+m, m+1 whole
//! copies, which survive the same m lost servers with half the blob
//! writes of 4+2 and no more disk, since every shard file takes whole
//! filesystem blocks anyway.

/// (k, m) for a cluster of `blob_servers`; None with no blob-server.
pub fn default_profile(blob_servers: usize) -> Option<(usize, usize)> {
    match blob_servers {
        0 => None,
        1 => Some((1, 0)),
        2 => Some((1, 1)),
        3 => Some((2, 1)),
        4 => Some((2, 2)),
        5 => Some((3, 2)),
        _ => Some((4, 2)),
    }
}

/// The default `--mirror-max-bytes`: the largest object whose mirrored
/// shard file (64 B header + sealed body with its 16 B GCM tag + 4 B block
/// CRC) fits two 4 KiB filesystem blocks. Up to it, 1+2 takes at most the
/// blocks 4+2 takes (3 files of ≤ 2 blocks vs 6 of 1); just above it 1.5×.
pub const MIRROR_MAX_BYTES: u64 = 2 * 4096 - 64 - 16 - 4;

/// k+m for one object of `size` bytes (None: not known before the body
/// is read) under the cluster's `profile`: (1, m) — m+1 copies, the same
/// loss tolerance — for a known size of at most `mirror_max` (0: never),
/// when the profile codes across k > 1 with m ≥ 1; else the profile.
pub fn for_object((k, m): (usize, usize), size: Option<u64>, mirror_max: u64) -> (usize, usize) {
    match size {
        Some(n) if k > 1 && m >= 1 && n <= mirror_max => (1, m),
        _ => (k, m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_known_tiny_size_under_a_coding_profile_is_mirrored() {
        let max = MIRROR_MAX_BYTES;
        assert_eq!(for_object((4, 2), Some(4096), max), (1, 2));
        assert_eq!(for_object((4, 2), Some(0), max), (1, 2));
        assert_eq!(for_object((4, 2), Some(max), max), (1, 2));
        assert_eq!(for_object((4, 2), Some(max + 1), max), (4, 2));
        assert_eq!(for_object((4, 2), None, max), (4, 2), "size unknown");
        assert_eq!(for_object((4, 2), Some(10), 0), (4, 2), "disabled");
        // m is the cluster's; k = 1 or m = 0 stay as they are.
        assert_eq!(for_object((6, 3), Some(10), max), (1, 3));
        assert_eq!(for_object((2, 1), Some(10), max), (1, 1));
        assert_eq!(for_object((1, 1), Some(10), max), (1, 1));
        assert_eq!(for_object((3, 0), Some(10), max), (3, 0));
    }

    /// Filesystem blocks (4 KiB) the shard files of a `size`-byte object
    /// take under k+m (one segment: a single 64 KiB block CRC).
    fn blocks((k, m): (usize, usize), size: u64) -> u64 {
        let chunk = (size + 16).div_ceil(k as u64);
        (k + m) as u64 * (64 + chunk + 4).div_ceil(4096)
    }

    #[test]
    fn up_to_the_default_a_mirror_takes_no_more_disk_than_4_plus_2() {
        for size in (0..=MIRROR_MAX_BYTES).step_by(7).chain([MIRROR_MAX_BYTES]) {
            assert!(blocks((1, 2), size) <= blocks((4, 2), size), "{size}");
        }
        let over = MIRROR_MAX_BYTES + 1;
        assert!(blocks((1, 2), over) > blocks((4, 2), over));
    }

    #[test]
    fn every_profile_fits_on_distinct_servers() {
        assert_eq!(default_profile(0), None);
        for n in 1..20 {
            let (k, m) = default_profile(n).expect("profile");
            assert!(k + m <= n, "{n} servers: {k}+{m}");
        }
        assert_eq!(default_profile(6), Some((4, 2)));
        assert_eq!(default_profile(100), Some((4, 2)));
    }
}
