//! Fan-in: stripes read back from their shards. The k data chunks are
//! asked first, in parallel. Parity is asked too (a hedged read) as soon
//! as a data chunk fails — missing, corrupt (the blob-server answers
//! DATA_LOSS), unreachable — or when the data chunks have not all come
//! back within the hedge delay. The stripes are rebuilt from the first k
//! shards that arrive, so one slow server does not set the pace. A read
//! covers a window of stripes ([`super::window`]): one call per shard.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hamster_proto::pb::{self, blob_client::BlobClient};
use hamster_proto::transport::Pool;

use super::erasure::{Coder, ErasureError};
use super::window::{Pieces, Window, decode};
use crate::observe::metrics::{blob_error, blob_kind};

/// A chunk read that takes longer than this counts as failed, so a hung
/// server cannot hang a GET even when parity must wait for it.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// Where shard `index` of an object lives (an empty address: nowhere known).
#[derive(Clone, Debug)]
pub struct Source {
    pub index: u32,
    pub address: String,
    pub shard_id: String,
}

/// Shard `src`'s `len` bytes from `offset`, or None; a failed call is
/// counted by kind.
async fn read_shard(src: &Source, offset: u64, len: u64, pool: &Pool) -> Option<Pieces> {
    if src.address.is_empty() {
        return None;
    }
    let Ok(ch) = pool.channel(&src.address) else {
        blob_error("unavailable");
        return None;
    };
    let req = pb::GetShardRequest {
        shard_id: src.shard_id.clone(),
        offset,
        length: len,
    };
    let stream = match BlobClient::new(ch).get_shard(req).await {
        Ok(s) => s.into_inner(),
        Err(s) => {
            blob_error(blob_kind(&s));
            return None;
        }
    };
    match collect_chunk(stream, len).await {
        Ok(pieces) => Some(pieces),
        Err(Short::Status(s)) => {
            blob_error(blob_kind(&s));
            None
        }
        Err(Short::WrongLength) => {
            blob_error("invalid");
            None
        }
    }
}

/// Why a GetShard stream gave no chunk.
enum Short {
    /// The stream ended with a gRPC status.
    Status(tonic::Status),
    /// More or fewer bytes than asked.
    WrongLength,
}

/// Exactly `len` bytes from a GetShard stream, kept as received, or why
/// not. A blob-server that sends more than was asked is faulty (or not
/// ours): the read stops before its bytes can pile up without bound.
async fn collect_chunk<S>(mut stream: S, len: u64) -> Result<Pieces, Short>
where
    S: futures::Stream<Item = Result<pb::GetShardChunk, tonic::Status>> + Unpin,
{
    // `len` comes from the shard map, never from the peer.
    let mut out = Pieces::default();
    // Pieces are kept as received: a peer sending tiny ones would pin far
    // more memory than `len` (bookkeeping per piece). Blob-servers send
    // pieces of 64 KiB to 1 MiB; far more pieces than 4 KiB ones is refused.
    let max_pieces = len / 4096 + 16;
    let mut pieces = 0u64;
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(Short::Status)?;
        pieces += 1;
        if out.len() as u64 + piece.data.len() as u64 > len || pieces > max_pieces {
            return Err(Short::WrongLength);
        }
        out.push(piece.data);
    }
    if out.len() as u64 == len {
        Ok(out)
    } else {
        Err(Short::WrongLength)
    }
}

