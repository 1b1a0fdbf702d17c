//! What the gateway tells operators about S3 requests (issue 23): the
//! Prometheus series of [`metrics`] and the access log (`--access-log`,
//! one JSON object per request, [`record`]).
//!
//! [`Observe`] is the outermost layer of the S3 service. It gives each
//! request a [`Slot`] (a request extension) that the access check fills
//! in as s3s routes and authenticates it (operation, key id, bucket, key,
//! lock inputs), counts the request and response bodies as they flow
//! ([`body`]), records the request's metrics when the response head is
//! ready, and writes its log line when the response body is done with
//! (sent, or abandoned by the client), so bytes out are what went out. A
//! request whose client goes away before the response head is counted and
//! logged as 499 "ClientClosedRequest" (nginx's convention).

pub mod body;
pub mod metrics;
pub mod record;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use hamster_proto::jsonlog::JsonLog;
use http::{Extensions, Request, Response};
use hyper::body::Incoming;
use s3s::path::S3Path;
use s3s::{HttpError, HttpResponse};

use body::{CountIn, CountOut, Finish};
use record::{Lock, Outcome, Record};

/// The client's address; the listener puts it in each request's extensions.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// The record of one request in flight, shared by the layers that add to it.
#[derive(Clone, Default)]
pub struct Slot(Arc<Mutex<Record>>);

impl Slot {
    fn update(&self, f: impl FnOnce(&mut Record)) {
        let mut r = match self.0.lock() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        f(&mut r);
    }

    fn get(&self) -> Record {
        let mut out = Record::default();
        self.update(|r| out = r.clone());
        out
    }
}

/// From the access check: how s3s routed the request and who signed it.
pub struct Route {
    op: String,
    key_id: String,
    bucket: String,
    key: String,
}

impl Route {
    pub fn of(op: &str, creds: Option<&s3s::auth::Credentials>, path: &S3Path) -> Self {
        let (bucket, key) = match path {
            S3Path::Root => ("", ""),
            S3Path::Bucket { bucket } => (&**bucket, ""),
            S3Path::Object { bucket, key } => (&**bucket, &**key),
        };
        Self {
            op: op.to_string(),
            key_id: creds.map(|c| c.access_key.clone()).unwrap_or_default(),
            bucket: bucket.to_string(),
            key: key.to_string(),
        }
    }

    /// Into the request's record, if it has one.
    pub fn note(self, ext: &Extensions) {
        if let Some(slot) = ext.get::<Slot>() {
            slot.update(|r| {
                r.op = Some(self.op);
                r.access_key_id = self.key_id;
                r.bucket = self.bucket;
                r.key = self.key;
            });
        }
    }
}

/// From an operation's access check: lock fields its input carries.
pub fn note_lock(ext: &Extensions, f: impl FnOnce(&mut Lock)) {
    if let Some(slot) = ext.get::<Slot>() {
        slot.update(|r| f(&mut r.lock));
    }
}

