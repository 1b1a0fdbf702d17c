//! `Admin.StartRepair` and `Admin.ScrubProgress`: every blob-server not
//! down starts an unthrottled scrub pass (`Blob.Scrub` only starts it: a
//! pass over a real disk outlives any connection), and anyone follows the
//! passes through `Blob.ScrubStatus`. A blob-server shows a pass finished
//! only once its findings were delivered through `Registry.ReportScrub`,
//! so then they are in the replicated state.
//!
//! A scrub only sees the files that are there: a shard whose file is gone
//! (a disk replaced, files deleted behind the server's back) is found by
//! comparing the shards the metadata names on a server with the server's
//! shard list, read in that order — a shard is named only after its file
//! is durable, so one named before the list and absent from it is lost.
//! Those are recorded as faults here (`RecordScrub`, reason "missing");
//! the leader's sweep does the same in the background.
//!
//! Removed blob-servers are never asked (ADR 0025). A drained one is
//! asked like any other: no map names a shard on it, so nothing on it
//! can be missing.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use hamster_proto::Role;
use hamster_proto::pb::{self, blob_client::BlobClient};
use hamster_proto::transport::{self, Pool};

use crate::cluster::{CallError, Meta, now_ms};
use crate::state::commands::{Op, Response as R};
use crate::state::model::{BadShard, BlobServer, BlobState, Lifecycle};
use crate::state::reads as q;

/// How long a blob-server may take to start a pass or say how it goes.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long listing one server's shards may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a listing may go without a word (the answer, then each entry):
/// a hung server is given up on in this, not in [`LIST_TIMEOUT`].
pub const LIST_IDLE: Duration = Duration::from_secs(30);
/// A server not heard from for this long is not asked (blob-servers
/// heartbeat every 10 s by default).
const SILENT_MS: i64 = 30_000;
/// Missing shards recorded per command (bounds a log entry's size).
pub const REPORT_BATCH: usize = 1000;

/// How one server's start went.
enum Started {
    /// Started; the missing shards found, or why its list was not read.
    Yes(Result<u64, String>),
    No(String),
}

/// Starts a pass on every blob-server not down and checks each started
/// one for missing shards; answers which started, which could not be
/// asked (each logged with why), and the missing shards found.
pub async fn start_all(meta: &Meta, pool: &Pool) -> Result<pb::StartRepairResponse, CallError> {
    let started_ms = now_ms();
    let servers = meta.read(async |c| q::blob_servers(c).await).await?;
    let fresh_since = started_ms - SILENT_MS;
    let calls = in_cluster(servers).map(|s| async move {
        let answer = if s.state == BlobState::Down {
            Started::No("marked down".into())
        } else if s.last_heartbeat_ms < fresh_since {
            // Likely dead or hung: a call could wait for its whole timeout.
            Started::No(format!("no heartbeat for {} s", SILENT_MS / 1000))
        } else {
            match start(pool, &s).await {
                Ok(()) => Started::Yes(check_missing(meta, pool, &s).await),
                Err(why) => Started::No(why),
            }
        };
        (s.id, answer)
    });
    let mut out = pb::StartRepairResponse {
        started_ms,
        ..Default::default()
    };
    for (id, answer) in futures::future::join_all(calls).await {
        match answer {
            Started::Yes(Ok(missing)) => {
                out.missing += missing;
                out.blobs_started.push(id);
            }
            Started::Yes(Err(why)) => {
                tracing::warn!(blob = %id, error = %why, "repair: missing-shard check failed");
                out.blobs_unlisted.push(id.clone());
                out.blobs_started.push(id);
            }
            Started::No(why) => {
                tracing::warn!(blob = %id, error = %why, "repair: scrub not started");
                out.blobs_unreachable.push(id);
            }
        }
    }
    Ok(out)
}

/// The servers a scrub asks about: not removed (a removed server is
/// never called again, and its shards already count as lost).
fn in_cluster(servers: Vec<BlobServer>) -> impl Iterator<Item = BlobServer> {
    servers
        .into_iter()
        .filter(|s| s.lifecycle != Lifecycle::Removed)
}

async fn start(pool: &Pool, s: &BlobServer) -> Result<(), String> {
    let ch = pool.channel(&s.address).map_err(|e| e.to_string())?;
    match tokio::time::timeout(CALL_TIMEOUT, BlobClient::new(ch).scrub(pb::ScrubRequest {})).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(status)) => Err(status.message().to_string()),
        Err(_) => Err(format!("no answer to Scrub within {CALL_TIMEOUT:?}")),
    }
}

/// Records the shards named on `s` that its list lacks; answers how many.
async fn check_missing(meta: &Meta, pool: &Pool, s: &BlobServer) -> Result<u64, String> {
    // Named first, listed second (see the module doc).
    let id = s.id.clone();
    let named = meta
        .read(async |c| q::shards_named_on(c, &id).await)
        .await
        .map_err(|e| e.to_string())?;
    let listed: HashSet<String> = list_shards(pool, &s.address, i64::MAX)
        .await
        .map_err(|e| format!("listing shards: {e}"))?
        .into_iter()
        .map(|e| e.shard_id)
        .collect();
    let missing: Vec<String> = named.into_iter().filter(|n| !listed.contains(n)).collect();
    if !missing.is_empty() {
        tracing::warn!(blob = %s.id, missing = missing.len(),
            "shards the metadata names are not on their server");
    }
    record_missing(meta, &s.id, &missing).await?;
    Ok(missing.len() as u64)
}

