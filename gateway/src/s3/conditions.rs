//! Conditional requests: If-Match, If-None-Match, If-Modified-Since and
//! If-Unmodified-Since on GET and HEAD (304 Not Modified / 412), and the
//! x-amz-copy-source-if-* forms on copies (412 only), with S3's order of
//! precedence: a matching If-Match overrides a failing
//! If-Unmodified-Since, and a failing If-None-Match overrides a passing
//! If-Modified-Since. And conditional writes ([`Write`]): If-None-Match: *
//! and If-Match on PutObject and CompleteMultipartUpload.

use hamster_proto::{ErrorCode, pb};
use s3s::dto::{ETagCondition, Timestamp};
use s3s::{S3Result, s3_error};

use super::Gateway;
use crate::meta_call;
use crate::pipeline::commit::Precondition;

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

/// The condition of a conditional write. AWS takes only If-None-Match: *
/// ("create, never replace") and If-Match: "etag" ("replace exactly
/// that"); any other form is 501 NotImplemented, as there.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Write {
    /// The ETag the current object must have (unquoted).
    pub if_match: Option<String>,
    /// There must be no current object (a delete marker is none).
    pub if_none_match: bool,
}

impl Write {
    pub fn of(
        if_match: Option<&ETagCondition>,
        if_none_match: Option<&ETagCondition>,
    ) -> S3Result<Self> {
        let if_match = match if_match {
            None => None,
            Some(ETagCondition::ETag(e)) => Some(e.value().trim_matches('"').to_string()),
            Some(ETagCondition::Any) => {
                return Err(s3_error!(NotImplemented, "If-Match: * on a write"));
            }
        };
        let if_none_match = match if_none_match {
            None => false,
            Some(ETagCondition::Any) => true,
            Some(ETagCondition::ETag(_)) => {
                return Err(s3_error!(
                    NotImplemented,
                    "If-None-Match on a write takes only *"
                ));
            }
        };
        Ok(Self {
            if_match,
            if_none_match,
        })
    }

    pub fn is_none(&self) -> bool {
        self.if_match.is_none() && !self.if_none_match
    }

    /// The same condition, for the meta tier to decide at apply.
    pub fn precondition(&self) -> Precondition {
        Precondition {
            if_match: self.if_match.clone().unwrap_or_default(),
            if_none_match: self.if_none_match,
        }
    }

    /// Checks the condition against the key's current object before any
    /// work (412 PreconditionFailed; 404 NoSuchKey for If-Match on a key
    /// with no object). The meta tier checks again where the write
    /// applies, so a write that wins a race after this is still refused.
    pub async fn check(&self, gw: &Gateway, bucket: &str, key: &str) -> S3Result<()> {
        if self.is_none() {
            return Ok(());
        }
        let current = current(gw, bucket, key).await?;
        self.holds(current.as_ref().map(|v| v.etag.as_str()))
    }

    /// The condition against the current object's ETag (None: no object).
    pub fn holds(&self, etag: Option<&str>) -> S3Result<()> {
        if self.if_none_match && etag.is_some() {
            return Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            ));
        }
        match (&self.if_match, etag) {
            (Some(_), None) => Err(s3_error!(NoSuchKey)),
            (Some(want), Some(have)) if want != have => Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            )),
            _ => Ok(()),
        }
    }
}

/// The key's current object (None: none, or a delete marker).
pub async fn current(gw: &Gateway, bucket: &str, key: &str) -> S3Result<Option<pb::ObjectVersion>> {
    let r = meta_call!(
        gw.meta,
        get_version,
        pb::GetVersionRequest {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version_id: String::new(),
        }
    )
    .await;
    match r {
        Ok(r) => Ok(r.version.filter(|v| !v.delete_marker)),
        Err(e) if e.code() == Some(ErrorCode::NoSuchKey) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::S3ErrorCode;
    use s3s::dto::ETag;

    fn code(r: S3Result<()>) -> Option<S3ErrorCode> {
        r.err().map(|e| e.code().clone())
    }

    #[test]
    fn write_conditions_as_aws() {
        let any = ETagCondition::Any;
        let tag = ETagCondition::ETag(ETag::Strong("abc".into()));
        let create = Write::of(None, Some(&any)).expect("If-None-Match: *");
        assert_eq!(code(create.holds(None)), None);
        assert_eq!(
            code(create.holds(Some("abc"))),
            Some(S3ErrorCode::PreconditionFailed)
        );
        let replace = Write::of(Some(&tag), None).expect("If-Match");
        assert_eq!(replace.if_match.as_deref(), Some("abc"));
        assert_eq!(code(replace.holds(Some("abc"))), None);
        assert_eq!(
            code(replace.holds(Some("def"))),
            Some(S3ErrorCode::PreconditionFailed)
        );
        assert_eq!(code(replace.holds(None)), Some(S3ErrorCode::NoSuchKey));
        // Forms AWS does not take on a write.
        for (m, n) in [(Some(&any), None), (None, Some(&tag))] {
            let e = Write::of(m, n).expect_err("refused");
            assert_eq!(*e.code(), S3ErrorCode::NotImplemented);
        }
        assert!(Write::of(None, None).expect("none").is_none());
    }
}
