//! Prometheus metrics of running nodes: a cluster whose every node serves
//! `/metrics` on its own port, a scrape over plain HTTP, and the values
//! of a series read from the text (summed over the series that carry the
//! labels asked for), to compare before and after.

use std::collections::HashMap;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::s3::{ClusterSpec, S3Cluster};
use crate::{Cluster, Kind, Node, free_port};

/// A cluster like [`S3Cluster::build_spec`] builds (one meta-server),
/// every node with `--metrics-listen` on a port of its own.
pub struct Observed {
    pub s: S3Cluster,
    pub metrics: HashMap<Node, SocketAddr>,
}

impl Observed {
    pub async fn start(spec: &ClusterSpec) -> Self {
        let mut c = Cluster::new();
        c.log_level = spec.log_level.clone();
        c.blob_args.extend(spec.blob_args.iter().cloned());
        let mut metrics = HashMap::new();
        let mut with_metrics = |c: &mut Cluster, n: Node| {
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            c.add_args(n, &[&format!("--metrics-listen={addr}")]);
            metrics.insert(n, addr);
        };
        let meta = c.prepare(Kind::Meta, "meta-1");
        let member = c.member(meta);
        c.add_args(meta, &[&format!("--initial-members={member}")]);
        with_metrics(&mut c, meta);
        c.spawn_prepared(meta);
        c.wait_leader(&[meta]).await;
        let mut blobs = Vec::new();
        for i in 1..=spec.blobs {
            let b = c.prepare(Kind::Blob, &format!("blob-{i}"));
            with_metrics(&mut c, b);
            c.spawn_prepared(b);
            blobs.push(b);
        }
        for &b in &blobs {
            c.wait_healthy(b).await;
        }
        c.wait_blobs_registered(meta, blobs.len()).await;
        let gw = c.prepare(Kind::Gateway, "gw-1");
        let gw_args: Vec<&str> = spec.gw_args.iter().map(String::as_str).collect();
        c.add_args(gw, &gw_args);
        with_metrics(&mut c, gw);
        c.spawn_prepared(gw);
        c.wait_healthy(gw).await;
        let (access_key_id, secret) = c.create_access_key("test");
        let s = S3Cluster {
            c,
            metas: vec![meta],
            blobs,
            gw,
            access_key_id,
            secret,
        };
        Self { s, metrics }
    }

    /// The metrics text of `node`.
    pub async fn scrape(&self, node: Node) -> Result<String, String> {
        scrape(self.metrics[&node]).await
    }
}

/// GET /metrics at `addr`: the body of a 200 answer.
pub async fn scrape(addr: SocketAddr) -> Result<String, String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| format!("write {addr}: {e}"))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .await
        .map_err(|e| format!("read {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("{addr}: {head}"));
    }
    Ok(body.to_string())
}

/// The sum of every sample of `name` whose labels include all of
/// `labels` (0 when there is none).
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            let (n, rest) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if n != name {
                return None;
            }
            let has = |(k, want): &(&str, &str)| rest.contains(&format!("{k}=\"{want}\""));
            labels
                .iter()
                .all(has)
                .then(|| v.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// Whether the text has any `hamster_*` sample.
pub fn has_hamster_series(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("hamster_"))
}

/// The status and head of a plain GET.
pub async fn raw_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(out.len());
    let head = String::from_utf8_lossy(&out[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(format!("no status: {head}"))?;
    Ok((status, head))
}

/// Whether `text` has `n` hex digits in a row (a SigV4 signature has 64).
pub fn has_hex_run(text: &str, n: usize) -> bool {
    let mut run = 0;
    for b in text.bytes() {
        run = if b.is_ascii_hexdigit() { run + 1 } else { 0 };
        if run >= n {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_summed_over_matching_labels() {
        let text = "# HELP x\nhamster_s3_requests_total{op=\"GetObject\",code=\"200\"} 3\n\
                    hamster_s3_requests_total{op=\"GetObject\",code=\"404\"} 1\n\
                    hamster_s3_degraded_writes_total 2\n";
        let v = |n, l: &[(&str, &str)]| value(text, n, l);
        assert_eq!(v("hamster_s3_requests_total", &[("op", "GetObject")]), 4.0);
        assert_eq!(v("hamster_s3_requests_total", &[("code", "404")]), 1.0);
        assert_eq!(v("hamster_s3_degraded_writes_total", &[]), 2.0);
        assert_eq!(v("hamster_other", &[]), 0.0);
        assert!(has_hamster_series(text));
    }
}
