//! Prometheus metrics, alike on every server (issue 23, ADR 0035).
//!
//! Code records through the `metrics` facade (`metrics::counter!(...)`)
//! anywhere; [`install`] sets one process-wide recorder, and
//! [`serve`] answers `GET /metrics` in the Prometheus text format on the
//! node's `--metrics-listen` address. It is plain HTTP: a scrape is an
//! operator's read, not a hop between tiers (invariant 6), and no series
//! carries a secret. Without `--metrics-listen` nothing is installed and
//! every record is a no-op.
//!
//! Names start with `hamster_`; durations are seconds (histograms, with
//! the buckets below), sizes bytes. The list is docs/metrics.md.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::identity::Role;

/// Histogram buckets for every `*_seconds` series: 0.5 ms to 60 s.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// Buckets for counts per batch (`*_batch_size`, `*_entries`): 1 to 4096.
pub const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// Open scrape connections at once; more wait in the backlog.
const MAX_SCRAPE_CONNECTIONS: usize = 16;
/// A scrape connection silent this long is closed.
const SCRAPE_IDLE: Duration = Duration::from_secs(30);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("binding the metrics listener {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("installing the metrics recorder: {0}")]
    Install(String),
}

/// Installs the process-wide recorder (once; later calls answer the same
/// handle) and sets `hamster_build_info{role,version} 1`.
pub fn install(role: Role) -> Result<PrometheusHandle, MetricsError> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Suffix("_batch_size".into()), COUNT_BUCKETS)
        })
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_entries".into()), COUNT_BUCKETS))
        .map_err(|e| MetricsError::Install(e.to_string()))?;
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| MetricsError::Install(e.to_string()))?;
    let handle = HANDLE.get_or_init(|| handle).clone();
    metrics::describe_gauge!(
        "hamster_build_info",
        "This binary: role and version (always 1)."
    );
    metrics::gauge!(
        "hamster_build_info",
        "role" => role.to_string(),
        "version" => env!("CARGO_PKG_VERSION"),
    )
    .set(1.0);
    // Histograms are summarised into buckets by upkeep, not on record.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// The current exposition, as `/metrics` answers it ("" before [`install`]).
pub fn render() -> String {
    HANDLE.get().map(|h| h.render()).unwrap_or_default()
}

/// Installs the recorder and serves `/metrics` on `addr` in a task;
/// answers the bound address (port 0 picks one).
pub async fn serve(addr: SocketAddr, role: Role) -> Result<SocketAddr, MetricsError> {
    let handle = install(role)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!(addr = %bound, "metrics listening (GET /metrics, plain HTTP)");
    tokio::spawn(accept_loop(listener, handle));
    Ok(bound)
}

async fn accept_loop(listener: TcpListener, handle: PrometheusHandle) {
    let cap = crate::accept::Cap::new(MAX_SCRAPE_CONNECTIONS);
    loop {
        let Some(slot) = cap.slot().await else { return };
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = hyper::service::service_fn(move |req| {
                let handle = handle.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&req, &handle)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(SCRAPE_IDLE)
                .keep_alive(true)
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc);
            let _ = tokio::time::timeout(Duration::from_secs(300), conn).await;
        });
    }
}

fn answer<B>(req: &Request<B>, handle: &PrometheusHandle) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, ctype: &'static str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(ctype),
        );
        r
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            handle.render(),
        ),
        (&Method::GET, _) => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "only /metrics\n".into(),
        ),
        _ => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET /metrics\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn metrics_are_served_as_prometheus_text_and_other_paths_are_refused() {
        let addr = serve("127.0.0.1:0".parse().expect("addr"), Role::Blob)
            .await
            .expect("serve");
        metrics::counter!("hamster_test_total", "kind" => "x").increment(3);
        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .expect("write");
            let mut out = String::new();
            s.read_to_string(&mut out).await.expect("read");
            out
        };
        let body = get("/metrics").await;
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("hamster_test_total{kind=\"x\"} 3"), "{body}");
        assert!(body.contains("hamster_build_info{role=\"blob\""), "{body}");
        assert!(get("/other").await.starts_with("HTTP/1.1 404"));
        assert!(render().contains("hamster_test_total"));
    }
}
