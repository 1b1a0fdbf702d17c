//! blob-server: stores erasure-coded, encrypted shards. It knows nothing
//! of objects, keys or buckets, and never holds a key: what it stores is
//! ciphertext (invariant 3).
//!
//! - [`store`]: shard files on disk — format, durable writes, verified
//!   reads, whole-shard checks, quarantine.
//! - [`grpc`]: the `Blob` service (gateway and meta; a blob peer may only
//!   read and write shards, for repair).
//! - [`scrub`]: the background and on-demand checksum walk; bad shards are
//!   moved aside and reported.
//! - [`rebuild`]: the repair worker — rebuilds shards from k good ones,
//!   or copies one to another server (a drain's or rebalance's move).
//! - [`report`]: scrub findings queued and delivered to the meta tier.
//! - [`confirm`]: before a delete, the meta tier's confirmation that no
//!   version, part or upload names the shard (coalesced).
//! - [`meta_link`]: the one place that calls the meta tier.
//! - [`registration`]: register with the meta tier and heartbeat space
//!   and what the store holds.
//! - [`pace`]: rate limits (scrub, repair).
//! - [`observe`]: metrics (docs/metrics.md).

pub mod confirm;
pub mod grpc;
pub mod meta_link;
pub mod observe;
pub mod pace;
pub mod rebuild;
pub mod registration;
pub mod report;
pub mod scrub;
pub mod store;

use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use hamster_proto::Role;
use hamster_proto::health::NodeService;
use hamster_proto::pb;
use hamster_proto::serve::{Node, NodeArgs};
use hamster_proto::tls::NodeTls;

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
    /// Background scrub rate in MB/s (10^6 bytes), at least 0.01. 0: enough
    /// to check the whole capacity once a week, at least 1 MB/s.
    #[arg(long, env = "HAMSTER_SCRUB_RATE", default_value_t = 0.0, value_parser = pace::parse_rate)]
    pub scrub_rate: f64,
    /// Seconds between the end of one background scrub pass and the start
    /// of the next (at least 1). The first pass starts after a random delay
    /// up to 60 s or this, whichever is shorter.
    #[arg(long, env = "HAMSTER_SCRUB_PAUSE_SECS", default_value_t = 3600)]
    pub scrub_pause_secs: u64,
    /// Repair reads, in MB/s (10^6 bytes) per rebuild, at least 0.01; 0:
    /// unlimited. One rebuild runs at a time, so this caps what repair
    /// takes from clients.
    #[arg(long, env = "HAMSTER_REPAIR_RATE", default_value_t = 64.0, value_parser = pace::parse_rate)]
    pub repair_rate: f64,
}

/// The `Blob` service with its scrubber and report queue; the caller
/// spawns `scrubber.run` and `reporter.run` (tests drive them directly).
pub struct Assembled {
    pub service: grpc::BlobService,
    pub scrubber: Arc<scrub::Scrubber>,
    pub reporter: Arc<report::Reporter>,
    pub confirmer: Arc<confirm::Confirmer>,
}

/// Builds the service: `meta` is where findings are reported and deletes
/// confirmed, `advertise`
/// this server's own address as peers and the meta tier name it,
/// `repair_rate` bytes/s (0: unlimited).
pub fn assemble(
    store: store::Store,
    tls: Arc<NodeTls>,
    meta: Vec<String>,
    advertise: String,
    repair_rate: f64,
) -> Assembled {
    let link = Arc::new(meta_link::MetaLink::new(meta, tls.clone()));
    let reporter = report::Reporter::new(link.clone());
    let confirmer = confirm::Confirmer::new(link);
    let scrubber = scrub::Scrubber::new(store.clone(), reporter.clone());
    let pool = hamster_proto::transport::Pool::new(tls, &[Role::Blob]);
    let rebuilder = Arc::new(rebuild::Rebuilder::new(
        pool,
        store.clone(),
        advertise,
        repair_rate,
    ));
    Assembled {
        service: grpc::BlobService::new(store, scrubber.clone(), rebuilder, confirmer.clone()),
        scrubber,
        reporter,
        confirmer,
    }
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
    // Only when scraped: publishing sums the store's stripes on every write.
    if args.node.metrics_listen.is_some() {
        observe::start(
            &store,
            args.data_dir.clone(),
            args.capacity_bytes,
            Duration::from_secs(args.heartbeat_secs.max(1)),
        );
    }
    let meta: Vec<String> = args
        .meta
        .iter()
        .filter(|m| !m.is_empty())
        .cloned()
        .collect();
    let address = advertise(&args);
    if meta.is_empty() {
        tracing::warn!("no --meta given: not registering with the meta tier");
    } else {
        // Trust bundles and certificate renewal (ADR 0019).
        hamster_proto::trust_sync::TrustSync::new(node.tls.clone(), node.paths().clone())
            .spawn(meta.clone());
        let reg = registration::Registration {
            link: Arc::new(meta_link::MetaLink::new(meta.clone(), node.tls.clone())),
            address: address.clone(),
            failure_domain: args
                .failure_domain
                .clone()
                .unwrap_or_else(|| node.tls.identity().node_id.clone()),
            data_dir: args.data_dir.clone(),
            capacity_bytes: args.capacity_bytes,
            interval: Duration::from_secs(args.heartbeat_secs.max(1)),
            store: store.clone(),
        };
        tokio::spawn(reg.run());
    }
    let capacity = args
        .capacity_bytes
        .unwrap_or_else(|| registration::disk_space(&args.data_dir).0);
    let scrub_rate = pace::scrub_rate(args.scrub_rate, capacity);
    let tmp_cleaner = store.clone();
    let parts = assemble(
        store,
        node.tls.clone(),
        meta,
        address,
        args.repair_rate * pace::MB,
    );
    tracing::info!(
        scrub_mb_per_s = scrub_rate / pace::MB,
        pause_secs = args.scrub_pause_secs,
        repair_mb_per_s = args.repair_rate,
        "scrub and repair limits"
    );
    tokio::spawn(parts.reporter.clone().run());
    tokio::spawn(tmp_cleaner.run_tmp_cleaner());
    tokio::spawn(
        parts
            .scrubber
            .clone()
            .run(scrub_rate, Duration::from_secs(args.scrub_pause_secs)),
    );
    let router = hamster_proto::transport::server()
        .add_service(pb::node_server::NodeServer::new(NodeService::new(
            node.tls.clone(),
        )))
        .add_service(pb::blob_server::BlobServer::new(parts.service));
    node.run(router).await?;
    Ok(())
}
