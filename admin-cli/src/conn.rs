//! The admin identity the CLI presents, and channels to cluster nodes.
//!
//! Admin changes are made on the meta leader only: a follower never
//! forwards one (a meta certificate must not be able to forge an admin's
//! change, ADR 0030) and answers `NotLeader` with the leader's address.
//! [`LeaderChannel`] sends such a call once more, to that address, so
//! `--meta` may name any member.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hamster_proto::error::{ERROR_CODE_KEY, LEADER_KEY};
use hamster_proto::tls::{NodeTls, TlsPaths};
use hamster_proto::{ErrorCode, Role, transport};
use http_body_util::{BodyExt, Full};
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http;
use tonic::transport::Channel as TonicChannel;

/// What every admin call goes through: a channel that follows a
/// `NotLeader` answer to the leader.
pub type Channel = LeaderChannel;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A channel to one meta-server that, when it answers `NotLeader` with
/// the leader's address, sends the call again there (once: a second
/// `NotLeader` is the answer). Requests are buffered for that (admin
/// calls are unary and small).
#[derive(Clone)]
pub struct LeaderChannel {
    inner: TonicChannel,
    tls: Arc<NodeTls>,
}

impl LeaderChannel {
    fn new(addr: &str, tls: Arc<NodeTls>) -> anyhow::Result<Self> {
        Ok(Self {
            inner: transport::channel(addr, &tls, &[])?,
            tls,
        })
    }
}

/// The leader's address, if `resp` is a `NotLeader` answer naming one
/// (a refusal travels in the headers: a trailers-only response).
pub fn leader_of<B>(resp: &http::Response<B>) -> Option<String> {
    let h = resp.headers();
    let code = h.get(ERROR_CODE_KEY)?.to_str().ok()?;
    if code != ErrorCode::NotLeader.as_str() {
        return None;
    }
    let addr = h.get(LEADER_KEY)?.to_str().ok()?;
    (!addr.is_empty()).then(|| addr.to_string())
}

fn rebuild(parts: &http::request::Parts, body: Bytes) -> http::Request<Body> {
    let mut req = http::Request::new(Body::new(Full::new(body)));
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    req
}

impl Service<http::Request<Body>> for LeaderChannel {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // The clone that was made ready is the one to call (tower's rule).
        let ready = self.inner.clone();
        let mut first = std::mem::replace(&mut self.inner, ready);
        let tls = self.tls.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await?.to_bytes();
            let resp = first.call(rebuild(&parts, body.clone())).await?;
            let Some(leader) = leader_of(&resp) else {
                return Ok(resp);
            };
            let mut ch = transport::channel(&leader, &tls, &[Role::Meta])?;
            std::future::poll_fn(|cx| ch.poll_ready(cx)).await?;
            Ok(ch.call(rebuild(&parts, body)).await?)
        })
    }
}

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
        LeaderChannel::new(addr, self.load()?)
    }

    /// A channel to `addr`, accepting a server of any hamster role; a
    /// meta-server's `NotLeader` answer is followed to the leader.
    pub fn channel(&self, addr: &str) -> anyhow::Result<Channel> {
        LeaderChannel::new(addr, self.tls()?)
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
