//! What every server binary does the same way: flags for its TLS files and
//! listen address, logging, loading its identity, reloading on SIGHUP, and
//! serving until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::transport::server::Router;

use crate::authz::AuthzLayer;
use crate::identity::Role;
use crate::tls::{NodeTls, TlsError, TlsPaths};

/// Flags shared by meta-server, blob-server and gateway.
#[derive(Clone, Debug, clap::Args)]
pub struct NodeArgs {
    /// Address the gRPC (mTLS) server listens on.
    #[arg(long, env = "HAMSTER_LISTEN", default_value = "127.0.0.1:7400")]
    pub listen: SocketAddr,
    /// This node's certificate (PEM, leaf first).
    #[arg(long, env = "HAMSTER_TLS_CERT")]
    pub tls_cert: PathBuf,
    /// This node's private key (PEM). Generated on the node; never leaves it.
    #[arg(long, env = "HAMSTER_TLS_KEY")]
    pub tls_key: PathBuf,
    /// The CA certificates this node trusts (PEM bundle).
    #[arg(long, env = "HAMSTER_TRUST")]
    pub trust: PathBuf,
    /// Join first, if --tls-cert does not exist yet: a meta-server's join
    /// port (host:port). Blob-servers and gateways only.
    #[arg(long, env = "HAMSTER_JOIN", requires = "join_token_file")]
    pub join: Option<String>,
    /// File holding the join token (`hamster token create`).
    #[arg(long, env = "HAMSTER_JOIN_TOKEN_FILE", requires = "join")]
    pub join_token_file: Option<PathBuf>,
    /// The node id to join as (default: the host name).
    #[arg(long, env = "HAMSTER_NODE_ID")]
    pub node_id: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (plain HTTP, no
    /// secrets in it; keep it on loopback or a private network).
    #[arg(long, env = "HAMSTER_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Stop (as on SIGTERM) once process PID is no longer this one's
    /// parent: it exited, even by SIGKILL. `hamster dev` passes its own pid.
    #[arg(long, env = "HAMSTER_EXIT_WITH_PARENT", value_name = "PID")]
    pub exit_with_parent: Option<u32>,
}

impl NodeArgs {
    pub fn tls_paths(&self) -> TlsPaths {
        TlsPaths {
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            trust: self.trust.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("certificate says role {found}, but this binary is a {expected} node")]
    WrongRole { expected: Role, found: Role },
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("serving: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
    #[error(transparent)]
    Join(#[from] crate::join::JoinError),
    #[error("join: {0}")]
    JoinSetup(String),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
}

/// Logs to stderr; level from RUST_LOG (default: info for Hamster, warn
/// for openraft, whose info level narrates every replication step).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Gets this node's first certificate with a join token.
async fn join(
    addr: &str,
    token_file: &std::path::Path,
    node_id: Option<String>,
    role: Role,
    paths: &TlsPaths,
) -> Result<(), ServeError> {
    let setup = |m: String| ServeError::JoinSetup(m);
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(token_file)
            .map_err(|e| setup(format!("reading {}: {e}", token_file.display())))?,
    );
    let token = crate::join::JoinToken::parse(&text)?;
    if token.role != role {
        return Err(setup(format!(
            "the token is for a {} node, not a {role}",
            token.role
        )));
    }
    let node_id = match node_id {
        Some(id) => id,
        None => std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_lowercase())
            .filter(|h| !h.is_empty())
            .ok_or_else(|| setup("no --node-id and no host name".into()))?,
    };
    for p in [&paths.cert, &paths.key, &paths.trust] {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(|e| setup(format!("{}: {e}", dir.display())))?;
        }
    }
    // No certificate: whatever an interrupted join left is not used.
    for p in [&paths.key, &paths.trust] {
        let _ = std::fs::remove_file(p);
    }
    tracing::info!(%addr, %node_id, %role, token = %token.id, "joining");
    crate::join::join(addr, &token, &node_id, paths).await?;
    tracing::info!(%node_id, "joined: certificate and trust written");
    Ok(())
}

/// Sends this process SIGTERM (its orderly shutdown) once `parent` is no
/// longer its parent, then exits if that shutdown takes more than 10 s.
/// The parent is named, not remembered: a child whose parent died before
/// the first look (re-parented to init or a subreaper) stops too, and a
/// parent that is pid 1 itself (a container's entrypoint) is fine. Polled
/// every 500 ms, which needs no unsafe code.
fn watch_parent(parent: u32) {
    use rustix::process::{Signal, getpid, getppid, kill_process};
    tokio::spawn(async move {
        loop {
            if getppid().map(|p| p.as_raw_nonzero().get() as u32) != Some(parent) {
                tracing::warn!(
                    parent,
                    "the parent process exited: stopping (--exit-with-parent)"
                );
                let _ = kill_process(getpid(), Signal::TERM);
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                tracing::error!("shutdown took over 10 s after the parent exited; exiting");
                std::process::exit(1);
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    });
}

/// A server node with its identity loaded and its port bound.
pub struct Node {
    pub tls: Arc<NodeTls>,
    paths: TlsPaths,
    listener: TcpListener,
}

impl Node {
    /// Loads the TLS files, checks the certificate is for `role`, binds;
    /// serves metrics first when asked (`--metrics-listen`), so a join
    /// or a slow start is visible too.
    pub async fn bind(args: &NodeArgs, role: Role) -> Result<Self, ServeError> {
        if let Some(parent) = args.exit_with_parent {
            watch_parent(parent);
        }
        if let Some(addr) = args.metrics_listen {
            crate::metrics::serve(addr, role).await?;
        }
        let paths = args.tls_paths();
        if let (Some(addr), Some(token_file)) = (&args.join, &args.join_token_file)
            && !paths.cert.exists()
        {
            join(addr, token_file, args.node_id.clone(), role, &paths).await?;
        }
        // A certificate renewal a crash interrupted is finished first.
        crate::trust_sync::recover_pending(&paths);
        let tls = NodeTls::load(&paths)?;
        let found = tls.identity().role;
        if found != role {
            return Err(ServeError::WrongRole {
                expected: role,
                found,
            });
        }
        let listener = TcpListener::bind(args.listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: args.listen,
                source,
            })?;
        Ok(Self {
            tls,
            paths,
            listener,
        })
    }

    /// Where this node's certificate, key and trust live.
    pub fn paths(&self) -> &TlsPaths {
        &self.paths
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves `router` until SIGTERM or SIGINT; SIGHUP re-reads the TLS files.
    pub async fn run(
        self,
        router: Router<tower::layer::util::Stack<AuthzLayer, tower::layer::util::Identity>>,
    ) -> Result<(), ServeError> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup()).map_err(ServeError::Signal)?;
        let mut term = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
        let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;

        let (tls, paths) = (self.tls.clone(), self.paths.clone());
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match tls.reload(&paths) {
                    Ok(()) => tracing::info!(
                        trusted = ?tls.trusted_fingerprints(),
                        "TLS certificate and trust reloaded"
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "TLS reload failed; keeping the previous state")
                    }
                }
            }
        });

        tracing::info!(
            addr = %self.listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            identity = %self.tls.identity(),
            "listening"
        );
        let incoming = crate::transport::incoming(self.listener, self.tls.clone());
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            tracing::info!("shutting down");
        };
        router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await?;
        Ok(())
    }
}
