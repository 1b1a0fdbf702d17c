//! The meta node's view of the cluster, shared by every gRPC service:
//! writes go to the leader (here, or forwarded over `Raft.Forward`), reads
//! that must be current wait for a read index from the leader, and both
//! ride out an election by retrying until [`Meta::wait`] runs out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hamster_proto::tls::NodeTls;
use openraft::ChangeMembers;
use openraft::error::{CheckIsLeaderError, ForwardToLeader, RaftError};
use serde::{Deserialize, Serialize};
use sqlx::SqliteConnection;

use crate::batch::{Batcher, write_error};
use crate::raft::codec::{decode, encode};
use crate::raft::log_store::LogStore;
use crate::raft::network::Peers;
use crate::raft::state_machine::StateDb;
use crate::raft::{MetaNode, NodeId, Raft};
use crate::state::commands::{Actor, Command, MetaError, Op, Response};
use crate::state::outcome::ApplyError;

/// What a node asks the leader to do on its behalf.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ForwardRequest {
    Write(Box<Command>),
    AddLearner {
        id: NodeId,
        node: MetaNode,
    },
    /// Computed on the leader, against the membership it knows is current.
    AddVoter {
        id: NodeId,
    },
    RemoveVoter {
        id: NodeId,
    },
}

/// Why the leader (or who we took for it) did not do it.
#[derive(Clone, Debug, Serialize, Deserialize, thiserror::Error)]
pub enum ForwardError {
    #[error("not the leader")]
    NotLeader { leader: Option<(NodeId, MetaNode)> },
    /// Transient on the leader (a membership change still in progress).
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Failed(String),
}

/// Why a call could not be served.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No leader with a quorum within the wait. For a write this means the
    /// outcome is unknown: it was not acknowledged, and if it reached the
    /// leader's log it may still commit when a quorum returns (whole, never
    /// in part).
    #[error("meta tier unavailable after {waited:?}: {why}")]
    Unavailable { waited: Duration, why: String },
    #[error("{0}")]
    Failed(String),
    /// An admin-only request on a follower: never forwarded (ADR 0030);
    /// the caller asks the leader, at this address.
    #[error("not the leader; the leader is at {0}")]
    NotLeader(String),
}

enum Attempt {
    Retry(String),
    Fail(String),
    /// Not forwardable and not the leader: the leader's address.
    Elsewhere(String),
}

pub struct Meta {
    pub raft: Raft,
    /// Group commit for writes proposed on this node while it leads.
    pub batcher: Batcher,
    pub raft_id: NodeId,
    pub db: Arc<StateDb>,
    pub log: LogStore,
    pub peers: Peers,
    pub tls: Arc<NodeTls>,
    /// How long a call waits through an election before giving up.
    pub wait: Duration,
    /// Shards older than this may not be committed (the sweep's safety).
    pub write_window: Duration,
}

pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

fn not_leader<E>(f: ForwardToLeader<NodeId, MetaNode>) -> Result<E, ForwardError> {
    Err(ForwardError::NotLeader {
        leader: f.leader_id.zip(f.leader_node),
    })
}

impl Meta {
    /// Proposes `op` with a fresh id and returns what applying it
    /// answered. The leader's batcher stamps its time (`at_ms` set here is
    /// only a placeholder). Retries re-propose the same command (same id),
    /// which the state machine applies at most once.
    pub async fn write(&self, op: Op) -> Result<Response, CallError> {
        let id: u128 = rand::random();
        self.write_as(format!("{id:032x}"), op).await
    }

    /// Proposes `op` under the caller-chosen command id `id`: a retry of
    /// one client request on any node is then the same command, applied
    /// once and answered with its first answer (ADR 0024). The caller
    /// keeps ids of different callers apart (`grpc::meta` scopes them by
    /// certificate identity) and never reuses one for another op.
    pub async fn write_as(&self, id: String, op: Op) -> Result<Response, CallError> {
        // A bucket op without an actor is an old log's, never ours: every
        // caller names one through `write_for` (ADR 0027).
        if op.needs_actor() {
            return Err(CallError::Failed(format!(
                "{} must name who it acts for",
                op.name()
            )));
        }
        let cmd = Command::new(id, now_ms(), op);
        self.run(ForwardRequest::Write(Box::new(cmd))).await
    }

