//! meta-server: Hamster's control plane. openraft replicates a log of
//! metadata commands; each node applies them to its own SQLite DB.
//!
//! - [`raft`]: openraft's types and what we plug into it — the SQLite log
//!   store, the state machine and snapshots, the gRPC network and service.
//! - [`state`]: the metadata model — commands, schema and migrations,
//!   deterministic apply split by topic, reads (and listings) and writes.
//! - [`cluster`]: writes forwarded to the leader, linearizable reads,
//!   retrying through elections.
//! - [`batch`]: group commit — concurrent writes share one log entry.
//! - [`grpc`]: the `Meta`, `Registry` and `Admin` services, and the one
//!   place errors become gRPC statuses.
//! - [`ca`]: the CA directory (custody) and signing CSRs with the
//!   issuing CA, here or on the meta-server that holds its key.
//! - [`sweep`]: the leader's background removal of orphan shards.
//! - [`repair`]: the leader's repair planner (silent blob-servers marked
//!   down, under-replicated units rebuilt on blob-servers and swapped in
//!   by compare-and-set), its mover (drains, rebalance) and
//!   `StartRepair`'s scrub of every blob-server.
//! - [`observe`]: Prometheus series and the admin audit log.
//! - [`rewrapper`]: the leader's rewrapper for master-key rotation, and
//!   this node's reports of the keys it holds.
//! - `fuzz` (hidden): the Raft messages and records above, as decode entry
//!   points for the fuzz harness (hamster-tests `fuzz-all`, ADR 0033).
//!
//! A request may reach any node: followers forward writes to the leader
//! and read through the leader's read index.

// openraft's StorageError is large, and its storage traits return it.
#![allow(clippy::result_large_err)]

pub mod backup;
pub mod batch;
pub mod ca;
pub mod cluster;
#[doc(hidden)]
pub mod fuzz;
pub mod grpc;
pub mod observe;
pub mod raft;
pub mod repair;
pub mod rewrapper;
pub mod state;
pub mod sweep;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hamster_proto::Role;
use hamster_proto::health::NodeService;
use hamster_proto::keyring::Keyring;
use hamster_proto::pb;
use hamster_proto::serve::{Node, NodeArgs};
use openraft::SnapshotPolicy;

