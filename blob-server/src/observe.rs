//! Blob-server metrics (docs/metrics.md, "Blob-server"), recorded through
//! the `metrics` facade: a no-op unless `--metrics-listen` installed the
//! recorder. Labels are op names, error kinds and pass kinds only, never
//! a shard id.
//!
//! The shard and byte gauges follow the store's own exact count
//! ([`crate::store::Store::publish_metrics`]), so they are right from
//! start-up and after every write, delete and quarantine; free and
//! capacity bytes are sampled as the heartbeat reports them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hamster_proto::ErrorCode;
use tonic::Status;

use crate::store::Store;

/// Every `Blob` call counted in `hamster_blob_ops_total{op}`.
pub const OPS: &[&str] = &["put", "get", "delete", "stat", "list", "scrub", "rebuild"];
/// Who found a corrupt shard.
pub const FOUND_BY: &[&str] = &["read", "scrub"];
/// The kinds of scrub pass.
pub const PASSES: &[&str] = &["background", "on_demand"];

/// Describes every series and makes each exist before its first event.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "hamster_blob_shards",
        "Shard files stored (live, not quarantined)."
    );
    describe_gauge!(
        "hamster_blob_bytes_stored",
        Unit::Bytes,
        "Bytes of the live shard files."
    );
    describe_gauge!(
        "hamster_blob_free_bytes",
        Unit::Bytes,
        "Free bytes of the data dir's filesystem, as the heartbeat reports them."
    );
    describe_gauge!(
        "hamster_blob_capacity_bytes",
        Unit::Bytes,
        "Capacity reported to the meta tier (--capacity-bytes or the filesystem's size)."
    );
    describe_counter!("hamster_blob_ops_total", "Blob calls served, by op.");
    describe_histogram!(
        "hamster_blob_op_seconds",
        Unit::Seconds,
        "Duration of Blob calls by op (a get until its last byte is sent)."
    );
    describe_counter!(
        "hamster_blob_op_errors_total",
        "Blob calls that failed, by op and kind (the error code, or the gRPC code)."
    );
    describe_histogram!(
        "hamster_blob_fsync_seconds",
        Unit::Seconds,
        "Duration of each fsync on the write path, by what (file, dir)."
    );
    describe_counter!(
        "hamster_blob_checksum_failures_total",
        "Stored shards found corrupt (checksum or format), by who found them (read, scrub)."
    );
    describe_counter!(
        "hamster_blob_bytes_written_total",
        Unit::Bytes,
        "Shard payload bytes received by PutShard."
    );
    describe_counter!(
        "hamster_blob_bytes_read_total",
        Unit::Bytes,
        "Shard payload bytes sent by GetShard."
    );
    describe_counter!(
        "hamster_blob_scrub_shards_checked_total",
        "Shards checked whole by the scrub, by pass (background, on_demand)."
    );
    describe_counter!(
        "hamster_blob_scrub_bytes_checked_total",
        Unit::Bytes,
        "Bytes read by the scrub, by pass."
    );
    describe_gauge!(
        "hamster_blob_scrub_pass_progress",
        "Share of the current (or last) scrub pass done, 0 to 1, by pass."
    );
    describe_gauge!(
        "hamster_blob_scrub_last_pass_timestamp_seconds",
        Unit::Seconds,
        "Unix time the last finished scrub pass ended, by pass (absent before the first)."
    );
    for op in OPS {
        metrics::counter!("hamster_blob_ops_total", "op" => *op).increment(0);
    }
    for by in FOUND_BY {
        metrics::counter!("hamster_blob_checksum_failures_total", "found_by" => *by).increment(0);
    }
    for pass in PASSES {
        metrics::counter!("hamster_blob_scrub_shards_checked_total", "pass" => *pass).increment(0);
        metrics::counter!("hamster_blob_scrub_bytes_checked_total", "pass" => *pass).increment(0);
    }
    metrics::counter!("hamster_blob_bytes_written_total").increment(0);
    metrics::counter!("hamster_blob_bytes_read_total").increment(0);
}

