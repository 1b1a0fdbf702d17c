//! Fan-out: the k+m chunks of every stripe streamed to k+m blob-servers
//! in parallel, one `PutShard` stream each, and the ack rule.
//!
//! Each shard has a small queue; a slow server slows the PUT (bounded
//! memory), a failed one is dropped and the rest go on. At the end the
//! ack rule decides: all k+m durable, or at least k+1 when some failed
//! (a degraded write still survives one more loss); below that the PUT is
//! refused and the shards that did land are handed to the meta tier to
//! free (a gateway never deletes a shard, ADR 0029).
//!
//! A shard id is written once: a stream is never retried under the same
//! id (a failed server is dropped; a client's retry is a new write with a
//! new object stem), so `ShardExists` cannot meet a retry of ours.

use std::time::Duration;

use bytes::Bytes;

use hamster_proto::pb::{self, blob_client::BlobClient};
use hamster_proto::transport::Pool;
use tokio::sync::mpsc;

use crate::meta::MetaTier;
use crate::meta_call;
use tokio::task::JoinHandle;

/// Chunks queued per shard before the sender waits.
const QUEUE: usize = 4;
/// A shard stream that takes no chunk, or does not finish, for this long
/// is given up (a hung server must not hang the PUT); the ack rule then
/// decides without it.
const STALL: Duration = Duration::from_secs(5);

/// Where one shard goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub blob_id: String,
    pub address: String,
    pub shard_id: String,
}

/// A shard that is durable on its blob-server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Landed {
    pub index: u32,
    pub target: Target,
    pub length: u64,
    pub checksum: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AckError {
    #[error("only {durable} of {total} shards are durable; {needed} are needed")]
    TooFewShards {
        durable: usize,
        total: usize,
        needed: usize,
    },
}

struct Sink {
    tx: Option<mpsc::Sender<pb::ShardChunk>>,
    first: bool,
    task: JoinHandle<Result<pb::PutShardResponse, tonic::Status>>,
}

pub struct Fanout {
    targets: Vec<Target>,
    sinks: Vec<Sink>,
}

impl Fanout {
    /// Opens one `PutShard` stream per target; shard i goes to targets[i].
    pub fn open(targets: Vec<Target>, pool: &Pool) -> Self {
        let sinks = targets
            .iter()
            .map(|t| {
                let (tx, rx) = mpsc::channel(QUEUE);
                let channel = pool.channel(&t.address);
                let task = tokio::spawn(async move {
                    let channel = channel.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
                    BlobClient::new(channel)
                        .put_shard(stream)
                        .await
                        .map(tonic::Response::into_inner)
                });
                Sink {
                    tx: Some(tx),
                    first: true,
                    task,
                }
            })
            .collect();
        Self { targets, sinks }
    }

    /// Sends one stripe: chunk i to shard i. A shard whose stream has
    /// failed is skipped from then on.
    pub async fn send(&mut self, chunks: Vec<Bytes>) {
        for (i, (sink, data)) in self.sinks.iter_mut().zip(chunks).enumerate() {
            let Some(tx) = &sink.tx else { continue };
            let msg = pb::ShardChunk {
                shard_id: if sink.first {
                    self.targets[i].shard_id.clone()
                } else {
                    String::new()
                },
                shard_index: i as u32,
                // A slice of the sealed segment or a parity buffer: no copy.
                data,
            };
            sink.first = false;
            match tokio::time::timeout(STALL, tx.send(msg)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => sink.tx = None,
                Err(_) => {
                    tracing::warn!(blob = %self.targets[i].blob_id, "shard stream stalled; going on without it");
                    sink.tx = None;
                    sink.task.abort();
                }
            }
        }
    }

    /// Gives up: ends every stream and returns the shards that landed
    /// anyway, for removal.
    pub async fn abort(self) -> Vec<Landed> {
        let mut landed = Vec::new();
        for (i, mut sink) in self.sinks.into_iter().enumerate() {
            // Dropping the sender before the last chunk still ends the
            // stream cleanly, so a short shard may be durable: remove it.
            drop(sink.tx.take());
            if let Ok(resp) = settle(&mut sink.task).await {
                landed.push(Landed {
                    index: i as u32,
                    target: self.targets[i].clone(),
                    length: resp.length,
                    checksum: resp.checksum,
                });
            }
        }
        landed
    }