    /// Proposes `op` acting for `by` (ADR 0027), under the caller's
    /// command id or a fresh one: apply checks `by`'s rights.
    pub async fn write_for(
        &self,
        by: Actor,
        id: Option<String>,
        op: Op,
    ) -> Result<Response, CallError> {
        let id = id.unwrap_or_else(|| format!("{:032x}", rand::random::<u128>()));
        let cmd = Command::new(id, now_ms(), op).by(by);
        self.run(ForwardRequest::Write(Box::new(cmd))).await
    }

    /// Runs a leader-only request, retrying through elections.
    pub async fn run(&self, req: ForwardRequest) -> Result<Response, CallError> {
        self.with_retries("the commit", |_| self.attempt(&req))
            .await
    }

    /// Calls `attempt` (given the time left) until it succeeds, fails for
    /// good, or `self.wait` runs out; backs off 25 ms doubling to 400 ms.
    async fn with_retries<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, CallError>
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = Result<T, Attempt>>,
    {
        let deadline = Instant::now() + self.wait;
        let mut backoff = Duration::from_millis(25);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let why = match tokio::time::timeout(remaining, attempt(remaining)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(Attempt::Fail(msg))) => return Err(CallError::Failed(msg)),
                Ok(Err(Attempt::Elsewhere(addr))) => return Err(CallError::NotLeader(addr)),
                Ok(Err(Attempt::Retry(msg))) => msg,
                Err(_) => format!("no quorum confirmed {what} in time"),
            };
            if Instant::now() + backoff >= deadline {
                return Err(CallError::Unavailable {
                    waited: self.wait,
                    why,
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(400));
        }
    }

    async fn attempt(&self, req: &ForwardRequest) -> Result<Response, Attempt> {
        match self.handle_local(req).await {
            Ok(r) => Ok(r),
            Err(ForwardError::Failed(m)) => Err(Attempt::Fail(m)),
            Err(ForwardError::Busy(m)) => Err(Attempt::Retry(m)),
            Err(ForwardError::NotLeader { leader: None }) => {
                Err(Attempt::Retry("no leader elected".into()))
            }
            Err(ForwardError::NotLeader {
                leader: Some((id, node)),
            }) => {
                if id == self.raft_id {
                    return Err(Attempt::Retry("leadership is changing".into()));
                }
                // The leader refuses these from Forward (a meta certificate
                // must not be able to forge an admin's change): the caller
                // goes to the leader itself.
                if !crate::raft::service::forwardable(req) {
                    return Err(Attempt::Elsewhere(node.addr.clone()));
                }
                let mut client = self
                    .peers
                    .raft_client(&node.addr)
                    .map_err(|e| Attempt::Retry(e.to_string()))?;
                let payload = encode(req).map_err(|e| Attempt::Fail(e.to_string()))?;
                let resp = client.forward(payload).await.map_err(|s| {
                    Attempt::Retry(format!("leader {node} unreachable: {}", s.message()))
                })?;
                match decode::<Result<Response, ForwardError>>(resp.get_ref()) {
                    Ok(Ok(r)) => Ok(r),
                    Ok(Err(ForwardError::Failed(m))) => Err(Attempt::Fail(m)),
                    Ok(Err(ForwardError::Busy(m))) => Err(Attempt::Retry(m)),
                    Ok(Err(ForwardError::NotLeader { .. })) => {
                        Err(Attempt::Retry(format!("{node} is no longer the leader")))
                    }
                    // An undecodable answer: the outcome is unknown, so
                    // retry (the same command id is applied at most once).
                    Err(e) => Err(Attempt::Retry(e.to_string())),
                }
            }
        }
    }

    /// Does a leader-only request here, once; says who leads if not us.
    pub async fn handle_local(&self, req: &ForwardRequest) -> Result<Response, ForwardError> {
        let map = |e| Err(write_error(e));
        match req {
            ForwardRequest::Write(cmd) => self.batcher.write((**cmd).clone()).await,
            ForwardRequest::AddLearner { id, node } => {
                match self.raft.add_learner(*id, node.clone(), true).await {
                    Ok(_) => Ok(Response::Ok),
                    Err(e) => map(e),
                }
            }
            ForwardRequest::AddVoter { id } => {
                let change = ChangeMembers::AddVoterIds(BTreeSet::from([*id]));
                match self.raft.change_membership(change, false).await {
                    Ok(_) => Ok(Response::Ok),
                    Err(e) => map(e),
                }
            }
            ForwardRequest::RemoveVoter { id } => {
                let change = ChangeMembers::RemoveVoters(BTreeSet::from([*id]));
                match self.raft.change_membership(change, false).await {
                    Ok(_) => Ok(Response::Ok),
                    Err(e) => map(e),
                }
            }
        }
    }

