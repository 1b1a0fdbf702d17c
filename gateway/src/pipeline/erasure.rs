//! Reed–Solomon k+m per stripe. A stripe (one sealed segment) is cut into
//! k equal chunks, the last zero-padded, and m parity chunks are computed;
//! any k of the k+m chunks give the stripe back. Shards are ciphertext:
//! coding and repair never need a key (invariant 3).

use bytes::Bytes;
use reed_solomon_erasure::galois_8::ReedSolomon;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ErasureError {
    #[error("invalid profile {k}+{m}")]
    Profile { k: usize, m: usize },
    #[error("only {have} of the {need} chunks needed to rebuild the stripe")]
    TooFewChunks { have: usize, need: usize },
    #[error("chunks of different lengths")]
    ChunkLength,
}

pub struct Coder {
    k: usize,
    m: usize,
    rs: Option<ReedSolomon>,
}

impl Coder {
    pub fn new(k: usize, m: usize) -> Result<Self, ErasureError> {
        if k == 0 || k + m > 256 {
            return Err(ErasureError::Profile { k, m });
        }
        let rs = if m == 0 {
            None
        } else {
            Some(ReedSolomon::new(k, m).map_err(|_| ErasureError::Profile { k, m })?)
        };
        Ok(Self { k, m, rs })
    }

    pub fn data_shards(&self) -> usize {
        self.k
    }

    pub fn total_shards(&self) -> usize {
        self.k + self.m
    }

    /// Bytes each chunk of a stripe of `stripe_len` bytes takes.
    pub fn chunk_len(&self, stripe_len: usize) -> usize {
        stripe_len.div_ceil(self.k)
    }

    /// Cuts a stripe into k data chunks and computes m parity chunks.
    /// Data chunks are slices of the stripe's own buffer (no copy), save
    /// a last one that needs zero padding.
    pub fn encode(&self, stripe: Vec<u8>) -> Vec<Bytes> {
        let len = self.chunk_len(stripe.len());
        let whole = Bytes::from(stripe);
        let data: Vec<Bytes> = (0..self.k)
            .map(|i| {
                let start = (i * len).min(whole.len());
                let end = ((i + 1) * len).min(whole.len());
                if end - start == len {
                    return whole.slice(start..end);
                }
                let mut c = Vec::with_capacity(len);
                c.extend_from_slice(&whole[start..end]);
                c.resize(len, 0);
                Bytes::from(c)
            })
            .collect();
        let mut parity = vec![vec![0u8; len]; self.m];
        if let Some(rs) = &self.rs
            && len > 0
        {
            // Equal lengths and k+m chunks by construction: cannot fail.
            let _ = rs.encode_sep(&data, &mut parity);
        }
        data.into_iter()
            .chain(parity.into_iter().map(Bytes::from))
            .collect()
    }

    /// Rebuilds a stripe of `stripe_len` bytes from any k chunks (None for
    /// a chunk that is missing, corrupt or too slow).
    pub fn decode(
        &self,
        mut chunks: Vec<Option<Vec<u8>>>,
        stripe_len: usize,
    ) -> Result<Vec<u8>, ErasureError> {
        let have = chunks.iter().filter(|c| c.is_some()).count();
        if chunks.len() != self.k + self.m || have < self.k {
            return Err(ErasureError::TooFewChunks { have, need: self.k });
        }
        let len = self.chunk_len(stripe_len);
        if chunks.iter().flatten().any(|c| c.len() != len) {
            return Err(ErasureError::ChunkLength);
        }
        if len == 0 {
            return Ok(Vec::new());
        }
        if chunks[..self.k].iter().any(Option::is_none) {
            let Some(rs) = &self.rs else {
                return Err(ErasureError::TooFewChunks { have, need: self.k });
            };
            rs.reconstruct_data(&mut chunks)
                .map_err(|_| ErasureError::TooFewChunks { have, need: self.k })?;
        }
        let mut out = Vec::with_capacity(len * self.k);
        for c in chunks.into_iter().take(self.k).flatten() {
            out.extend_from_slice(&c);
        }
        out.truncate(stripe_len);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 37 % 256) as u8).collect()
    }

    #[test]
    fn any_k_of_k_plus_m_rebuild_the_stripe() {
        for (k, m) in [(4, 2), (3, 2), (2, 2), (2, 1), (1, 1), (1, 0)] {
            let coder = Coder::new(k, m).expect("profile");
            for len in [0usize, 1, k - 1 + 1, 1000, 1_048_592] {
                let stripe = data(len);
                let chunks = coder.encode(stripe.clone());
                assert_eq!(chunks.len(), k + m);
                // Lose every combination of up to m chunks.
                for lost in 0..(1u32 << (k + m)) {
                    if lost.count_ones() as usize > m {
                        continue;
                    }
                    let partial: Vec<Option<Vec<u8>>> = chunks
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            if lost & (1 << i) != 0 {
                                None
                            } else {
                                Some(c.to_vec())
                            }
                        })
                        .collect();
                    assert_eq!(
                        coder.decode(partial, len).expect("decode"),
                        stripe,
                        "{k}+{m} len {len} lost {lost:b}"
                    );
                }
                // One more loss than m is refused, never guessed.
                if m < k + m {
                    let partial: Vec<Option<Vec<u8>>> = chunks
                        .iter()
                        .enumerate()
                        .map(|(i, c)| if i <= m { None } else { Some(c.to_vec()) })
                        .collect();
                    assert!(coder.decode(partial, len).is_err());
                }
            }
        }
        assert!(Coder::new(0, 2).is_err());
        assert!(Coder::new(200, 100).is_err());
    }
}
