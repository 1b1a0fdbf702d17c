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
    fn load(&self) -> anyhow::Result<Arc<NodeTls>> {
        Ok(NodeTls::load(&TlsPaths {
            cert: self.admin_cert.clone(),
            key: self.admin_key.clone(),
            trust: self.trust.clone(),
        })?)
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
