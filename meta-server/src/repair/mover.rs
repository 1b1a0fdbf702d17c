//! The mover (ADR 0025): one round on the leader after each repair round.
//!
//! 1. Drains: each draining server's units are paged; each shard gets a
//!    target ([`drain::target`]) and a job ([`drain::move_job`]), run by
//!    [`exec`](super::exec) and swapped in with `MoveShards`. When no map
//!    names the server, `FinishDrain` makes it drained.
//! 2. Drained servers still reporting shards: listed, and every shard no
//!    map names is deleted (apply refuses new maps naming a drained
//!    server, so none should be named).
//! 3. Rebalance, when nothing drains and repair has nothing queued:
//!    [`balance`](super::balance) plans moves from the most-over servers,
//!    run like drain moves. After a round that moved, the next waits
//!    until every server involved has reported its size again (sizes come
//!    from heartbeats), so stale sizes never make it overshoot.
//!
//! Moves run at most `parallel` at once, and never two on one target:
//! a blob-server runs one rebuild at a time.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::StreamExt;
use hamster_proto::transport::Pool;

use super::Repair;
use super::balance::{self, Rebalancer};
use super::drain;
use super::exec::{self, Done, Job, Kind, LogOnce, free_addresses};
use super::scrub::list_shards;
use crate::cluster::{CallError, now_ms};
use crate::state::commands::{MetaError, Op, Response as R};
use crate::state::model::{BlobServer, BlobState, Lifecycle, Unit};
use crate::state::reads::{self as q, UnitOnBlob};

/// Pages of units read per draining server, and for all of rebalance, per
/// round: bounds a round's reads when most units must wait.
const MAX_PAGES: usize = 8;
/// Moves planned per round, per move allowed at once: short rounds, so
/// repair (run between them) is never held up long.
const MOVES_PER_SLOT: usize = 16;
/// A heartbeat this long after a round ended reports sizes after it.
const SETTLE_MS: i64 = 1_000;

/// What the mover remembers between rounds.
#[derive(Default)]
pub struct Memory {
    /// Shards already logged as waiting for a target.
    waiting_logged: LogOnce<Unit>,
    /// After a rebalance round that moved: when it ended, and the servers
    /// whose sizes it changed.
    settle: Option<(i64, Vec<String>)>,
    /// When each drained server's store was last emptied.
    cleaned: HashMap<String, i64>,
    /// Named shards found on drained servers (logged once).
    named_logged: LogOnce<String>,
}

/// A round's counts, logged once per round.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub drain_moves: usize,
    pub balance_moves: usize,
    pub bytes_moved: u64,
    pub failures: usize,
    /// Swaps refused because the map changed (a delete, an overwrite, a
    /// repair) or the target left service.
    pub lost_races: usize,
    /// Shards of draining servers with no target or sources this round.
    pub waiting: usize,
    pub drains_finished: usize,
    /// Shards deleted from drained servers.
    pub cleaned: usize,
    /// A drain has more to move now: go on without waiting.
    pub more: bool,
}

impl Round {
    pub fn log(&self) {
        let moved = self.drain_moves + self.balance_moves;
        if moved + self.failures + self.lost_races + self.drains_finished + self.cleaned > 0 {
            tracing::info!(
                drain_moves = self.drain_moves,
                balance_moves = self.balance_moves,
                bytes = self.bytes_moved,
                failures = self.failures,
                lost_races = self.lost_races,
                waiting = self.waiting,
                drains_finished = self.drains_finished,
                cleaned = self.cleaned,
                "mover round"
            );
        } else if self.waiting > 0 {
            tracing::debug!(waiting = self.waiting, "mover round: nothing moved");
        }
    }

