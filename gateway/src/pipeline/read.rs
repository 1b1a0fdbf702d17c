//! A GET through the read stages: for each window of segments the range
//! touches, fan in its stripes (rebuilding from parity when needed), open
//! them with the object's data key, and cut them to the range. The next
//! windows are fetched while the current one is sent, so reads overlap
//! the client.

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
    CryptoError, SEGMENT_SIZE, SegmentCipher, TAG_LEN, segment_count, segments_for_range,
};
use super::erasure::{Coder, ErasureError};
use super::fanin::{Source, read_window};
use super::window::{WINDOW_STRIPES, Window, windows};

/// Windows in flight beside the one being sent: at most this many plus
/// one (some 12 MiB of plaintext at 4 MiB windows) held per GET.
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
    /// A window's read task panicked or was cancelled.
    #[error("read task: {0}")]
    Task(String),
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

    /// The sealed stripes of `window`.
    async fn sealed(&self, window: &Window) -> Result<Vec<Vec<u8>>, ErasureError> {
        read_window(
            &self.coder,
            &self.sources,
            window,
            self.full_chunk_len,
            &self.pool,
            self.hedge_after,
        )
        .await
    }

    /// The plaintext of segments `stripes` (one window), in order.
    pub async fn segments(&self, stripes: Range<u64>) -> Result<Vec<Vec<u8>>, ReadError> {
        let window = Window::of(stripes, self.size);
        let sealed = match self.sealed(&window).await {
            Ok(sealed) => sealed,
            // A shard that failed part-way lost the whole window: stripe by
            // stripe, each needs only k good chunks of its own.
            Err(_) if window.stripe_lens.len() > 1 => {
                let mut out = Vec::with_capacity(window.stripe_lens.len());
                for (index, &len) in window.stripes().zip(&window.stripe_lens) {
                    let one = Window {
                        first: index,
                        stripe_lens: vec![len],
                    };
                    let mut got = self
                        .sealed(&one)
                        .await
                        .map_err(|source| ReadError::Shards {
                            segment: index,
                            source,
                        })?;
                    out.append(&mut got);
                }
                out
            }
            Err(source) => {
                return Err(ReadError::Shards {
                    segment: window.first,
                    source,
                });
            }
        };
        let count = segment_count(self.size);
        sealed
            .into_iter()
            .zip(window.stripes())
            .map(|(mut buf, index)| {
                self.cipher
                    .open_in_place(index, index + 1 == count, &mut buf)?;
                Ok(buf)
            })
            .collect()
    }

    /// The plaintext bytes of `range` (non-empty, within the object), with
    /// the first window already read: a failure to read anything shows as
    /// an error status rather than a cut-off body. Later windows are read
    /// ahead in their own tasks, so they progress while the client takes
    /// the current one.
    pub async fn stream(
        self: Arc<Self>,
        range: Range<u64>,
    ) -> Result<impl Stream<Item = Result<Bytes, ReadError>> + Send + 'static, ReadError> {
        let seg = SEGMENT_SIZE as u64;
        let segments =
            segments_for_range(range.start, range.end.saturating_sub(1).max(range.start));
        let mut windows = windows(segments, WINDOW_STRIPES);
        let (start, end) = (range.start, range.end);
        let cut = move |index: u64, plain: Vec<u8>| {
            let base = index * seg;
            let from = start.saturating_sub(base) as usize;
            let to = (end.saturating_sub(base) as usize).min(plain.len());
            Bytes::from(plain).slice(from.min(to)..to)
        };
        let read = move |me: Arc<Self>, stripes: Range<u64>| async move {
            let plain = me.segments(stripes.clone()).await?;
            Ok::<_, ReadError>(
                stripes
                    .zip(plain)
                    .map(|(i, p)| cut(i, p))
                    .collect::<Vec<_>>(),
            )
        };
        let first = windows.next().unwrap_or(0..0);
        let me = self.clone();
        let mut rest = futures::stream::iter(windows)
            .map(move |w| Spawned(tokio::spawn(read(me.clone(), w))))
            .buffered(READ_AHEAD);
        // A task feeds a channel: the body stream must be Sync, and the
        // reads stop as soon as the client goes away. It starts the next
        // windows now, while the first is read here.
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let feed = tokio::spawn(async move {
            while let Some(window) = rest.next().await {
                let pieces = match window {
                    Ok(pieces) => pieces,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                for piece in pieces {
                    if tx.send(Ok(piece)).await.is_err() {
                        return;
                    }
                }
            }
        });
        // Aborted (with the windows it reads ahead) when the GET ends: the
        // first window failed, the handler was dropped, or the body was.
        let feed = AbortOnDrop(feed);
        let head = read(self, first).await?;
        let rest = tokio_stream::wrappers::ReceiverStream::new(rx).map(move |piece| {
            let _owned = &feed;
            piece
        });
        Ok(futures::stream::iter(head).map(Ok).chain(rest))
    }
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A window read in its own task, aborted when dropped (the GET ended).
struct Spawned<T>(tokio::task::JoinHandle<Result<T, ReadError>>);

impl<T> Drop for Spawned<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for Spawned<T> {
    type Output = Result<T, ReadError>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|joined| joined.unwrap_or_else(|e| Err(ReadError::Task(e.to_string()))))
    }
}
