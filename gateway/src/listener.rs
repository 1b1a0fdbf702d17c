//! The S3 endpoint: HTTP/1.1 and HTTP/2 over plain TCP, or over TLS when
//! the gateway is given a certificate (a public-facing one, separate from
//! its cluster identity: S3 clients do not speak the cluster's mTLS).
//! Every request passes [`guard`] before s3s.

pub mod guard;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
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

pub struct S3Listener {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
}

impl S3Listener {
    pub async fn bind(addr: &str, tls: Option<Arc<ServerConfig>>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the S3 endpoint {addr}"))?;
        Ok(Self {
            listener,
            tls: tls.map(TlsAcceptor::from),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the task is dropped; one task per connection.
    pub async fn serve(self, service: guard::Guard) {
        loop {
            let (tcp, peer) = match self.listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "S3 accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let service = service.clone();
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let builder = Builder::new(TokioExecutor::new());
                let result = match tls {
                    Some(acceptor) => match acceptor.accept(tcp).await {
                        Ok(stream) => {
                            builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await
                        }
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "S3 TLS handshake failed");
                            return;
                        }
                    },
                    None => builder.serve_connection(TokioIo::new(tcp), service).await,
                };
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "S3 connection ended with an error");
                }
            });
        }
    }
}
