//! Windowed reads: consecutive stripes fetched with one GetShard call per
//! shard. Shard i's bytes of a window are chunk i of each stripe, back to
//! back; every chunk is the full chunk length except in the object's last
//! stripe, which may be shorter. Received pieces are kept as they came
//! (slices of the transport's buffers) and copied once, into the stripe
//! that decryption opens in place.

use std::ops::{Range, RangeInclusive};

use bytes::Bytes;

use super::encrypt::{TAG_LEN, segment_len};
use super::erasure::{Coder, ErasureError};

/// Stripes per window: 4 MiB of plaintext, about 1 MiB per shard at 4+2,
/// so a 64 MiB GET is 16 calls per shard rather than 64, while a GET holds
/// only a few windows at once (see `read::READ_AHEAD`).
pub const WINDOW_STRIPES: u64 = 4;

/// Consecutive stripes read together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// The first stripe's index.
    pub first: u64,
    /// Each stripe's sealed length, in order.
    pub stripe_lens: Vec<usize>,
}

impl Window {
    /// Stripes `stripes` of an object of `size` plaintext bytes.
    pub fn of(stripes: Range<u64>, size: u64) -> Self {
        Self {
            first: stripes.start,
            stripe_lens: stripes.map(|i| segment_len(size, i) + TAG_LEN).collect(),
        }
    }

    pub fn stripes(&self) -> Range<u64> {
        self.first..self.first + self.stripe_lens.len() as u64
    }

    /// Where each shard's read starts: only the last stripe of an object
    /// can be short, so every stripe before this one is full.
    pub fn shard_offset(&self, full_chunk_len: u64) -> u64 {
        self.first * full_chunk_len
    }

    /// Bytes of each shard this window covers.
    pub fn shard_len(&self, coder: &Coder) -> u64 {
        self.stripe_lens
            .iter()
            .map(|&l| coder.chunk_len(l) as u64)
            .sum()
    }
}

/// The stripe ranges, at most `per` stripes each, covering `segments`:
/// the first starts where the range does, so a ranged GET reads only the
/// stripes it touches. Lazy: a huge object is not planned up front.
pub fn windows(segments: RangeInclusive<u64>, per: u64) -> impl Iterator<Item = Range<u64>> {
    let (start, end) = (*segments.start(), segments.end().saturating_add(1));
    let per = per.max(1);
    (start..end)
        .step_by(per as usize)
        .map(move |s| s..s.saturating_add(per).min(end))
}

/// One shard's bytes of a window, as received.
#[derive(Debug, Default)]
pub struct Pieces {
    parts: Vec<Bytes>,
    len: usize,
}