    /// Closes every stream and applies the ack rule for `k` data shards.
    pub async fn finish(self, k: usize) -> Result<Vec<Landed>, (AckError, Vec<Landed>)> {
        let total = self.sinks.len();
        let mut landed = Vec::new();
        for (i, mut sink) in self.sinks.into_iter().enumerate() {
            drop(sink.tx.take()); // end of stream
            match settle(&mut sink.task).await {
                Ok(resp) => landed.push(Landed {
                    index: i as u32,
                    target: self.targets[i].clone(),
                    length: resp.length,
                    checksum: resp.checksum,
                }),
                Err(e) => {
                    tracing::warn!(blob = %self.targets[i].blob_id, error = %e, "shard write failed")
                }
            }
        }
        let needed = if total > k { (k + 1).min(total) } else { total };
        if landed.len() == total || landed.len() >= needed {
            Ok(landed)
        } else {
            Err((
                AckError::TooFewShards {
                    durable: landed.len(),
                    total,
                    needed,
                },
                landed,
            ))
        }
    }
}

/// The answer of a shard stream that has been told its end, waiting at
/// most `STALL` (then the stream is abandoned).
async fn settle(
    task: &mut JoinHandle<Result<pb::PutShardResponse, tonic::Status>>,
) -> Result<pb::PutShardResponse, String> {
    use crate::observe::metrics::{blob_error, blob_kind};
    match tokio::time::timeout(STALL, &mut *task).await {
        Ok(Ok(Ok(resp))) => Ok(resp),
        Ok(Ok(Err(status))) => {
            blob_error(blob_kind(&status));
            Err(status.message().to_string())
        }
        Ok(Err(join)) => {
            // Aborted by `send` after a stall.
            blob_error("timeout");
            Err(join.to_string())
        }
        Err(_) => {
            blob_error("timeout");
            task.abort();
            Err("no answer (stalled)".into())
        }
    }
}

/// Asks the meta tier to free the shards that landed for a PUT that is
/// not going to commit. A gateway cannot delete shards (ADR 0029): the
/// meta tier deletes them in the background, each blob-server only once
/// the meta tier confirms nothing names them. Waits at most `STALL` for
/// the answer; what is not freed is left to the sweep.
pub async fn release(landed: &[Landed], meta: &MetaTier) {
    if landed.is_empty() {
        return;
    }
    let req = pb::FreeShardsRequest {
        shards: vec![landed_map(landed)],
    };
    match tokio::time::timeout(STALL, meta_call!(meta, free_shards, req)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(shards = landed.len(), error = %e, "could not free the shards of a failed write; the sweep will")
        }
        Err(_) => {
            tracing::warn!(
                shards = landed.len(),
                "no answer freeing the shards of a failed write; the sweep will"
            )
        }
    }
}

/// The landed shards as a map naming only where they are (what
/// FreeShards needs; a commit's map adds the profile).
pub fn landed_map(landed: &[Landed]) -> pb::ShardMap {
    pb::ShardMap {
        shards: landed
            .iter()
            .map(|l| pb::ShardLocation {
                index: l.index,
                blob_id: l.target.blob_id.clone(),
                shard_id: l.target.shard_id.clone(),
                checksum: l.checksum.clone(),
            })
            .collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_landed_map_names_every_shard_where_it_landed() {
        let landed: Vec<Landed> = (0..3)
            .map(|i| Landed {
                index: i * 2,
                target: Target {
                    blob_id: format!("blob-{i}"),
                    address: format!("127.0.0.1:{}", 9000 + i),
                    shard_id: format!("obj-{i}"),
                },
                length: 10,
                checksum: vec![i as u8],
            })
            .collect();
        let map = landed_map(&landed);
        let got: Vec<_> = map
            .shards
            .iter()
            .map(|l| (l.index, l.blob_id.as_str(), l.shard_id.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (0, "blob-0", "obj-0"),
                (2, "blob-1", "obj-1"),
                (4, "blob-2", "obj-2")
            ]
        );
    }
}
