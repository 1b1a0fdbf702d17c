//! Master-key rotation, the work: the leader's rewrapper and this node's
//! key reports.
//!
//! - [`Rewrapper`]: while a rotation is open, the leader reads a batch of
//!   keys still on the old master key, rewraps each in memory (unwrap with
//!   the old key, wrap with the new; the data key never leaves this
//!   process) and proposes the wrapped results. When a full read finds
//!   none left it proposes closing, which apply refuses unless its own
//!   count is zero. State lives only in the metadata, so a new leader (or
//!   a restarted one) resumes where the last batch landed.
//! - [`report_keys`]: every few seconds this node records which master
//!   keys it holds (fingerprints), as gateways do over `Registry`.

use std::sync::Arc;
use std::time::Duration;

use hamster_proto::envelope::{open_secret, rewrap_dek, seal_secret};
use hamster_proto::keyring::Keyring;
use hamster_proto::secrets::MasterKey;
use openraft::ServerState;

use crate::cluster::Meta;
use crate::state::commands::{Op, Response};
use crate::state::model::{RewrapTarget, Rewrapped, Role};
use crate::state::{key_rotation, reads};

/// How often a key holder reports its keys.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

pub struct Rewrapper {
    pub meta: Arc<Meta>,
    pub keys: Arc<Keyring>,
    /// Keys per proposed batch.
    pub batch: usize,
    /// Pause between batches (0: none), to bound the load a rotation adds.
    pub pause: Duration,
}

/// What one step did.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Idle,
    Moved(u64),
    Closed,
}

impl Rewrapper {
    pub fn spawn(self) {
        tokio::spawn(async move {
            let mut warned = String::new();
            loop {
                let step = if self.meta.raft.metrics().borrow().state == ServerState::Leader {
                    self.step().await
                } else {
                    Ok(Step::Idle)
                };
                match step {
                    Ok(Step::Moved(_)) => {
                        warned.clear();
                        if !self.pause.is_zero() {
                            tokio::time::sleep(self.pause).await;
                        }
                        continue;
                    }
                    Ok(Step::Closed) => {
                        tracing::info!("master-key rotation closed: nothing left on the old key")
                    }
                    Ok(Step::Idle) => {}
                    // Said once per distinct cause, not every second.
                    Err(e) if e != warned => {
                        tracing::error!(error = %e, "master-key rotation stalled");
                        warned = e;
                    }
                    Err(_) => {}
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    async fn step(&self) -> Result<Step, String> {
        let (open, pending) = self
            .meta
            .read(async |c| {
                let Some(r) = key_rotation::rotation(c).await? else {
                    return Ok((None, Vec::new()));
                };
                let pending = reads::wrapped_by(c, &r.old, self.batch).await?;
                Ok((Some(r), pending))
            })
            .await
            .map_err(|e| e.to_string())?;
        let Some(r) = open else {
            return Ok(Step::Idle);
        };
        // Closing needs no key: a leader that lacks one can still close a
        // rotation the last leader finished.
        if pending.is_empty() {
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
        match self.meta.write(op).await {
            Ok(Response::Rewrapped { moved }) => Ok(Step::Moved(moved)),
            Ok(other) => Err(format!("rewrap batch: {other:?}")),
            Err(e) => Err(e.to_string()),
        }
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