    /// The leader's read index, if this node leads.
    pub async fn read_index_local(&self) -> Result<Option<u64>, ForwardError> {
        match self.raft.ensure_linearizable().await {
            Ok(log_id) => Ok(log_id.map(|l| l.index)),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => not_leader(f),
            Err(e) => Err(ForwardError::Failed(e.to_string())),
        }
    }

    /// Waits until this node has applied everything committed before the
    /// call began (read-index through the leader): reads after this are
    /// linearizable, never a stale follower read.
    pub async fn linearize(&self) -> Result<(), CallError> {
        self.with_retries("the leader", |remaining| async move {
            let Some(index) = self.read_index().await? else {
                return Ok(());
            };
            self.raft
                .wait(Some(remaining))
                .applied_index_at_least(Some(index), "read index")
                .await
                .map(|_| ())
                .map_err(|e| Attempt::Retry(format!("applying up to the read index: {e}")))
        })
        .await
    }

    async fn read_index(&self) -> Result<Option<u64>, Attempt> {
        match self.read_index_local().await {
            Ok(i) => Ok(i),
            Err(ForwardError::Failed(m) | ForwardError::Busy(m)) => Err(Attempt::Retry(m)),
            Err(ForwardError::NotLeader { leader: None }) => {
                Err(Attempt::Retry("no leader elected".into()))
            }
            Err(ForwardError::NotLeader {
                leader: Some((_, node)),
            }) => {
                let mut client = self
                    .peers
                    .raft_client(&node.addr)
                    .map_err(|e| Attempt::Retry(e.to_string()))?;
                let resp = client
                    .read_index(hamster_proto::pb::RaftPayload::default())
                    .await
                    .map_err(|s| {
                        Attempt::Retry(format!("leader {node} unreachable: {}", s.message()))
                    })?;
                match decode::<Result<Option<u64>, ForwardError>>(resp.get_ref()) {
                    Ok(Ok(i)) => Ok(i),
                    Ok(Err(e)) => Err(Attempt::Retry(e.to_string())),
                    Err(e) => Err(Attempt::Fail(e.to_string())),
                }
            }
        }
    }

    /// A linearizable read: waits for the read index, then runs `f` on a
    /// connection to the applied state.
    pub async fn read<T>(
        &self,
        f: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, CallError> {
        self.linearize().await?;
        let failed = |e: sqlx::Error| {
            // Details go to the log; callers get no internals.
            tracing::error!(error = %e, "metadata DB read failed");
            CallError::Failed("metadata store error".into())
        };
        let mut conn = self.db.acquire().await.map_err(failed)?;
        f(&mut conn).await.map_err(failed)
    }

    /// A linearizable read that may refuse (no such bucket, upload, …):
    /// the closure rejects with `reject`/`?` as apply's topics do, and the
    /// refusal comes back apart from a failure to read.
    pub async fn read_or_refuse<T>(
        &self,
        f: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, ApplyError>,
    ) -> Result<Result<T, MetaError>, CallError> {
        self.read(async |c| match f(c).await {
            Ok(v) => Ok(Ok(v)),
            Err(ApplyError::Rejected(e)) => Ok(Err(e)),
            Err(ApplyError::Storage(e)) => Err(e),
        })
        .await
    }

    /// The leader's address when another node leads, as this node knows
    /// it now (None: this node leads, or no leader is known).
    pub fn leader_elsewhere(&self) -> Option<String> {
        let m = self.raft.metrics().borrow().clone();
        let leader = m.current_leader.filter(|id| *id != self.raft_id)?;
        m.membership_config
            .nodes()
            .find(|(id, _)| **id == leader)
            .map(|(_, n)| n.addr.clone())
    }

    /// Members as the current membership config lists them.
    pub fn members(&self) -> (BTreeMap<NodeId, MetaNode>, BTreeSet<NodeId>) {
        let m = self.raft.metrics().borrow().membership_config.clone();
        let nodes = m.nodes().map(|(id, n)| (*id, n.clone())).collect();
        let voters = m.voter_ids().collect();
        (nodes, voters)
    }
}
