//! The S3 endpoint: HTTP/1.1 and HTTP/2 over plain TCP, or over TLS when
//! the gateway is given a certificate (a public-facing one, separate from
//! its cluster identity: S3 clients do not speak the cluster's mTLS).
//! Every request passes [`guard`] before s3s, and every answer gets its
//! [`request_id`].
//!
//! Before any of that, the connection limits of ADR 0032 ([`Limits`]): a
//! cap on open connections, a TLS-handshake timeout, a header-read
//! timeout, an idle timeout, TCP keepalive.

pub mod guard;
pub mod request_id;

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hamster_proto::accept::{Cap, Idle, InFlight};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use rustls::ServerConfig;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Loads an HTTPS certificate chain and key (PEM files).
pub fn tls_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    let cert_pem =
        std::fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?;
    let certs = hamster_proto::pki::certs_from_pem(&cert_pem).context("S3 TLS certificate")?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|_| anyhow::anyhow!("cannot read a private key from {}", key.display()))?;
    let mut config = ServerConfig::builder_with_provider(hamster_proto::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("S3 TLS certificate and key")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Virtual-hosted-style names under `--domain`: BUCKET.DOMAIN, with any
/// port (s3s matches the Host header whole, port included).
pub struct Domains(pub s3s::host::MultiDomain);

impl s3s::host::S3Host for Domains {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> s3s::S3Result<s3s::host::VirtualHost<'a>> {
        let name = match host.rsplit_once(':') {
            Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                name
            }
            _ => host,
        };
        self.0.parse_host_header(name)
    }
}

/// The S3 endpoint's connection limits (ADR 0032).
#[derive(Clone, Debug, clap::Args)]
pub struct Limits {
    /// Seconds a client has to send a whole request header (HTTP/1.1),
    /// and to send its first byte at all; an idle keep-alive connection
    /// waiting for its next request is closed after this too.
    #[arg(
        long = "s3-header-timeout-secs",
        env = "HAMSTER_S3_HEADER_TIMEOUT_SECS",
        default_value_t = 15
    )]
    pub header_timeout_secs: u64,
    /// Seconds a connection may move no byte, with no request in flight,
    /// before it is closed (HTTP/2 connections, and HTTPS ones between
    /// requests).
    #[arg(
        long = "s3-idle-timeout-secs",
        env = "HAMSTER_S3_IDLE_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub idle_timeout_secs: u64,
    /// Seconds a client has to finish the TLS handshake (HTTPS only).
    #[arg(
        long = "s3-tls-handshake-timeout-secs",
        env = "HAMSTER_S3_TLS_HANDSHAKE_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub tls_handshake_timeout_secs: u64,
    /// Most S3 connections open at once. At the cap the gateway stops
    /// accepting until one closes: new clients wait in the kernel's
    /// backlog (then time out connecting) rather than being reset.
    #[arg(
        long = "max-connections",
        env = "HAMSTER_S3_MAX_CONNECTIONS",
        default_value_t = 4096
    )]
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout_secs: 15,
            idle_timeout_secs: 60,
            tls_handshake_timeout_secs: 10,
            max_connections: 4096,
        }
    }
}

impl Limits {
    fn header(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs.max(1))
    }
    fn idle(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }
    fn handshake(&self) -> Duration {
        Duration::from_secs(self.tls_handshake_timeout_secs.max(1))
    }
    /// `io` closed once idle: before its first byte, after the header
    /// timeout; later, after the idle timeout with nothing in flight.
    fn watch<IO>(&self, io: IO, busy: &InFlight) -> Idle<IO> {
        Idle::new(io, self.header(), self.idle(), busy.clone())
    }
}

pub struct S3Listener {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    cap: Cap,
}

impl S3Listener {
    pub async fn bind(
        addr: &str,
        tls: Option<Arc<ServerConfig>>,
        limits: Limits,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the S3 endpoint {addr}"))?;
        Ok(Self {
            listener,
            tls: tls.map(TlsAcceptor::from),
            cap: Cap::new(limits.max_connections),
            limits,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the task is dropped; one task per connection, at most
    /// `--max-connections` of them.
    pub async fn serve<S, B>(self, service: S)
    where
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        loop {
            // At the cap, wait for a connection to close before accepting.
            let Some(slot) = self.cap.slot().await else {
                return;
            };
            let (tcp, peer) = match self.listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "S3 accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            hamster_proto::accept::tune(&tcp);
            let service = service.clone();
            let tls = self.tls.clone();
            let limits = self.limits.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let _open = crate::observe::metrics::Connection::open();
                let busy = InFlight::default();
                let service = Counted {
                    inner: service,
                    busy: busy.clone(),
                    peer,
                };
                let mut builder = Builder::new(TokioExecutor::new());
                builder
                    .http1()
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.header());
                builder.http2().timer(TokioTimer::new());
                let result = match tls {
                    Some(acceptor) => {
                        match tokio::time::timeout(limits.handshake(), acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => {
                                builder
                                    .serve_connection(
                                        TokioIo::new(limits.watch(stream, &busy)),
                                        service,
                                    )
                                    .await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "S3 TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "S3 TLS handshake timed out");
                                return;
                            }
                        }
                    }
                    None => {
                        builder
                            .serve_connection(TokioIo::new(limits.watch(tcp, &busy)), service)
                            .await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "S3 connection ended with an error");
                }
            });
        }
    }
}

/// Counts a connection's requests in flight, so a slow answer does not
/// make the connection look idle; tells each request its client's address.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    busy: InFlight,
    peer: SocketAddr,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Counted<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(crate::observe::Peer(self.peer));
        let busy = self.busy.enter();
        let answer = self.inner.call(req);
        Box::pin(async move {
            let r = answer.await;
            drop(busy);
            r
        })
    }
}

#[cfg(test)]
mod tests;