/// The S3 service with metrics and the access log around it.
#[derive(Clone)]
pub struct Observe<S> {
    pub inner: S,
    pub log: Option<JsonLog>,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<CountOut>, HttpError>> + Send>>;

impl<S> hyper::service::Service<Request<Incoming>> for Observe<S>
where
    S: hyper::service::Service<Request<s3s::Body>, Response = HttpResponse, Error = HttpError>,
    S::Future: Send + 'static,
{
    type Response = Response<CountOut>;
    type Error = HttpError;
    type Future = Answer;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let started = Instant::now();
        let time = SystemTime::now();
        let (mut parts, body) = req.into_parts();
        let slot = Slot::default();
        slot.update(|r| {
            r.remote_addr = parts.extensions.get::<Peer>().map(|p| p.0);
            r.version_id = version_param(parts.uri.query());
            r.lock = Lock::from_headers(&parts.headers);
        });
        parts.extensions.insert(slot.clone());
        let bytes_in = Arc::new(AtomicU64::new(0));
        let body = s3s::Body::http_body(CountIn {
            inner: body,
            n: bytes_in.clone(),
        });
        let answer = self.inner.call(Request::from_parts(parts, body));
        let log = self.log.clone();
        // Armed before the answer is awaited: hyper drops this future when
        // the client goes away first (disconnect, timeout, HTTP/2 reset).
        let mut unanswered = Unanswered {
            armed: true,
            slot: slot.clone(),
            log: log.clone(),
            time,
            started,
            bytes_in: bytes_in.clone(),
        };
        Box::pin(async move {
            let result = answer.await;
            unanswered.armed = false;
            let took = started.elapsed();
            let rec = slot.get();
            let op = record::op_name(rec.op.as_deref()).to_string();
            let header = |r: &HttpResponse, name: &str| {
                r.headers()
                    .get(name)
                    .map(|v| record::clip(&String::from_utf8_lossy(v.as_bytes())))
                    .unwrap_or_default()
            };
            let (resp, out) = match result {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let code = (status >= 300)
                        .then(|| resp.body().bytes())
                        .flatten()
                        .and_then(|b| record::error_code(&b));
                    metrics::request(&op, status, code.as_deref(), took);
                    let out = Outcome {
                        time: Some(time),
                        status,
                        request_id: header(&resp, "x-amz-request-id"),
                        error_code: code.unwrap_or_default(),
                        version_id: header(&resp, "x-amz-version-id"),
                        ..Outcome::default()
                    };
                    (resp, out)
                }
                Err(e) => {
                    // s3s could not even write an answer: hyper closes
                    // the connection, which a client sees as a failure.
                    unanswered.record(500, "InternalError");
                    return Err(e);
                }
            };
            let finish: Box<dyn Finish> = match log {
                Some(log) => Box::new(Line {
                    log,
                    rec,
                    out,
                    started,
                    bytes_in,
                }),
                None => Box::new(NoLine),
            };
            Ok(resp.map(|b| CountOut::new(b, finish)))
        })
    }
}

/// The request's `versionId` parameter, decoded ("" if none).
fn version_param(query: Option<&str>) -> String {
    crate::listener::guard::query_names(query.unwrap_or_default())
        .into_iter()
        .find(|(n, _)| n == "versionId")
        .map(|(_, v)| record::clip(&v))
        .unwrap_or_default()
}

/// The 499 of nginx: the client closed the request before its answer.
pub const CLIENT_CLOSED: u16 = 499;

/// A request that got no response head: its metric and log line, if the
/// future is dropped while `armed` (the client went away: [`CLIENT_CLOSED`],
/// "ClientClosedRequest"), or when s3s failed to answer (500).
struct Unanswered {
    armed: bool,
    slot: Slot,
    log: Option<JsonLog>,
    time: SystemTime,
    started: Instant,
    bytes_in: Arc<AtomicU64>,
}

impl Unanswered {
    fn record(&self, status: u16, code: &str) {
        let took = self.started.elapsed();
        let rec = self.slot.get();
        metrics::request(record::op_name(rec.op.as_deref()), status, Some(code), took);
        if let Some(log) = &self.log {
            let out = Outcome {
                time: Some(self.time),
                status,
                error_code: code.into(),
                bytes_in: self.bytes_in.load(Ordering::Relaxed),
                duration_ms: took.as_secs_f64() * 1000.0,
                ..Outcome::default()
            };
            log.write(&rec.to_json(&out));
        }
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if self.armed {
            self.record(CLIENT_CLOSED, "ClientClosedRequest");
        }
    }
}

/// The log line of a request, written once its response body is done.
struct Line {
    log: JsonLog,
    rec: Record,
    out: Outcome,
    started: Instant,
    bytes_in: Arc<AtomicU64>,
}

impl Finish for Line {
    fn finish(mut self: Box<Self>, bytes_out: u64) {
        self.out.bytes_in = self.bytes_in.load(Ordering::Relaxed);
        self.out.bytes_out = bytes_out;
        self.out.duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        self.log.write(&self.rec.to_json(&self.out));
    }
}

struct NoLine;

impl Finish for NoLine {
    fn finish(self: Box<Self>, _: u64) {}
}

#[cfg(test)]
mod tests;
