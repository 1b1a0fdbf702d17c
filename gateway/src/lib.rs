//! gateway: speaks S3, holds no state of its own.
//!
//! A request flows through these modules in order:
//!
//! - [`listener`]: the S3 endpoint (HTTP, or HTTPS given a certificate)
//!   with its connection limits (cap, header/idle/TLS-handshake timeouts,
//!   ADR 0032); every answer gets request ids (`x-amz-request-id`, and in
//!   error bodies); its guard refuses what needs no body or key
//!   (PostObject, SigV2, presigned URLs over a week, a signing region
//!   that is no region name), then s3s parses, routes and checks SigV4.
//! - [`s3`]: the S3 dispatch, one file per S3 topic (buckets, put, get,
//!   delete, list, ACLs, ...), access keys (SigV4 secret and rights, one
//!   cache), the access check (which right each operation needs, ADR
//!   0027), and the one place errors become S3 codes.
//! - [`pipeline`]: the data path, one module per stage — chunk, encrypt,
//!   erasure, placement, fanout (ack rule), then commit; and back: fanin
//!   (hedged, rebuilding from parity), decrypt.
//! - [`meta`]: the meta tier client (failover between meta-servers, a
//!   deadline per attempt, silent servers avoided for a while; refusals
//!   as `hamster_proto::ErrorCode`).
//! - [`cluster`]: the cached view of the cluster — blob-server registry,
//!   erasure profile, write key — that placement and commit draw from.
//! - [`keys`]: reports of the master keys this gateway holds.
//! - [`observe`]: Prometheus series and the access log (`--access-log`),
//!   the outermost layer of the S3 service.
//! - `fuzz` (hidden): the header parsing above, as entry points for the
//!   fuzz harness (hamster-tests `fuzz-all`, ADR 0033).

pub mod cluster;
#[doc(hidden)]
pub mod fuzz;
pub mod keys;
pub mod listener;
pub mod meta;
pub mod observe;
pub mod pipeline;
pub mod s3;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hamster_proto::Role;
use hamster_proto::health::NodeService;
use hamster_proto::keyring::Keyring;
use hamster_proto::pb;
use hamster_proto::serve::{Node, NodeArgs};
use hamster_proto::transport::Pool;

#[derive(Debug, clap::Parser)]
#[command(name = "gateway", version, about = "Hamster S3 gateway")]
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
    /// Meta-servers (host:port, comma-separated); any one of them will do.
    #[arg(long, env = "HAMSTER_META", value_delimiter = ',', required = true)]
    pub meta: Vec<String>,
    /// Where S3 clients connect.
    #[arg(long, env = "HAMSTER_S3_LISTEN", default_value = "0.0.0.0:9000")]
    pub s3_listen: String,
    /// HTTPS for the S3 endpoint: certificate chain (PEM).
    #[arg(long, env = "HAMSTER_S3_TLS_CERT", requires = "s3_tls_key")]
    pub s3_tls_cert: Option<PathBuf>,
    /// HTTPS for the S3 endpoint: private key (PEM).
    #[arg(long, env = "HAMSTER_S3_TLS_KEY", requires = "s3_tls_cert")]
    pub s3_tls_key: Option<PathBuf>,
    /// Base domains for virtual-hosted-style requests (BUCKET.DOMAIN);
    /// path-style requests work either way. Comma-separated.
    #[arg(long, env = "HAMSTER_S3_DOMAIN", value_delimiter = ',')]
    pub domain: Vec<String>,
    /// Accept SigV2 (Authorization: AWS id:sig, and v2 presigned URLs).
    /// Off by default: a v2 presigned URL carries its own expiry, with
    /// no upper bound, and v2 signs less of the request than v4.
    #[arg(long, env = "HAMSTER_ALLOW_SIGV2")]
    pub allow_sigv2: bool,
    /// Ask parity when data shards have not all answered after this long.
    #[arg(long, default_value_t = 250)]
    pub hedge_after_ms: u64,
    /// Objects of at most this many bytes, when the size is known before
    /// the body is read (Content-Length, x-amz-decoded-content-length, a
    /// copy's source), are stored as 1+m mirror copies instead of k+m
    /// shards: the same m servers may be lost, half the blob writes. 0
    /// disables. The default is the largest size at which the mirror's
    /// files take no more 4 KiB disk blocks than 4+2's.
    #[arg(long, env = "HAMSTER_MIRROR_MAX_BYTES", default_value_t = pipeline::profile::MIRROR_MAX_BYTES)]
    pub mirror_max_bytes: u64,
    /// A blob-server silent for this long gets no new shards.
    #[arg(long, default_value_t = 15)]
    pub blob_down_after_secs: u64,
    /// Deadline of one call to one meta-server; past it the call moves on
    /// to the next meta-server, and the silent one is avoided for 30 s.
    #[arg(long, env = "HAMSTER_META_CALL_TIMEOUT_MS", default_value_t = 5000)]
    pub meta_call_timeout_ms: u64,
    #[command(flatten)]
    pub s3_limits: listener::Limits,
    /// Write one JSON line per S3 request to FILE (created 0600; reopened
    /// on SIGHUP, for logrotate). No secret or signature is ever in it.
    #[arg(long, env = "HAMSTER_ACCESS_LOG")]
    pub access_log: Option<PathBuf>,
    /// TEST HOOK, never for production: discard the first N successful
    /// CommitVersion answers, as if each was lost after the commit applied,
    /// so the call retries on the next meta-server (the retry-hole test).
    #[arg(
        long,
        env = "HAMSTER_TEST_DROP_COMMIT_ANSWERS",
        default_value_t = 0,
        hide = true
    )]
    pub test_drop_commit_answers: u64,
}

