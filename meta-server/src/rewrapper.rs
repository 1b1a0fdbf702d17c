//! Master-key rotation, the work: the leader's rewrapper and this node's
//! key reports.
//!
//! - [`Rewrapper`]: while a rotation is open, the leader reads a batch of
//!   keys still on the old master key, rewraps each in memory (unwrap with
//!   the old key, wrap with the new; the data key never leaves this
//!   process) and proposes the wrapped results. When a full read finds
//!   none left it proposes closing, which apply refuses unless its own
//!   count is zero. State lives only in the metadata, so a new leader (or
//!   a restarted one) resumes where the last batch landed. Batches are
//!   pipelined ([`IN_FLIGHT`]) along a keyset cursor, so a batch in
//!   flight is not read again; a walk that reaches the end starts over
//!   once its batches have landed, and only a walk from the beginning
//!   that finds nothing proposes closing.
//! - [`report_keys`]: every few seconds this node records which master
//!   keys it holds (fingerprints), as gateways do over `Registry`.

use std::sync::Arc;
use std::time::Duration;

use hamster_proto::envelope::{open_secret, rewrap_dek, seal_secret};
use hamster_proto::keyring::Keyring;
use hamster_proto::secrets::MasterKey;
use openraft::ServerState;
use tokio::task::JoinSet;

use crate::cluster::Meta;
use crate::state::commands::{Op, Response};
use crate::state::model::{RewrapTarget, Rewrapped, Role};
use crate::state::reads::RewrapCursor;
use crate::state::{key_rotation, reads};

/// How often a key holder reports its keys.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

/// How often an idle leader looks for an open rotation.
const IDLE_LOOK: Duration = Duration::from_millis(200);

pub struct Rewrapper {
    pub meta: Arc<Meta>,
    pub keys: Arc<Keyring>,
    /// Keys per proposed batch.
    pub batch: usize,
    /// Pause between batches (0: none), to bound the load a rotation adds.
    pub pause: Duration,
}

/// Rewrap batches proposed at once: the next batches are read and
/// rewrapped while one commits, and those queued behind a commit go down
/// together in one Raft entry (`batch::Batcher`). Measured (20k keys,
/// batch 500, loaded 2-core host): 1 → 2.0k keys/s, 2 → 4.1k, 3 → 6.5k.
pub const IN_FLIGHT: usize = 3;

/// What one step did.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Idle,
    /// A batch is on its way: read the next at once.
    Proposed,
    /// A walk reached the end and what it proposed has landed: walk again
    /// from the beginning at once.
    Restart,
    Closed,
}

/// The leader's walk over the keys still on the old key: where it is,
/// and the batches proposed and not yet answered.
#[derive(Default)]
struct Walk {
    at: RewrapCursor,
    in_flight: JoinSet<Result<u64, String>>,
}

impl Walk {
    /// Forgets the walk: batches in flight still land (or fail) on their
    /// own, and keys they did not move are found by the next walk.
    fn reset(&mut self) {
        self.at = RewrapCursor::default();
        self.in_flight.detach_all();
    }

    /// Waits for the oldest batch in flight to be answered.
    async fn landed(&mut self) -> Result<(), String> {
        match self.in_flight.join_next().await {
            Some(Ok(answer)) => answer.map(|_| ()),
            Some(Err(e)) => Err(format!("rewrap batch task: {e}")),
            None => Ok(()),
        }
    }

    /// Waits for every batch in flight; the first failure, if any.
    async fn drain(&mut self) -> Result<(), String> {
        let mut first = Ok(());
        while !self.in_flight.is_empty() {
            if let Err(e) = self.landed().await {
                first = first.and(Err(e));
            }
        }
        first
    }
}

impl Rewrapper {
    pub fn spawn(self) {
        tokio::spawn(async move {
            let mut warned = String::new();
            let mut walk = Walk::default();
            loop {
                let step = if self.meta.raft.metrics().borrow().state == ServerState::Leader {
                    self.step(&mut walk).await
                } else {
                    walk.reset();
                    Ok(Step::Idle)
                };
                match step {
                    Ok(Step::Proposed) => {
                        warned.clear();
                        if !self.pause.is_zero() {
                            tokio::time::sleep(self.pause).await;
                        }
                        continue;
                    }
                    Ok(Step::Restart) => continue,
                    Ok(Step::Closed) => {
                        tracing::info!("master-key rotation closed: nothing left on the old key")
                    }
                    Ok(Step::Idle) => {}
                    // Said once per distinct cause, not at every look.
                    Err(e) => {
                        if e != warned {
                            tracing::error!(error = %e, "master-key rotation stalled");
                            warned = e;
                        }
                        walk.reset();
                    }
                }
                // A rotation opened is picked up within this (one cheap read
                // on the leader per look).
                tokio::time::sleep(IDLE_LOOK).await;
            }
        });
    }

