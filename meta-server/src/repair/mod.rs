//! Repair: the meta leader brings under-replicated units back to k+m
//! (ADR 0023). Blob-servers do the work (`Blob.Rebuild`: ciphertext
//! only, no key); the leader plans it and swaps shard maps through Raft
//! with a compare-and-set.
//!
//! The same loop moves shards off draining servers and, when servers
//! are unevenly filled, between servers (ADR 0025): the mover runs after
//! each repair round (lost redundancy comes first).
//!
//! - [`plan`]: the choice for one unit (sources, target servers), pure.
//! - [`round`]: one planner round — silent servers marked down, degraded
//!   units rebuilt and swapped, rebuilt shards freed if the swap loses.
//! - [`exec`]: one planned rebuild or move carried out — `Blob.Rebuild`
//!   on the target, the answer checked, the compare-and-set proposed,
//!   the losing shards freed.
//! - [`drain`]: a move's target and sources for one shard, pure.
//! - [`balance`]: the balance view and the rebalance plan, pure.
//! - [`mover`]: one mover round — drains moved and finished, drained
//!   stores emptied, rebalance moves.
//! - [`scrub`]: `StartRepair` (scrub passes started on every server, the
//!   shards missing from their lists recorded) and `ScrubProgress`.
//! - [`view`]: `Admin.Durability`'s answer.
//!
//! The planner runs on the leader only, every `every`, or at once when
//! kicked (`StartRepair` or `ScrubProgress` seeing a pass end, a drain,
//! remove or rebalance asked, on the leader).

pub mod balance;
pub mod drain;
pub mod exec;
pub mod mover;
pub mod plan;
pub mod round;
pub mod scrub;
pub mod view;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hamster_proto::Role;
use hamster_proto::transport::Pool;
use openraft::ServerState;
use tokio::sync::Notify;

use crate::cluster::Meta;

/// Wakes the planner now rather than at its next tick.
#[derive(Clone, Default)]
pub struct Kick(Arc<Notify>);

impl Kick {
    pub fn kick(&self) {
        // A kick during a round is kept (one permit) and starts the next.
        self.0.notify_one();
    }
}

pub struct Repair {
    pub meta: Arc<Meta>,
    /// Time between rounds.
    pub every: Duration,
    /// A blob-server silent this long is marked down.
    pub down_after: Duration,
    /// Rebuilds (and moves) running at once.
    pub parallel: usize,
    /// Units looked at per round (worst first); units read per page by
    /// the mover.
    pub batch: u32,
    /// The rebalancer's band.
    pub band: balance::Band,
    pub kick: Kick,
}

impl Repair {
    pub fn spawn(self) {
        tokio::spawn(async move {
            let pool = Pool::new(self.meta.tls.clone(), &[Role::Blob]);
            let mut state = round::Memory::default();
            let mut moves = mover::Memory::default();
            // When this node last became leader: silence is judged only
            // after blob-servers had a full grace period to reach it.
            let mut leading_since: Option<Instant> = None;
            let mut again = false;
            loop {
                if !again {
                    tokio::select! {
                        _ = tokio::time::sleep(self.every) => {}
                        _ = self.kick.0.notified() => {}
                    }
                }
                again = false;
                if self.meta.raft.metrics().borrow().state != ServerState::Leader {
                    leading_since = None;
                    continue;
                }
                let since = *leading_since.get_or_insert_with(Instant::now);
                let judge_silence = since.elapsed() >= self.down_after;
                match self.round(&pool, &mut state, judge_silence).await {
                    Ok(r) => {
                        r.log();
                        // Progress with more possibly queued: go on now.
                        again = r.units_repaired > 0 && r.looked_at >= self.batch as usize;
                    }
                    Err(e) => tracing::warn!(error = %e, "repair round failed"),
                }
                match self.move_round(&pool, &mut moves).await {
                    Ok(r) => {
                        r.log();
                        again |= r.more;
                    }
                    Err(e) => tracing::warn!(error = %e, "mover round failed"),
                }
            }
        });
    }
}
