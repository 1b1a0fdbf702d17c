//! blob-server: stores erasure-coded, encrypted shards. It knows nothing
//! of objects, keys or buckets, and never holds a key: what it stores is
//! ciphertext (invariant 3).
//!
//! - [`store`]: shard files on disk — format, durable writes, verified reads.
//! - [`grpc`]: the `Blob` service (gateway and meta roles only).
//! - [`registration`]: register with the meta tier and heartbeat space.

pub mod grpc;
pub mod registration;
pub mod store;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use hamster_proto::Role;
use hamster_proto::health::NodeService;
use hamster_proto::pb;
use hamster_proto::serve::{Node, NodeArgs};

#[derive(Debug, clap::Parser)]
#[command(name = "blob-server", version, about = "Hamster shard server")]
pub struct Args {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Directory holding the shards.
    #[arg(long, env = "HAMSTER_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Meta-servers to register with (host:port, comma-separated). Without
    /// them the server stores and serves shards but is not in the registry.
    #[arg(long, env = "HAMSTER_META", value_delimiter = ',')]
    pub meta: Vec<String>,
    /// Failure domain (rack, host, zone): placement spreads shards across
    /// them. Default: this node's own id (every server its own domain).
    #[arg(long, env = "HAMSTER_FAILURE_DOMAIN")]
    pub failure_domain: Option<String>,
    /// Address gateways reach this server at (default: --listen).
    #[arg(long, env = "HAMSTER_ADVERTISE")]
    pub advertise: Option<String>,
    /// Capacity to report, in bytes (default: the filesystem's size).
    #[arg(long, env = "HAMSTER_CAPACITY_BYTES")]
    pub capacity_bytes: Option<u64>,
    /// Seconds between heartbeats.
    #[arg(long, env = "HAMSTER_HEARTBEAT_SECS", default_value_t = 10)]
    pub heartbeat_secs: u64,
}

/// Where gateways reach this server: --advertise; else --listen, unless
/// that is a wildcard address, in which case the local address of a route
/// to the meta tier (a container's own address, in compose).
fn advertise(args: &Args) -> String {
    use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
    if let Some(a) = &args.advertise {
        return a.clone();
    }
    let listen = args.node.listen;
    if !listen.ip().is_unspecified() {
        return listen.to_string();
    }
    for meta in &args.meta {
        for target in meta.to_socket_addrs().into_iter().flatten() {
            let local = UdpSocket::bind(("0.0.0.0", 0))
                .and_then(|s| s.connect(target).and_then(|()| s.local_addr()));
            if let Ok(local) = local {
                return SocketAddr::new(local.ip(), listen.port()).to_string();
            }
        }
    }
    listen.to_string()
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let node = Node::bind(&args.node, Role::Blob).await?;
    let store = store::Store::open(&args.data_dir)
        .await
        .with_context(|| format!("opening the shard store in {}", args.data_dir.display()))?;
    let meta: Vec<String> = args
        .meta
        .iter()
        .filter(|m| !m.is_empty())
        .cloned()
        .collect();
    if meta.is_empty() {
        tracing::warn!("no --meta given: not registering with the meta tier");
    } else {
        // Trust bundles and certificate renewal (ADR 0019).
        hamster_proto::trust_sync::TrustSync::new(node.tls.clone(), node.paths().clone())
            .spawn(meta.clone());
        let reg = registration::Registration {
            meta,
            tls: node.tls.clone(),
            address: advertise(&args),
            failure_domain: args
                .failure_domain
                .clone()
                .unwrap_or_else(|| node.tls.identity().node_id.clone()),
            data_dir: args.data_dir.clone(),
            capacity_bytes: args.capacity_bytes,
            interval: Duration::from_secs(args.heartbeat_secs.max(1)),
        };
        tokio::spawn(reg.run());
    }
    let router = hamster_proto::transport::server()
        .add_service(pb::node_server::NodeServer::new(NodeService::new(
            node.tls.clone(),
        )))
        .add_service(pb::blob_server::BlobServer::new(grpc::BlobService::new(
            store,
        )));
    node.run(router).await?;
    Ok(())
}
