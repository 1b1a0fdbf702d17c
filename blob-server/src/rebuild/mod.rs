//! The repair worker (`Blob.Rebuild`): rebuilds shards of one stripe set
//! from k good ones and streams them to their new homes. Every shard of a
//! set has the same payload length and Reed–Solomon is bytewise, so
//! aligned windows of any k shards give the same window of the others: no
//! object layout, no key (invariant 3). Sources are read and targets
//! written through gRPC (this server's own address included), as the
//! blob role, which may only read and write shards.
//!
//! A move (drain, rebalance: `copy`) is the same job with another reader:
//! the shard at the target's own index copied byte for byte, no RS; if it
//! cannot be read before anything was written, the other sources (if
//! given) reconstruct it instead. Either way the target's length and
//! checksum are checked against the map's, as for a rebuild.
//!
//! - [`source`]: where the bytes come from, window by window.
//! - [`target`]: where they go, committed only whole.
//!
//! One rebuild runs at a time per server and its reads are paced
//! (`--repair-rate`), so repair yields to client traffic. Another asked
//! meanwhile is refused at once (`Unavailable`, busy) rather than queued:
//! a queued call could outlive its connection (peers recycle them after
//! a few minutes); the planner asks again next round.

mod source;
mod target;

use std::collections::HashSet;
use std::time::Duration;

use hamster_proto::ErrorCode;
use hamster_proto::pb;
use hamster_proto::transport::Pool;
use tonic::Status;

use crate::pace::Pacer;
use crate::store::{Store, valid_id};
use source::Reader;
use target::Target;

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
    // A copy needs no parity (a 1+0 set moves too), a reconstruction does.
    if k == 0 || (m == 0 && !req.copy) || k + m > 256 {
        return Err(format!("profile {k}+{m}: need k >= 1, m >= 1, k+m <= 256"));
    }
    if req.copy {
        let [target] = req.targets.as_slice() else {
            return Err(format!(
                "a copy has exactly one target, not {}",
                req.targets.len()
            ));
        };
        let Some(own) = req.sources.first() else {
            return Err("a copy needs its source".into());
        };
        if own.index != target.index {
            return Err(format!(
                "a copy's first source has index {}, its target {}",
                own.index, target.index
            ));
        }
        let fallback = req.sources.len() - 1;
        if fallback > 0 && fallback < k {
            return Err(format!(
                "{fallback} fallback sources, need none or at least k = {k}"
            ));
        }
    } else {
        if req.sources.len() < k {
            return Err(format!(
                "{} sources, need at least k = {k}",
                req.sources.len()
            ));
        }
        if req.targets.is_empty() {
            return Err("no targets".into());
        }
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
    for (n, (index, address, id)) in specs.enumerate() {
        if index as usize >= k + m {
            return Err(format!("index {index} outside the {k}+{m} set"));
        }
        // A copy's own source shares its target's index; every other
        // index is named once.
        let copied = req.copy && n == 0;
        // A target id equal to a source's would overwrite the source.
        if (!copied && !indexes.insert(index)) || !ids.insert(id.as_str()) {
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

    pub async fn rebuild(&self, req: pb::RebuildRequest) -> Result<pb::RebuildResponse, Status> {
        validate(&req).map_err(|why| ErrorCode::MalformedRequest.status(why))?;
        let (k, m) = (req.data_shards as usize, req.parity_shards as usize);
        let Ok(_one) = self.one.try_lock() else {
            return Err(ErrorCode::Unavailable.status("busy: a rebuild is running"));
        };
        let wanted: Vec<u32> = req.targets.iter().map(|t| t.index).collect();
        let mut reader = if req.copy {
            Reader::copy(k, m, req.sources, &wanted)?
        } else {
            Reader::Reconstruct(Box::new(source::Reconstruct::new(
                k,
                m,
                req.sources,
                &wanted,
            )?))
        };
        // Each opened target is aborted if a later one fails to open.
        let mut targets: Vec<Target> = req
            .targets
            .into_iter()
            .map(|t| Target::open(&self.pool, t))
            .collect::<Result<_, _>>()?;
        let mut pacer = Pacer::new(self.bytes_per_sec);
        let (mut offset, mut bytes_read, mut bytes_written) = (0u64, 0u64, 0u64);
        loop {
            let mut window = reader.next(&self.pool, offset).await?;
            let n = window.len;
            if n > 0 {
                for t in &mut targets {
                    let data = window
                        .shards
                        .get_mut(t.spec.index as usize)
                        .and_then(Option::take)
                        .unwrap_or_default();
                    t.send(data).await?;
                    bytes_written += n as u64;
                }
            }
            bytes_read += window.read;
            offset += n as u64;
            pacer.pace(window.read).await;
            if n < WINDOW {
                break;
            }
        }
        let rebuilt = self.finish(&mut targets, offset).await?;
        tracing::info!(
            k,
            m,
            copy = req.copy,
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

    /// Commits every target and checks each against what the map
    /// records: `len` bytes, its checksum (if known). On any failure the
    /// shards written here are deleted again and the first error answered.
    async fn finish(
        &self,
        targets: &mut [Target],
        len: u64,
    ) -> Result<Vec<(pb::RebuildTarget, pb::PutShardResponse)>, Status> {
        let mut rebuilt = Vec::with_capacity(targets.len());
        let mut failure = None;
        for t in targets.iter_mut() {
            match t.finish().await {
                Ok(r) => rebuilt.push((t.spec.clone(), r)),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        for (spec, r) in &rebuilt {
            if failure.is_none() && r.length != len {
                failure = Some(ErrorCode::Internal.status(format!(
                    "target {} stored {} bytes of {len}",
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
        Ok(rebuilt)
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
