//! A GET through the read stages: for each segment the range touches,
//! fan in its stripe (rebuilding from parity when needed), open it with
//! the object's data key, and cut it to the range. The next segment is
//! fetched while the current one is sent, so reads overlap the client.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use hamster_proto::envelope::DataKey;
use hamster_proto::pb;
use hamster_proto::transport::Pool;

use super::encrypt::{
    CryptoError, SEGMENT_SIZE, SegmentCipher, TAG_LEN, segment_count, segment_len,
    segments_for_range,
};
use super::erasure::{Coder, ErasureError};
use super::fanin::{Source, read_stripe};

/// Segments fetched ahead of the one being sent.
const READ_AHEAD: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("unreadable shard map: {0}")]
    Map(String),
    #[error("segment {segment}: {source}")]
    Shards { segment: u64, source: ErasureError },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The next part of a multipart object could not be found or opened
    /// (its page from the meta tier, or its data key), mid-body.
    #[error("next part: {0}")]
    Unit(String),
}

pub struct ObjectReader {
    coder: Coder,
    sources: Vec<Source>,
    cipher: SegmentCipher,
    size: u64,
    full_chunk_len: u64,
    pool: Pool,
    hedge_after: Duration,
}

impl ObjectReader {
    /// `addresses` maps blob ids to where they listen (the registry).
    pub fn new(
        map: &pb::ShardMap,
        dek: &DataKey,
        size: u64,
        addresses: &HashMap<String, String>,
        pool: Pool,
        hedge_after: Duration,
    ) -> Result<Self, ReadError> {
        if map.segment_size != SEGMENT_SIZE as u64 {
            return Err(ReadError::Map(format!(
                "segment size {} (this gateway reads {SEGMENT_SIZE})",
                map.segment_size
            )));
        }
        let (k, m) = (map.data_shards as usize, map.parity_shards as usize);
        let coder = Coder::new(k, m).map_err(|e| ReadError::Map(e.to_string()))?;
        let sources = Self::sources_of(map, addresses);
        Ok(Self {
            full_chunk_len: coder.chunk_len(SEGMENT_SIZE + TAG_LEN) as u64,
            coder,
            sources,
            cipher: SegmentCipher::new(dek),
            size,
            pool,
            hedge_after,
        })
    }

    /// Where each shard of `map` is read from, by index: a shard on a
    /// server `addresses` does not list (unknown, or removed from the
    /// cluster) has no address, so it is never asked and counts as
    /// missing: the stripe is rebuilt from the others.
    pub(crate) fn sources_of(
        map: &pb::ShardMap,
        addresses: &HashMap<String, String>,
    ) -> Vec<Source> {
        let total = (map.data_shards + map.parity_shards) as usize;
        let mut sources: Vec<Source> = (0..total)
            .map(|i| Source {
                index: i as u32,
                address: String::new(),
                shard_id: String::new(),
            })
            .collect();
        for s in &map.shards {
            if let Some(slot) = sources.get_mut(s.index as usize) {
                slot.shard_id = s.shard_id.clone();
                slot.address = addresses.get(&s.blob_id).cloned().unwrap_or_default();
            }
        }
        sources
    }

    /// The plaintext of segment `index`.
    pub async fn segment(&self, index: u64) -> Result<Vec<u8>, ReadError> {
        let stripe_len = segment_len(self.size, index) + TAG_LEN;
        let sealed = read_stripe(
            &self.coder,
            &self.sources,
            index,
            self.full_chunk_len,
            stripe_len,
            &self.pool,
            self.hedge_after,
        )
        .await
        .map_err(|source| ReadError::Shards {
            segment: index,
            source,
        })?;
        let last = index + 1 == segment_count(self.size);
        Ok(self.cipher.open(index, last, &sealed)?)
    }

    /// The plaintext bytes of `range` (non-empty, within the object), with
    /// the first segment already read: a failure to read anything shows as
    /// an error status rather than a cut-off body.
    pub async fn stream(
        self: Arc<Self>,
        range: Range<u64>,
    ) -> Result<impl Stream<Item = Result<Bytes, ReadError>> + Send + 'static, ReadError> {
        let seg = SEGMENT_SIZE as u64;
        let segments =
            segments_for_range(range.start, range.end.saturating_sub(1).max(range.start));
        let first = *segments.start();
        let (start, end) = (range.start, range.end);
        let cut = move |index: u64, plain: Vec<u8>| {
            let base = index * seg;
            let from = start.saturating_sub(base) as usize;
            let to = (end.saturating_sub(base) as usize).min(plain.len());
            Bytes::from(plain).slice(from.min(to)..to)
        };
        let head = cut(first, self.segment(first).await?);
        let mut rest = futures::stream::iter(first + 1..=*segments.end())
            .map(move |i| {
                let me = self.clone();
                async move { me.segment(i).await.map(|p| cut(i, p)) }
            })
            .buffered(READ_AHEAD);
        // A task feeds a channel: the body stream must be Sync, and the
        // reads stop as soon as the client goes away.
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            while let Some(piece) = rest.next().await {
                let failed = piece.is_err();
                if tx.send(piece).await.is_err() || failed {
                    break;
                }
            }
        });
        let rest = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(futures::stream::once(async move { Ok(head) }).chain(rest))
    }
}
