//! Fan-in: a stripe read back from its shards. The k data chunks are
//! asked first, in parallel. Parity is asked too (a hedged read) as soon
//! as a data chunk fails — missing, corrupt (the blob-server answers
//! DATA_LOSS), unreachable — or when the data chunks have not all come
//! back within the hedge delay. The stripe is rebuilt from the first k
//! chunks that arrive, so one slow server does not set the pace.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hamster_proto::pb::{self, blob_client::BlobClient};
use hamster_proto::transport::Pool;

use super::erasure::{Coder, ErasureError};
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

/// One chunk, or None; a failed call is counted by kind.
async fn read_chunk(src: &Source, offset: u64, len: u64, pool: &Pool) -> Option<Vec<u8>> {
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
        Ok(chunk) => Some(chunk),
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

/// Exactly `len` bytes from a GetShard stream, or why not. A blob-server that
/// sends more than was asked is faulty (or not ours): the read stops before
/// its bytes can grow this buffer without bound.
async fn collect_chunk<S>(mut stream: S, len: u64) -> Result<Vec<u8>, Short>
where
    S: futures::Stream<Item = Result<pb::GetShardChunk, tonic::Status>> + Unpin,
{
    // `len` comes from the shard map, never from the peer.
    let mut out = Vec::with_capacity(len as usize);
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(Short::Status)?;
        if out.len() as u64 + piece.data.len() as u64 > len {
            return Err(Short::WrongLength);
        }
        out.extend_from_slice(&piece.data);
    }
    if out.len() as u64 == len {
        Ok(out)
    } else {
        Err(Short::WrongLength)
    }
}

/// Reads stripe `stripe` (of `stripe_len` bytes; every earlier stripe had
/// `full_chunk_len`-byte chunks) from `sources` (shard i at sources[i]).
pub async fn read_stripe(
    coder: &Coder,
    sources: &[Source],
    stripe: u64,
    full_chunk_len: u64,
    stripe_len: usize,
    pool: &Pool,
    hedge_after: Duration,
) -> Result<Vec<u8>, ErasureError> {
    let k = coder.data_shards();
    let total = coder.total_shards().min(sources.len());
    let len = coder.chunk_len(stripe_len) as u64;
    let offset = stripe * full_chunk_len;
    let mut chunks: Vec<Option<Vec<u8>>> = vec![None; coder.total_shards()];
    let fetch = |i: usize| {
        let src = &sources[i];
        async move {
            let chunk =
                tokio::time::timeout(READ_TIMEOUT, read_chunk(src, offset, len, pool)).await;
            if chunk.is_err() {
                blob_error("timeout");
            }
            (i, chunk.ok().flatten())
        }
    };
    let mut pending: FuturesUnordered<_> = (0..k.min(total)).map(fetch).collect();
    let mut hedged = false;
    let mut have = 0;
    let hedge = tokio::time::sleep(hedge_after);
    tokio::pin!(hedge);
    while have < k {
        let ask_parity = tokio::select! {
            got = pending.next() => match got {
                Some((i, Some(c))) => {
                    chunks[i] = Some(c);
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
    // Decoded from parity: a data chunk failed or lost the race.
    let rebuilt = chunks.iter().take(k).any(Option::is_none);
    let stripe = coder.decode(chunks, stripe_len)?;
    if rebuilt {
        crate::observe::metrics::stripe_rebuilt();
    }
    Ok(stripe)
}

#[cfg(test)]
mod chunk_tests {
    use super::*;

    fn pieces(
        sizes: &[usize],
    ) -> impl futures::Stream<Item = Result<pb::GetShardChunk, tonic::Status>> + Unpin {
        let items: Vec<_> = sizes
            .iter()
            .map(|&n| Ok(pb::GetShardChunk { data: vec![7; n] }))
            .collect();
        futures::stream::iter(items)
    }

    #[tokio::test]
    async fn a_chunk_is_exactly_what_was_asked() {
        assert_eq!(
            collect_chunk(pieces(&[3, 4]), 7).await.ok(),
            Some(vec![7; 7])
        );
        let short = collect_chunk(pieces(&[3]), 7).await;
        assert!(matches!(short, Err(Short::WrongLength)), "short");
    }

    #[tokio::test]
    async fn a_status_mid_stream_keeps_its_kind() {
        let items = vec![
            Ok(pb::GetShardChunk { data: vec![7; 3] }),
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
                data: vec![1; 1 << 20],
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
