//! The `Join` service (ADR 0015), on the --join-listen port: TLS that
//! authenticates this server only, since a joiner has no certificate yet.
//! `Trust` hands out the public trust bundle; `Join` checks a token on a
//! linearizable read, and only a token that passes is spent through Raft
//! (checked again at apply, at the command's time: that decides races on
//! its uses), then has the joiner's CSR signed by the issuing CA
//! (`crate::ca::Issuer`). Both calls are rate-limited per source address,
//! so a flood of forged tokens costs neither log entries nor many reads.

mod limit;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use hamster_proto::PeerIdentity;
use hamster_proto::join::JoinToken;
use hamster_proto::pb;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tonic::{Request, Response, Status};

use super::errors::{ServiceError, unexpected};
use crate::ca::Issuer;
use crate::cluster::{Meta, now_ms};
use crate::state::ca_rotation;
use crate::state::commands::{MetaError, Op, Response as R};
use crate::state::model::{Lifecycle, Role as ModelRole};
use crate::state::reads as q;
use crate::state::registry::check_join_token;
use limit::Limiter;

/// The address a join-port call came from (set per connection by [`serve`]).
#[derive(Clone, Copy, Debug)]
struct Source(SocketAddr);

pub struct JoinService {
    meta: Arc<Meta>,
    /// Signs with the issuing CA, here or where its key is (ADR 0019).
    issuer: Arc<Issuer>,
    /// The trust bundle file this node serves with before the meta tier
    /// has recorded one (public).
    trust_file: PathBuf,
    limiter: Limiter,
}

impl JoinService {
    pub fn new(meta: Arc<Meta>, issuer: Arc<Issuer>, trust_file: PathBuf) -> Self {
        Self {
            meta,
            issuer,
            trust_file,
            limiter: Limiter::default(),
        }
    }

    /// Spends one call of the caller's allowance; refuses past it.
    fn admit<T>(&self, req: &Request<T>) -> Result<Option<SocketAddr>, ServiceError> {
        let remote = req.extensions().get::<Source>().map(|s| s.0);
        // Only `serve` calls this service, and it always sets the source.
        let ip = remote.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
        if !self.limiter.allow(ip, Instant::now()) {
            tracing::debug!(?remote, "join port: rate limit");
            return Err(ServiceError::Unavailable(
                "too many join-port calls from this address; retry in a few seconds".into(),
            ));
        }
        Ok(remote)
    }

    /// The published bundle; this node's trust file until there is one.
    async fn trust_pem(&self) -> Result<String, ServiceError> {
        if let Some(b) = self
            .meta
            .read(async |c| ca_rotation::bundle(c).await)
            .await?
        {
            return Ok(b.cas.concat());
        }
        std::fs::read_to_string(&self.trust_file)
            .map_err(|e| ServiceError::Internal(format!("reading the trust bundle: {e}")))
    }
}

#[tonic::async_trait]
impl pb::join_server::Join for JoinService {
    async fn trust(
        &self,
        req: Request<pb::TrustRequest>,
    ) -> Result<Response<pb::TrustResponse>, Status> {
        self.admit(&req)?;
        Ok(Response::new(pb::TrustResponse {
            trust_pem: self.trust_pem().await?,
        }))
    }

    async fn join(
        &self,
        req: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::JoinResponse>, Status> {
        let remote = self.admit(&req)?;
        let r = req.into_inner();
        let token = JoinToken::parse(&r.token)
            .map_err(|_| ServiceError::AccessDenied("malformed join token".into()))?;
        let identity = PeerIdentity::new(token.role, &r.node_id)
            .map_err(|e| ServiceError::InvalidArgument(format!("node id: {e}")))?;
        let role: ModelRole = token.role.into();
        let secret_hash = token.secret_hash();
        // The token first, on a read: a forged one is refused before
        // anything is proposed, and learns nothing about node ids.
        let (id, node_id) = (token.id.clone(), r.node_id.clone());
        let (stored, known) = self
            .meta
            .read(async |c| {
                let t = q::join_token(c, &id).await?;
                let known = match role {
                    ModelRole::Blob => q::blob_lifecycle(c, &node_id).await?,
                    _ => None,
                };
                Ok((t, known))
            })
            .await?;
        if let Err(e) = check_join_token(stored.as_ref(), now_ms(), &token.id, &secret_hash, role) {
            tracing::warn!(?remote, token = %token.id, node_id = %r.node_id, reason = %e, "join refused");
            // An unknown, spent, expired or wrong token: AccessDenied.
            return Err(e.into());
        }
        // An id already registered belongs to a running blob-server; a
        // removed one's is refused for good (its certificate is revoked,
        // and a new one would un-revoke nothing).
        match known {
            None => {}
            Some(Lifecycle::Removed) => {
                tracing::warn!(?remote, node_id = %r.node_id,
                    "join refused: a removed blob-server's id (join under a new --node-id)");
                return Err(MetaError::BlobServerRemoved(r.node_id).into());
            }
            Some(_) => {
                return Err(
                    ServiceError::NodeExists(format!("blob id {} is taken", r.node_id)).into(),
                );
            }
        }
        let op = Op::UseJoinToken {
            id: token.id.clone(),
            secret_hash,
            role,
        };
        match self.meta.write(op).await? {
            R::Ok => {}
            R::Err(e) => {
                tracing::warn!(?remote, token = %token.id, node_id = %r.node_id, reason = %e, "join refused");
                // An unknown, spent, expired or wrong token: AccessDenied.
                return Err(e.into());
            }
            other => return Err(unexpected(other).into()),
        }
        let (cert, _) = self.issuer.sign(&r.csr_pem, &identity).await?;
        tracing::info!(?remote, token = %token.id, identity = %identity.uri(), "joined");
        Ok(Response::new(pb::JoinResponse {
            cert_pem: cert,
            trust_pem: self.trust_pem().await?,
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
                let routes = WithSource {
                    inner: routes,
                    source: Source(remote),
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

/// Tags each request of a connection with the address it came from.
#[derive(Clone)]
struct WithSource<S> {
    inner: S,
    source: Source,
}

impl<S, B> tonic::codegen::Service<tonic::codegen::http::Request<B>> for WithSource<S>
where
    S: tonic::codegen::Service<tonic::codegen::http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: tonic::codegen::http::Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.source);
        self.inner.call(req)
    }
}
