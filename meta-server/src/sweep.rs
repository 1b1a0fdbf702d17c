//! The sweep, both ways between the metadata and the blob-servers' lists:
//! - orphans: shards on blob-servers that no metadata names — a PUT that
//!   failed, a gateway that died between fan-out and commit, a free that
//!   did not reach its server — are deleted once they are old enough;
//! - missing: shards the metadata names on a blob-server that its list
//!   lacks (files deleted behind its back, a disk replaced) are recorded
//!   as faults (reason "missing"), so repair rebuilds them with no
//!   `hamster repair` run.
//!
//! Removed blob-servers are skipped (ADR 0025). A drained server's store
//! is swept like any other: nothing on it is named, so nothing is missing.
//!
//! Runs on the leader only, one round every `every`:
//! 1. each blob-server lists every shard it holds, with its write time;
//! 2. then linearizable reads collect every shard id the metadata names,
//!    and the ones it names on each listed server (faults left out);
//! 3. listed shards last written before now − grace and not named are
//!    deleted; shards named on a server, created before now − grace and
//!    not in its list are recorded missing, in batches.
//!
//! Step 2 follows step 1, and a commit naming a shard older than the
//! write window (grace / 2) is refused when proposed (`grpc::meta`), so a
//! shard can never become named after the sweep judged it orphaned. For
//! the same order, a shard named in step 2 but absent from the list may
//! simply have been written after it; one created (the time in its id)
//! before now − grace was written well before the list — its commit came
//! within the write window, a rebuild's within its timeout — so its
//! absence means it is lost.
//!
//! After a restore (ADR 0026) the metadata lacks whatever was written
//! after the backup, so an orphan written before the restore may be
//! acknowledged data, COMPLIANCE-locked perhaps: it is held (recorded in
//! `held_orphans`, listed, kept) until an operator releases it; the next
//! round deletes a released one still unnamed and drops its row. A held
//! row whose shard is named again (an in-flight commit) or gone from its
//! server's whole list is dropped. Orphans written after the restore are
//! deleted as before. What to do with each listed shard is [`judge`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use hamster_proto::Role;
use hamster_proto::pb;
use hamster_proto::pb::blob_client::BlobClient;
use hamster_proto::shard_id;
use hamster_proto::transport::Pool;
use openraft::ServerState;

use crate::cluster::{Meta, now_ms};
use crate::repair::scrub::{list_shards, record_missing};
use crate::state::commands::{Op, Response};
use crate::state::model::{BlobServer, HeldShard, Lifecycle};
use crate::state::reads as q;

mod judge;
pub use judge::{Judged, judge};

/// Per delete of an orphan shard. A server that lets one pass keeps the
/// rest of its deletes for the next round (see [`delete_on`]).
const DELETE_TIMEOUT: Duration = Duration::from_secs(10);
/// Shards per HoldOrphans or ForgetOrphans command.
const HOLD_BATCH: usize = 1000;

pub struct Sweep {
    pub meta: Arc<Meta>,
    pub every: Duration,
    pub grace: Duration,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub listed: usize,
    pub deleted: usize,
    /// Orphans newly held (after a restore), and held rows dropped
    /// (deleted once released, named again, or gone).
    pub held: usize,
    pub forgotten: usize,
    /// Named shards found missing from their servers, recorded as faults.
    pub missing: usize,
    pub servers_unreachable: usize,
}

/// What [`delete_on`] did on one server.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    pub deleted: Vec<String>,
    /// A call got no answer in time: the server was left for this round.
    pub stalled: bool,
}

/// Deletes `ids` on one server in turn, each call within `per_call`. At
/// the first call with no answer in time the rest wait for the next round,
/// so a hung server costs a round one deadline, not one per orphan, and
/// the sweep moves on to the next server. A refused delete is not a hang:
/// the next id is tried.
pub async fn delete_on<F, Fut>(ids: Vec<String>, per_call: Duration, mut delete: F) -> Deleted
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut out = Deleted::default();
    for id in ids {
        match tokio::time::timeout(per_call, delete(id.clone())).await {
            Ok(Ok(())) => out.deleted.push(id),
            Ok(Err(e)) => tracing::debug!(shard = %id, error = %e, "sweep: delete refused"),
            Err(_) => {
                tracing::warn!(shard = %id, timeout = ?per_call,
                    "sweep: no answer to a delete; leaving this server until the next round");
                out.stalled = true;
                break;
            }
        }
    }
    out
}

/// One DeleteShard call (no deadline of its own: [`delete_on`] sets it).
async fn delete_shard(pool: &Pool, address: &str, shard_id: String) -> Result<(), String> {
    let ch = pool.channel(address).map_err(|e| e.to_string())?;
    BlobClient::new(ch)
        .delete_shard(pb::DeleteShardRequest { shard_id })
        .await
        .map(|_| ())
        .map_err(|s| s.message().to_string())
}

