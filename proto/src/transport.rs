//! gRPC over the live mTLS configs of [`crate::tls`].
//!
//! Server: our own accept loop runs the rustls handshake (tonic's built-in
//! TLS has a fixed certificate and CA), reads the peer's identity from its
//! certificate once per connection, and hands tonic a stream whose connect
//! info is that identity. Client: a connector that dials TCP and runs the
//! handshake with the node's client config.
//!
//! A peer the cluster removes is refused on connections already open too
//! ([`crate::revoke`]): each server connection carries its node's revoked
//! set to the authz layer, and a client connection fails once its server
//! is in the set.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint};

use crate::identity::{PeerIdentity, Role};
use crate::revoke::{Guarded, Revoked};
use crate::tls::NodeTls;

/// A handshake that has not finished by then is dropped, so a slow or
/// silent peer cannot hold a slot.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections are closed after this age, so every peer re-handshakes — and
/// meets the current trust set — within a bounded time (ADR 0002).
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(300);
/// Time a closing connection gets to finish its in-flight calls.
pub const MAX_CONNECTION_AGE_GRACE: Duration = Duration::from_secs(30);
/// Dial timeout for clients: TCP connect and the TLS handshake together.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A client pings its server over HTTP/2 when nothing arrived for this
/// long, idle or not, and drops the connection (failing every call on it)
/// when the answer takes longer than [`H2_KEEPALIVE_TIMEOUT`]: a server
/// that stopped answering without closing its sockets (power loss,
/// partition, SIGSTOP) is found within about 10 s, streams included.
pub const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// See [`H2_KEEPALIVE_INTERVAL`].
pub const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Servers ping clients less often: they only need to free the slots of
/// clients that went away.
pub const SERVER_H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// See [`SERVER_H2_KEEPALIVE_INTERVAL`].
pub const SERVER_H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// TLS handshakes in progress at once on a server port; past it the
/// accept loop waits (peers are few; a flood of silent dials is not).
pub const MAX_PENDING_HANDSHAKES: usize = 256;
/// Per-call deadline on meta↔meta channels: Raft RPCs (openraft's own
/// TTL applies when shorter), `Raft.Forward` and `Raft.ReadIndex`. A
/// follower forwarding to a leader that stopped answering gives up after
/// this and retries against whoever leads by then.
pub const RAFT_CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Per-call deadline on a member's unary calls to a meta-server outside
/// the data path: trust sync and renewal (`Certs`), and a meta-server
/// asking the holder of the CA key to sign.
pub const MEMBER_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-call deadline on blob→meta registry calls (register, heartbeat,
/// reports): a commit through a follower's forward (2 s) and an election
/// fits; a heartbeat sent to a stalled meta-server is late by at most
/// this, well inside the gateways' `--blob-down-after-secs` (15 s).
pub const REGISTRY_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Who is on the other end of a server connection. Inserted into every
/// request's extensions; see [`peer`].
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub identity: PeerIdentity,
    pub remote_addr: Option<SocketAddr>,
    /// The certificate the peer presented on this connection (verified).
    pub cert: Option<rustls_pki_types::CertificateDer<'static>>,
    /// The serving node's revoked set (shared, live): a call from a peer
    /// removed after this connection opened is refused
    /// ([`crate::authz::check`]).
    pub revoked: Revoked,
}

/// The verified identity of the caller of a gRPC request.
pub fn peer<T>(req: &tonic::Request<T>) -> Option<&PeerIdentity> {
    peer_info(req).map(|p| &p.identity)
}

/// All that is known of the caller of a gRPC request.
pub fn peer_info<T>(req: &tonic::Request<T>) -> Option<&PeerInfo> {
    req.extensions().get::<PeerInfo>()
}

/// A server-side TLS connection with its peer's identity.
pub struct PeerStream {
    inner: TlsStream<TcpStream>,
    info: PeerInfo,
}

impl Connected for PeerStream {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accepts TCP connections, completes each mTLS handshake in its own task,
/// and yields the authenticated ones. Refused handshakes are logged at
/// debug level with the peer address only, and dropped.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<NodeTls>,
) -> impl Stream<Item = Result<PeerStream, io::Error>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = TlsAcceptor::from(tls.server_config());
    let node = tls;
    let handshakes = crate::accept::Cap::new(MAX_PENDING_HANDSHAKES);
    tokio::spawn(async move {
        loop {
            // At the cap, stop accepting until a handshake ends.
            let Some(slot) = handshakes.slot().await else {
                return;
            };
            let (tcp, remote) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = tx.closed() => return,
            };
            crate::accept::tune(&tcp);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            let node = node.clone();
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
                drop(slot);
                let tls = match handshake {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%remote, error = %e, "TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%remote, "TLS handshake timed out");
                        return;
                    }
                };
                // The verifier already required an identity; read it once here.
                let cert = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .cloned();
                let Some(Ok(identity)) = cert.as_ref().map(|c| PeerIdentity::from_cert_der(c))
                else {
                    tracing::debug!(%remote, "peer certificate without identity");
                    return;
                };
                let info = PeerInfo {
                    identity,
                    remote_addr: Some(remote),
                    cert,
                    revoked: node.revocations(),
                };
                let _ = tx.send(Ok(PeerStream { inner: tls, info })).await;
            });
        }
    });
    ReceiverStream::new(rx)
}

