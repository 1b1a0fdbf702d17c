//! The `Admin` service: cluster status and membership. Admitted for the
//! admin certificate only. Membership changes run on the leader (forwarded
//! if need be): a new member joins as a learner, catches up, then votes.

use std::sync::Arc;
use std::time::Duration;

use hamster_proto::pb::{self, node_client::NodeClient};
use openraft::ServerState;
use tonic::{Request, Response, Status};

use super::errors::unexpected;
use crate::cluster::{ForwardRequest, Meta};
use crate::raft::MetaNode;
use crate::state::commands::Response as R;

/// How long status waits for each member's health answer.
const HEALTH_TIMEOUT: Duration = Duration::from_millis(1500);

pub struct AdminService {
    meta: Arc<Meta>,
}

impl AdminService {
    pub fn new(meta: Arc<Meta>) -> Self {
        Self { meta }
    }
}

fn index(i: Option<u64>) -> i64 {
    i.map_or(-1, |i| i64::try_from(i).unwrap_or(i64::MAX))
}

fn state_name(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "Leader",
        ServerState::Follower => "Follower",
        ServerState::Candidate => "Candidate",
        ServerState::Learner => "Learner",
        ServerState::Shutdown => "Shutdown",
    }
}

fn expect_ok(r: R) -> Result<(), Status> {
    match r {
        R::Ok => Ok(()),
        other => Err(unexpected(&other)),
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let m = self.meta.raft.metrics().borrow().clone();
        let (nodes, voters) = self.meta.members();
        let probes = nodes.iter().map(|(id, node)| {
            let peers = self.meta.peers.clone();
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(id).cloned())
                .map_or(-1, |l| index(l.map(|l| l.index)));
            let matched = if *id == m.id {
                index(m.last_log_index)
            } else {
                matched
            };
            let (id, node, voter) = (*id, node.clone(), voters.contains(id));
            async move {
                let health = match peers.channel(&node.addr) {
                    Ok(ch) => tokio::time::timeout(
                        HEALTH_TIMEOUT,
                        NodeClient::new(ch).health(pb::HealthRequest {}),
                    )
                    .await
                    .map_err(|_| "no answer".to_string())
                    .and_then(|r| r.map_err(|s| s.message().to_string())),
                    Err(e) => Err(e.to_string()),
                };
                pb::MemberStatus {
                    raft_id: id,
                    node_id: node.name.clone(),
                    address: node.addr.clone(),
                    voter,
                    healthy: health.is_ok(),
                    health_error: health.err().unwrap_or_default(),
                    matched_index: matched,
                }
            }
        });
        let members = futures::future::join_all(probes).await;
        Ok(Response::new(pb::StatusResponse {
            node_id: self.meta.tls.identity().node_id.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            leader_raft_id: m.current_leader.unwrap_or(0),
            members,
            raft_id: m.id,
            term: m.current_term,
            state: state_name(m.state).into(),
            last_log_index: index(m.last_log_index),
            commit_index: index(self.meta.log.committed_index()),
            applied_index: index(m.last_applied.map(|l| l.index)),
            snapshot_index: index(m.snapshot.map(|l| l.index)),
            ..Default::default()
        }))
    }

    async fn add_member(
        &self,
        req: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::AddMemberResponse>, Status> {
        let r = req.into_inner();
        if r.raft_id == 0 || r.address.is_empty() || r.node_id.is_empty() {
            return Err(Status::invalid_argument(
                "raft_id (> 0), node_id and address are required",
            ));
        }
        let node = MetaNode {
            addr: r.address,
            name: r.node_id,
        };
        tracing::info!(raft_id = r.raft_id, %node, voter = r.as_voter, "adding member");
        expect_ok(
            self.meta
                .run(ForwardRequest::AddLearner {
                    id: r.raft_id,
                    node,
                })
                .await?,
        )?;
        if r.as_voter {
            expect_ok(
                self.meta
                    .run(ForwardRequest::AddVoter { id: r.raft_id })
                    .await?,
            )?;
        }
        Ok(Response::new(pb::AddMemberResponse {}))
    }

    async fn remove_member(
        &self,
        req: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        let id = req.into_inner().raft_id;
        tracing::info!(raft_id = id, "removing member");
        expect_ok(self.meta.run(ForwardRequest::RemoveVoter { id }).await?)?;
        Ok(Response::new(pb::RemoveMemberResponse {}))
    }
}