/// The shards `named` on a server (read after its listing) that were
/// created before `cutoff_ms` and are not `listed`: lost. A name without
/// a creation time cannot be judged this way and is left alone.
pub fn missing(named: Vec<String>, listed: &HashSet<String>, cutoff_ms: i64) -> Vec<String> {
    named
        .into_iter()
        .filter(|id| shard_id::created_ms(id).is_some_and(|t| t < cutoff_ms))
        .filter(|id| !listed.contains(id))
        .collect()
}

impl Sweep {
    pub fn spawn(self) {
        tokio::spawn(async move {
            let pool = Pool::new(self.meta.tls.clone(), &[Role::Blob]);
            loop {
                tokio::time::sleep(self.every).await;
                if self.meta.raft.metrics().borrow().state != ServerState::Leader {
                    continue;
                }
                match self.round(&pool).await {
                    Ok(r)
                        if r.deleted + r.missing + r.held + r.forgotten + r.servers_unreachable
                            > 0 =>
                    {
                        tracing::info!(
                            listed = r.listed,
                            deleted = r.deleted,
                            held = r.held,
                            forgotten = r.forgotten,
                            missing = r.missing,
                            unreachable = r.servers_unreachable,
                            "sweep round"
                        )
                    }
                    Ok(r) => tracing::debug!(listed = r.listed, "sweep round: nothing to do"),
                    Err(e) => tracing::warn!(error = %e, "sweep round failed"),
                }
            }
        });
    }

    async fn round(&self, pool: &Pool) -> Result<Round, crate::cluster::CallError> {
        let now = now_ms();
        let before = now - i64::try_from(self.grace.as_millis()).unwrap_or(i64::MAX);
        let servers = self.meta.read(async |c| q::blob_servers(c).await).await?;
        let mut round = Round::default();
        let mut listed: Vec<(BlobServer, Vec<pb::ShardEntry>)> = Vec::new();
        // A removed server is never called again: its shards already
        // count as lost, and whatever it still holds is never read (nor
        // held: its held rows are dropped below).
        let (removed, servers): (Vec<_>, Vec<_>) = servers
            .into_iter()
            .partition(|s| s.lifecycle == Lifecycle::Removed);
        for s in servers {
            // Everything written before the round: the missing check needs
            // the whole list, the orphan check only the old part.
            match list_shards(pool, &s.address, now).await {
                Ok(entries) => {
                    round.listed += entries.len();
                    listed.push((s, entries));
                }
                Err(e) => {
                    tracing::debug!(blob = %s.id, error = %e, "sweep: cannot list shards");
                    round.servers_unreachable += 1;
                }
            }
        }
        let ids: Vec<String> = listed
            .iter()
            .map(|(s, _)| &s.id)
            .chain(removed.iter().map(|s| &s.id))
            .cloned()
            .collect();
        let (named, hold, mut held) = self
            .meta
            .read(async |c| {
                let mut held = HashMap::new();
                for id in &ids {
                    held.insert(id.clone(), q::held_on(c, id).await?);
                }
                Ok((
                    q::referenced_shards(c).await?,
                    q::orphan_hold(c).await?,
                    held,
                ))
            })
            .await?;
        for s in &removed {
            let rows: Vec<String> = held.remove(&s.id).unwrap_or_default().into_keys().collect();
            round.forgotten += self.forget(&s.id, rows).await;
        }
        for (s, entries) in listed {
            round.missing += self.record_missing(&s, &entries, before).await;
            let held = held.remove(&s.id).unwrap_or_default();
            let j = judge(&entries, &named, before, hold.as_ref(), &held);
            let call = |id| delete_shard(pool, &s.address, id);
            let orphans = delete_on(j.delete, DELETE_TIMEOUT, call).await;
            round.deleted += orphans.deleted.len();
            // Only the row of a shard deleted is dropped.
            let mut forget = j.forget;
            if !orphans.stalled {
                let released = delete_on(j.delete_released, DELETE_TIMEOUT, call).await;
                round.deleted += released.deleted.len();
                forget.extend(released.deleted);
            }
            round.held += self.hold(&s.id, j.hold).await;
            round.forgotten += self.forget(&s.id, forget).await;
        }
        Ok(round)
    }

    /// Holds `shards` of `blob_id`; how many rows were added.
    async fn hold(&self, blob_id: &str, shards: Vec<HeldShard>) -> usize {
        let ops = shards.chunks(HOLD_BATCH).map(|chunk| Op::HoldOrphans {
            blob_id: blob_id.to_string(),
            shards: chunk.to_vec(),
        });
        let added = self.orphan_ops(blob_id, ops).await;
        if added > 0 {
            tracing::warn!(blob = %blob_id, held = added,
                "sweep: holding orphan shards written before the restore (hamster orphans list)");
        }
        added
    }

