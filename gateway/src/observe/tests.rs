//! [`Observe`] around a fake S3 service, on a real HTTP/1 connection: what
//! reaches the access log and the metrics.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hamster_proto::identity::Role;
use hamster_proto::metrics::{install, render};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

const SIG: &str = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
const TOKEN: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// A log file of this test process's own.
fn log_path(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "hamster-observe-{}-{name}.jsonl",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&p);
    p
}

/// Serves one connection with `Observe` around `inner`; answers its address.
async fn serve<S>(inner: S, log: JsonLog) -> SocketAddr
where
    S: hyper::service::Service<Request<s3s::Body>, Response = HttpResponse, Error = HttpError>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let service = Observe {
            inner,
            log: Some(log),
        };
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(tcp), service)
            .await;
    });
    addr
}

/// What the access check would note for a GET of b/k by AKIDEXAMPLE.
fn route(req: &Request<s3s::Body>) {
    Route {
        op: "GetObject".into(),
        key_id: "AKIDEXAMPLE".into(),
        bucket: "b".into(),
        key: "k".into(),
    }
    .note(req.extensions());
}

/// The first line of the log, once the writer has flushed it (within a
/// second; 20 s is a bound for a loaded machine, not a timing claim).
async fn first_line(path: &Path) -> (String, Value) {
    for _ in 0..400 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().next() {
            let v = serde_json::from_str(line).expect("a JSON line");
            return (line.to_string(), v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no line in {}", path.display());
}

#[tokio::test]
async fn a_signed_presigned_request_leaves_no_secret_in_its_line() {
    let path = log_path("signed");
    let log = JsonLog::open(&path, "access").await.expect("log");
    let inner = hyper::service::service_fn(|req: Request<s3s::Body>| async move {
        route(&req);
        let resp = Response::builder()
            .status(200)
            .header("x-amz-request-id", "0123456789ABCDEF")
            .body(s3s::Body::from("hello".to_string()))
            .expect("response");
        Ok::<_, HttpError>(resp)
    });
    let addr = serve(inner, log).await;
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature={SIG}"
    );
    let query = format!(
        "versionId=v1&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature={SIG}&X-Amz-Security-Token={TOKEN}"
    );
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET /b/k?{query} HTTP/1.1\r\nHost: s3\r\nAuthorization: {auth}\r\nx-amz-security-token: {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.expect("read");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    let (line, v) = first_line(&path).await;
    for bad in [
        SIG,
        TOKEN,
        "Signature",
        "Credential",
        "aws4_request",
        "X-Amz",
        "Authorization",
        "AWS4-HMAC",
    ] {
        assert!(!line.contains(bad), "{bad} in {line}");
    }
    assert_eq!(v["version_id"], "v1");
    assert_eq!(v["access_key_id"], "AKIDEXAMPLE");
    assert_eq!(v["op"], "GetObject");
    assert_eq!(v["status"], 200);
    assert_eq!(v["bytes_out"], 5);
    assert_eq!(v["request_id"], "0123456789ABCDEF");
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn a_client_gone_before_the_answer_is_logged_and_counted_499() {
    let _ = install(Role::Gateway);
    let path = log_path("gone");
    let log = JsonLog::open(&path, "access").await.expect("log");
    let (routed_tx, routed_rx) = tokio::sync::oneshot::channel::<()>();
    let routed_tx = Arc::new(Mutex::new(Some(routed_tx)));
    let inner = hyper::service::service_fn(move |req: Request<s3s::Body>| {
        let routed_tx = routed_tx.clone();
        async move {
            route(&req);
            if let Some(tx) = routed_tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(());
            }
            // An answer that never comes: only the client can end this.
            std::future::pending::<()>().await;
            Ok::<HttpResponse, HttpError>(Response::new(s3s::Body::empty()))
        }
    });
    let addr = serve(inner, log).await;
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(b"GET /b/k HTTP/1.1\r\nHost: s3\r\n\r\n")
        .await
        .expect("send");
    routed_rx.await.expect("the request reached the service");
    drop(tcp);
    let (_, v) = first_line(&path).await;
    assert_eq!(v["status"], 499, "{v}");
    assert_eq!(v["error_code"], "ClientClosedRequest", "{v}");
    assert_eq!(v["op"], "GetObject", "{v}");
    assert_eq!(v["access_key_id"], "AKIDEXAMPLE", "{v}");
    let text = render();
    for series in [
        "hamster_s3_requests_total{op=\"GetObject\",code=\"499\"} 1",
        "hamster_s3_errors_total{op=\"GetObject\",error=\"ClientClosedRequest\"} 1",
    ] {
        assert!(text.contains(series), "no {series} in:\n{text}");
    }
    let _ = std::fs::remove_file(&path);
}
