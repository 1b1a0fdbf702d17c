//! meta-server: Hamster's control plane.
//!
//! Today it proves the foundation: it loads its identity and the master
//! key, serves `Node` over mTLS, and mounts the `Meta`, `Registry`, `Admin`
//! and `Raft` services behind the role table of `hamster_proto::authz`.
//! Their methods answer UNIMPLEMENTED until the Raft state machine lands
//! (issue 3); the contract and who may call what are fixed already.
//!
//! Modules to come, in the layout of DESIGN.md: `raft/` (log store, state
//! machine, network), `state/` (commands, apply, schema, queries), `grpc/`
//! (services), `rotation/`.

use std::path::PathBuf;

use hamster_proto::Role;
use hamster_proto::health::NodeService;
use hamster_proto::pb;
use hamster_proto::secrets::MasterKey;
use hamster_proto::serve::{Node, NodeArgs};

#[derive(Debug, clap::Parser)]
#[command(
    name = "meta-server",
    version,
    about = "Hamster metadata server (Raft)"
)]
pub struct Args {
    #[command(flatten)]
    pub node: NodeArgs,
    /// File holding the 32-byte master key (KEK). Read into memory only.
    #[arg(long, env = "HAMSTER_MASTER_KEY_FILE")]
    pub master_key_file: PathBuf,
}

struct Pending;
impl pb::meta_server::Meta for Pending {}
impl pb::registry_server::Registry for Pending {}
impl pb::admin_server::Admin for Pending {}
impl pb::raft_server::Raft for Pending {}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let kek = MasterKey::load(&args.master_key_file)?;
    tracing::info!(kek = %kek.fingerprint(), "master key loaded");
    let node = Node::bind(&args.node, Role::Meta).await?;
    let router = hamster_proto::transport::server()
        .add_service(pb::node_server::NodeServer::new(NodeService::new(
            node.tls.clone(),
        )))
        .add_service(pb::meta_server::MetaServer::new(Pending))
        .add_service(pb::registry_server::RegistryServer::new(Pending))
        .add_service(pb::admin_server::AdminServer::new(Pending))
        .add_service(pb::raft_server::RaftServer::new(Pending));
    node.run(router).await?;
    Ok(())
}
