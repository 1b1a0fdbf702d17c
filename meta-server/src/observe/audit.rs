//! The admin audit log (`--audit-log FILE`, issue 23): one JSON line per
//! call to the `Admin` service, the one service only the admin
//! certificate may call (proto/src/authz.rs). Calls refused by role never
//! reach it (authz logs those).
//!
//! [`Audited`] wraps the service: it reads the request (a few bytes for
//! every Admin method; there is no client streaming), notes its
//! identifying fields ([`super::audit_args`]), hands it on, and writes
//! the record when the answer's head is ready: for the streamed Backup,
//! when the stream starts. The outcome is the status in that head: a
//! handler's error travels there (trailers-only), an Ok's status only in
//! the trailers after the message, so "ok" means the handler succeeded.
//! What a call created and its answer alone names (the new access key's
//! id) the handler adds as an [`AuditResult`] extension of its answer;
//! nothing else of an answer, where the secrets are, is read.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use hamster_proto::error::ErrorCode;
use hamster_proto::jsonlog::JsonLog;
use hamster_proto::transport::PeerInfo;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Map, Value, json};
use tonic::body::Body;
use tonic::server::NamedService;
use tower::Service;

use super::audit_args::{READ_ONLY, args, unframe};

/// The largest Admin request read for the log; tonic's own default
/// decoding limit, so nothing it would accept is refused here.
const MAX_REQUEST: usize = 4 * 1024 * 1024;

/// Fields a handler adds to its call's record (ids its answer alone
/// carries). Never a secret.
#[derive(Clone, Debug)]
pub struct AuditResult(pub Value);

/// Adds `fields` to the audit record of the call answered by `resp`.
pub fn note<T>(resp: &mut tonic::Response<T>, fields: Value) {
    resp.extensions_mut().insert(AuditResult(fields));
}

/// Opens the audit log at `path` (0600, appending) and reopens it on
/// every SIGHUP, so logrotate can move it away.
pub async fn open(path: &std::path::Path) -> anyhow::Result<JsonLog> {
    use anyhow::Context;
    use tokio::signal::unix::{SignalKind, signal};
    let log = JsonLog::open(path, "audit").await.context("--audit-log")?;
    let mut hup = signal(SignalKind::hangup()).context("watching SIGHUP")?;
    let reopen = log.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            reopen.reopen();
        }
    });
    tracing::info!(path = %path.display(), "admin calls are written to the audit log");
    Ok(log)
}

/// A gRPC service whose every call is written to the audit log (with no
/// log, the service itself, untouched).
#[derive(Clone)]
pub struct Audited<S> {
    inner: S,
    log: Option<JsonLog>,
}

impl<S> Audited<S> {
    pub fn new(inner: S, log: Option<JsonLog>) -> Self {
        Self { inner, log }
    }
}

impl<S: NamedService> NamedService for Audited<S> {
    const NAME: &'static str = S::NAME;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, Infallible>> + Send>>;

impl<S> Service<http::Request<Body>> for Audited<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // The clone that was polled ready takes this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(log) = self.log.clone() else {
            return Box::pin(inner.call(req));
        };
        Box::pin(async move {
            let start = Instant::now();
            let mut record = Record::of(&req);
            let (parts, body) = req.into_parts();
            let bytes = match Limited::new(body, MAX_REQUEST).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    let status =
                        tonic::Status::invalid_argument(format!("reading the request: {e}"));
                    record.outcome(&status, start);
                    log.write(&record.0);
                    return Ok(status.into_http());
                }
            };
            record.args(&bytes);
            let req = http::Request::from_parts(parts, Body::new(Full::new(bytes)));
            let resp = inner.call(req).await?;
            match tonic::Status::from_header_map(resp.headers()) {
                Some(s) if s.code() != tonic::Code::Ok => record.outcome(&s, start),
                _ => record.ok(resp.extensions().get::<AuditResult>(), start),
            }
            log.write(&record.0);
            Ok(resp)
        })
    }
}

/// One audit line, filled in as the call goes.
struct Record(Value);

impl Record {
    fn of(req: &http::Request<Body>) -> Self {
        let path = req.uri().path();
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or(("", path));
        let peer = req.extensions().get::<PeerInfo>();
        let mut v = json!({
            "time": hamster_proto::jsonlog::rfc3339_ms(std::time::SystemTime::now()),
            "admin": peer.map(|p| p.identity.to_string()),
            "remote": peer.and_then(|p| p.remote_addr).map(|a| a.to_string()),
            "service": service,
            "method": method,
        });
        if READ_ONLY.contains(&method) {
            v["read_only"] = Value::Bool(true);
        }
        Self(v)
    }

    fn method(&self) -> &str {
        self.0["method"].as_str().unwrap_or("")
    }

    fn args(&mut self, body: &[u8]) {
        let a = unframe(body).and_then(|m| args(self.method(), m));
        self.0["args"] = a.unwrap_or(Value::Null);
    }

    fn ok(&mut self, result: Option<&AuditResult>, start: Instant) {
        self.0["outcome"] = "ok".into();
        if let Some(AuditResult(Value::Object(fields))) = result {
            self.0["result"] = Value::Object(fields.clone());
        }
        self.done(start, "ok");
    }

    fn outcome(&mut self, status: &tonic::Status, start: Instant) {
        let mut m = Map::new();
        m.insert("outcome".into(), "error".into());
        m.insert("code".into(), format!("{:?}", status.code()).into());
        if let Some(c) = ErrorCode::of(status) {
            m.insert("error".into(), c.as_str().into());
        }
        m.insert("message".into(), status.message().into());
        if let Value::Object(o) = &mut self.0 {
            o.extend(m);
        }
        self.done(start, "error");
    }

    fn done(&mut self, start: Instant, outcome: &'static str) {
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        self.0["duration_ms"] = json!((ms * 1000.0).round() / 1000.0);
        metrics::counter!("hamster_audit_records_total", "outcome" => outcome).increment(1);
    }
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
