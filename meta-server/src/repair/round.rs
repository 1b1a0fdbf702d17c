//! One round of the leader's repair planner:
//!
//! 1. blob-servers silent past the grace are marked down (a command that
//!    loses to any heartbeat applied after the judgement);
//! 2. the worst under-replicated units are read (a linearizable read);
//! 3. for each with k good shards, [`plan`](super::plan) picks sources
//!    and targets, and [`exec`](super::exec) runs the rebuild on one
//!    target server and swaps it in with `SwapShards` (the
//!    compare-and-set), at most `parallel` at once.

use futures::StreamExt;
use hamster_proto::transport::Pool;

use super::Repair;
use super::exec::{Done, Job, Kind, LogOnce, free_addresses, millis};
use super::plan::{self, NoPlan};
use crate::cluster::{CallError, now_ms};
use crate::state::commands::{Op, Response as R};
use crate::state::model::{BlobState, Unit};
use crate::state::reads as q;

/// What the planner remembers between rounds.
#[derive(Default)]
pub struct Memory {
    /// Units already logged as waiting for a server.
    waiting_logged: LogOnce<Unit>,
}

/// A round's counts, logged once per round.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub marked_down: usize,
    pub looked_at: usize,
    pub units_repaired: usize,
    pub shards_rebuilt: usize,
    pub bytes_written: u64,
    pub failures: usize,
    /// Swaps refused because the map changed (a delete, overwrite, or
    /// another repair won).
    pub lost_races: usize,
    /// Units with an index no eligible server could take.
    pub waiting_for_servers: usize,
    pub unrecoverable: usize,
}

impl Round {
    pub fn log(&self) {
        if self.marked_down + self.units_repaired + self.failures + self.lost_races > 0 {
            tracing::info!(
                repaired_units = self.units_repaired,
                shards = self.shards_rebuilt,
                bytes = self.bytes_written,
                failures = self.failures,
                lost_races = self.lost_races,
                waiting_for_servers = self.waiting_for_servers,
                unrecoverable = self.unrecoverable,
                marked_down = self.marked_down,
                "repair round"
            );
        } else {
            tracing::debug!(
                looked_at = self.looked_at,
                waiting_for_servers = self.waiting_for_servers,
                unrecoverable = self.unrecoverable,
                "repair round: nothing repaired"
            );
        }
    }
}

impl Repair {
    pub(super) async fn round(
        &self,
        pool: &Pool,
        memory: &mut Memory,
        judge_silence: bool,
    ) -> Result<Round, CallError> {
        let mut round = Round::default();
        let down_ms = millis(self.down_after);
        if judge_silence {
            round.marked_down = self.mark_silent_down(down_ms).await?;
        }
        let (servers, units) = self
            .meta
            .read(async |c| {
                Ok((
                    q::blob_servers(c).await?,
                    q::degraded_units(c, self.batch).await?,
                ))
            })
            .await?;
        round.looked_at = units.len();
        let fresh_since = self.fresh_since();
        let mut jobs: Vec<Job> = Vec::new();
        for u in units {
            let (plan, unplaced) =
                match plan::plan(&u.map, &u.good, u.total_shards, &servers, fresh_since) {
                    Ok(p) => {
                        let unplaced = p.unplaced.clone();
                        (Some(p), unplaced)
                    }
                    Err(NoPlan::Complete) => continue,
                    Err(NoPlan::Unrecoverable) => {
                        round.unrecoverable += 1;
                        continue;
                    }
                    Err(NoPlan::NoServers(unplaced)) => (None, unplaced),
                };
            if !unplaced.is_empty() {
                round.waiting_for_servers += 1;
                if memory.waiting_logged.first(u.unit.clone()) {
                    tracing::debug!(unit = ?u.unit, indexes = ?unplaced,
                        "repair: no eligible blob-server for these indexes yet");
                }
            }
            if let Some(plan) = plan {
                jobs.push(Job {
                    unit: u.unit,
                    map: u.map,
                    plan,
                    copy: false,
                });
            }
        }
        let addresses = free_addresses(&servers);
        let done: Vec<Done> = futures::stream::iter(jobs)
            .map(|job| self.run_job(pool, job, &addresses, Kind::Repair))
            .buffer_unordered(self.parallel.max(1))
            .collect()
            .await;
        for d in done {
            match d {
                Done::Swapped { shards, bytes } => {
                    round.units_repaired += 1;
                    round.shards_rebuilt += shards;
                    round.bytes_written += bytes;
                }
                Done::Lost => round.lost_races += 1,
                Done::Busy | Done::Failed => round.failures += 1,
            }
        }
        Ok(round)
    }

    /// Proposes MarkBlobDown for every server silent past the grace;
    /// answers how many it marked.
    async fn mark_silent_down(&self, down_ms: i64) -> Result<usize, CallError> {
        let servers = self.meta.read(async |c| q::blob_servers(c).await).await?;
        let silent_since_ms = now_ms() - down_ms;
        let mut marked = 0;
        for s in servers
            .into_iter()
            .filter(|s| s.state != BlobState::Down && s.last_heartbeat_ms < silent_since_ms)
        {
            let op = Op::MarkBlobDown {
                id: s.id.clone(),
                silent_since_ms,
            };
            match self.meta.write(op).await {
                Ok(R::Ok) => {
                    tracing::warn!(blob = %s.id, last_heartbeat_ms = s.last_heartbeat_ms,
                        "blob-server silent past the grace: marked down");
                    marked += 1;
                }
                Ok(other) => tracing::debug!(blob = %s.id, answer = ?other, "mark down refused"),
                Err(e) => tracing::warn!(blob = %s.id, error = %e, "mark down failed"),
            }
        }
        Ok(marked)
    }
}