/// Reads the sealed stripes of `window` (every stripe before it had
/// `full_chunk_len`-byte chunks) from `sources` (shard i at sources[i]):
/// one GetShard per shard asked.
pub async fn read_window(
    coder: &Coder,
    sources: &[Source],
    window: &Window,
    full_chunk_len: u64,
    pool: &Pool,
    hedge_after: Duration,
) -> Result<Vec<Vec<u8>>, ErasureError> {
    let k = coder.data_shards();
    let total = coder.total_shards().min(sources.len());
    let len = window.shard_len(coder);
    let offset = window.shard_offset(full_chunk_len);
    let mut shards: Vec<Option<Pieces>> = (0..coder.total_shards()).map(|_| None).collect();
    let fetch = |i: usize| {
        let src = &sources[i];
        async move {
            let got = tokio::time::timeout(READ_TIMEOUT, read_shard(src, offset, len, pool)).await;
            if got.is_err() {
                blob_error("timeout");
            }
            (i, got.ok().flatten())
        }
    };
    let mut pending: FuturesUnordered<_> = (0..k.min(total)).map(fetch).collect();
    let mut hedged = false;
    let mut have = 0;
    // The hedge delay is per stripe: a window of n stripes is n times the bytes.
    let stripes = u32::try_from(window.stripe_lens.len())
        .unwrap_or(u32::MAX)
        .max(1);
    let hedge = tokio::time::sleep(hedge_after.saturating_mul(stripes));
    tokio::pin!(hedge);
    while have < k {
        let ask_parity = tokio::select! {
            got = pending.next() => match got {
                Some((i, Some(p))) => {
                    shards[i] = Some(p);
                    have += 1;
                    false
                }
                Some((_, None)) => true,
                None if hedged => break,
                None => true,
            },
            () = &mut hedge, if !hedged => {
                crate::observe::metrics::hedged_read();
                true
            }
        };
        if ask_parity && !hedged {
            hedged = true;
            pending.extend((k..total).map(fetch));
        }
    }
    // Stripes decoded from parity: a data shard failed or lost the race.
    let (stripes, rebuilt) = decode(coder, window, &shards)?;
    for _ in 0..rebuilt {
        crate::observe::metrics::stripe_rebuilt();
    }
    Ok(stripes)
}

/// Reads stripe `stripe` alone (of `stripe_len` bytes; every earlier
/// stripe had `full_chunk_len`-byte chunks): a window of one.
pub async fn read_stripe(
    coder: &Coder,
    sources: &[Source],
    stripe: u64,
    full_chunk_len: u64,
    stripe_len: usize,
    pool: &Pool,
    hedge_after: Duration,
) -> Result<Vec<u8>, ErasureError> {
    let window = Window {
        first: stripe,
        stripe_lens: vec![stripe_len],
    };
    let mut stripes =
        read_window(coder, sources, &window, full_chunk_len, pool, hedge_after).await?;
    stripes.pop().ok_or(ErasureError::ChunkLength)
}

#[cfg(test)]
mod chunk_tests {
    use super::*;

    fn pieces(
        sizes: &[usize],
    ) -> impl futures::Stream<Item = Result<pb::GetShardChunk, tonic::Status>> + Unpin {
        let items: Vec<_> = sizes
            .iter()
            .map(|&n| {
                Ok(pb::GetShardChunk {
                    data: vec![7; n].into(),
                })
            })
            .collect();
        futures::stream::iter(items)
    }

    #[tokio::test]
    async fn a_chunk_is_exactly_what_was_asked() {
        let got = collect_chunk(pieces(&[3, 4]), 7)
            .await
            .ok()
            .expect("7 bytes");
        assert_eq!(got.len(), 7);
        let short = collect_chunk(pieces(&[3]), 7).await;
        assert!(matches!(short, Err(Short::WrongLength)), "short");
    }

    #[tokio::test]
    async fn a_status_mid_stream_keeps_its_kind() {
        let items = vec![
            Ok(pb::GetShardChunk {
                data: vec![7; 3].into(),
            }),
            Err(tonic::Status::unavailable("gone")),
        ];
        match collect_chunk(futures::stream::iter(items), 7).await {
            Err(Short::Status(s)) => assert_eq!(blob_kind(&s), "unavailable"),
            other => panic!("not a status: {:?}", other.ok()),
        }
    }

    #[tokio::test]
    async fn a_peer_that_sends_more_is_cut_off_at_the_first_extra_byte() {
        // An endless stream of 1 MiB pieces: without the bound this never
        // ends and the buffer grows until the gateway runs out of memory.
        let endless = futures::stream::repeat_with(|| {
            Ok(pb::GetShardChunk {
                data: vec![1; 1 << 20].into(),
            })
        });
        let got = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            collect_chunk(endless, 3 << 20),
        )
        .await
        .expect("a flooding peer must be cut off, not read forever");
        assert!(matches!(got, Err(Short::WrongLength)));
    }
}
