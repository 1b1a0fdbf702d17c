//! A seeded data dir boots: openraft starts from the state machine alone
//! (no log, no snapshot), elects the node and commits new writes after
//! the restored index, both after a one-node restore and after
//! `--force-new-cluster`.

use std::path::Path;
use std::time::Duration;

use hamster_meta::backup::reseed;
use hamster_meta::raft::{MetaNode, NodeId, TypeConfig};
use hamster_proto::secrets::MasterKey;
use openraft::ServerState;
use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use super::common::*;
use super::fixture::*;

/// A network with no peers: a one-member cluster never calls it.
struct Alone;

#[derive(Debug, thiserror::Error)]
#[error("no peers in this test")]
struct NoPeers;

type Rpc<T, E> = Result<T, RPCError<NodeId, MetaNode, E>>;

fn unreachable<T, E: std::error::Error>() -> Rpc<T, E> {
    Err(RPCError::Unreachable(Unreachable::new(&NoPeers)))
}

impl RaftNetworkFactory<TypeConfig> for Alone {
    type Network = Alone;
    async fn new_client(&mut self, _: NodeId, _: &MetaNode) -> Alone {
        Alone
    }
}

impl RaftNetwork<TypeConfig> for Alone {
    async fn append_entries(
        &mut self,
        _: AppendEntriesRequest<TypeConfig>,
        _: RPCOption,
    ) -> Rpc<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        unreachable()
    }
    async fn install_snapshot(
        &mut self,
        _: InstallSnapshotRequest<TypeConfig>,
        _: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        unreachable()
    }
    async fn vote(
        &mut self,
        _: VoteRequest<NodeId>,
        _: RPCOption,
    ) -> Rpc<VoteResponse<NodeId>, RaftError<NodeId>> {
        unreachable()
    }
}

/// Starts Raft on `dir` as `id`, waits for it to lead, commits the new
/// bucket `bucket` and checks it landed after index `after`, beside
/// what was there (the restored "locked", and `kept`).
async fn boots_and_writes(dir: &Path, id: NodeId, after: u64, bucket: &str, kept: &[&str]) {
    let node = Running::start(dir, id, Alone).await;
    let raft = &node.raft;
    raft.wait(Some(Duration::from_secs(10)))
        .state(ServerState::Leader, "elected")
        .await
        .expect("leads");
    let cmd = Command::new("", NOW, create(bucket, false));
    let written = raft.client_write(cmd).await.expect("a write commits");
    assert!(written.log_id.index > after, "{:?}", written.log_id);
    assert!(
        matches!(written.data, Response::Bucket(_)),
        "{:?}",
        written.data
    );
    let mut c = node.db.acquire().await.expect("conn");
    for b in kept.iter().chain([&"locked", &bucket]) {
        assert!(q::bucket(&mut c, b).await.expect("read").is_some(), "{b}");
    }
    drop(c);
    assert_eq!(node.voters(), vec![id]);
    node.stop().await;
}

#[tokio::test]
async fn a_restored_node_elects_itself_and_takes_writes() {
    let (b, dir) = restored_alone(4, "127.0.0.1:1").await;
    boots_and_writes(&dir, 4, b.header.raft_index, "after-restore", &[]).await;
    // And again after a restart, from what it wrote since.
    boots_and_writes(
        &dir,
        4,
        b.header.raft_index + 1,
        "after-restart",
        &["after-restore"],
    )
    .await;
}

#[tokio::test]
async fn a_forced_survivor_elects_itself_and_takes_writes() {
    let key = MasterKey::generate();
    let src = Source::populated(&key, &Pki::new("ca-1")).await;
    let applied = src.index;
    src.db.close().await;
    let dir = src.dir.path();
    reseed::force_new_cluster(
        dir,
        2,
        MetaNode {
            addr: "127.0.0.1:1".into(),
            name: "meta-2".into(),
        },
    )
    .await
    .expect("forced");
    boots_and_writes(dir, 2, applied, "after-force", &[]).await;
}
