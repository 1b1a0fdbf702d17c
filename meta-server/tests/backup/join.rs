//! Several members after a restore: only one is seeded with the state;
//! the others wait ([`reseed::await_leader`]) as uninitialized nodes,
//! which still vote, and receive the state from the restored leader as a
//! snapshot. Two openraft nodes in-process, wired to each other.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use hamster_meta::backup::reseed::{self, AWAIT_MARKER, ReseedError};
use hamster_meta::backup::restore::{Plan, restore};
use hamster_meta::raft::{MetaNode, NodeId, Raft, TypeConfig};
use openraft::ServerState;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use super::common::*;
use super::fixture::*;

/// The running nodes, by id: a call to one that is not there is lost.
#[derive(Clone, Default)]
struct Router(Arc<Mutex<HashMap<NodeId, Raft>>>);

struct Conn {
    to: NodeId,
    router: Router,
}

#[derive(Debug, thiserror::Error)]
#[error("node {0} is not running")]
struct Down(NodeId);

type Rpc<T, E> = Result<T, RPCError<NodeId, MetaNode, E>>;

impl Conn {
    fn raft<E: std::error::Error>(&self) -> Result<Raft, RPCError<NodeId, MetaNode, E>> {
        let nodes = self
            .router
            .0
            .lock()
            .map_err(|_| RPCError::Network(NetworkError::new(&Down(self.to))))?;
        nodes
            .get(&self.to)
            .cloned()
            .ok_or_else(|| RPCError::Unreachable(Unreachable::new(&Down(self.to))))
    }
    fn remote<T, E: std::error::Error>(&self, r: Result<T, E>) -> Rpc<T, E> {
        r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }
}

impl RaftNetworkFactory<TypeConfig> for Router {
    type Network = Conn;
    async fn new_client(&mut self, to: NodeId, _: &MetaNode) -> Conn {
        Conn {
            to,
            router: self.clone(),
        }
    }
}

impl RaftNetwork<TypeConfig> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _: RPCOption,
    ) -> Rpc<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        let raft = self.raft()?;
        self.remote(raft.append_entries(rpc).await)
    }
    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        let raft = self.raft()?;
        self.remote(raft.install_snapshot(rpc).await)
    }
    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _: RPCOption,
    ) -> Rpc<VoteResponse<NodeId>, RaftError<NodeId>> {
        let raft = self.raft()?;
        self.remote(raft.vote(rpc).await)
    }
}

/// Starts node `id` on `dir` and puts it on the router.
async fn start(dir: &std::path::Path, id: NodeId, router: &Router) -> Running {
    let node = Running::start(dir, id, router.clone()).await;
    router
        .0
        .lock()
        .expect("router")
        .insert(id, node.raft.clone());
    node
}

#[tokio::test]
async fn a_waiting_member_joins_the_restored_leader_by_snapshot() {
    let b = backup().await;
    let work = b.dir.path();
    let (dir1, dir2) = (work.join("meta-1"), work.join("meta-2"));
    // The cluster {1, 2}; only 1 holds the state.
    let plan = Plan {
        backup: b.path.clone(),
        members: vec![member(1, "127.0.0.1:1"), member(2, "127.0.0.1:2")],
        seed: vec![(1, dir1.clone())],
        accept_older: false,
    };
    restore(&plan, &NodeFiles::new(&b.key, None, &b.pki).facts())
        .await
        .expect("restore");
    reseed::await_leader(&dir2).expect("waits");
    assert!(dir2.join(AWAIT_MARKER).exists());
    // Idempotent; a dir with state is refused.
    reseed::await_leader(&dir2).expect("again");
    let e = reseed::await_leader(&dir1).expect_err("refused");
    assert!(matches!(e, ReseedError::DataDirInUse(_)), "{e}");
    assert!(!dir1.join(AWAIT_MARKER).exists());

    let router = Router::default();
    let n1 = start(&dir1, 1, &router).await;
    // Never initialized: it only votes and receives.
    let n2 = start(&dir2, 2, &router).await;
    assert!(!n2.raft.is_initialized().await.expect("state"));
    n1.raft
        .wait(Some(Duration::from_secs(20)))
        .state(ServerState::Leader, "node 1 elected with node 2's vote")
        .await
        .expect("leads");
    let cmd = Command::new("", NOW, create("after-restore", false));
    let written = n1.raft.client_write(cmd).await.expect("a write commits");
    assert!(written.log_id.index > b.header.raft_index);
    n2.raft
        .wait(Some(Duration::from_secs(20)))
        .applied_index(Some(written.log_id.index), "node 2 caught up")
        .await
        .expect("caught up");
    assert!(n2.raft.is_initialized().await.expect("state"));

    let mut c = n2.db.acquire().await.expect("conn");
    for b in ["plain", "locked", "after-restore"] {
        assert!(q::bucket(&mut c, b).await.expect("read").is_some(), "{b}");
    }
    let (kept, _) = q::version(&mut c, "locked", "kept", "vk1")
        .await
        .expect("read")
        .expect("the restored COMPLIANCE version");
    assert_eq!(kept.lock_mode, LockMode::Compliance);
    drop(c);
    assert_eq!(n2.voters(), vec![1, 2]);

    for n in [n1, n2] {
        n.stop().await;
    }
}
