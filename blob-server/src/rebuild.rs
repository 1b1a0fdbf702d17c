//! The repair worker (`Blob.Rebuild`): rebuilds shards of one stripe set
//! from k good ones and streams them to their new homes. Every shard of a
//! set has the same payload length and Reed–Solomon is bytewise, so
//! aligned windows of any k shards give the same window of the others: no
//! object layout, no key (invariant 3). Sources are read and targets
//! written through gRPC (this server's own address included), as the
//! blob role, which may only read and write shards.
//!
//! One rebuild runs at a time per server and its reads are paced
//! (`--repair-rate`), so repair yields to client traffic. Another asked
//! meanwhile is refused at once (`Unavailable`, busy) rather than queued:
//! a queued call could outlive its connection (peers recycle them after
//! a few minutes); the planner asks again next round.

use std::collections::HashSet;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hamster_proto::ErrorCode;
use hamster_proto::pb::{self, blob_client::BlobClient};
use hamster_proto::transport::Pool;
use reed_solomon_erasure::galois_8::ReedSolomon;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tonic::{Status, Streaming};

use crate::pace::Pacer;
use crate::store::{Store, valid_id};

/// Payload bytes per source per step.
const WINDOW: usize = 1 << 20;
/// A peer that moves no bytes for this long has failed.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Rebuilder {
    pool: Pool,
    store: Store,
    /// This server's own address, as targets name it.
    advertise: String,
    bytes_per_sec: f64,
    /// Held by the running rebuild.
    one: tokio::sync::Mutex<()>,
}

/// Why a request cannot be carried out as given (a bug in the planner).
pub fn validate(req: &pb::RebuildRequest) -> Result<(), String> {
    let (k, m) = (req.data_shards as usize, req.parity_shards as usize);
    if k == 0 || m == 0 || k + m > 256 {
        return Err(format!("profile {k}+{m}: need k >= 1, m >= 1, k+m <= 256"));
    }
    if req.sources.len() < k {
        return Err(format!(
            "{} sources, need at least k = {k}",
            req.sources.len()
        ));
    }
    if req.targets.is_empty() {
        return Err("no targets".into());
    }
    let mut indexes = HashSet::new();
    let mut ids = HashSet::new();
    let specs = req
        .sources
        .iter()
        .map(|s| (s.index, &s.address, &s.shard_id))
        .chain(
            req.targets
                .iter()
                .map(|t| (t.index, &t.address, &t.shard_id)),
        );
    for (index, address, id) in specs {
        if index as usize >= k + m {
            return Err(format!("index {index} outside the {k}+{m} set"));
        }
        // A target id equal to a source's would overwrite the source.
        if !indexes.insert(index) || !ids.insert(id.as_str()) {
            return Err(format!("index {index} or shard {id} named twice"));
        }
        if !valid_id(id) {
            return Err(format!("invalid shard id {id:?}"));
        }
        if address.is_empty() {
            return Err(format!("index {index}: no address"));
        }
    }
    Ok(())
}

fn peer_error(what: &str, e: &Status) -> Status {
    ErrorCode::Unavailable.status(format!("{what}: {}", e.message()))
}

/// One source shard, read front to back in windows over one GetShard.
struct Source {
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
}

enum Msg {
    Chunk(pb::ShardChunk),
    End,
}

/// A shard id no put can have (ids never start with '.').
const NOT_AN_ID: &str = ".rebuild-abandoned";

/// A PutShard body: a plain end of stream commits the shard, so it ends
/// that way only on `Msg::End`. If the rebuild gives up, its sender
/// vanishes without an End (and the call is aborted, see [`Target`]); the
/// body then sends a chunk under another id, which PutShard refuses before
/// it commits anything (a client stream carries messages, not errors).
struct Body {
    rx: mpsc::Receiver<Msg>,
    refused: bool,
}

impl Body {
    fn new(rx: mpsc::Receiver<Msg>) -> Self {
        Self { rx, refused: false }
    }
}

impl tokio_stream::Stream for Body {
    type Item = pb::ShardChunk;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.refused {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Msg::Chunk(c))) => Poll::Ready(Some(c)),
            Poll::Ready(Some(Msg::End)) => Poll::Ready(None),
            Poll::Ready(None) => {
                self.refused = true;
                Poll::Ready(Some(pb::ShardChunk {
                    shard_id: NOT_AN_ID.into(),
                    ..Default::default()
                }))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

type PutCall = JoinHandle<Result<pb::PutShardResponse, Status>>;

/// One target's PutShard call; dropped before it finished (any error, a
/// later target failing to open), the call is aborted, so no partial shard
/// is committed and no call lingers.
struct Target {
    spec: pb::RebuildTarget,
    tx: mpsc::Sender<Msg>,
    call: PutCall,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.call.abort();
    }
}

