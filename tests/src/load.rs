//! A background S3 load: a few streams, each looping PUT then GET of the
//! same key and checking every byte, until stopped. Counts what it did,
//! times every request that succeeded, and keeps the first failures
//! verbatim, for the tests that promise zero failed requests while the
//! cluster heals or moves shards, and for the benchmarks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use tokio::task::JoinHandle;

use crate::s3::pattern;

/// How many failures are kept word for word.
const KEEP_ERRORS: usize = 10;

/// A running load.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Stream>>,
    started: Instant,
}

/// What a load did.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Requests answered as expected (a PUT, or a GET with the right bytes).
    pub ok: u64,
    pub failed: u64,
    /// Body bytes sent and received.
    pub bytes: u64,
    pub elapsed: Duration,
    /// The first failures, as "PUT key: why".
    pub errors: Vec<String>,
    /// How long each successful PUT and GET (body included) took, sorted.
    pub put_latency: Vec<Duration>,
    pub get_latency: Vec<Duration>,
}

impl LoadReport {
    pub fn ops_per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The `q` quantile (0..=1) of sorted samples (zero if there are none).
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    sorted[at]
}

#[derive(Default)]
struct Stream {
    ok: u64,
    failed: u64,
    bytes: u64,
    errors: Vec<String>,
    put_latency: Vec<Duration>,
    get_latency: Vec<Duration>,
}

impl Stream {
    fn fail(&mut self, what: String) {
        self.failed += 1;
        if self.errors.len() < KEEP_ERRORS {
            self.errors.push(what);
        }
    }
}

/// The size of a stream's `i`-th object: from a few bytes to 1.5 MiB, so
/// small objects and multi-segment ones both run.
fn size_of(i: u64) -> usize {
    [17, 70_000, 400_000, 1_100_000, 1_600_000][(i % 5) as usize]
}

impl Load {
    /// Starts `streams` streams on `bucket`; stream `w` overwrites the keys
    /// `{prefix}{w}/{0..keys}` in turn (overwrites free shards, so the load
    /// races repair's compare-and-set too).
    pub fn start(
        client: &aws_sdk_s3::Client,
        bucket: &str,
        prefix: &str,
        streams: usize,
        keys: u64,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seq = Arc::new(AtomicU64::new(0));
        let tasks = (0..streams)
            .map(|w| {
                let (c, stop, seq) = (client.clone(), stop.clone(), seq.clone());
                let (bucket, prefix) = (bucket.to_string(), prefix.to_string());
                tokio::spawn(async move {
                    let mut st = Stream::default();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("{prefix}{w}/{}", i % keys.max(1));
                        let n = seq.fetch_add(1, Ordering::Relaxed);
                        let body = pattern(size_of(n), n as u8);
                        one_round(&c, &bucket, &key, &body, &mut st).await;
                        i += 1;
                    }
                    st
                })
            })
            .collect();
        Self {
            stop,
            tasks,
            started: Instant::now(),
        }
    }

    /// Stops every stream after its current request and adds up.
    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut r = LoadReport::default();
        for t in self.tasks {
            match t.await {
                Ok(st) => {
                    r.ok += st.ok;
                    r.failed += st.failed;
                    r.bytes += st.bytes;
                    r.errors.extend(st.errors);
                    r.put_latency.extend(st.put_latency);
                    r.get_latency.extend(st.get_latency);
                }
                Err(e) => {
                    r.failed += 1;
                    r.errors.push(format!("a load stream panicked: {e}"));
                }
            }
        }
        r.elapsed = self.started.elapsed();
        r.put_latency.sort();
        r.get_latency.sort();
        r
    }
}

async fn one_round(c: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &[u8], st: &mut Stream) {
    let t = Instant::now();
    let put = c
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await;
    if let Err(e) = put {
        st.fail(format!("PUT {key}: {e:?}"));
        return;
    }
    st.ok += 1;
    st.bytes += body.len() as u64;
    st.put_latency.push(t.elapsed());
    let t = Instant::now();
    let got = match c.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => out.body.collect().await.map(|b| b.into_bytes()),
        Err(e) => {
            st.fail(format!("GET {key}: {e:?}"));
            return;
        }
    };
    match got {
        Ok(b) if b.as_ref() == body => {
            st.ok += 1;
            st.bytes += body.len() as u64;
            st.get_latency.push(t.elapsed());
        }
        Ok(b) => st.fail(format!(
            "GET {key}: {} bytes, not the {} PUT",
            b.len(),
            body.len()
        )),
        Err(e) => st.fail(format!("GET {key} body: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_sample_at_that_rank() {
        let ms = |v: u64| Duration::from_millis(v);
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(quantile(&sorted, 0.5), ms(51));
        assert_eq!(quantile(&sorted, 0.99), ms(99));
        assert_eq!(quantile(&sorted, 1.0), ms(100));
        assert_eq!(quantile(&sorted, 0.0), ms(1));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
