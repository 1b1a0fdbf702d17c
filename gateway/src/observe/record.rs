//! One access-log record: what the layers of a request learn about it,
//! and the JSON line it becomes.
//!
//! Fields are copied in one by one from places that hold no secret: the
//! verified access key id (never the Authorization header), the parsed
//! path, the `versionId` parameter alone (never the raw query, which
//! carries a presigned URL's X-Amz-Signature and X-Amz-Credential), the
//! lock headers and inputs, the answer's status and S3 error code.

use std::net::SocketAddr;
use std::time::SystemTime;

/// The one timestamp format of every JSON-lines log.
pub use hamster_proto::jsonlog::{rfc3339_from_millis, rfc3339_ms};

use http::HeaderMap;
use serde_json::{Value, json};

/// The longest header-borne value copied into a record: a client can send
/// anything in a lock header, and a log line must stay a line.
const MAX_VALUE: usize = 64;

/// The object-lock fields of a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lock {
    /// GOVERNANCE or COMPLIANCE, as asked (header or XML body).
    pub mode: Option<String>,
    /// RFC 3339, as asked.
    pub retain_until: Option<String>,
    /// ON or OFF, as asked.
    pub legal_hold: Option<String>,
    /// `x-amz-bypass-governance-retention: true` was sent.
    pub bypass_requested: bool,
    /// The access check let the key use it (it owns the bucket).
    pub bypass_allowed: bool,
}

impl Lock {
    /// The lock fields a request's headers carry (PutObject, CopyObject,
    /// CreateMultipartUpload, DeleteObject(s), PutObjectRetention).
    pub fn from_headers(h: &HeaderMap) -> Self {
        let get = |name: &str| {
            h.get(name)
                .map(|v| clip(&String::from_utf8_lossy(v.as_bytes())))
        };
        Self {
            mode: get("x-amz-object-lock-mode"),
            retain_until: get("x-amz-object-lock-retain-until-date"),
            legal_hold: get("x-amz-object-lock-legal-hold"),
            bypass_requested: get("x-amz-bypass-governance-retention")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            bypass_allowed: false,
        }
    }

    fn any(&self) -> bool {
        self.mode.is_some()
            || self.retain_until.is_some()
            || self.legal_hold.is_some()
            || self.bypass_requested
    }
}

/// What the request itself says, gathered while it is served.
#[derive(Clone, Debug, Default)]
pub struct Record {
    pub remote_addr: Option<SocketAddr>,
    /// The S3 operation as s3s routed it; None: never routed (a bad
    /// signature, a refusal before s3s, an unknown operation).
    pub op: Option<String>,
    /// The key that signed the request, once SigV4 checked out ("" for
    /// an anonymous or unauthenticated request).
    pub access_key_id: String,
    pub bucket: String,
    pub key: String,
    /// The request's `versionId` parameter.
    pub version_id: String,
    pub lock: Lock,
}

/// What the answer says, known once its body has gone out.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub time: Option<SystemTime>,
    pub status: u16,
    pub request_id: String,
    pub error_code: String,
    /// The version the answer names (x-amz-version-id).
    pub version_id: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration_ms: f64,
}

/// The operation name for metrics and the log.
pub fn op_name(op: Option<&str>) -> &str {
    op.unwrap_or("Unknown")
}

/// Operations that are object-lock actions whatever their headers say.
fn lock_op(op: &str) -> bool {
    matches!(op, "PutObjectRetention" | "PutObjectLegalHold")
}

impl Record {
    /// The JSON line. Lock fields appear only for object-lock actions;
    /// `bypass_governance` is true only when the bypass header was sent,
    /// the key was allowed to use it, and the request succeeded.
    pub fn to_json(&self, out: &Outcome) -> Value {
        let op = op_name(self.op.as_deref());
        let version_id = if self.version_id.is_empty() {
            &out.version_id
        } else {
            &self.version_id
        };
        let mut v = json!({
            "time": rfc3339_ms(out.time.unwrap_or_else(SystemTime::now)),
            "request_id": out.request_id,
            "access_key_id": self.access_key_id,
            "remote_addr": self.remote_addr.map(|a| a.to_string()).unwrap_or_default(),
            "op": op,
            "bucket": self.bucket,
            "key": self.key,
            "version_id": version_id,
            "status": out.status,
            "error_code": out.error_code,
            "bytes_in": out.bytes_in,
            "bytes_out": out.bytes_out,
            "duration_ms": (out.duration_ms * 1000.0).round() / 1000.0,
        });
        if (lock_op(op) || self.lock.any())
            && let Some(obj) = v.as_object_mut()
        {
            let l = &self.lock;
            let ok = (200..300).contains(&out.status);
            obj.insert("lock_mode".into(), json!(l.mode));
            obj.insert("retain_until".into(), json!(l.retain_until));
            obj.insert("legal_hold".into(), json!(l.legal_hold));
            obj.insert(
                "bypass_governance".into(),
                json!(l.bypass_requested && l.bypass_allowed && ok),
            );
        }
        v
    }
}

/// At most `MAX_VALUE` characters of `s`.
pub fn clip(s: &str) -> String {
    s.chars().take(MAX_VALUE).collect()
}

/// The S3 error code of an error body (`<Code>NoSuchKey</Code>`), if it
/// is one: letters and digits only, so it is a bounded label.
pub fn error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    let code = &text[start..start + len];
    (!code.is_empty() && code.len() <= MAX_VALUE && code.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| code.to_string())
}

#[cfg(test)]
mod tests;
