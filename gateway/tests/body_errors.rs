//! s3s reports a bad chunk signature or payload hash only as a body stream
//! error whose type is private, so `s3::ingest::body_error` reads its
//! text. These tests send real signed requests through an s3s service and
//! check that the body error the handler sees is classified as the
//! failure it is: an s3s upgrade that words its errors otherwise fails
//! here, not in front of a client.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use hamster_gateway::pipeline::write::{BodyError, WriteError};
use hamster_gateway::s3::ingest::body_error;
use s3s::auth::SimpleAuth;
use s3s::dto::{PutObjectInput, PutObjectOutput};
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Request, S3Response, S3Result};
use sha2::{Digest, Sha256};

const ACCESS_KEY: &str = "AKIDEXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const REGION: &str = "us-east-1";

/// A PutObject that reads the body and keeps what its error was.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<BodyError>>>);

#[async_trait::async_trait]
impl S3 for Sink {
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let Some(mut body) = req.input.body else {
            return Ok(S3Response::new(PutObjectOutput::default()));
        };
        while let Some(piece) = body.next().await {
            if let Err(e) = piece {
                let classified = body_error(&*e);
                self.0.lock().expect("lock").push(classified.clone());
                return Err(WriteError::Body(classified).into());
            }
        }
        Ok(S3Response::new(PutObjectOutput::default()))
    }
}

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// A SigV4-signed PUT /bucket/key with `headers` (lower-case names, all
/// signed) and `body`; x-amz-content-sha256 is `payload`.
fn signed_put(payload: &str, extra: &[(&str, String)], body: Vec<u8>) -> http::Request<s3s::Body> {
    let now = time::OffsetDateTime::now_utc();
    let day = format!(
        "{:04}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let date = format!(
        "{day}T{:02}{:02}{:02}Z",
        now.hour(),
        now.minute(),
        now.second()
    );
    let mut headers: Vec<(&str, String)> = vec![
        ("host", "localhost".into()),
        ("x-amz-content-sha256", payload.into()),
        ("x-amz-date", date.clone()),
    ];
    headers.extend(extra.iter().cloned());
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    let signed = signed.join(";");
    let canonical = format!("PUT\n/bucket/key\n\n{canonical_headers}\n{signed}\n{payload}");
    let scope = format!("{day}/{REGION}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{SECRET_KEY}").as_bytes(), day.as_bytes());
    for part in [REGION, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
    let mut req = http::Request::builder()
        .method("PUT")
        .uri("http://localhost/bucket/key")
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, SignedHeaders={signed}, Signature={signature}"
            ),
        )
        .header("content-length", body.len().to_string());
    for (k, v) in &headers {
        req = req.header(*k, v);
    }
    req.body(s3s::Body::from(Bytes::from(body)))
        .expect("request")
}

async fn send(req: http::Request<s3s::Body>) -> (u16, Vec<BodyError>) {
    let sink = Sink::default();
    let mut builder = S3ServiceBuilder::new(sink.clone());
    builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let status = match service.call(req).await {
        Ok(r) => r.status().as_u16(),
        Err(e) => panic!("s3s: {e:?}"),
    };
    let seen = std::mem::take(&mut *sink.0.lock().expect("lock"));
    (status, seen)
}

#[tokio::test]
async fn a_body_that_does_not_match_its_signed_hash() {
    let declared = hex::encode(Sha256::digest(b"what was signed"));
    let (status, seen) = send(signed_put(&declared, &[], b"what was sent".to_vec())).await;
    assert!(
        matches!(seen.as_slice(), [BodyError::PayloadHash]),
        "{seen:?}"
    );
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_chunk_whose_signature_does_not_match() {
    let zeros = "0".repeat(64);
    let body = format!("5;chunk-signature={zeros}\r\nhello\r\n0;chunk-signature={zeros}\r\n\r\n");
    let (status, seen) = send(signed_put(
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        &[
            ("content-encoding", "aws-chunked".into()),
            ("x-amz-decoded-content-length", "5".into()),
        ],
        body.into_bytes(),
    ))
    .await;
    assert!(
        matches!(seen.as_slice(), [BodyError::ChunkSignature]),
        "{seen:?}"
    );
    assert_eq!(status, 403);
}