impl Target {
    fn open(pool: &Pool, spec: pb::RebuildTarget) -> Result<Self, Status> {
        let ch = pool
            .channel(&spec.address)
            .map_err(|e| ErrorCode::MalformedRequest.status(e.to_string()))?;
        let (tx, rx) = mpsc::channel(2);
        let first = pb::ShardChunk {
            shard_id: spec.shard_id.clone(),
            shard_index: spec.index,
            data: Vec::new(),
        };
        // Room for two: cannot fail on a new channel.
        let _ = tx.try_send(Msg::Chunk(first));
        let call = tokio::spawn(async move {
            BlobClient::new(ch)
                .put_shard(Body::new(rx))
                .await
                .map(tonic::Response::into_inner)
        });
        Ok(Self { spec, tx, call })
    }

    fn name(&self) -> String {
        format!(
            "target {} ({} at {})",
            self.spec.index, self.spec.shard_id, self.spec.address
        )
    }

    async fn send(&mut self, msg: Msg) -> Result<(), Status> {
        match tokio::time::timeout(IO_TIMEOUT, self.tx.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            // The call ended early: its answer says why.
            Ok(Err(_)) => Err(match (&mut self.call).await {
                Ok(Err(e)) => peer_error(&self.name(), &e),
                _ => ErrorCode::Unavailable.status(format!("{} ended early", self.name())),
            }),
            Err(_) => Err(ErrorCode::Unavailable.status(format!("{} stalled", self.name()))),
        }
    }

    async fn finish(&mut self) -> Result<pb::PutShardResponse, Status> {
        self.send(Msg::End).await?;
        match tokio::time::timeout(IO_TIMEOUT, &mut self.call).await {
            Ok(Ok(Ok(r))) => Ok(r),
            Ok(Ok(Err(e))) => Err(peer_error(&self.name(), &e)),
            Ok(Err(_)) => Err(ErrorCode::Internal.status(format!("{} task failed", self.name()))),
            Err(_) => Err(ErrorCode::Unavailable.status(format!("{} did not answer", self.name()))),
        }
    }
}

impl Rebuilder {
    pub fn new(pool: Pool, store: Store, advertise: String, bytes_per_sec: f64) -> Self {
        Self {
            pool,
            store,
            advertise,
            bytes_per_sec,
            one: tokio::sync::Mutex::new(()),
        }
    }

    /// The next window of k sources, replacing failed ones with spares.
    async fn read_window(
        &self,
        active: &mut Vec<Source>,
        spares: &mut Vec<Source>,
        offset: u64,
    ) -> Result<Vec<(Source, Vec<u8>)>, Status> {
        let mut todo: Vec<Source> = std::mem::take(active);
        let mut done = Vec::with_capacity(todo.len());
        while !todo.is_empty() {
            let mut set = JoinSet::new();
            for mut s in todo.drain(..) {
                let pool = self.pool.clone();
                set.spawn(async move {
                    let r = tokio::time::timeout(IO_TIMEOUT, s.read(&pool, offset, WINDOW)).await;
                    (s, r)
                });
            }
            while let Some(joined) = set.join_next().await {
                let (s, r) = joined
                    .map_err(|e| ErrorCode::Internal.status(format!("source read task: {e}")))?;
                let e = match r {
                    Ok(Ok(window)) => {
                        done.push((s, window));
                        continue;
                    }
                    Ok(Err(e)) => peer_error(&s.name(), &e),
                    Err(_) => ErrorCode::Unavailable.status(format!("{} stalled", s.name())),
                };
                let Some(spare) = spares.pop() else {
                    return Err(e);
                };
                tracing::warn!(error = %e.message(), next = %spare.name(), "rebuild source failed; using a spare");
                todo.push(spare);
            }
        }
        Ok(done)
    }

