//! gateway: speaks S3, holds no state of its own.
//!
//! Today it loads its identity and the master key and serves `Node` over
//! mTLS, and has the first stages of its pipeline:
//!
//! - [`pipeline`]: encrypt (segments under a per-object key), erasure
//!   (Reed–Solomon k+m per stripe), profile (default k+m).
//!
//! The S3 listener and the rest of the pipeline land with the data path
//! (issue 4): `s3/` (routing, auth, handlers, errors), `pipeline/` (chunk,
//! placement, fanout, commit, fanin), `clients/`.

pub mod pipeline;

use std::path::PathBuf;

use hamster_proto::Role;
use hamster_proto::health::NodeService;
use hamster_proto::pb;
use hamster_proto::secrets::MasterKey;
use hamster_proto::serve::{Node, NodeArgs};

#[derive(Debug, clap::Parser)]
#[command(name = "gateway", version, about = "Hamster S3 gateway")]
pub struct Args {
    #[command(flatten)]
    pub node: NodeArgs,
    /// File holding the 32-byte master key (KEK). Read into memory only.
    #[arg(long, env = "HAMSTER_MASTER_KEY_FILE")]
    pub master_key_file: PathBuf,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let kek = MasterKey::load(&args.master_key_file)?;
    tracing::info!(kek = %kek.fingerprint(), "master key loaded");
    let node = Node::bind(&args.node, Role::Gateway).await?;
    let router = hamster_proto::transport::server().add_service(pb::node_server::NodeServer::new(
        NodeService::new(node.tls.clone()),
    ));
    node.run(router).await?;
    Ok(())
}
