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

async fn read_chunk(src: &Source, offset: u64, len: u64, pool: &Pool) -> Option<Vec<u8>> {
    if src.address.is_empty() {
        return None;
    }
    let ch = pool.channel(&src.address).ok()?;
    let req = pb::GetShardRequest {
        shard_id: src.shard_id.clone(),
        offset,
        length: len,
    };
    let stream = BlobClient::new(ch).get_shard(req).await.ok()?.into_inner();
    collect_chunk(stream, len).await
}

/// Exactly `len` bytes from a GetShard stream, or None. A blob-server that
/// sends more than was asked is faulty (or not ours): the read stops before
/// its bytes can grow this buffer without bound.
async fn collect_chunk<S>(mut stream: S, len: u64) -> Option<Vec<u8>>
where
    S: futures::Stream<Item = Result<pb::GetShardChunk, tonic::Status>> + Unpin,
{
    // `len` comes from the shard map, never from the peer.
    let mut out = Vec::with_capacity(len as usize);
    while let Some(piece) = stream.next().await {
        let piece = piece.ok()?;
        if out.len() as u64 + piece.data.len() as u64 > len {
            return None;
        }
        out.extend_from_slice(&piece.data);
    }
    (out.len() as u64 == len).then_some(out)
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
            () = &mut hedge, if !hedged => true,
        };
        if ask_parity && !hedged {
            hedged = true;
            pending.extend((k..total).map(fetch));
        }
    }
    coder.decode(chunks, stripe_len)
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
        assert_eq!(collect_chunk(pieces(&[3, 4]), 7).await, Some(vec![7; 7]));
        assert_eq!(collect_chunk(pieces(&[3]), 7).await, None, "short");
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
        assert_eq!(got, None);
    }
}