use crate::cluster::Meta;
use crate::raft::log_store::LogStore;
use crate::raft::network::{MAX_MESSAGE, Peers};
use crate::raft::state_machine::{StateDb, StateMachine};
use crate::raft::{MetaNode, NodeId};

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
    /// File holding the next master key, for a rotation. May not exist
    /// yet: both files are read again on SIGHUP.
    #[arg(long, env = "HAMSTER_NEXT_MASTER_KEY_FILE")]
    pub next_master_key_file: Option<PathBuf>,
    /// Keys rewrapped per proposal during a master-key rotation. Up to
    /// three proposals are in flight, and proposals that queue together
    /// share one Raft entry: keep entries well under the 64 MiB message
    /// limit divided by the entries a catch-up sends (16): at most 2000.
    #[arg(long, default_value_t = 500)]
    pub rewrap_batch: usize,
    /// Pause between rewrap proposals (up to three in flight), to bound a
    /// rotation's load.
    #[arg(long, default_value_t = 0)]
    pub rewrap_pause_ms: u64,
    /// Append one JSON line per admin call (Admin service) to FILE: who,
    /// what, outcome, duration; never a secret. Reopened on SIGHUP.
    #[arg(long, env = "HAMSTER_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,
    /// Directory for the Raft log, the metadata DB and snapshots.
    #[arg(long, env = "HAMSTER_DATA_DIR")]
    pub data_dir: PathBuf,
    /// This node's Raft id (> 0, unique in the cluster, never reused).
    #[arg(long, env = "HAMSTER_RAFT_ID")]
    pub raft_id: NodeId,
    /// Address peers reach this node at (default: --listen).
    #[arg(long, env = "HAMSTER_ADVERTISE")]
    pub advertise: Option<String>,
    /// The first cluster, as ID=NAME@HOST:PORT,... The same list on every
    /// founding node; ignored once the node is initialized. Nodes added
    /// later start without it and join through `AddMember`.
    #[arg(long, env = "HAMSTER_INITIAL_MEMBERS", value_delimiter = ',')]
    pub initial_members: Vec<String>,
    /// Raft heartbeat interval, milliseconds.
    #[arg(long, env = "HAMSTER_HEARTBEAT_MS", default_value_t = 250)]
    pub heartbeat_ms: u64,
    /// Election timeout lower bound, milliseconds (upper = 2x).
    #[arg(long, env = "HAMSTER_ELECTION_MS", default_value_t = 1000)]
    pub election_ms: u64,
    /// Build a snapshot after this many applied entries.
    #[arg(long, env = "HAMSTER_SNAPSHOT_EVERY", default_value_t = 5000)]
    pub snapshot_every: u64,
    /// Log entries kept behind the last snapshot for lagging followers.
    #[arg(long, env = "HAMSTER_KEEP_LOGS", default_value_t = 1000)]
    pub keep_logs: u64,
    /// How long a call waits through an election before failing, ms.
    #[arg(long, env = "HAMSTER_CALL_WAIT_MS", default_value_t = 10_000)]
    pub call_wait_ms: u64,
    /// Seconds between sweeps for orphan shards (leader only; 0: never).
    #[arg(long, env = "HAMSTER_SWEEP_EVERY_SECS", default_value_t = 3600)]
    pub sweep_every_secs: u64,
    /// A shard no metadata names is deleted once it is this old. Commits
    /// of shards older than half of it are refused. Same on every node.
    #[arg(long, env = "HAMSTER_SWEEP_GRACE_SECS", default_value_t = 86_400)]
    pub sweep_grace_secs: u64,
    /// TEST HOOK, never for production: the minimum size of a multipart
    /// object's parts but the last, instead of S3's 5 MiB (0: S3's). Every
    /// meta-server must be given the same value.
    #[arg(
        long,
        env = "HAMSTER_TEST_MIN_PART_SIZE",
        default_value_t = 0,
        hide = true
    )]
    pub test_min_part_size: u64,
    /// Milliseconds between repair rounds, each followed by a mover round
    /// (drains, rebalance) (leader only; 0: never).
    #[arg(long, env = "HAMSTER_REPAIR_EVERY_MS", default_value_t = 10_000)]
    pub repair_every_ms: u64,
    /// Rebuilds the repair planner runs at once, and moves the mover runs
    /// at once (each blob-server also runs one at a time, throttled by its
    /// --repair-rate).
    #[arg(long, env = "HAMSTER_REPAIR_PARALLEL", default_value_t = 2)]
    pub repair_parallel: usize,
    /// Rebalance band: a usable blob-server is left alone while its
    /// stored bytes are within this percent of its capacity's share of
    /// everything stored (or within the slack).
    #[arg(long, env = "HAMSTER_REBALANCE_BAND_PCT", default_value_t = 10)]
    pub rebalance_band_pct: u32,
    /// Rebalance slack, MiB: a server this close to its share is left
    /// alone whatever the band says (keeps small clusters still).
    #[arg(long, env = "HAMSTER_REBALANCE_SLACK_MB", default_value_t = 64)]
    pub rebalance_slack_mb: u64,
    /// A blob-server silent this long is marked down: its shards count as
    /// lost and are rebuilt elsewhere; its next heartbeat revives it. Long
    /// enough that a reboot does not start a whole server's repair.
    #[arg(long, env = "HAMSTER_BLOB_DOWN_AFTER_SECS", default_value_t = 300)]
    pub blob_down_after_secs: u64,
    /// Serve joins by token here (server-only TLS; ADR 0015). CSRs are
    /// signed by the issuing CA, here or on the meta-server holding it.
    #[arg(long, env = "HAMSTER_JOIN_LISTEN")]
    pub join_listen: Option<SocketAddr>,
    /// CA directory (ca.crt and ca.key from `hamster init`, and the CAs
    /// `hamster rotate-ca` mints here). Keys stay on this disk; a node
    /// with one signs CSRs and can mint the next CA (ADR 0019).
    #[arg(long, env = "HAMSTER_CA_DIR")]
    pub ca_dir: Option<PathBuf>,
    /// UNSAFE LAST RESORT, when the majority of the meta tier is lost for
    /// good: before starting, apply every entry in this node's log and
    /// make it a one-member cluster with that state; grow it again with
    /// `hamster member add`. Old members must never start again with
    /// their old data. Refused once done (see force-new-cluster.done in
    /// the data dir): remove the flag after this start.
    #[arg(long)]
    pub force_new_cluster: bool,
}

