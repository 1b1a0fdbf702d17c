//! blob-server: stores erasure-coded, encrypted shards.
//!
//! Today it loads its identity, serves `Node` over mTLS and mounts the
//! `Blob` service (admitting gateway and meta roles only); the shard store
//! behind it lands with the data path (issue 4): `store/` (paths, shard
//! format), `grpc`, `scrub`, `registration`.

use hamster_proto::Role;
use hamster_proto::health::NodeService;
use hamster_proto::pb;
use hamster_proto::serve::{Node, NodeArgs};

#[derive(Debug, clap::Parser)]
#[command(name = "blob-server", version, about = "Hamster shard server")]
pub struct Args {
    #[command(flatten)]
    pub node: NodeArgs,
}

struct Pending;
impl pb::blob_server::Blob for Pending {}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let node = Node::bind(&args.node, Role::Blob).await?;
    let router = hamster_proto::transport::server()
        .add_service(pb::node_server::NodeServer::new(NodeService::new(
            node.tls.clone(),
        )))
        .add_service(pb::blob_server::BlobServer::new(Pending));
    node.run(router).await?;
    Ok(())
}