    async fn step(&self, walk: &mut Walk) -> Result<Step, String> {
        while walk.in_flight.len() >= IN_FLIGHT {
            walk.landed().await?;
        }
        let mut at = walk.at.clone();
        let (open, pending) = self
            .meta
            .read(async |c| {
                let Some(r) = key_rotation::rotation(c).await? else {
                    return Ok((None, Vec::new()));
                };
                let pending = reads::wrapped_by_after(c, &r.old, &mut at, self.batch).await?;
                Ok((Some(r), pending))
            })
            .await
            .map_err(|e| e.to_string())?;
        let Some(r) = open else {
            walk.reset();
            return Ok(Step::Idle);
        };
        if pending.is_empty() {
            // Only a walk from the beginning, read after every batch it
            // follows has landed, may show that nothing is left.
            if !walk.at.at_start() || !walk.in_flight.is_empty() {
                walk.drain().await?;
                walk.at = RewrapCursor::default();
                return Ok(Step::Restart);
            }
            // Closing needs no key: a leader that lacks one can still close
            // a rotation the last leader finished.
            return match self.meta.write(Op::FinishKeyRotation).await {
                Ok(Response::Ok) => Ok(Step::Closed),
                Ok(other) => Err(format!("closing the rotation: {other:?}")),
                Err(e) => Err(e.to_string()),
            };
        }
        let (Some(old), Some(new)) = (self.keys.get(&r.old), self.keys.get(&r.new)) else {
            return Err(format!(
                "this leader must hold both {} and {} to rewrap; it holds {}",
                r.old,
                r.new,
                self.keys.describe()
            ));
        };
        let mut items = Vec::with_capacity(pending.len());
        for (target, wrapped) in pending {
            match rewrap(&old, &new, &target, &wrapped) {
                Ok(new) => items.push(Rewrapped {
                    target,
                    old: wrapped,
                    new,
                }),
                // A key the old master key cannot open can never move:
                // the rotation cannot close until someone looks at it.
                Err(e) => return Err(format!("{target:?} cannot be rewrapped: {e}")),
            }
        }
        let op = Op::Rewrap {
            new: r.new.clone(),
            items,
        };
        let meta = self.meta.clone();
        walk.in_flight.spawn(async move {
            match meta.write(op).await {
                Ok(Response::Rewrapped { moved }) => Ok(moved),
                Ok(other) => Err(format!("rewrap batch: {other:?}")),
                Err(e) => Err(e.to_string()),
            }
        });
        walk.at = at;
        Ok(Step::Proposed)
    }
}

/// One key moved from `old` to `new`: data keys are rewrapped, sealed S3
/// secrets opened and sealed again. Plaintext exists only in here. (Also
/// an offline restore's rewrap, ADR 0026.)
pub fn rewrap(
    old: &MasterKey,
    new: &MasterKey,
    target: &RewrapTarget,
    wrapped: &[u8],
) -> Result<Vec<u8>, hamster_proto::envelope::EnvelopeError> {
    match target {
        RewrapTarget::AccessKey { id } => {
            let secret = open_secret(old, id, wrapped)?;
            Ok(seal_secret(new, id, &secret))
        }
        _ => rewrap_dek(old, new, wrapped),
    }
}

/// Records this meta-server's keys every [`REPORT_EVERY`]; the first
/// report in a new cluster also records the write key.
pub fn report_keys(meta: Arc<Meta>, keys: Arc<Keyring>) {
    tokio::spawn(async move {
        let id = meta.tls.identity().node_id.clone();
        loop {
            let (current, next) = keys.fingerprints();
            let op = Op::KeyHolderSeen {
                id: id.clone(),
                role: Role::Meta,
                current,
                next: next.unwrap_or_default(),
            };
            // Until it lands (no leader yet at start-up), try every second:
            // the first report also records a new cluster's write key.
            let pause = match meta.write(op).await {
                Ok(_) => REPORT_EVERY,
                Err(e) => {
                    tracing::debug!(error = %e, "key report not recorded");
                    Duration::from_secs(1)
                }
            };
            tokio::time::sleep(pause).await;
        }
    });
}
