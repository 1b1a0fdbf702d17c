//! Raw HTTP/1.1 for the requests an SDK will not send (a chunked
//! Transfer-Encoding with no Content-Length, raw header bytes, no
//! signature), and a look at every header and body byte of the answer.

use std::net::SocketAddr;

use hamster_tests::sigv4::Signed;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A raw answer: status, headers (names lower-case), body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The text of the body's first `<tag>` element.
    pub fn xml(&self, tag: &str) -> Option<String> {
        let t = self.text();
        let open = format!("<{tag}>");
        let rest = t.split(&open).nth(1)?;
        Some(rest.split(&format!("</{tag}>")).next()?.to_string())
    }

    pub fn describe(&self) -> String {
        format!("{} {:?} {}", self.status, self.headers, self.text())
    }
}

/// Sends `head` (request line and headers, without the blank line) and
/// `body` as it is; reads the whole answer (the connection is closed).
pub async fn raw(addr: SocketAddr, head: &str, body: &[u8]) -> Answer {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!("{head}connection: close\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.expect("head");
    tcp.write_all(body).await.expect("body");
    let mut resp = Vec::new();
    let _ = tcp.read_to_end(&mut resp).await;
    parse(&resp)
}

fn parse(resp: &[u8]) -> Answer {
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(resp.len());
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect::<Vec<_>>();
    let mut body = resp.get(split + 4..).unwrap_or_default().to_vec();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
    {
        body = unchunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

/// An HTTP/1.1 chunked body's data.
fn unchunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&b[..eol]);
        let size =
            usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 4 + size).min(b.len())..];
    }
    out
}

/// The request line and headers of a signed request.
fn head_of(s: &Signed) -> String {
    let target = if s.query.is_empty() {
        s.path.clone()
    } else {
        format!("{}?{}", s.path, s.query)
    };
    let mut h = format!("{} {target} HTTP/1.1\r\n", s.method);
    for (k, v) in &s.headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h
}

/// Sends a signed request with its body and a Content-Length.
pub async fn send(addr: SocketAddr, s: &Signed) -> Answer {
    let head = format!("{}content-length: {}\r\n", head_of(s), s.body.len());
    raw(addr, &head, &s.body).await
}

/// Sends a signed request's head with `Transfer-Encoding: chunked` and
/// no Content-Length, then `body` in HTTP chunks of 64 KiB.
pub async fn send_chunked(addr: SocketAddr, s: &Signed, body: &[u8]) -> Answer {
    let head = format!("{}transfer-encoding: chunked\r\n", head_of(s));
    let mut framed = Vec::with_capacity(body.len() + body.len() / 1000 + 16);
    for chunk in body.chunks(64 << 10) {
        framed.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        framed.extend_from_slice(chunk);
        framed.extend_from_slice(b"\r\n");
    }
    framed.extend_from_slice(b"0\r\n\r\n");
    raw(addr, &head, &framed).await
}

/// Asserts an answer's status and S3 error code ("" for none).
pub fn expect(a: &Answer, status: u16, code: &str) {
    let got = a.xml("Code").unwrap_or_default();
    assert_eq!((a.status, got.as_str()), (status, code), "{}", a.describe());
}