/// Parses "ID=NAME@HOST:PORT".
pub fn parse_member(s: &str) -> anyhow::Result<(NodeId, MetaNode)> {
    let (id, rest) = s
        .split_once('=')
        .context("member must be ID=NAME@HOST:PORT")?;
    let (name, addr) = rest
        .split_once('@')
        .context("member must be ID=NAME@HOST:PORT")?;
    let id: NodeId = id.trim().parse().context("member id must be a number")?;
    anyhow::ensure!(id > 0, "raft ids start at 1");
    Ok((
        id,
        MetaNode {
            addr: addr.trim().into(),
            name: name.trim().into(),
        },
    ))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.raft_id > 0, "--raft-id must be > 0");
    if args.test_min_part_size > 0 {
        tracing::warn!(
            bytes = args.test_min_part_size,
            "TEST HOOK: multipart parts may be smaller than S3's 5 MiB"
        );
        state::multipart::set_test_min_part_size(args.test_min_part_size);
    }
    let keys = Arc::new(Keyring::load(
        &args.master_key_file,
        args.next_master_key_file.as_deref(),
    )?);
    tracing::info!(keys = %keys.describe(), "master keys loaded");
    let initial: BTreeMap<NodeId, MetaNode> = args
        .initial_members
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| parse_member(s))
        .collect::<anyhow::Result<_>>()?;

    let node = Node::bind(&args.node, Role::Meta).await?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    if args.force_new_cluster {
        // The address peers knew it by, unless told otherwise: --advertise,
        // else a --listen that names a host, else (empty) the address the
        // old membership has for it.
        let addr = match &args.advertise {
            Some(a) => a.clone(),
            None if args.node.listen.ip().is_unspecified() => String::new(),
            None => args.node.listen.to_string(),
        };
        let me = MetaNode {
            addr,
            name: node.tls.identity().node_id.clone(),
        };
        backup::reseed::force_new_cluster(&args.data_dir, args.raft_id, me)
            .await
            .context("--force-new-cluster")?;
    }
    let log = LogStore::open(&args.data_dir.join("raft-log.db"))
        .await
        .context("opening the Raft log")?;
    let db = StateDb::open(&args.data_dir)
        .await
        .context("opening the metadata DB")?;

    let config = openraft::Config {
        cluster_name: "hamster".into(),
        heartbeat_interval: args.heartbeat_ms,
        election_timeout_min: args.election_ms,
        election_timeout_max: args.election_ms * 2,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(args.snapshot_every),
        max_in_snapshot_log_to_keep: args.keep_logs,
        // Snapshot chunks well under the gRPC message limit, each given
        // time to cross a busy link and be written.
        snapshot_max_chunk_size: 4 * 1024 * 1024,
        install_snapshot_timeout: 10_000,
        // Entries carry up to batch::MAX_BATCH commands: 16 of them keep an
        // AppendEntries within a heartbeat's time even in catch-up.
        max_payload_entries: 16,
        ..Default::default()
    }
    .validate()?;
    debug_assert!(config.snapshot_max_chunk_size < MAX_MESSAGE as u64);
    let peers = Peers::new(node.tls.clone());
    let raft = raft::Raft::new(
        args.raft_id,
        Arc::new(config),
        peers.clone(),
        log.clone(),
        StateMachine::new(db.clone()),
    )
    .await
    .context("starting Raft")?;

    let initialized = raft.is_initialized().await?;
    let awaiting = args.data_dir.join(backup::reseed::AWAIT_MARKER);
    if initialized {
        // A restored member that has joined: the marker has done its job.
        match std::fs::remove_file(&awaiting) {
            Ok(()) => tracing::info!("restored member is part of the cluster now"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(error = %e, file = %awaiting.display(), "removing the restore marker")
            }
        }
    }
    if !initial.is_empty() {
        anyhow::ensure!(
            initial.contains_key(&args.raft_id),
            "--initial-members must include this node's --raft-id"
        );
        if initialized {
            tracing::info!("already initialized; --initial-members ignored");
        } else if awaiting.exists() {
            // Restored from a backup on another member: founding a
            // cluster here would split it from the restored state.
            tracing::info!(
                "restored member: waiting for the restored leader to replicate its state"
            );
        } else {
            // Every founding node proposes the same membership; openraft
            // makes that safe, and whoever is second gets NotAllowed.
            match raft.initialize(initial.clone()).await {
                Ok(()) => tracing::info!(members = initial.len(), "cluster initialized"),
                Err(e) => tracing::info!(error = %e, "initialize skipped"),
            }
        }
    }

    let meta = Arc::new(Meta {
        raft: raft.clone(),
        batcher: batch::Batcher::start(raft.clone()),
        raft_id: args.raft_id,
        db,
        log,
        peers,
        tls: node.tls.clone(),
        wait: Duration::from_millis(args.call_wait_ms),
        write_window: Duration::from_secs(args.sweep_grace_secs / 2),
    });
    if args.sweep_every_secs > 0 {
        sweep::Sweep {
            meta: meta.clone(),
            every: Duration::from_secs(args.sweep_every_secs),
            grace: Duration::from_secs(args.sweep_grace_secs),
        }
        .spawn();
    }
    if args.node.metrics_listen.is_some() {
        observe::series::spawn(meta.clone());
    }
    let audit = match &args.audit_log {
        Some(path) => Some(observe::audit::open(path).await?),
        None => None,
    };
    let kick = repair::Kick::default();
    let band = repair::balance::Band {
        pct: args.rebalance_band_pct,
        slack_bytes: args.rebalance_slack_mb.saturating_mul(1 << 20),
    };
    if args.repair_every_ms > 0 {
        repair::Repair {
            meta: meta.clone(),
            every: Duration::from_millis(args.repair_every_ms),
            down_after: Duration::from_secs(args.blob_down_after_secs.max(1)),
            parallel: args.repair_parallel.max(1),
            batch: 256,
            band,
            kick: kick.clone(),
        }
        .spawn();
    }
    keys.reload_on_sighup()?;
    rewrapper::report_keys(meta.clone(), keys.clone());
    rewrapper::Rewrapper {
        meta: meta.clone(),
        keys: keys.clone(),
        batch: args.rewrap_batch.clamp(1, 2000),
        pause: Duration::from_millis(args.rewrap_pause_ms),
    }
    .spawn();
    let issuer = Arc::new(ca::Issuer {
        meta: meta.clone(),
        store: ca::CaStore {
            dir: args.ca_dir.clone(),
        },
    });
    // This node is a member like any other: it syncs trust and renews its
    // certificate through its own Certs service.
    let own = match node.local_addr() {
        Some(a) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
        Some(a) => a.to_string(),
        None => args.node.listen.to_string(),
    };
    hamster_proto::trust_sync::TrustSync::new(node.tls.clone(), node.paths().clone())
        .spawn(vec![own]);
    let router = hamster_proto::transport::server()
        .add_service(pb::node_server::NodeServer::new(NodeService::new(
            node.tls.clone(),
        )))
        .add_service(
            // Explicit limits, both ways (ADR 0031).
            pb::meta_server::MetaServer::new(grpc::meta::MetaService::new(meta.clone()))
                .max_decoding_message_size(hamster_proto::message_size::META_REQUEST_MAX)
                .max_encoding_message_size(hamster_proto::message_size::META_ANSWER_MAX),
        )
        .add_service(pb::registry_server::RegistryServer::new(
            grpc::registry::RegistryService::new(meta.clone()),
        ))
        .add_service(observe::audit::Audited::new(
            pb::admin_server::AdminServer::new(grpc::admin::AdminService::new(
                meta.clone(),
                keys.clone(),
                issuer.store.clone(),
                kick,
                band,
            )),
            audit,
        ))
        .add_service(pb::certs_server::CertsServer::new(
            grpc::certs::CertsService::new(meta.clone(), issuer.clone(), args.node.trust.clone()),
        ))
        .add_service(
            pb::raft_server::RaftServer::new(raft::service::RaftService::new(meta.clone()))
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        );
    if let Some(addr) = args.join_listen {
        let service =
            grpc::join::JoinService::new(meta.clone(), issuer.clone(), args.node.trust.clone());
        let local = grpc::join::serve(addr, meta.clone(), service)
            .await
            .with_context(|| format!("binding the join port {addr}"))?;
        tracing::info!(addr = %local, "serving joins");
    }
    let result = node.run(router).await;
    if let Err(e) = raft.shutdown().await {
        tracing::warn!(error = %e, "raft shutdown");
    }
    result?;
    Ok(())
}
