//! Fan-in: a stripe read back from its shards. The k data chunks are read
//! first, in parallel; if any is missing, corrupt (the blob-server answers
//! DATA_LOSS) or fails, parity chunks are read and the stripe rebuilt from
//! any k. Hedged reads (asking parity before a slow data shard answers)
//! come with the GET path.

use std::sync::Arc;

use futures::future::join_all;
use hamster_proto::pb::{self, blob_client::BlobClient};
use hamster_proto::tls::NodeTls;
use hamster_proto::{Role, transport};

use super::erasure::{Coder, ErasureError};

/// Where shard `index` of an object lives.
#[derive(Clone, Debug)]
pub struct Source {
    pub index: u32,
    pub address: String,
    pub shard_id: String,
}

async fn read_chunk(src: &Source, offset: u64, len: u64, tls: &Arc<NodeTls>) -> Option<Vec<u8>> {
    let ch = transport::channel(&src.address, tls, &[Role::Blob]).ok()?;
    let req = pb::GetShardRequest {
        shard_id: src.shard_id.clone(),
        offset,
        length: len,
    };
    let mut stream = BlobClient::new(ch).get_shard(req).await.ok()?.into_inner();
    let mut out = Vec::with_capacity(len as usize);
    while let Some(piece) = stream.message().await.ok()? {
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
    tls: &Arc<NodeTls>,
) -> Result<Vec<u8>, ErasureError> {
    let k = coder.data_shards();
    let len = coder.chunk_len(stripe_len) as u64;
    let offset = stripe * full_chunk_len;
    let mut chunks: Vec<Option<Vec<u8>>> = vec![None; coder.total_shards()];
    // Reads shards `range` in parallel into their slots.
    let fetch = async |chunks: &mut Vec<Option<Vec<u8>>>, range: std::ops::Range<usize>| {
        let got = join_all(
            sources[range.clone()]
                .iter()
                .map(|s| read_chunk(s, offset, len, tls)),
        )
        .await;
        for (i, c) in range.zip(got) {
            chunks[i] = c;
        }
    };
    fetch(&mut chunks, 0..k).await;
    if chunks[..k].iter().any(Option::is_none) {
        // Read parity, as many as the loss needs (all of them, if some fail too).
        fetch(&mut chunks, k..sources.len().min(coder.total_shards())).await;
    }
    coder.decode(chunks, stripe_len)
}
