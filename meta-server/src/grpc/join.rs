//! The `Join` service (ADR 0015), on the --join-listen port: TLS that
//! authenticates this server only, since a joiner has no certificate yet.
//! `Trust` hands out the public trust bundle; `Join` spends one use of a
//! token through Raft (checked at apply, at the command's time), then signs
//! the joiner's CSR with the CA key this node holds on disk.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hamster_proto::join::JoinToken;
use hamster_proto::pb;
use hamster_proto::pki::{self, CertAuthority, Validity};
use hamster_proto::{PeerIdentity, Role};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tonic::{Request, Response, Status};

use super::errors::unexpected;
use crate::cluster::Meta;
use crate::state::commands::{Op, Response as R};
use crate::state::queries as q;

pub struct JoinService {
    meta: Arc<Meta>,
    ca: CertAuthority,
    /// The trust bundle file this node serves with (public).
    trust_file: PathBuf,
}

impl JoinService {
    pub fn new(meta: Arc<Meta>, ca: CertAuthority, trust_file: PathBuf) -> Self {
        Self {
            meta,
            ca,
            trust_file,
        }
    }

    fn trust_pem(&self) -> Result<String, Status> {
        std::fs::read_to_string(&self.trust_file)
            .map_err(|e| Status::internal(format!("reading the trust bundle: {e}")))
    }
}

#[tonic::async_trait]
impl pb::join_server::Join for JoinService {
    async fn trust(
        &self,
        _req: Request<pb::TrustRequest>,
    ) -> Result<Response<pb::TrustResponse>, Status> {
        Ok(Response::new(pb::TrustResponse {
            trust_pem: self.trust_pem()?,
        }))
    }

    async fn join(
        &self,
        req: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::JoinResponse>, Status> {
        let remote = req.remote_addr();
        let r = req.into_inner();
        let token = JoinToken::parse(&r.token)
            .map_err(|_| Status::permission_denied("malformed join token"))?;
        let identity = PeerIdentity::new(token.role, &r.node_id)
            .map_err(|e| Status::invalid_argument(format!("node id: {e}")))?;
        if token.role == Role::Blob {
            // An id already registered belongs to a running blob-server.
            let taken = self
                .meta
                .read(async |c| q::blob_servers(c).await)
                .await?
                .iter()
                .any(|b| b.id == r.node_id);
            if taken {
                return Err(Status::already_exists(format!(
                    "blob id {} is taken",
                    r.node_id
                )));
            }
        }
        let op = Op::UseJoinToken {
            id: token.id.clone(),
            secret_hash: token.secret_hash(),
            role: token.role.to_string(),
        };
        match self.meta.write(op).await? {
            R::Ok => {}
            R::Err(e) => {
                tracing::warn!(?remote, token = %token.id, node_id = %r.node_id, reason = %e, "join refused");
                return Err(Status::permission_denied(e.to_string()));
            }
            other => return Err(unexpected(&other)),
        }
        let cert = self
            .ca
            .sign_csr(
                &r.csr_pem,
                &identity,
                Validity::starting_now(pki::LEAF_VALIDITY),
            )
            .map_err(|e| Status::invalid_argument(format!("CSR: {e}")))?;
        tracing::info!(?remote, token = %token.id, identity = %identity.uri(), "joined");
        Ok(Response::new(pb::JoinResponse {
            cert_pem: cert,
            trust_pem: self.trust_pem()?,
        }))
    }
}

/// Serves `Join` on `addr` until the process ends.
pub async fn serve(
    addr: SocketAddr,
    meta: Arc<Meta>,
    service: JoinService,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let acceptor = TlsAcceptor::from(meta.tls.join_server_config());
    let routes = tonic::service::Routes::new(pb::join_server::JoinServer::new(service));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, remote)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let (acceptor, routes) = (acceptor.clone(), routes.clone());
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    acceptor.accept(tcp),
                )
                .await
                {
                    Ok(Ok(s)) => s,
                    _ => {
                        tracing::debug!(%remote, "join TLS handshake failed");
                        return;
                    }
                };
                let svc = hyper_util::service::TowerToHyperService::new(routes);
                if let Err(e) = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await
                {
                    tracing::debug!(%remote, error = %e, "join connection ended");
                }
            });
        }
    });
    Ok(local)
}

/// Loads the CA (certificate and key) an issuing meta-server holds.
pub fn load_ca(dir: &std::path::Path) -> anyhow::Result<CertAuthority> {
    let read = |n: &str| {
        std::fs::read_to_string(dir.join(n))
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join(n).display()))
    };
    Ok(CertAuthority::from_pem(&read("ca.crt")?, &read("ca.key")?)?)
}
