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
use crate::state::commands::{MetaError, Op, Response as R};
use crate::state::model::{Lifecycle, Role as ModelRole};
use crate::state::reads as q;
use crate::state::registry::check_join_token;
use crate::state::{ca_rotation, deny};
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
        let (stored, known, denied, bundle) = self
            .meta
            .read(async |c| {
                let t = q::join_token(c, &id).await?;
                let known = match role {
                    ModelRole::Blob => q::blob_lifecycle(c, &node_id).await?,
                    _ => None,
                };
                let denied = deny::is_denied(c, role, &node_id).await?;
                Ok((t, known, denied, ca_rotation::bundle(c).await?))
            })
            .await?;
        if let Err(e) = check_join_token(stored.as_ref(), now_ms(), &token.id, &secret_hash, role) {
            tracing::warn!(?remote, token = %token.id, node_id = %r.node_id, reason = %e, "join refused");
            // An unknown, spent, expired or wrong token: AccessDenied.
            return Err(e.into());
        }
        // A removed or forgotten id never comes back (ADR 0030): its old
        // certificate is refused everywhere, and so would the new one be.
        if denied && known != Some(Lifecycle::Removed) {
            tracing::warn!(?remote, node_id = %r.node_id,
                "join refused: a removed member's id (join under a new --node-id)");
            return Err(ServiceError::MemberRemoved(format!(
                "{} was removed from the cluster; join under a new --node-id",
                identity.uri()
            ))
            .into());
        }
        let bundle = bundle.ok_or(ServiceError::NoTrustBundle)?;
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
        // Recorded as a member before its certificate is signed, so a key
        // holder that signs for this node (Renew for_identity) knows it,
        // and it counts for a CA rotation's gates at once: with the
        // issuing CA and this generation, which is what it is about to get.
        let seen = Op::MemberSeen {
            id: r.node_id.clone(),
            role,
            generation: bundle.generation,
            cert_ca: bundle.issuing.clone(),
        };
        match self.meta.write(seen).await? {
            R::Ok => {}
            R::Err(e) => return Err(e.into()),
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

/// Connections open at once on the join port; past it the accept loop
/// waits (joins are rare and short).
pub const JOIN_MAX_CONNECTIONS: usize = 64;
/// A join-port connection is closed this long after it opened, whatever
/// it is doing: a join takes seconds, and a client must not hold one of
/// the few slots by keeping a connection busy.
pub const JOIN_MAX_CONNECTION_AGE: std::time::Duration = std::time::Duration::from_secs(60);
/// Time the calls in flight get when a connection reaches its age.
pub const JOIN_AGE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
/// A connection that says nothing for this long after its handshake is
/// closed.
pub const JOIN_FIRST_BYTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// A connection that moves no byte either way for this long is closed
/// (longer than a join takes through an election; joining clients ping
/// every 5 s anyway).
pub const JOIN_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serves `Join` on `addr` until the process ends, within the limits of
/// ADR 0032: a connection cap, the TLS-handshake timeout, an idle
/// timeout, a maximum connection age, TCP keepalive.
pub async fn serve(
    addr: SocketAddr,
    meta: Arc<Meta>,
    service: JoinService,
) -> std::io::Result<SocketAddr> {
    use hamster_proto::accept::{Cap, Idle, InFlight, tune};
    use hamster_proto::transport::HANDSHAKE_TIMEOUT;

    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let acceptor = TlsAcceptor::from(meta.tls.join_server_config());
    let routes = tonic::service::Routes::new(pb::join_server::JoinServer::new(service));
    let cap = Cap::new(JOIN_MAX_CONNECTIONS);
    tokio::spawn(async move {
        loop {
            let Some(slot) = cap.slot().await else {
                return;
            };
            let Ok((tcp, remote)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            tune(&tcp);
            let (acceptor, routes) = (acceptor.clone(), routes.clone());
            tokio::spawn(async move {
                let _slot = slot;
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
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
                let io = Idle::new(
                    tls,
                    JOIN_FIRST_BYTE_TIMEOUT,
                    JOIN_IDLE_TIMEOUT,
                    InFlight::default(),
                );
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder
                    .http1()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(JOIN_FIRST_BYTE_TIMEOUT);
                let conn = builder.serve_connection(TokioIo::new(io), svc);
                tokio::pin!(conn);
                let ended = tokio::select! {
                    r = conn.as_mut() => Some(r),
                    () = tokio::time::sleep(JOIN_MAX_CONNECTION_AGE) => None,
                };
                let result = match ended {
                    Some(r) => r,
                    None => {
                        // At its age: no new calls (GOAWAY), a few seconds
                        // for the ones in flight, then closed.
                        tracing::debug!(%remote, "join connection at its maximum age");
                        conn.as_mut().graceful_shutdown();
                        tokio::time::timeout(JOIN_AGE_GRACE, conn)
                            .await
                            .unwrap_or(Ok(()))
                    }
                };
                if let Err(e) = result {
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