    pub async fn rebuild(&self, req: pb::RebuildRequest) -> Result<pb::RebuildResponse, Status> {
        validate(&req).map_err(|why| ErrorCode::MalformedRequest.status(why))?;
        let (k, m) = (req.data_shards as usize, req.parity_shards as usize);
        let rs = ReedSolomon::new(k, m)
            .map_err(|e| ErrorCode::MalformedRequest.status(format!("profile {k}+{m}: {e:?}")))?;
        let Ok(_one) = self.one.try_lock() else {
            return Err(ErrorCode::Unavailable.status("busy: a rebuild is running"));
        };
        let mut active: Vec<Source> = req.sources.into_iter().map(Source::new).collect();
        let mut spares = active.split_off(k);
        // Spares are popped from the end: first given, first used.
        spares.reverse();
        // Each opened target is aborted if a later one fails to open.
        let mut targets: Vec<Target> = req
            .targets
            .into_iter()
            .map(|t| Target::open(&self.pool, t))
            .collect::<Result<_, _>>()?;
        let parity_wanted = targets.iter().any(|t| t.spec.index as usize >= k);
        let mut pacer = Pacer::new(self.bytes_per_sec);
        let (mut offset, mut bytes_read, mut bytes_written) = (0u64, 0u64, 0u64);
        loop {
            let windows = self.read_window(&mut active, &mut spares, offset).await?;
            let n = windows.first().map_or(0, |(_, w)| w.len());
            if let Some((s, w)) = windows.iter().find(|(_, w)| w.len() != n) {
                return Err(ErrorCode::ShardCorrupt.status(format!(
                    "sources differ in length: {} has {} bytes at offset {offset}, another {n}",
                    s.name(),
                    w.len()
                )));
            }
            let mut shards: Vec<Option<Vec<u8>>> = vec![None; k + m];
            for (s, w) in windows {
                shards[s.spec.index as usize] = Some(w);
                active.push(s);
            }
            if n > 0 {
                let rebuilt = if parity_wanted {
                    rs.reconstruct(&mut shards)
                } else {
                    rs.reconstruct_data(&mut shards)
                };
                rebuilt.map_err(|e| ErrorCode::Internal.status(format!("reconstruct: {e:?}")))?;
                for t in &mut targets {
                    let data = shards[t.spec.index as usize].take().unwrap_or_default();
                    t.send(Msg::Chunk(pb::ShardChunk {
                        data,
                        ..Default::default()
                    }))
                    .await?;
                    bytes_written += n as u64;
                }
            }
            bytes_read += (n * k) as u64;
            offset += n as u64;
            pacer.pace((n * k) as u64).await;
            if n < WINDOW {
                break;
            }
        }
        let mut rebuilt = Vec::with_capacity(targets.len());
        let mut failure = None;
        for t in &mut targets {
            match t.finish().await {
                Ok(r) => rebuilt.push((t.spec.clone(), r)),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        for (spec, r) in &rebuilt {
            if failure.is_none() && r.length != offset {
                failure = Some(ErrorCode::Internal.status(format!(
                    "target {} stored {} bytes of {offset}",
                    spec.index, r.length
                )));
            }
            if failure.is_none() && !spec.checksum.is_empty() && spec.checksum != r.checksum {
                failure = Some(ErrorCode::ShardCorrupt.status(format!(
                    "rebuilt shard {} (index {}) has checksum {}, the map records {}: a source is wrong",
                    spec.shard_id,
                    spec.index,
                    hex::encode(&r.checksum),
                    hex::encode(&spec.checksum)
                )));
            }
        }
        if let Some(e) = failure {
            self.discard(&rebuilt).await;
            return Err(e);
        }
        tracing::info!(
            k,
            m,
            targets = rebuilt.len(),
            bytes = offset,
            "shards rebuilt"
        );
        Ok(pb::RebuildResponse {
            shards: rebuilt
                .into_iter()
                .map(|(spec, r)| pb::RebuiltShard {
                    index: spec.index,
                    shard_id: spec.shard_id,
                    length: r.length,
                    checksum: r.checksum,
                })
                .collect(),
            bytes_read,
            bytes_written,
        })
    }

    /// Deletes the written shards that live here; the caller (the meta
    /// tier) deletes the others, which this role may not.
    async fn discard(&self, written: &[(pb::RebuildTarget, pb::PutShardResponse)]) {
        for (spec, _) in written.iter().filter(|(s, _)| s.address == self.advertise) {
            if let Err(e) = self.store.delete(&spec.shard_id).await {
                tracing::warn!(shard = %spec.shard_id, error = %e, "could not discard a rebuilt shard");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    fn chunk(data: &[u8]) -> Msg {
        Msg::Chunk(pb::ShardChunk {
            data: data.to_vec(),
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn a_body_ends_plainly_only_on_end() {
        let (tx, rx) = mpsc::channel(4);
        let mut body = Body::new(rx);
        tx.send(chunk(b"a")).await.expect("send");
        tx.send(Msg::End).await.expect("send");
        assert_eq!(body.next().await.expect("chunk").data, b"a");
        assert!(body.next().await.is_none());
    }

    #[tokio::test]
    async fn an_abandoned_body_ends_with_a_chunk_put_shard_refuses() {
        let (tx, rx) = mpsc::channel(4);
        let mut body = Body::new(rx);
        tx.send(chunk(b"a")).await.expect("send");
        drop(tx);
        assert_eq!(body.next().await.expect("chunk").data, b"a");
        // Not Pending forever: a chunk under an id no put can have...
        let last = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("the body does not hang")
            .expect("a last chunk");
        assert_eq!(last.shard_id, NOT_AN_ID);
        assert!(!valid_id(&last.shard_id));
        // ...then the end.
        assert!(body.next().await.is_none());
    }
}