    /// Drops the held rows of `shard_ids` on `blob_id`; how many.
    async fn forget(&self, blob_id: &str, shard_ids: Vec<String>) -> usize {
        let ops = shard_ids.chunks(HOLD_BATCH).map(|chunk| Op::ForgetOrphans {
            blob_id: blob_id.to_string(),
            shard_ids: chunk.to_vec(),
        });
        self.orphan_ops(blob_id, ops).await
    }

    /// Proposes `ops` in turn, stopping at the first failure (the next
    /// round judges again); the rows they changed.
    async fn orphan_ops(&self, blob_id: &str, ops: impl Iterator<Item = Op>) -> usize {
        let mut changed = 0;
        for op in ops {
            let name = op.name();
            match self.meta.write(op).await {
                Ok(Response::Orphans { rows }) => {
                    changed += usize::try_from(rows).unwrap_or(usize::MAX)
                }
                Ok(other) => {
                    tracing::warn!(blob = %blob_id, op = name, answer = ?other, "sweep: refused");
                    break;
                }
                Err(e) => {
                    tracing::warn!(blob = %blob_id, op = name, error = %e, "sweep: not applied");
                    break;
                }
            }
        }
        changed
    }

    /// Records the shards named on `s` that its list lacks; how many.
    async fn record_missing(
        &self,
        s: &BlobServer,
        entries: &[pb::ShardEntry],
        cutoff: i64,
    ) -> usize {
        let id = s.id.clone();
        let named = match self
            .meta
            .read(async |c| q::shards_named_on(c, &id).await)
            .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(blob = %s.id, error = %e, "sweep: cannot read the shards named there");
                return 0;
            }
        };
        let listed: HashSet<String> = entries.iter().map(|e| e.shard_id.clone()).collect();
        let lost = missing(named, &listed, cutoff);
        if lost.is_empty() {
            return 0;
        }
        tracing::warn!(blob = %s.id, missing = lost.len(),
            "sweep: shards the metadata names are not on their server");
        match record_missing(&self.meta, &s.id, &lost).await {
            Ok(()) => lost.len(),
            Err(e) => {
                tracing::warn!(blob = %s.id, error = %e, "sweep: missing shards not recorded");
                0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(created_ms: i64, index: usize) -> String {
        shard_id::shard(&shard_id::new_object(created_ms), index)
    }

    #[tokio::test]
    async fn a_hung_server_costs_one_deadline_and_the_rest_wait() {
        let ids: Vec<String> = (0..1000).map(|i| format!("s{i}")).collect();
        let calls = std::cell::Cell::new(0);
        let per_call = Duration::from_millis(100);
        let t0 = tokio::time::Instant::now();
        // Answers the first two, then never again (a hung blob-server).
        let d = delete_on(ids, per_call, |_| {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n > 2 {
                    std::future::pending::<()>().await;
                }
                Ok(())
            }
        })
        .await;
        assert_eq!(d.deleted, ["s0", "s1"]);
        assert!(d.stalled);
        assert_eq!(calls.get(), 3, "no call after the one that hung");
        // Generous: one deadline per orphan would be 100 s.
        assert!(t0.elapsed() < Duration::from_secs(60));
    }

    #[tokio::test]
    async fn a_refused_delete_is_not_a_hang() {
        let ids: Vec<String> = (0..4).map(|i| format!("s{i}")).collect();
        let d = delete_on(ids, DELETE_TIMEOUT, |id| async move {
            if id == "s1" {
                Err("refused".to_string())
            } else {
                Ok(())
            }
        })
        .await;
        assert_eq!(d.deleted, ["s0", "s2", "s3"]);
        assert!(!d.stalled);
    }

    #[test]
    fn missing_means_named_old_enough_and_not_listed() {
        let cutoff = 1_000_000;
        let (old_listed, old_gone, new_gone) = (id(10, 0), id(999_999, 1), id(1_000_000, 2));
        let odd = "key-without-time.s0".to_string();
        let listed: HashSet<String> = [old_listed.clone(), "orphan".to_string()].into();
        let named = vec![
            old_listed.clone(),
            old_gone.clone(),
            new_gone.clone(),
            odd.clone(),
        ];
        // Created before the cutoff and absent: lost. Created at or after
        // it: maybe written after the list. No creation time: not judged.
        assert_eq!(missing(named, &listed, cutoff), vec![old_gone.clone()]);
        // A wiped server lists nothing: every old named shard is lost.
        let all = missing(
            vec![old_listed.clone(), old_gone.clone()],
            &HashSet::new(),
            cutoff,
        );
        assert_eq!(all, [old_listed, old_gone]);
        // Nothing named there: nothing missing, whatever is listed.
        assert!(missing(Vec::new(), &listed, cutoff).is_empty());
    }
}