/// Describes the series, publishes the store's counts, and samples free
/// and capacity bytes every `interval` (in a task).
pub fn start(store: &Store, data_dir: PathBuf, capacity: Option<u64>, interval: Duration) {
    describe();
    store.publish_metrics();
    tokio::spawn(async move {
        loop {
            let (cap, free) = crate::registration::space(&data_dir, capacity);
            metrics::gauge!("hamster_blob_capacity_bytes").set(cap as f64);
            metrics::gauge!("hamster_blob_free_bytes").set(free as f64);
            tokio::time::sleep(interval).await;
        }
    });
}

/// The bounded kind of a failed call: its Hamster error code if it has
/// one, else its gRPC code (a client gone, a deadline).
pub fn error_kind(status: &Status) -> String {
    match ErrorCode::of(status) {
        Some(code) => code.as_str().to_string(),
        None => format!("{:?}", status.code()),
    }
}

/// One call being timed; [`OpTimer::done`] records it.
pub struct OpTimer {
    op: &'static str,
    started: Instant,
}

impl OpTimer {
    pub fn start(op: &'static str) -> Self {
        Self {
            op,
            started: Instant::now(),
        }
    }

    /// Counts the call, its duration, and its error if it failed.
    pub fn done<T>(self, result: &Result<T, Status>) {
        self.finish(result.as_ref().err().map(error_kind));
    }

    /// As [`OpTimer::done`], with the error kind given (None: success).
    pub fn finish(self, error: Option<String>) {
        let op = self.op;
        metrics::counter!("hamster_blob_ops_total", "op" => op).increment(1);
        metrics::histogram!("hamster_blob_op_seconds", "op" => op)
            .record(self.started.elapsed().as_secs_f64());
        if let Some(kind) = error {
            metrics::counter!("hamster_blob_op_errors_total", "op" => op, "kind" => kind)
                .increment(1);
        }
    }
}

/// Times `f` as one `op` call.
pub async fn observed<T>(
    op: &'static str,
    f: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    let timer = OpTimer::start(op);
    let result = f.await;
    timer.done(&result);
    result
}

/// One fsync on the write path: `what` is "file" or "dir".
pub fn fsync(what: &'static str, started: Instant) {
    metrics::histogram!("hamster_blob_fsync_seconds", "what" => what)
        .record(started.elapsed().as_secs_f64());
}

/// A stored shard found corrupt by `found_by` ("read" or "scrub").
pub fn checksum_failure(found_by: &'static str) {
    metrics::counter!("hamster_blob_checksum_failures_total", "found_by" => found_by).increment(1);
}

pub fn bytes_written(n: usize) {
    metrics::counter!("hamster_blob_bytes_written_total").increment(n as u64);
}

pub fn bytes_read(n: usize) {
    metrics::counter!("hamster_blob_bytes_read_total").increment(n as u64);
}

/// One shard checked whole by a scrub pass of kind `pass`.
pub fn scrub_checked(pass: &'static str, bytes: u64) {
    metrics::counter!("hamster_blob_scrub_shards_checked_total", "pass" => pass).increment(1);
    metrics::counter!("hamster_blob_scrub_bytes_checked_total", "pass" => pass).increment(bytes);
}

/// A pass's progress: `done` of `total` bytes (a total of 0: done).
pub fn scrub_progress(pass: &'static str, done: u64, total: u64) {
    let share = if total == 0 {
        1.0
    } else {
        (done as f64 / total as f64).min(1.0)
    };
    metrics::gauge!("hamster_blob_scrub_pass_progress", "pass" => pass).set(share);
}

/// A pass of kind `pass` ended at `finished_ms` (Unix ms).
pub fn scrub_finished(pass: &'static str, finished_ms: i64) {
    metrics::gauge!("hamster_blob_scrub_pass_progress", "pass" => pass).set(1.0);
    metrics::gauge!("hamster_blob_scrub_last_pass_timestamp_seconds", "pass" => pass)
        .set(finished_ms as f64 / 1000.0);
}
