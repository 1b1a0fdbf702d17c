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

#[cfg(test)]
mod tests {
    use super::*;

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
