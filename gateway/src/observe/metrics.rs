//! The gateway's Prometheus series (docs/metrics.md, "Gateway"), recorded
//! through the `metrics` facade; `hamster_proto::metrics` exports them.
//! Labels are operation names, status codes, S3 error codes and error
//! kinds: bounded sets, never a bucket, key or access key id.

use std::time::Duration;

pub const REQUESTS: &str = "hamster_s3_requests_total";
pub const ERRORS: &str = "hamster_s3_errors_total";
pub const DURATION: &str = "hamster_s3_request_duration_seconds";
pub const BYTES_IN: &str = "hamster_s3_bytes_in_total";
pub const BYTES_OUT: &str = "hamster_s3_bytes_out_total";
pub const DEGRADED_WRITES: &str = "hamster_s3_degraded_writes_total";
pub const STRIPES_REBUILT: &str = "hamster_s3_stripes_rebuilt_total";
pub const HEDGED_READS: &str = "hamster_s3_hedged_reads_total";
pub const META_ERRORS: &str = "hamster_meta_call_errors_total";
pub const BLOB_ERRORS: &str = "hamster_blob_call_errors_total";
pub const OPEN_CONNECTIONS: &str = "hamster_s3_open_connections";

/// HELP lines for every series, and the unlabelled ones at zero, so they
/// exist before the first event (a rate over a missing series is empty).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        REQUESTS,
        "S3 requests answered, by operation and HTTP status"
    );
    describe_counter!(ERRORS, "S3 error answers, by operation and S3 error code");
    describe_histogram!(
        DURATION,
        Unit::Seconds,
        "S3 request head received to response head sent, by operation"
    );
    describe_counter!(BYTES_IN, Unit::Bytes, "S3 request body bytes read");
    describe_counter!(BYTES_OUT, Unit::Bytes, "S3 response body bytes sent");
    describe_counter!(
        DEGRADED_WRITES,
        "Writes (objects or parts) acked with fewer than k+m shards durable"
    );
    describe_counter!(
        STRIPES_REBUILT,
        "Stripes read back by decoding parity (a data shard missing or slower than parity)"
    );
    describe_counter!(
        HEDGED_READS,
        "Stripe reads that asked parity because data shards were slow (the hedge delay passed)"
    );
    describe_counter!(
        META_ERRORS,
        "Failed attempts of gateway calls to meta-servers, by kind"
    );
    describe_counter!(
        BLOB_ERRORS,
        "Failed gateway calls to blob-servers (shard reads and writes), by kind"
    );
    describe_gauge!(OPEN_CONNECTIONS, "S3 client connections open");
    for name in [
        BYTES_IN,
        BYTES_OUT,
        DEGRADED_WRITES,
        STRIPES_REBUILT,
        HEDGED_READS,
    ] {
        metrics::counter!(name).increment(0);
    }
    metrics::gauge!(OPEN_CONNECTIONS).set(0.0);
}

/// One answered request: its count, duration and (4xx/5xx) error code.
pub fn request(op: &str, status: u16, error_code: Option<&str>, took: Duration) {
    metrics::counter!(REQUESTS, "op" => op.to_string(), "code" => status.to_string()).increment(1);
    metrics::histogram!(DURATION, "op" => op.to_string()).record(took.as_secs_f64());
    if status >= 400 {
        let code = error_code.unwrap_or("Unknown").to_string();
        metrics::counter!(ERRORS, "op" => op.to_string(), "error" => code).increment(1);
    }
}

pub fn bytes_in(n: u64) {
    metrics::counter!(BYTES_IN).increment(n);
}

pub fn bytes_out(n: u64) {
    metrics::counter!(BYTES_OUT).increment(n);
}

pub fn degraded_write() {
    metrics::counter!(DEGRADED_WRITES).increment(1);
}

pub fn stripe_rebuilt() {
    metrics::counter!(STRIPES_REBUILT).increment(1);
}

pub fn hedged_read() {
    metrics::counter!(HEDGED_READS).increment(1);
}

/// A failed attempt on a meta-server: `timeout` (no answer within the
/// deadline), `unreachable` (transport failed), `unavailable` (a live
/// server without leader or quorum), `internal` (anything else). A
/// refusal that names a reason (NoSuchKey, PreconditionFailed...) is an
/// answer, not a failed call: not counted.
pub fn meta_error(kind: &'static str) {
    metrics::counter!(META_ERRORS, "kind" => kind).increment(1);
}

/// A failed shard call on a blob-server, by gRPC status: `timeout`,
/// `unavailable`, `not_found`, `data_loss`, `internal`; `invalid` when
/// the answer had the wrong length.
pub fn blob_error(kind: &'static str) {
    metrics::counter!(BLOB_ERRORS, "kind" => kind).increment(1);
}

/// The blob error kind of a gRPC status.
pub fn blob_kind(s: &tonic::Status) -> &'static str {
    use tonic::Code;
    match s.code() {
        Code::DeadlineExceeded | Code::Cancelled => "timeout",
        Code::Unavailable | Code::Unknown => "unavailable",
        Code::NotFound => "not_found",
        Code::DataLoss => "data_loss",
        _ => "internal",
    }
}

/// An open S3 connection, counted in the gauge while it lives.
pub struct Connection(());

impl Connection {
    pub fn open() -> Self {
        metrics::gauge!(OPEN_CONNECTIONS).increment(1.0);
        Self(())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        metrics::gauge!(OPEN_CONNECTIONS).decrement(1.0);
    }
}