/// Records `missing` shards of `blob_id` as faults, in batches.
pub async fn record_missing(meta: &Meta, blob_id: &str, missing: &[String]) -> Result<(), String> {
    for chunk in missing.chunks(REPORT_BATCH) {
        let op = Op::RecordScrub {
            blob_id: blob_id.to_string(),
            bad: chunk
                .iter()
                .map(|shard_id| BadShard {
                    shard_id: shard_id.clone(),
                    reason: "missing".into(),
                })
                .collect(),
            pass_finished_ms: 0,
        };
        match meta.write(op).await {
            Ok(R::Ok) => {}
            Ok(other) => return Err(format!("recording missing shards: {other:?}")),
            Err(e) => return Err(format!("recording missing shards: {e}")),
        }
    }
    Ok(())
}

/// Every shard a server lists as last written before `before_ms`; an
/// error unless the list is whole.
pub async fn list_shards(
    pool: &Pool,
    address: &str,
    before_ms: i64,
) -> Result<Vec<pb::ShardEntry>, String> {
    // A fresh connection: a pooled one may be near its maximum age, and
    // the server closes it 30 s after that, in-flight calls included.
    let ch = transport::channel(address, pool.tls(), &[Role::Blob]).map_err(|e| e.to_string())?;
    let silent = || tonic::Status::deadline_exceeded(format!("silent for {LIST_IDLE:?}"));
    let list = async {
        let mut client = BlobClient::new(ch);
        let call = client.list_shards(pb::ListShardsRequest {
            modified_before_ms: before_ms,
        });
        let stream = tokio::time::timeout(LIST_IDLE, call)
            .await
            .map_err(|_| silent())??
            .into_inner();
        collect_within(stream, LIST_IDLE).await
    };
    match tokio::time::timeout(LIST_TIMEOUT, list).await {
        Ok(Ok(entries)) => Ok(entries),
        Ok(Err(s)) => Err(s.message().to_string()),
        Err(_) => Err(format!("no whole list within {LIST_TIMEOUT:?}")),
    }
}

/// Every item of `stream`, each within `idle` of the one before.
async fn collect_within<T>(
    mut stream: impl futures::Stream<Item = Result<T, tonic::Status>> + Unpin,
    idle: Duration,
) -> Result<Vec<T>, tonic::Status> {
    use futures::StreamExt;
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(item)) => out.push(item?),
            Ok(None) => return Ok(out),
            Err(_) => {
                let msg = format!("silent for {idle:?}");
                return Err(tonic::Status::deadline_exceeded(msg));
            }
        }
    }
}

/// The last on-demand pass end seen per blob-server.
#[derive(Default)]
pub struct PassEnds(Mutex<HashMap<String, i64>>);

impl PassEnds {
    /// Whether `p` shows a pass end not seen before (now seen).
    pub fn any_new(&self, p: &pb::ScrubProgressResponse) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut new = false;
        for b in p.blobs.iter().filter(|b| b.finished_ms > 0) {
            new |= seen.insert(b.blob_id.clone(), b.finished_ms) != Some(b.finished_ms);
        }
        new
    }
}

/// Every registered blob-server's on-demand pass, asked in parallel.
pub async fn progress(meta: &Meta, pool: &Pool) -> Result<pb::ScrubProgressResponse, CallError> {
    let servers = meta.read(async |c| q::blob_servers(c).await).await?;
    let asks = in_cluster(servers).map(|s| async move {
        let answer = if s.state == BlobState::Down {
            Err("marked down".to_string())
        } else {
            status(pool, &s.address).await
        };
        match answer {
            Ok(r) => pb::BlobScrub {
                blob_id: s.id,
                started_ms: r.started_ms,
                finished_ms: r.finished_ms,
                shards_checked: r.shards_checked,
                bytes_checked: r.bytes_checked,
                bytes_total: r.bytes_total,
                corrupt: r.corrupt_count,
                error: String::new(),
            },
            Err(error) => pb::BlobScrub {
                blob_id: s.id,
                error,
                ..Default::default()
            },
        }
    });
    Ok(pb::ScrubProgressResponse {
        blobs: futures::future::join_all(asks).await,
    })
}

async fn status(pool: &Pool, address: &str) -> Result<pb::ScrubResponse, String> {
    let ch = pool.channel(address).map_err(|e| e.to_string())?;
    let mut client = BlobClient::new(ch);
    let call = client.scrub_status(pb::ScrubStatusRequest {});
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(s.message().to_string()),
        Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use futures::StreamExt;

    #[tokio::test]
    async fn a_listing_that_goes_silent_is_given_up_on_after_the_idle_deadline() {
        // Two entries, then nothing, never ended (a hung blob-server).
        let entries = futures::stream::iter([Ok(1), Ok(2)]);
        let hung = entries.chain(futures::stream::pending());
        let idle = Duration::from_millis(100);
        let t0 = tokio::time::Instant::now();
        let e = collect_within(Box::pin(hung), idle)
            .await
            .expect_err("silent");
        assert_eq!(e.code(), tonic::Code::DeadlineExceeded);
        // Generous: only a wait for the whole list would come near it.
        assert!(t0.elapsed() < Duration::from_secs(60));
        let whole = futures::stream::iter([Ok(1), Ok(2)]);
        assert_eq!(collect_within(whole, idle).await.expect("list"), [1, 2]);
    }
}