impl Pieces {
    pub fn push(&mut self, b: Bytes) {
        self.len += b.len();
        if !b.is_empty() {
            self.parts.push(b);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends bytes `range` (within `len`) to `out`.
    fn copy_range(&self, range: Range<usize>, out: &mut Vec<u8>) {
        let mut at = 0;
        for p in &self.parts {
            let (from, to) = (range.start.max(at), range.end.min(at + p.len()));
            if from < to {
                out.extend_from_slice(&p[from - at..to - at]);
            }
            at += p.len();
            if at >= range.end {
                break;
            }
        }
    }
}

/// The sealed stripes of `window` from any k of its shards (`shards[i]`:
/// shard i's pieces, None when failed or not asked), and how many of them
/// were rebuilt from parity. With every data shard there, each stripe is
/// one copy of its data chunks; otherwise it is decoded from k shards.
pub fn decode(
    coder: &Coder,
    window: &Window,
    shards: &[Option<Pieces>],
) -> Result<(Vec<Vec<u8>>, usize), ErasureError> {
    let k = coder.data_shards();
    let have = shards.iter().flatten().count();
    if shards.len() != coder.total_shards() || have < k {
        return Err(ErasureError::TooFewChunks { have, need: k });
    }
    let want = window.shard_len(coder) as usize;
    if shards.iter().flatten().any(|p| p.len() != want) {
        return Err(ErasureError::ChunkLength);
    }
    let all_data = shards[..k].iter().all(Option::is_some);
    let mut stripes = Vec::with_capacity(window.stripe_lens.len());
    let mut rebuilt = 0;
    let mut at = 0;
    for &stripe_len in &window.stripe_lens {
        let clen = coder.chunk_len(stripe_len);
        let stripe = if all_data {
            let mut out = Vec::with_capacity(stripe_len);
            for p in shards[..k].iter().flatten() {
                let take = clen.min(stripe_len - out.len());
                p.copy_range(at..at + take, &mut out);
            }
            out
        } else {
            // The first k shards there are enough; the rest stay None.
            let mut chunks: Vec<Option<Vec<u8>>> = vec![None; shards.len()];
            for (slot, p) in chunks
                .iter_mut()
                .zip(shards)
                .filter_map(|(s, p)| Some((s, p.as_ref()?)))
                .take(k)
            {
                let mut c = Vec::with_capacity(clen);
                p.copy_range(at..at + clen, &mut c);
                *slot = Some(c);
            }
            rebuilt += 1;
            coder.decode(chunks, stripe_len)?
        };
        stripes.push(stripe);
        at += clen;
    }
    Ok((stripes, rebuilt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::encrypt::SEGMENT_SIZE;

    const SEG: u64 = SEGMENT_SIZE as u64;

    /// Shard i's pieces of `stripes` (sealed), cut at odd places as a
    /// stream would deliver them.
    fn shards_of(coder: &Coder, stripes: &[Vec<u8>]) -> Vec<Option<Pieces>> {
        let mut whole: Vec<Vec<u8>> = vec![Vec::new(); coder.total_shards()];
        for s in stripes {
            for (i, c) in coder.encode(s.clone()).into_iter().enumerate() {
                whole[i].extend(c);
            }
        }
        whole
            .into_iter()
            .map(|w| {
                let mut p = Pieces::default();
                for part in w.chunks(100_003) {
                    p.push(Bytes::copy_from_slice(part));
                }
                Some(p)
            })
            .collect()
    }

    fn sealed(window: &Window) -> Vec<Vec<u8>> {
        window
            .stripe_lens
            .iter()
            .zip(window.stripes())
            .map(|(&len, s)| (0..len).map(|i| (i as u64 * 31 + s * 7) as u8).collect())
            .collect()
    }

    #[test]
    fn a_range_mid_window_to_the_short_last_stripe() {
        // 10 stripes, the last 5 bytes of plaintext; the range starts in
        // stripe 3 and ends in the last.
        let size = 9 * SEG + 5;
        let segs = (3 * SEG + 17) / SEG..=(size - 1) / SEG;
        let ws: Vec<_> = windows(segs, WINDOW_STRIPES).collect();
        assert_eq!(ws, vec![3..7, 7..10]);
        let last = Window::of(ws[1].clone(), size);
        let full = SEGMENT_SIZE + TAG_LEN;
        assert_eq!(last.stripe_lens, vec![full, full, 5 + TAG_LEN]);
        let coder = Coder::new(4, 2).expect("4+2");
        let full_chunk = coder.chunk_len(full) as u64;
        assert_eq!(last.shard_offset(full_chunk), 7 * full_chunk);
        assert_eq!(last.shard_len(&coder), 2 * full_chunk + 6);
        // One window only when the range fits; none past the end.
        assert_eq!(windows(5..=5, 4).collect::<Vec<_>>(), vec![5..6]);
        assert_eq!(windows(0..=7, 4).collect::<Vec<_>>(), vec![0..4, 4..8]);

        let stripes = sealed(&last);
        let (got, rebuilt) = decode(&coder, &last, &shards_of(&coder, &stripes)).expect("decode");
        assert_eq!(got, stripes);
        assert_eq!(rebuilt, 0);
    }

    #[test]
    fn a_failed_data_shard_is_rebuilt_from_parity() {
        let size = 2 * SEG + 1000;
        let w = Window::of(0..3, size);
        let stripes = sealed(&w);
        for (k, m) in [(4, 2), (1, 2), (3, 1)] {
            let coder = Coder::new(k, m).expect("profile");
            let mut shards = shards_of(&coder, &stripes);
            shards[0] = None;
            let (got, rebuilt) = decode(&coder, &w, &shards).expect("decode");
            assert_eq!(got, stripes, "{k}+{m}");
            assert_eq!(rebuilt, 3, "every stripe of the window rebuilt");
            // One more loss than m: refused, never guessed.
            for s in shards.iter_mut().take(m + 1) {
                *s = None;
            }
            assert!(decode(&coder, &w, &shards).is_err());
        }
    }

    #[test]
    fn a_shard_of_the_wrong_length_is_refused() {
        let w = Window::of(0..2, 2 * SEG);
        let coder = Coder::new(4, 2).expect("4+2");
        let mut shards = shards_of(&coder, &sealed(&w));
        if let Some(p) = shards[5].as_mut() {
            p.push(Bytes::from_static(b"x"));
        }
        assert_eq!(
            decode(&coder, &w, &shards).err(),
            Some(ErasureError::ChunkLength)
        );
    }
}
