//! Raw requests for the limits tests (s3_limits.rs): a huge unsigned
//! form POST streamed lazily, a request whose body is never sent, a
//! SigV4 presigned URL of any lifetime (SDKs refuse more than a week),
//! and a process's peak resident memory.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::sigv4::{REGION, amz_date, now, parse_response as parse, signature};

/// Peak resident set (VmHWM) of process `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// POSTs an unsigned multipart/form-data PostObject to `path` whose file
/// is `file_len` zero bytes, generated as they are sent; stops sending
/// when the gateway answers or closes. Answers status and text (None:
/// no answer within two minutes of the last byte), and how many body
/// bytes were written.
pub async fn stream_form_post(
    addr: SocketAddr,
    path: &str,
    file_len: u64,
) -> (Option<(u16, String)>, u64) {
    let boundary = "hamsterlimits";
    let head_part = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nbig\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let len = head_part.len() as u64 + file_len + tail.len() as u64;
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: multipart/form-data; boundary={boundary}\r\n\
         content-length: {len}\r\n\r\n"
    );
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = tcp.into_split();
    let reader = tokio::spawn(async move {
        let mut resp = Vec::new();
        // An error (reset after the answer) ends the read; what came stays.
        let _ = rd.read_to_end(&mut resp).await;
        resp
    });
    let mut sent = 0u64;
    let chunk = vec![0u8; 1 << 20];
    let writer = async {
        wr.write_all(head.as_bytes()).await?;
        wr.write_all(head_part.as_bytes()).await?;
        let mut left = file_len;
        while left > 0 {
            let n = usize::try_from(left.min(chunk.len() as u64)).expect("small");
            wr.write_all(&chunk[..n]).await?;
            left -= n as u64;
            sent += n as u64;
            if reader.is_finished() {
                break;
            }
        }
        wr.write_all(tail.as_bytes()).await?;
        std::io::Result::Ok(())
    };
    let _ = writer.await;
    // Generous: a loaded 2-core machine.
    let answer = tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .ok()
        .map(|r| parse(&r.expect("reader")));
    (answer, sent)
}

/// Sends `head` (a request line and headers, ending in a blank line)
/// and no body, and reads the answer: what the gateway says before
/// any body byte. Fails if nothing comes within a generous minute.
pub async fn send_head_only(addr: SocketAddr, head: &str) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(head.as_bytes()).await.expect("write head");
    let mut resp = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        // Up to the end of the XML error (the connection may stay open).
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => resp.extend_from_slice(&buf[..n]),
            }
            if resp.windows(8).any(|w| w == b"</Error>") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("an answer before the body, within a minute");
    parse(&resp)
}

/// RFC 3986 encoding as SigV4 wants it (unreserved characters kept).
fn uri_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The query of a SigV4 presigned GET of `path` (already URI-encoded)
/// at `host`, valid for `expires` seconds from now.
pub fn presign_get(id: &str, secret: &str, host: &str, path: &str, expires: u64) -> String {
    let amz_date = amz_date(now());
    let date = &amz_date[..8];
    let scope = format!("{date}/{REGION}/s3/aws4_request");
    let mut params = [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_string()),
        ("X-Amz-Credential", format!("{id}/{scope}")),
        ("X-Amz-Date", amz_date.clone()),
        ("X-Amz-Expires", expires.to_string()),
        ("X-Amz-SignedHeaders", "host".to_string()),
    ];
    params.sort_by(|a, b| a.0.cmp(b.0));
    let query = params
        .iter()
        .map(|(k, v)| format!("{}={}", uri_encode(k), uri_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let canonical = format!("GET\n{path}\n{query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD");
    let sig = signature(secret, &amz_date, &canonical);
    format!("{query}&X-Amz-Signature={sig}")
}

/// A GET of `target` (path and query) and its answer.
pub async fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut head = format!("GET {target} HTTP/1.1\r\nhost: {addr}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("connection: close\r\n\r\n");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(head.as_bytes()).await.expect("write");
    let mut resp = Vec::new();
    let _ = tcp.read_to_end(&mut resp).await;
    parse(&resp)
}
