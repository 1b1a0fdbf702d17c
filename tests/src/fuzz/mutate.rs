//! The mutation engine: each new input is a corpus entry changed by one
//! to four of the classic mutations — bit flips, random bytes, interesting
//! integers (binary, and as decimal text over a run of digits), truncation,
//! insertion, deletion, duplication of a piece, splicing with another
//! entry, and the target's own tokens (JSON punctuation, header words).

use rand::Rng;
use rand::rngs::StdRng;

/// Inputs never grow beyond this (a parser's cost per byte is what the
/// rate measures; length fields are what find the big allocations).
pub const MAX_LEN: usize = 64 * 1024;

const INTERESTING_8: [u8; 9] = [0, 1, 0x7f, 0x80, 0xff, b'0', b'9', b'-', b'.'];
const INTERESTING_64: [u64; 12] = [
    0,
    1,
    0x7f,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    0x1_0000_0000,
    i64::MAX as u64,
    u64::MAX,
    u64::MAX - 63,
];
const INTERESTING_TEXT: [&str; 12] = [
    "0",
    "-1",
    "1",
    "255",
    "65536",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999",
    "1e999",
];

/// Writes `v` as `width` bytes, little- or big-endian.
fn put_int(out: &mut [u8], v: u64, big: bool) {
    let bytes = if big {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    };
    let n = out.len();
    if big {
        out.copy_from_slice(&bytes[8 - n..]);
    } else {
        out.copy_from_slice(&bytes[..n]);
    }
}

/// A random range `[a, b)` inside `len` (len > 0), at most `max` long.
fn span(rng: &mut StdRng, len: usize, max: usize) -> (usize, usize) {
    let a = rng.random_range(0..len);
    let n = rng.random_range(1..=max.min(len - a).max(1));
    (a, (a + n).min(len))
}

/// One mutation of `data` in place.
fn mutate_once(rng: &mut StdRng, data: &mut Vec<u8>, other: &[u8], tokens: &[&[u8]]) {
    let len = data.len();
    match rng.random_range(0..12u8) {
        0 if len > 0 => {
            let i = rng.random_range(0..len);
            data[i] ^= 1 << rng.random_range(0..8);
        }
        1 if len > 0 => {
            let i = rng.random_range(0..len);
            data[i] = rng.random();
        }
        2 if len > 0 => {
            let i = rng.random_range(0..len);
            data[i] = INTERESTING_8[rng.random_range(0..INTERESTING_8.len())];
        }
        3 => {
            let width = [2usize, 4, 8][rng.random_range(0..3)];
            if len >= width {
                let at = rng.random_range(0..=len - width);
                let v = INTERESTING_64[rng.random_range(0..INTERESTING_64.len())];
                // Off by one is where bounds checks are wrong.
                let v = v.wrapping_add_signed(rng.random_range(-1..=1));
                put_int(&mut data[at..at + width], v, rng.random());
            }
        }
        4 => {
            // A number in text: replace a run of digits (or insert one).
            let text = INTERESTING_TEXT[rng.random_range(0..INTERESTING_TEXT.len())].as_bytes();
            let digits: Vec<usize> = (0..len).filter(|&i| data[i].is_ascii_digit()).collect();
            if let Some(&start) = digits.get(rng.random_range(0..digits.len().max(1))) {
                let end = (start..len)
                    .find(|&i| !data[i].is_ascii_digit())
                    .unwrap_or(len);
                data.splice(start..end, text.iter().copied());
            } else {
                let at = rng.random_range(0..=len);
                data.splice(at..at, text.iter().copied());
            }
        }
        5 if len > 0 => data.truncate(rng.random_range(0..len)),
        6 => {
            let at = rng.random_range(0..=len);
            let n = rng.random_range(1..=16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            data.splice(at..at, bytes);
        }
        7 if len > 0 => {
            let (a, b) = span(rng, len, 64);
            data.drain(a..b);
        }
        8 if len > 0 => {
            // Duplicate a piece somewhere (repeated fields, nesting).
            let (a, b) = span(rng, len, 256);
            let piece = data[a..b].to_vec();
            let at = rng.random_range(0..=len);
            data.splice(at..at, piece);
        }
        9 if !other.is_empty() => {
            // Splice: our head, the other entry's tail.
            let cut = rng.random_range(0..=len);
            let from = rng.random_range(0..other.len());
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        10 if !tokens.is_empty() => {
            let t = tokens[rng.random_range(0..tokens.len())];
            let at = rng.random_range(0..=len);
            if rng.random() && at < len {
                let end = (at + t.len()).min(len);
                data.splice(at..end, t.iter().copied());
            } else {
                data.splice(at..at, t.iter().copied());
            }
        }
        _ if len > 1 => {
            // Swap two bytes.
            let (i, j) = (rng.random_range(0..len), rng.random_range(0..len));
            data.swap(i, j);
        }
        _ => data.push(rng.random()),
    }
}

/// A new input from `base`: one to four mutations; `other` is for
/// splicing.
pub fn mutate(rng: &mut StdRng, base: &[u8], other: &[u8], tokens: &[&[u8]]) -> Vec<u8> {
    let mut data = base.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        mutate_once(rng, &mut data, other, tokens);
    }
    data.truncate(MAX_LEN);
    data
}