    fn count(&mut self, done: Vec<Done>, kind: Moves) {
        for d in done {
            match d {
                Done::Swapped { bytes, .. } => {
                    match kind {
                        Moves::Drain => self.drain_moves += 1,
                        Moves::Balance => self.balance_moves += 1,
                    }
                    self.bytes_moved += bytes;
                }
                Done::Lost => self.lost_races += 1,
                Done::Busy | Done::Failed => self.failures += 1,
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Moves {
    Drain,
    Balance,
}

/// Whether every server a rebalance round moved shards on has reported
/// its size since (or left service, so its size no longer matters).
fn settled(settle: &Option<(i64, Vec<String>)>, servers: &[BlobServer]) -> bool {
    let Some((ended, ids)) = settle else {
        return true;
    };
    ids.iter().all(|id| {
        servers
            .iter()
            .find(|s| s.id == *id)
            .is_none_or(|s| !s.usable() || s.last_heartbeat_ms >= ended + SETTLE_MS)
    })
}

/// Distinct units in a page (its limit counts units, not shards).
fn units_in(page: &[UnitOnBlob]) -> usize {
    page.iter().map(|u| &u.unit).collect::<HashSet<_>>().len()
}

/// The registry as a round sees it.
struct View {
    servers: Vec<BlobServer>,
    /// Heard from since then: may take (or copy out) a shard.
    fresh_since: i64,
    /// Where to free shards: servers not down (the sweep does the rest).
    addresses: HashMap<String, String>,
}

/// The drain moves planned this round, across draining servers.
#[derive(Default)]
struct Batch {
    room: usize,
    jobs: Vec<Job>,
    /// Moves given to each target so far.
    load: HashMap<String, usize>,
    /// One shard of a unit a round: two could pick the same target.
    planned: HashSet<Unit>,
}

/// Plans the moves of one page of draining server `s`'s shards into
/// `batch`; answers false if the batch filled up before the page ended.
fn plan_page(
    view: &View,
    s: &BlobServer,
    page: Vec<UnitOnBlob>,
    batch: &mut Batch,
    memory: &mut Memory,
    round: &mut Round,
) -> bool {
    let (servers, fresh) = (&view.servers, view.fresh_since);
    for u in page {
        if batch.jobs.len() >= batch.room {
            return false;
        }
        if !batch.planned.insert(u.unit.clone()) {
            continue;
        }
        let job = drain::target(&u.map, u.index, &s.drain_to, servers, fresh, &batch.load)
            .and_then(|t| drain::move_job(&u, s, t, servers, fresh));
        let Some(job) = job else {
            round.waiting += 1;
            if memory.waiting_logged.first(u.unit.clone()) {
                tracing::debug!(blob = %s.id, unit = ?u.unit, index = u.index, to = %s.drain_to,
                    "drain: no server can take this shard (or it cannot be read) yet");
            }
            continue;
        };
        if let Some(t) = job.plan.targets.first() {
            *batch.load.entry(t.blob_id.clone()).or_default() += 1;
        }
        batch.jobs.push(job);
    }
    true
}

impl Repair {
    pub(super) async fn move_round(
        &self,
        pool: &Pool,
        memory: &mut Memory,
    ) -> Result<Round, CallError> {
        let mut round = Round::default();
        let servers = self.meta.read(async |c| q::blob_servers(c).await).await?;
        let view = View {
            fresh_since: self.fresh_since(),
            addresses: free_addresses(&servers),
            servers,
        };
        let room = self.parallel.max(1) * MOVES_PER_SLOT;

        let draining: Vec<&BlobServer> = view
            .servers
            .iter()
            .filter(|s| s.lifecycle == Lifecycle::Draining)
            .collect();
        let mut batch = Batch {
            room,
            ..Batch::default()
        };
        for s in &draining {
            round.more |= self
                .plan_drain(&view, s, &mut batch, memory, &mut round)
                .await?;
        }
        let done = self.run_moves(pool, batch.jobs, &view.addresses).await;
        round.more &= done.iter().any(|d| matches!(d, Done::Swapped { .. }));
        round.count(done, Moves::Drain);

        for s in view
            .servers
            .iter()
            .filter(|s| s.lifecycle == Lifecycle::Drained)
        {
            round.cleaned += self.clean_drained(pool, &view, s, memory).await?;
        }

        if draining.is_empty() && settled(&memory.settle, &view.servers) {
            memory.settle = None;
            let queue = self
                .meta
                .read(async |c| q::durability_summary(c).await)
                .await?
                .repair_queue;
            if queue == 0 {
                self.rebalance(pool, &view, room, memory, &mut round)
                    .await?;
            }
        }
        Ok(round)
    }

    /// Plans moves off draining server `s` into `batch`; answers whether
    /// it has more to move than planned. With nothing named on it,
    /// proposes FinishDrain.
    async fn plan_drain(
        &self,
        view: &View,
        s: &BlobServer,
        batch: &mut Batch,
        memory: &mut Memory,
        round: &mut Round,
    ) -> Result<bool, CallError> {
        // A named target that cannot take shards now: look once (to see
        // whether the drain is over), not through every page.
        let stuck = !s.drain_to.is_empty()
            && !view
                .servers
                .iter()
                .any(|t| t.id == s.drain_to && super::plan::eligible(t, view.fresh_since));
        let pages = if stuck { 1 } else { MAX_PAGES };
        let mut after: Option<Unit> = None;
        for page_no in 0..pages {
            let (id, from) = (s.id.clone(), after.clone());
            let page = self
                .meta
                .read(async |c| q::units_on_blob(c, &id, from.as_ref(), self.batch).await)
                .await?;
            if page.is_empty() {
                if page_no == 0 && self.finish_drain(&s.id).await {
                    round.drains_finished += 1;
                }
                return Ok(false);
            }
            let full = units_in(&page) >= self.batch as usize;
            after = page.last().map(|u| u.unit.clone());
            if !plan_page(view, s, page, batch, memory, round) {
                return Ok(true);
            }
            if !full {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Proposes FinishDrain; answers whether `id` is now drained.
    async fn finish_drain(&self, id: &str) -> bool {
        match self.meta.write(Op::FinishDrain { id: id.into() }).await {
            Ok(R::Ok) => {
                tracing::info!(blob = %id, "drained: no shard map names this blob-server");
                true
            }
            // A commit naming it landed since the read: next round.
            Ok(R::Err(MetaError::BlobServerInUse(..))) => {
                tracing::debug!(blob = %id, "drain: a map names it again; not finished yet");
                false
            }
            Ok(other) => {
                tracing::warn!(blob = %id, answer = ?other, "drain: finish refused");
                false
            }
            Err(e) => {
                tracing::warn!(blob = %id, error = %e, "drain: finish not confirmed");
                false
            }
        }
    }

    /// Runs moves, at most `parallel` at once and one at a time per
    /// target (each blob-server runs one rebuild at a time); answers how
    /// each ended, in the order given.
    async fn run_moves(
        &self,
        pool: &Pool,
        jobs: Vec<Job>,
        addresses: &HashMap<String, String>,
    ) -> Vec<Done> {
        let mut by_target: BTreeMap<String, Vec<(usize, Job)>> = BTreeMap::new();
        for (n, job) in jobs.into_iter().enumerate() {
            let target = job
                .plan
                .targets
                .first()
                .map(|t| t.blob_id.clone())
                .unwrap_or_default();
            by_target.entry(target).or_default().push((n, job));
        }
        let queues = by_target.into_values().map(|queue| async move {
            let mut done = Vec::with_capacity(queue.len());
            for (n, job) in queue {
                done.push((n, self.run_job(pool, job, addresses, Kind::Move).await));
            }
            done
        });
        let mut done: Vec<(usize, Done)> = futures::stream::iter(queues)
            .buffer_unordered(self.parallel.max(1))
            .collect::<Vec<_>>()
            .await
            .concat();
        done.sort_by_key(|(n, _)| *n);
        done.into_iter().map(|(_, d)| d).collect()
    }

    /// Deletes what drained server `s` still stores that no map names
    /// (none may be: apply refuses maps naming it since the drain ended).
    /// Looks again only once the server has reported since the last time.
    async fn clean_drained(
        &self,
        pool: &Pool,
        view: &View,
        s: &BlobServer,
        memory: &mut Memory,
    ) -> Result<usize, CallError> {
        if s.state == BlobState::Down
            || s.last_heartbeat_ms < view.fresh_since
            || s.shards_stored == 0
        {
            return Ok(0);
        }
        if memory
            .cleaned
            .get(&s.id)
            .is_some_and(|at| s.last_heartbeat_ms < at + SETTLE_MS)
        {
            return Ok(0);
        }
        let listed = match list_shards(pool, &s.address, now_ms()).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(blob = %s.id, error = %e, "drain: cannot list a drained server's shards");
                return Ok(0);
            }
        };
        // Judged after the listing, and only if it is still drained (an
        // undrained server takes new shards again). An undrain between
        // this read and the deletes is safe: apply then refuses any map
        // naming a shard on it minted before the undrain (ADR 0025).
        let ids: Vec<String> = listed.into_iter().map(|e| e.shard_id).collect();
        let id = s.id.clone();
        let (lifecycle, named) = self
            .meta
            .read(async |c| {
                let lifecycle = q::blob_lifecycle(c, &id).await?;
                let mut named = HashSet::new();
                if lifecycle == Some(Lifecycle::Drained) {
                    for shard in &ids {
                        if q::shard_is_named(c, shard).await? {
                            named.insert(shard.clone());
                        }
                    }
                }
                Ok((lifecycle, named))
            })
            .await?;
        if lifecycle != Some(Lifecycle::Drained) {
            return Ok(0);
        }
        for shard in &named {
            if memory.named_logged.first(shard.clone()) {
                tracing::error!(blob = %s.id, shard = %shard,
                    "a drained blob-server holds a shard a map names; kept");
            }
        }
        let doomed: Vec<(String, String)> = ids
            .into_iter()
            .filter(|shard| !named.contains(shard))
            .map(|shard| (s.address.clone(), shard))
            .collect();
        let deleted = exec::delete_now(pool, doomed).await;
        memory.cleaned.insert(s.id.clone(), now_ms());
        if deleted > 0 {
            tracing::info!(blob = %s.id, deleted, "drain: emptied a drained blob-server's store");
        }
        Ok(deleted)
    }

    /// One rebalance round: plans up to `room` moves from the servers most
    /// over their band and runs them.
    async fn rebalance(
        &self,
        pool: &Pool,
        view: &View,
        room: usize,
        memory: &mut Memory,
        round: &mut Round,
    ) -> Result<(), CallError> {
        let named = self
            .meta
            .read(async |c| q::shards_named_by_blob(c).await)
            .await?;
        let weighed = balance::weigh(&view.servers, &named);
        let mut rb = Rebalancer::new(&weighed, self.band, view.fresh_since);
        let mut moves = Vec::new();
        // One budget for the round: an imbalance nothing can fix (every
        // destination holds a shard of every unit...) costs a few pages.
        let mut pages = MAX_PAGES;
        for source in rb.sources() {
            let mut after: Option<Unit> = None;
            while pages > 0 {
                pages -= 1;
                if moves.len() >= room || rb.satisfied(source) {
                    break;
                }
                let (id, from) = (source.to_string(), after.clone());
                let page = self
                    .meta
                    .read(async |c| q::units_on_blob(c, &id, from.as_ref(), self.batch).await)
                    .await?;
                let full = units_in(&page) >= self.batch as usize;
                after = page.last().map(|u| u.unit.clone());
                moves.extend(rb.plan_from(source, &page, room - moves.len()));
                if !full {
                    break;
                }
            }
            if moves.len() >= room || pages == 0 {
                break;
            }
        }
        let by_id: HashMap<&str, &BlobServer> =
            view.servers.iter().map(|s| (s.id.as_str(), s)).collect();
        let (jobs, ends): (Vec<Job>, Vec<[String; 2]>) = moves
            .into_iter()
            .filter_map(|m| {
                let (from, to) = (by_id.get(m.from.as_str())?, by_id.get(m.to.as_str())?);
                let job = drain::move_job(&m.shard, from, to, &view.servers, view.fresh_since)?;
                Some((job, [m.from, m.to]))
            })
            .unzip();
        if jobs.is_empty() {
            return Ok(());
        }
        let done = self.run_moves(pool, jobs, &view.addresses).await;
        let mut involved: Vec<String> = ends
            .into_iter()
            .zip(&done)
            .filter(|(_, d)| matches!(d, Done::Swapped { .. }))
            .flat_map(|(ends, _)| ends)
            .collect();
        involved.sort();
        involved.dedup();
        if !involved.is_empty() {
            memory.settle = Some((now_ms(), involved));
        }
        round.count(done, Moves::Balance);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
