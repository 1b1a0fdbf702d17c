//! Group commit on the leader. openraft 0.9 appends (and fsyncs) once per
//! client write; here, writes that arrive while earlier ones are being
//! committed wait in a queue and go down together as one [`Op::Batch`]
//! entry: one log fsync, one apply transaction, many commands.
//!
//! At most [`MAX_IN_FLIGHT`] batches are proposed at a time; the queue
//! fills while they commit, so batches grow with load and a lone write
//! goes down at once, alone.

use std::sync::Arc;

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::cluster::ForwardError;
use crate::raft::{MetaNode, NodeId, Raft};
use crate::state::commands::{Command, Op, Response};

/// Commands in one log entry at most (well under 2^BATCH_BITS). With
/// `max_payload_entries` this bounds an AppendEntries message (~1.5 KB a
/// command): a lagging follower's catch-up must fit openraft's append
/// timeout (one heartbeat interval), or it never catches up.
pub const MAX_BATCH: usize = 128;
/// Batches being proposed at once. One: the queue fills while it commits
/// (measured: same throughput as 4 here, with ~6x fewer log entries).
pub const MAX_IN_FLIGHT: usize = 1;

type Reply = oneshot::Sender<Result<Response, ForwardError>>;

/// Maps openraft's write errors to what a forwarding node understands.
pub fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, MetaNode>>) -> ForwardError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ForwardError::NotLeader {
            leader: f.leader_id.zip(f.leader_node),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(p),
        )) => ForwardError::Busy(p.to_string()),
        // Refused before anything was proposed (e.g. removing the last voter).
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ForwardError::Failed(e.to_string())
        }
        // Fatal: the entry may or may not have committed. Retrying with the
        // same command id is safe; calling it a definite failure is not (a
        // gateway would collect shards a committed version uses).
        RaftError::Fatal(f) => ForwardError::Busy(format!("outcome unknown: {f}")),
    }
}

#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<(Command, Reply)>,
}

/// The leader's clock, never going backwards: every command is stamped
/// here, so lock expiry and command-id pruning follow one clock (the
/// leader's), not whichever node first received the request.
struct Clock {
    last: i64,
}

impl Clock {
    fn stamp(&mut self) -> i64 {
        self.last = crate::cluster::now_ms().max(self.last);
        self.last
    }
}

/// Stamps a command with the leader's time: `at_ms`, and a committed
/// version's `created_at_ms` (its Last-Modified), so one write has one
/// clock whichever node received it. The time is written into the
/// command, not taken at apply, so replaying an old log (whose versions
/// carry the time they were given) builds the state it built then.
pub fn stamp(cmd: &mut Command, now: i64) {
    cmd.at_ms = now;
    if let Op::CommitVersion { version, .. } = &mut cmd.op {
        version.created_at_ms = now;
    }
}

impl Batcher {
    pub fn start(raft: Raft) -> Self {
        let (tx, mut rx) = mpsc::channel::<(Command, Reply)>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
            let mut clock = Clock { last: 0 };
            while let Some(first) = rx.recv().await {
                // Waiting for a slot is what lets the next batch fill up.
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(item) => batch.push(item),
                        Err(_) => break,
                    }
                }
                metrics::histogram!("hamster_raft_group_commit_batch_size")
                    .record(batch.len() as f64);
                let now = clock.stamp();
                for (cmd, _) in &mut batch {
                    stamp(cmd, now);
                }
                let raft = raft.clone();
                tokio::spawn(async move {
                    propose(&raft, batch).await;
                    drop(slot);
                });
            }
        });
        Self { tx }
    }

    /// Proposes `cmd` with whatever else is waiting; answers its own response.
    pub async fn write(&self, cmd: Command) -> Result<Response, ForwardError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((cmd, tx))
            .await
            .map_err(|_| ForwardError::Failed("the write queue is closed".into()))?;
        rx.await
            .map_err(|_| ForwardError::Failed("the write was dropped".into()))?
    }
}

async fn propose(raft: &Raft, mut batch: Vec<(Command, Reply)>) {
    if batch.len() == 1 {
        let Some((cmd, reply)) = batch.pop() else {
            return;
        };
        let _ = reply.send(
            raft.client_write(cmd)
                .await
                .map(|r| r.data)
                .map_err(write_error),
        );
        return;
    }
    let (cmds, replies): (Vec<Command>, Vec<Reply>) = batch.into_iter().unzip();
    let at_ms = cmds.iter().map(|c| c.at_ms).max().unwrap_or_default();
    let n = cmds.len();
    let entry = Command::new(String::new(), at_ms, Op::Batch(cmds));
    match raft.client_write(entry).await {
        Ok(r) => match r.data {
            Response::Batch(answers) if answers.len() == n => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            other => {
                let e = ForwardError::Busy(format!(
                    "outcome unknown: a batch of {n} answered {}",
                    other_name(&other)
                ));
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        },
        Err(e) => {
            // Not committed here (e.g. leadership moved): every caller
            // retries its own command, with its own id.
            let e = write_error(e);
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

fn other_name(r: &Response) -> &'static str {
    match r {
        Response::Ok => "Ok",
        Response::Batch(_) => "a batch of another size",
        Response::Err(_) => "an error",
        _ => "a single answer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::model::Version;

    #[test]
    fn a_commit_gets_the_leaders_time_as_its_version_time() {
        let version = Version {
            created_at_ms: 5,
            ..Version::default()
        };
        let mut cmd = Command::new("c", 7, Op::commit_version(version));
        stamp(&mut cmd, 1_000);
        assert_eq!(cmd.at_ms, 1_000);
        let Op::CommitVersion { version, .. } = &cmd.op else {
            panic!("op changed: {:?}", cmd.op)
        };
        assert_eq!(version.created_at_ms, 1_000);

        let mut other = Command::new(
            "d",
            7,
            Op::DeleteBucket {
                name: "b".into(),
                abort_uploads: false,
            },
        );
        stamp(&mut other, 2_000);
        assert_eq!(other.at_ms, 2_000);
    }
}
