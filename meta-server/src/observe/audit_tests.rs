use std::time::Duration;

use bytes::Bytes;

use hamster_proto::identity::{PeerIdentity, Role};
use hamster_proto::pb;
use hamster_proto::revoke::Revoked;
use prost::Message;

use super::*;

fn frame(m: &impl Message) -> Bytes {
    let msg = m.encode_to_vec();
    let mut out = vec![0];
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(&msg);
    Bytes::from(out)
}

fn request(method: &str, body: Bytes) -> http::Request<Body> {
    let mut req = http::Request::builder()
        .uri(format!("http://x/hamster.v1.Admin/{method}"))
        .body(Body::new(Full::new(body)))
        .expect("request");
    req.extensions_mut().insert(PeerInfo {
        identity: PeerIdentity::new(Role::Admin, "admin").expect("id"),
        remote_addr: Some("127.0.0.1:4000".parse().expect("addr")),
        cert: None,
        revoked: Revoked::default(),
    });
    req
}

/// Lines of `path` once there are `n` (the writer flushes within 1 s).
async fn lines(path: &std::path::Path, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= n {
            return text
                .lines()
                .map(|l| serde_json::from_str(l).expect("json line"))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} lines in {}", path.display());
}

#[tokio::test]
async fn each_call_is_one_line_with_admin_args_and_outcome_and_never_the_answer() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("audit.jsonl");
    let log = JsonLog::open(&path, "audit").await.expect("open");
    // Stands in for the Admin service: answers a secret (as
    // CreateAccessKey does), or refuses DeleteBucket.
    let inner = tower::service_fn(|req: http::Request<Body>| async move {
        let method = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_string();
        // The handler still gets the whole request.
        let body = req.into_body().collect().await.expect("body").to_bytes();
        assert!(unframe(&body).is_some(), "request body lost");
        let resp = if method == "DeleteBucket" {
            ErrorCode::BucketNotEmpty
                .status("bucket photos is not empty")
                .into_http()
        } else {
            let mut r = tonic::Response::new(());
            note(&mut r, json!({"access_key_id": "AKNEW"}));
            let (_, (), ext) = r.into_parts();
            let mut h = http::Response::new(Body::new(Full::new(Bytes::from_static(
                b"SECRET-IN-ANSWER",
            ))));
            *h.extensions_mut() = ext;
            h
        };
        Ok::<_, Infallible>(resp)
    });
    let mut svc = Audited::new(inner, Some(log));
    let create = frame(&pb::CreateAccessKeyRequest {
        name: "ci".into(),
        can_create_bucket: None,
    });
    svc.call(request("CreateAccessKey", create))
        .await
        .expect("call");
    let delete = frame(&pb::DeleteBucketRequest {
        name: "photos".into(),
        access_key_id: String::new(),
    });
    svc.call(request("DeleteBucket", delete))
        .await
        .expect("call");
    svc.call(request("Status", frame(&pb::StatusRequest {})))
        .await
        .expect("call");

    let v = lines(&path, 3).await;
    assert_eq!(v.len(), 3);
    assert_eq!(v[0]["admin"], "admin/admin");
    assert_eq!(v[0]["service"], "hamster.v1.Admin");
    assert_eq!(v[0]["method"], "CreateAccessKey");
    assert_eq!(v[0]["args"]["name"], "ci");
    assert_eq!(v[0]["result"]["access_key_id"], "AKNEW");
    assert_eq!(v[0]["outcome"], "ok");
    assert!(v[0]["duration_ms"].is_number());
    assert!(v[0]["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(v[0].get("read_only").is_none());
    assert_eq!(v[1]["args"]["bucket"], "photos");
    assert_eq!(v[1]["outcome"], "error");
    assert_eq!(v[1]["code"], "FailedPrecondition");
    assert_eq!(v[1]["error"], "BucketNotEmpty");
    assert_eq!(v[1]["message"], "bucket photos is not empty");
    assert_eq!(v[2]["read_only"], true);
    let raw = std::fs::read(&path).expect("read");
    assert!(
        !raw.windows(6).any(|w| w == b"SECRET"),
        "an answer reached the log"
    );
}
