//! A small, independent SigV4 signer and raw HTTP/1.1 client, for the
//! requests an SDK will not send: tampered chunk signatures, wrong
//! trailers, a skewed clock, malformed XML, virtual-hosted names.

use std::net::SocketAddr;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type HmacSha256 = Hmac<Sha256>;

pub const REGION: &str = "us-east-1";
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).expect("any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The one request a test sends.
pub struct Signed {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The request's seed signature (for chunk signatures).
    pub seed: String,
    pub amz_date: String,
    pub scope: String,
    pub signing_key: Vec<u8>,
}

/// `YYYYMMDDTHHMMSSZ` for `unix` seconds.
pub fn amz_date(unix: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).expect("time");
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The SigV4 signature of a canonical request made at `amz_date`, for
/// this suite's region and the s3 service.
pub fn signature(secret: &str, amz_date: &str, canonical: &str) -> String {
    let date = &amz_date[..8];
    let scope = format!("{date}/{REGION}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    hex::encode(hmac(&signing_key(secret, date), to_sign.as_bytes()))
}

/// The SigV4 signing key of a day (`date`: YYYYMMDD).
fn signing_key(secret: &str, date: &str) -> Vec<u8> {
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [REGION, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    key
}

/// Signs a request with the Authorization header. `headers` must include
/// `host`; `payload_hash` is what x-amz-content-sha256 says.
#[allow(clippy::too_many_arguments)]
pub fn sign(
    id: &str,
    secret: &str,
    at_unix: i64,
    method: &str,
    path: &str,
    query: &str,
    mut headers: Vec<(String, String)>,
    payload_hash: &str,
    body: Vec<u8>,
) -> Signed {
    let amz_date = amz_date(at_unix);
    let date = &amz_date[..8];
    headers.push(("x-amz-date".into(), amz_date.clone()));
    headers.push(("x-amz-content-sha256".into(), payload_hash.into()));
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let canonical_headers: String = headers
        .iter()
        .map(|(k, v)| format!("{}:{}\n", k.to_lowercase(), v.trim()))
        .collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.to_lowercase())
        .collect::<Vec<_>>()
        .join(";");
    let canonical =
        format!("{method}\n{path}\n{query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}");
    let scope = format!("{date}/{REGION}/s3/aws4_request");
    let seed = signature(secret, &amz_date, &canonical);
    let key = signing_key(secret, date);
    headers.push((
        "authorization".into(),
        format!("AWS4-HMAC-SHA256 Credential={id}/{scope}, SignedHeaders={signed_headers}, Signature={seed}"),
    ));
    Signed {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers,
        body,
        seed,
        amz_date,
        scope,
        signing_key: key,
    }
}

/// An aws-chunked body of `chunks`, each signed after the previous one
/// (STREAMING-AWS4-HMAC-SHA256-PAYLOAD); `tamper` flips a byte of the
/// given chunk's data after it was signed.
pub fn chunked_body(s: &Signed, chunks: &[&[u8]], tamper: Option<usize>) -> Vec<u8> {
    let mut prev = s.seed.clone();
    let mut out = Vec::new();
    let mut all: Vec<&[u8]> = chunks.to_vec();
    all.push(b"");
    for (i, chunk) in all.iter().enumerate() {
        let to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{prev}\n{EMPTY_SHA256}\n{}",
            s.amz_date,
            s.scope,
            sha256_hex(chunk)
        );
        let sig = hex::encode(hmac(&s.signing_key, to_sign.as_bytes()));
        out.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", chunk.len()).as_bytes());
        let mut data = chunk.to_vec();
        if tamper == Some(i)
            && let Some(b) = data.first_mut()
        {
            *b ^= 1;
        }
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\r\n");
        prev = sig;
    }
    out
}

/// An unsigned aws-chunked body with one trailer line.
pub fn unsigned_trailer_body(data: &[u8], trailer: &str) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(format!("\r\n0\r\n{trailer}\r\n\r\n").as_bytes());
    out
}

/// The response of a raw request: status and body text.
pub async fn send(addr: SocketAddr, s: &Signed) -> (u16, String) {
    let target = if s.query.is_empty() {
        s.path.clone()
    } else {
        format!("{}?{}", s.path, s.query)
    };
    let mut req = format!("{} {target} HTTP/1.1\r\n", s.method);
    for (k, v) in &s.headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !s
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        req.push_str(&format!("content-length: {}\r\n", s.body.len()));
    }
    req.push_str("connection: close\r\n\r\n");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(req.as_bytes()).await.expect("write head");
    tcp.write_all(&s.body).await.expect("write body");
    let mut resp = Vec::new();
    let _ = tcp.read_to_end(&mut resp).await;
    parse_response(&resp)
}

/// Status and text of a raw HTTP/1.1 answer (0 and "" if none came).
pub fn parse_response(resp: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(resp).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// The `<Code>` of an S3 error body ("" if it has none).
pub fn error_code(body: &str) -> String {
    body.split("<Code>")
        .nth(1)
        .and_then(|r| r.split("</Code>").next())
        .unwrap_or("")
        .to_string()
}

/// Signs requests to one gateway as one access key, sends them, and
/// checks the answers: the repeated part of every hand-signed test.
pub struct Signer {
    pub addr: SocketAddr,
    /// The Host header of path-style requests.
    pub host: String,
    pub id: String,
    pub secret: String,
}

impl Signer {
    pub fn new(addr: SocketAddr, id: &str, secret: &str) -> Self {
        Self {
            addr,
            host: addr.to_string(),
            id: id.into(),
            secret: secret.into(),
        }
    }

    /// `host` and the `extra` headers.
    pub fn headers(&self, extra: &[(&str, String)]) -> Vec<(String, String)> {
        let mut v = vec![("host".to_string(), self.host.clone())];
        v.extend(extra.iter().map(|(k, val)| (k.to_string(), val.clone())));
        v
    }

    /// A request signed now, path-style, with `extra` headers.
    pub fn sign(
        &self,
        method: &str,
        path: &str,
        query: &str,
        extra: &[(&str, String)],
        payload_hash: &str,
        body: Vec<u8>,
    ) -> Signed {
        sign(
            &self.id,
            &self.secret,
            now(),
            method,
            path,
            query,
            self.headers(extra),
            payload_hash,
            body,
        )
    }

    pub async fn send(&self, r: &Signed) -> (u16, String) {
        send(self.addr, r).await
    }

    /// Sends `r` and asserts the answer's status and, for an error, its
    /// S3 code (`""`: none checked). Answers the response text.
    pub async fn expect(&self, r: &Signed, status: u16, code: &str) -> String {
        let (st, body) = self.send(r).await;
        let got = if code.is_empty() {
            String::new()
        } else {
            error_code(&body)
        };
        assert_eq!(
            (st, got.as_str()),
            (status, code),
            "{} {}: {}",
            r.method,
            r.path,
            &body[..body.len().min(2000)]
        );
        body
    }
}