/// Unix milliseconds, from this gateway's clock: for shard ids and
/// heartbeat ages, never for a version's time (the meta tier stamps it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// s3s' limits. PostObject is refused before s3s ([`listener::guard`]);
/// should a form reach s3s anyway, it may buffer no file byte and a few
/// KiB of fields, not the 5 GiB and 20 MiB of its defaults.
fn s3s_config() -> s3s::config::S3Config {
    let mut c = s3s::config::S3Config::default();
    c.post_object_max_file_size = 0;
    c.form_max_field_size = 4096;
    c.form_max_fields_size = 16 * 1024;
    c.form_max_parts = 16;
    c
}

/// Opens the access log and reopens it on every SIGHUP (after logrotate
/// moved it away).
async fn open_access_log(
    path: &std::path::Path,
) -> anyhow::Result<hamster_proto::jsonlog::JsonLog> {
    let log = hamster_proto::jsonlog::JsonLog::open(path, "access")
        .await
        .context("--access-log")?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("SIGHUP handler")?;
    let reopen = log.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            reopen.reopen();
        }
    });
    tracing::info!(path = %path.display(), "access log open");
    Ok(log)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let keys = Arc::new(Keyring::load(
        &args.master_key_file,
        args.next_master_key_file.as_deref(),
    )?);
    tracing::info!(keys = %keys.describe(), "master keys loaded");
    keys.reload_on_sighup()?;
    let node = Node::bind(&args.node, Role::Gateway).await?;
    observe::metrics::describe();
    let access_log = match &args.access_log {
        Some(path) => Some(open_access_log(path).await?),
        None => None,
    };
    let meta = meta::MetaTier::new(args.meta.clone(), &node.tls).context("--meta")?;
    if args.test_drop_commit_answers > 0 {
        tracing::warn!(
            n = args.test_drop_commit_answers,
            "TEST HOOK: the first CommitVersion answers will be dropped"
        );
    }
    let meta = Arc::new(
        meta.drop_commit_answers(args.test_drop_commit_answers)
            .call_timeout(Duration::from_millis(args.meta_call_timeout_ms.max(1))),
    );
    let cluster = cluster::ClusterView::new(
        meta.clone(),
        Duration::from_secs(args.blob_down_after_secs),
        args.mirror_max_bytes,
    );
    cluster.spawn_refresh();
    keys::spawn_reports(meta.clone(), keys.clone());
    // Trust bundles and certificate renewal (ADR 0019).
    hamster_proto::trust_sync::TrustSync::new(node.tls.clone(), node.paths().clone()).spawn(
        args.meta
            .iter()
            .filter(|m| !m.is_empty())
            .cloned()
            .collect(),
    );
    let gateway = s3::Gateway {
        meta: meta.clone(),
        cluster,
        pool: Pool::new(node.tls.clone(), &[Role::Blob]),
        keys: keys.clone(),
        hedge_after: Duration::from_millis(args.hedge_after_ms),
    };
    let mut builder = s3s::service::S3ServiceBuilder::new(gateway);
    // One cache of access keys (secret and rights) for SigV4 and rights.
    let access_keys = Arc::new(s3::auth::Keys::new(meta.clone(), keys));
    builder.set_auth(s3::auth::Auth::new(access_keys.clone()));
    builder.set_access(s3::access::Access::new(access_keys, meta));
    if !args.domain.is_empty() {
        let host = s3s::host::MultiDomain::new(&args.domain)
            .map_err(|e| anyhow::anyhow!("--domain: {e}"))?;
        builder.set_host(listener::Domains(host));
    }
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        s3s_config(),
    ))));
    let service = observe::Observe {
        inner: listener::request_id::RequestIds {
            inner: listener::guard::Guard {
                inner: builder.build(),
                allow_sigv2: args.allow_sigv2,
            },
        },
        log: access_log,
    };
    if args.allow_sigv2 {
        tracing::warn!("SigV2 is enabled (--allow-sigv2)");
    }
    let tls = match (&args.s3_tls_cert, &args.s3_tls_key) {
        (Some(c), Some(k)) => Some(listener::tls_config(c, k)?),
        _ => None,
    };
    let https = tls.is_some();
    let s3 = listener::S3Listener::bind(&args.s3_listen, tls, args.s3_limits.clone()).await?;
    tracing::info!(addr = %s3.local_addr()?, https, "S3 endpoint listening");
    let s3_task = tokio::spawn(s3.serve(service));

    let router = hamster_proto::transport::server().add_service(pb::node_server::NodeServer::new(
        NodeService::new(node.tls.clone()),
    ));
    let result = node.run(router).await;
    s3_task.abort();
    result?;
    Ok(())
}
