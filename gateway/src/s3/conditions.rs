//! Conditional requests: If-Match, If-None-Match, If-Modified-Since and
//! If-Unmodified-Since on GET and HEAD (304 Not Modified / 412), and the
//! x-amz-copy-source-if-* forms on copies (412 only), with S3's order of
//! precedence: a matching If-Match overrides a failing
//! If-Unmodified-Since, and a failing If-None-Match overrides a passing
//! If-Modified-Since.

use s3s::dto::{ETagCondition, Timestamp};
use s3s::{S3Result, s3_error};

#[derive(Default)]
pub struct Conditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
}

fn matches(c: &ETagCondition, etag: &str) -> bool {
    match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value().trim_matches('"') == etag,
    }
}

/// Seconds since the epoch (HTTP dates have one-second resolution).
fn secs(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

impl Conditions<'_> {
    /// For GET and HEAD: `Err` is 412 PreconditionFailed or 304 NotModified.
    pub fn check_read(&self, etag: &str, modified_ms: i64) -> S3Result<()> {
        self.check(etag, modified_ms, false)
    }

    /// For a copy source: every failure is 412.
    pub fn check_copy_source(&self, etag: &str, modified_ms: i64) -> S3Result<()> {
        self.check(etag, modified_ms, true)
    }

    fn check(&self, etag: &str, modified_ms: i64, copy: bool) -> S3Result<()> {
        let modified = modified_ms.div_euclid(1000);
        let if_match = self.if_match.map(|c| matches(c, etag));
        if if_match == Some(false) {
            return Err(s3_error!(PreconditionFailed, "If-Match"));
        }
        if if_match.is_none()
            && let Some(t) = self.if_unmodified_since
            && modified > secs(t)
        {
            return Err(s3_error!(PreconditionFailed, "If-Unmodified-Since"));
        }
        let not_modified = |what: &'static str| {
            if copy {
                s3_error!(PreconditionFailed, "{what}")
            } else {
                s3_error!(NotModified)
            }
        };
        let if_none_match = self.if_none_match.map(|c| matches(c, etag));
        if if_none_match == Some(true) {
            return Err(not_modified("If-None-Match"));
        }
        if if_none_match.is_none()
            && let Some(t) = self.if_modified_since
            && modified <= secs(t)
        {
            return Err(not_modified("If-Modified-Since"));
        }
        Ok(())
    }
}