/// A tonic server builder with the authz layer and connection ageing.
pub fn server() -> tonic::transport::Server<
    tower::layer::util::Stack<crate::authz::AuthzLayer, tower::layer::util::Identity>,
> {
    tonic::transport::Server::builder()
        .max_connection_age(MAX_CONNECTION_AGE)
        .max_connection_age_grace(MAX_CONNECTION_AGE_GRACE)
        .http2_keepalive_interval(Some(SERVER_H2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(SERVER_H2_KEEPALIVE_TIMEOUT))
        .layer(crate::authz::AuthzLayer)
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid address {0:?}")]
    BadAddress(String),
}

/// A lazily connecting channel to `addr` ("host:port") over mTLS, accepting
/// only a server whose role is in `expect` (empty: any hamster role).
/// The channel reconnects on its own, with a fresh handshake each time;
/// a connection fails once its server is revoked ([`crate::revoke`]).
///
/// Calls get no total deadline here (a 5 GiB shard stream must not be
/// cut); a dead server fails them through the HTTP/2 keepalive. Channels
/// that carry only unary calls use [`channel_with_deadline`].
pub fn channel(addr: &str, tls: &Arc<NodeTls>, expect: &[Role]) -> Result<Channel, ConnectError> {
    connect(
        addr,
        tls.client_config(expect),
        Some(tls.revocations()),
        None,
    )
}

/// [`channel`] where every call must be answered (response headers)
/// within `deadline`, or fails with `Cancelled`. For unary services only:
/// a client-streaming call would be cut after `deadline` however well it
/// progressed.
pub fn channel_with_deadline(
    addr: &str,
    tls: &Arc<NodeTls>,
    expect: &[Role],
    deadline: Duration,
) -> Result<Channel, ConnectError> {
    connect(
        addr,
        tls.client_config(expect),
        Some(tls.revocations()),
        Some(deadline),
    )
}

/// A lazily connecting channel to `addr` over TLS with the given client
/// configuration (joins use one that presents no certificate).
pub fn channel_with(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<Channel, ConnectError> {
    connect(addr, config, None, Some(JOIN_CALL_TIMEOUT))
}

/// Deadline of each join-port call (`Trust`, `Join`): a spend through
/// Raft and a CSR signature.
pub const JOIN_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The one place outbound channels are configured (ADR 0032).
fn connect(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
    revoked: Option<Revoked>,
    deadline: Option<Duration>,
) -> Result<Channel, ConnectError> {
    let mut endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|_| ConnectError::BadAddress(addr.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(H2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true);
    if let Some(d) = deadline {
        endpoint = endpoint.timeout(d);
    }
    let connector = TlsConnector::from(config);
    let connect = tower::service_fn(move |uri: http::Uri| {
        let connector = connector.clone();
        let revoked = revoked.clone();
        async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri
                .port_u16()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no port"))?;
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            // Our connector dials, so the endpoint's TCP options do not
            // apply: set them here.
            crate::accept::tune(&tcp);
            // The name only feeds SNI; identity is checked by role (ADR 0002).
            let name = ServerName::try_from(host)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let stream = connector.connect(name, tcp).await?;
            let guard = match revoked {
                Some(set) => {
                    // The verifier required an identity of every server.
                    let server = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| PeerIdentity::from_cert_der(c).ok())
                        .ok_or_else(|| {
                            io::Error::new(io::ErrorKind::InvalidData, "server without identity")
                        })?;
                    Some((server, set))
                }
                None => None,
            };
            Ok::<_, io::Error>(TokioIo::new(Guarded::new(stream, guard)?))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connect))
}

/// Channels to peers of some roles, one per address, made on first use
/// and reused: a tonic channel multiplexes calls over one connection, so
/// a busy path does not pay a TLS handshake per call.
#[derive(Clone)]
pub struct Pool {
    tls: Arc<NodeTls>,
    expect: Vec<Role>,
    deadline: Option<Duration>,
    channels: Arc<std::sync::Mutex<std::collections::HashMap<String, Channel>>>,
}

impl Pool {
    pub fn new(tls: Arc<NodeTls>, expect: &[Role]) -> Self {
        Self {
            tls,
            expect: expect.to_vec(),
            deadline: None,
            channels: Arc::default(),
        }
    }

    /// Every call on this pool's channels gets `deadline`
    /// ([`channel_with_deadline`]: unary services only).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    pub fn channel(&self, addr: &str) -> Result<Channel, ConnectError> {
        let mut map = match self.channels.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if let Some(ch) = map.get(addr) {
            return Ok(ch.clone());
        }
        let ch = connect(
            addr,
            self.tls.client_config(&self.expect),
            Some(self.tls.revocations()),
            self.deadline,
        )?;
        map.insert(addr.to_string(), ch.clone());
        Ok(ch)
    }

    pub fn tls(&self) -> &Arc<NodeTls> {
        &self.tls
    }
}
