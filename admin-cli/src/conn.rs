//! The admin identity the CLI presents, and channels to cluster nodes.

use std::path::PathBuf;
use std::sync::Arc;

use hamster_proto::tls::{NodeTls, TlsPaths};
use hamster_proto::{Role, transport};
use tonic::transport::Channel;

#[derive(Debug, Clone, clap::Args)]
pub struct AdminConn {
    /// Admin certificate (role admin).
    #[arg(long, env = "HAMSTER_ADMIN_CERT")]
    pub admin_cert: PathBuf,
    /// Admin private key.
    #[arg(long, env = "HAMSTER_ADMIN_KEY")]
    pub admin_key: PathBuf,
    /// Trust bundle (CA certificates).
    #[arg(long, env = "HAMSTER_TRUST")]
    pub trust: PathBuf,
}

impl AdminConn {
    /// The admin's certificate, key and trust files.
    pub fn paths(&self) -> TlsPaths {
        TlsPaths {
            cert: self.admin_cert.clone(),
            key: self.admin_key.clone(),
            trust: self.trust.clone(),
        }
    }

    fn load(&self) -> anyhow::Result<Arc<NodeTls>> {
        let paths = self.paths();
        // A renewal `rotate-ca` was killed in the middle of is finished first.
        hamster_proto::trust_sync::recover_pending(&paths);
        Ok(NodeTls::load(&paths)?)
    }

    pub fn tls(&self) -> anyhow::Result<Arc<NodeTls>> {
        let tls = self.load()?;
        anyhow::ensure!(
            tls.identity().role == Role::Admin,
            "{} is a {} certificate, not an admin one",
            self.admin_cert.display(),
            tls.identity().role
        );
        Ok(tls)
    }

    /// A channel to `addr` presenting these files whatever their role
    /// (a node checking its own health); servers of any role accepted.
    pub fn channel_as_any_role(&self, addr: &str) -> anyhow::Result<Channel> {
        Ok(transport::channel(addr, &self.load()?, &[])?)
    }

    /// A channel to `addr`, accepting a server of any hamster role.
    pub fn channel(&self, addr: &str) -> anyhow::Result<Channel> {
        Ok(transport::channel(addr, &self.tls()?, &[])?)
    }
}

/// A listing command's flags: whom to ask, and JSON or a table.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The admin identity and a meta-server to ask (any member will do).
#[derive(Debug, Clone, clap::Args)]
pub struct MetaConn {
    #[command(flatten)]
    pub conn: AdminConn,
    /// Meta-servers of the cluster (host:port, comma-separated); the
    /// first that accepts a connection is asked.
    #[arg(long, env = "HAMSTER_META", value_delimiter = ',', required = true)]
    pub meta: Vec<String>,
}

impl MetaConn {
    pub fn channel(&self) -> anyhow::Result<Channel> {
        self.conn.channel(self.reachable())
    }

    /// Calls `f` on each meta-server in turn until one answers; the last
    /// refusal otherwise. For calls only some members can serve (minting
    /// or signing needs one with the CA key).
    pub async fn on_any<T>(
        &self,
        f: impl AsyncFn(Channel) -> Result<T, tonic::Status>,
    ) -> anyhow::Result<T> {
        let mut last = anyhow::anyhow!("no meta-server given");
        for addr in &self.meta {
            match self.conn.channel(addr) {
                Ok(ch) => match f(ch).await {
                    Ok(v) => return Ok(v),
                    Err(s) => last = anyhow::anyhow!("{addr}: {}", s.message()),
                },
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The first meta-server that takes a TCP connection (else the first).
    fn reachable(&self) -> &str {
        use std::net::{TcpStream, ToSocketAddrs};
        let up = |addr: &str| {
            addr.to_socket_addrs().into_iter().flatten().any(|a| {
                TcpStream::connect_timeout(&a, std::time::Duration::from_millis(500)).is_ok()
            })
        };
        self.meta
            .iter()
            .find(|m| up(m))
            .or(self.meta.first())
            .map_or("", String::as_str)
    }
}

/// Asks a meta-server for status while a command follows a rotation,
/// riding out leader changes and restarts for up to `patience` since the
/// last answer.
pub struct StatusPoller {
    last_answer: std::time::Instant,
    patience: std::time::Duration,
}

impl StatusPoller {
    pub fn new(patience_secs: u64) -> Self {
        Self {
            last_answer: std::time::Instant::now(),
            patience: std::time::Duration::from_secs(patience_secs),
        }
    }

    /// The status, or None if no meta-server answered this time (ask
    /// again shortly); an error once none has answered for `patience`.
    pub async fn poll(
        &mut self,
        meta: &MetaConn,
    ) -> anyhow::Result<Option<hamster_proto::pb::StatusResponse>> {
        use hamster_proto::pb::{StatusRequest, admin_client::AdminClient};
        let status = match meta.channel() {
            Ok(ch) => AdminClient::new(ch)
                .status(StatusRequest {})
                .await
                .map(|r| r.into_inner())
                .map_err(|s| anyhow::anyhow!("{}", s.message())),
            Err(e) => Err(e),
        };
        match status {
            Ok(s) => {
                self.last_answer = std::time::Instant::now();
                Ok(Some(s))
            }
            Err(e) => {
                anyhow::ensure!(
                    self.last_answer.elapsed() < self.patience,
                    "the meta tier has not answered for {} s: {e}",
                    self.patience.as_secs()
                );
                Ok(None)
            }
        }
    }
}
