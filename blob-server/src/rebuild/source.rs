//! Where a rebuild's bytes come from, one aligned window at a time:
//! reconstructed from k sources (spares replacing failed ones), or, for a
//! move, copied from the shard at the target's own index — which, should
//! it fail before anything was written, gives way to reconstruction from
//! the other sources.

use hamster_proto::ErrorCode;
use hamster_proto::pb::{self, blob_client::BlobClient};
use hamster_proto::transport::Pool;
use reed_solomon_erasure::galois_8::ReedSolomon;
use tokio::task::JoinSet;
use tonic::{Status, Streaming};

use super::{IO_TIMEOUT, WINDOW, peer_error};

/// One source shard, read front to back in windows over one GetShard.
pub(super) struct Source {
    spec: pb::RebuildSource,
    stream: Option<Streaming<pb::GetShardChunk>>,
    carry: Vec<u8>,
}

impl Source {
    fn new(spec: pb::RebuildSource) -> Self {
        Self {
            spec,
            stream: None,
            carry: Vec::new(),
        }
    }

    fn name(&self) -> String {
        format!(
            "source {} ({} at {})",
            self.spec.index, self.spec.shard_id, self.spec.address
        )
    }

    /// Up to `want` bytes; fewer only at the shard's end. `offset` is where
    /// the stream starts, if this is the first read.
    async fn read(&mut self, pool: &Pool, offset: u64, want: usize) -> Result<Vec<u8>, Status> {
        if self.stream.is_none() {
            let ch = pool
                .channel(&self.spec.address)
                .map_err(|e| ErrorCode::MalformedRequest.status(e.to_string()))?;
            let req = pb::GetShardRequest {
                shard_id: self.spec.shard_id.clone(),
                offset,
                length: 0,
            };
            self.stream = Some(BlobClient::new(ch).get_shard(req).await?.into_inner());
        }
        let mut out = std::mem::take(&mut self.carry);
        out.reserve(want.saturating_sub(out.len()));
        if let Some(stream) = self.stream.as_mut() {
            while out.len() < want {
                match stream.message().await? {
                    Some(c) => out.extend_from_slice(&c.data),
                    None => break,
                }
            }
        }
        if out.len() > want {
            self.carry = out.split_off(want);
        }
        Ok(out)
    }

    /// The next window, within [`IO_TIMEOUT`]; a failure names the source.
    async fn window(&mut self, pool: &Pool, offset: u64) -> Result<Vec<u8>, Status> {
        match tokio::time::timeout(IO_TIMEOUT, self.read(pool, offset, WINDOW)).await {
            Ok(Ok(window)) => Ok(window),
            Ok(Err(e)) => Err(peer_error(&self.name(), &e)),
            Err(_) => Err(ErrorCode::Unavailable.status(format!("{} stalled", self.name()))),
        }
    }
}

/// One window of the shards of a set: `len` bytes of every index a
/// target wants (`shards[index]`), after `read` bytes were read.
pub(super) struct Window {
    pub(super) len: usize,
    pub(super) read: u64,
    pub(super) shards: Vec<Option<Vec<u8>>>,
}

/// Reconstruction from k sources at a time.
pub(super) struct Reconstruct {
    rs: ReedSolomon,
    k: usize,
    total: usize,
    active: Vec<Source>,
    /// Popped from the end: first given, first used.
    spares: Vec<Source>,
    /// Whether a parity index is wanted (else only data is rebuilt).
    parity_wanted: bool,
}

impl Reconstruct {
    /// From `sources` (at least k, distinct indexes, none wanted), for
    /// the `wanted` indexes.
    pub(super) fn new(
        k: usize,
        m: usize,
        sources: Vec<pb::RebuildSource>,
        wanted: &[u32],
    ) -> Result<Self, Status> {
        let rs = ReedSolomon::new(k, m)
            .map_err(|e| ErrorCode::MalformedRequest.status(format!("profile {k}+{m}: {e:?}")))?;
        let mut active: Vec<Source> = sources.into_iter().map(Source::new).collect();
        let mut spares = active.split_off(k.min(active.len()));
        spares.reverse();
        Ok(Self {
            rs,
            k,
            total: k + m,
            active,
            spares,
            parity_wanted: wanted.iter().any(|i| *i as usize >= k),
        })
    }

    /// The next window of k sources, replacing failed ones with spares.
    async fn read_window(
        &mut self,
        pool: &Pool,
        offset: u64,
    ) -> Result<Vec<(Source, Vec<u8>)>, Status> {
        let mut todo: Vec<Source> = std::mem::take(&mut self.active);
        let mut done = Vec::with_capacity(todo.len());
        while !todo.is_empty() {
            let mut set = JoinSet::new();
            for mut s in todo.drain(..) {
                let pool = pool.clone();
                set.spawn(async move {
                    let r = s.window(&pool, offset).await;
                    (s, r)
                });
            }
            while let Some(joined) = set.join_next().await {
                let (s, r) = joined
                    .map_err(|e| ErrorCode::Internal.status(format!("source read task: {e}")))?;
                let e = match r {
                    Ok(window) => {
                        done.push((s, window));
                        continue;
                    }
                    Err(e) => e,
                };
                let Some(spare) = self.spares.pop() else {
                    return Err(e);
                };
                tracing::warn!(error = %e.message(), next = %spare.name(), "rebuild source failed; using a spare");
                todo.push(spare);
            }
        }
        Ok(done)
    }

    async fn next(&mut self, pool: &Pool, offset: u64) -> Result<Window, Status> {
        let windows = self.read_window(pool, offset).await?;
        let n = windows.first().map_or(0, |(_, w)| w.len());
        if let Some((s, w)) = windows.iter().find(|(_, w)| w.len() != n) {
            return Err(ErrorCode::ShardCorrupt.status(format!(
                "sources differ in length: {} has {} bytes at offset {offset}, another {n}",
                s.name(),
                w.len()
            )));
        }
        let mut shards: Vec<Option<Vec<u8>>> = vec![None; self.total];
        for (s, w) in windows {
            shards[s.spec.index as usize] = Some(w);
            self.active.push(s);
        }
        if n > 0 {
            let rebuilt = if self.parity_wanted {
                self.rs.reconstruct(&mut shards)
            } else {
                self.rs.reconstruct_data(&mut shards)
            };
            rebuilt.map_err(|e| ErrorCode::Internal.status(format!("reconstruct: {e:?}")))?;
        }
        Ok(Window {
            len: n,
            read: (n * self.k) as u64,
            shards,
        })
    }
}

/// A rebuild's source of bytes.
pub(super) enum Reader {
    /// A move: the shard at the target's index, byte for byte; and the
    /// reconstruction to use instead if it fails before anything was
    /// written (None: no fallback sources were given).
    Copy {
        source: Box<Source>,
        total: usize,
        fallback: Option<Box<Reconstruct>>,
    },
    Reconstruct(Box<Reconstruct>),
}

impl Reader {
    /// A copy of `sources[0]`, falling back on the rest if any (a
    /// validated request: they are at least k, the target's index not
    /// among them).
    pub(super) fn copy(
        k: usize,
        m: usize,
        mut sources: Vec<pb::RebuildSource>,
        wanted: &[u32],
    ) -> Result<Self, Status> {
        if sources.is_empty() {
            return Err(ErrorCode::MalformedRequest.status("a copy needs its source"));
        }
        let first = Box::new(Source::new(sources.remove(0)));
        let fallback = if sources.is_empty() {
            None
        } else {
            Some(Box::new(Reconstruct::new(k, m, sources, wanted)?))
        };
        Ok(Reader::Copy {
            source: first,
            total: k + m,
            fallback,
        })
    }

    /// The next window; `offset` bytes of every target were sent before.
    pub(super) async fn next(&mut self, pool: &Pool, offset: u64) -> Result<Window, Status> {
        if let Reader::Copy {
            source,
            total,
            fallback,
        } = self
        {
            let e = match source.window(pool, offset).await {
                Ok(w) => {
                    let mut shards = vec![None; *total];
                    let len = w.len();
                    if let Some(slot) = shards.get_mut(source.spec.index as usize) {
                        *slot = Some(w);
                    }
                    return Ok(Window {
                        len,
                        read: len as u64,
                        shards,
                    });
                }
                Err(e) => e,
            };
            // Past the first window the targets hold copied bytes: the
            // whole move fails (and is planned again) rather than splice.
            let Some(fallback) = fallback.take().filter(|_| offset == 0) else {
                return Err(e);
            };
            tracing::warn!(error = %e.message(), "copy source failed before anything was written; reconstructing from the others");
            *self = Reader::Reconstruct(fallback);
        }
        match self {
            Reader::Reconstruct(r) => r.next(pool, offset).await,
            Reader::Copy { .. } => Err(ErrorCode::Internal.status("copy reader in a bad state")),
        }
    }
}
