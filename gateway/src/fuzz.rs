//! Entry points for the fuzz harness (hamster-tests `fuzz-all`, ADR
//! 0033): the header values this gateway reads itself, from text as a
//! client sends it, through s3s's parsing into the gateway's checks.
//! Not an API; nothing here is used by the gateway.

use std::collections::HashMap;

use hamster_proto::pb;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use s3s::dto::{
    CopySource, ETagCondition, ObjectLockLegalHoldStatus, ObjectLockMode, Range, Timestamp,
    TimestampFormat,
};

use crate::listener::guard;
use crate::s3::conditions::Conditions;
use crate::s3::{copy, fields, get, lock};

/// `Range` against an object of `size` bytes: the bytes a GET sends and
/// its Content-Range, or None if refused (unparsable or 416).
pub fn range(header: &str, size: u64) -> Option<(std::ops::Range<u64>, Option<String>)> {
    let r = Range::parse(header).ok()?;
    get::satisfiable(&r, size).ok()
}

/// The four conditional headers of a GET (`copy`: of a copy source)
/// against a version with `etag`, last modified at `modified_ms`:
/// Ok(true) if the read goes ahead, Ok(false) if refused (304/412),
/// Err(which) if a header does not parse.
pub fn conditions(
    headers: [&[u8]; 4],
    etag: &str,
    modified_ms: i64,
    copy: bool,
) -> Result<bool, usize> {
    let [im, inm, ims, ius] = headers;
    let etag_cond = |b: &[u8], i| -> Result<Option<ETagCondition>, usize> {
        (!b.is_empty())
            .then(|| ETagCondition::parse_http_header(b).map_err(|_| i))
            .transpose()
    };
    let date = |b: &[u8], i| -> Result<Option<Timestamp>, usize> {
        (!b.is_empty())
            .then(|| {
                let s = std::str::from_utf8(b).map_err(|_| i)?;
                Timestamp::parse(TimestampFormat::HttpDate, s).map_err(|_| i)
            })
            .transpose()
    };
    let (im, inm) = (etag_cond(im, 0)?, etag_cond(inm, 1)?);
    let (ims, ius) = (date(ims, 2)?, date(ius, 3)?);
    let c = Conditions {
        if_match: im.as_ref(),
        if_none_match: inm.as_ref(),
        if_modified_since: ims.as_ref(),
        if_unmodified_since: ius.as_ref(),
    };
    let r = if copy {
        c.check_copy_source(etag, modified_ms)
    } else {
        c.check_read(etag, modified_ms)
    };
    Ok(r.is_ok())
}

/// The object-lock headers of a write (mode, retain-until date as
/// ISO 8601, legal hold; empty: absent), checked against a bucket with
/// object lock and `max_days` of maximum retention at `now_ms`: the
/// version's (mode, until, hold) as the gateway would send them, or None
/// if refused.
pub fn lock_headers(
    mode: &str,
    until: &str,
    hold: &str,
    max_days: u32,
    now_ms: i64,
) -> Option<(String, i64, bool)> {
    let until = if until.is_empty() {
        None
    } else {
        Some(Timestamp::parse(TimestampFormat::DateTime, until).ok()?)
    };
    let mode = (!mode.is_empty()).then(|| ObjectLockMode::from(mode.to_string()));
    let hold = (!hold.is_empty()).then(|| ObjectLockLegalHoldStatus::from(hold.to_string()));
    let mut v = pb::ObjectVersion::default();
    lock::apply_requested(&mut v, mode.as_ref(), until.as_ref(), hold.as_ref()).ok()?;
    let bucket = pb::Bucket {
        object_lock_enabled: true,
        max_retention_days: max_days,
        ..Default::default()
    };
    // check_bucket reads the clock; the maximum is checked again at
    // `now_ms` so a run is repeatable.
    lock::check_bucket(&bucket, &v).ok()?;
    if !v.lock_mode.is_empty() {
        lock::check_max_retention(&bucket, v.retain_until_ms, now_ms).ok()?;
    }
    Some((v.lock_mode, v.retain_until_ms, v.legal_hold))
}

/// A copy source's bucket, key and version.
pub type Source = (String, String, Option<String>);

/// x-amz-copy-source and x-amz-copy-source-range: the source and the
/// inclusive byte range, each None if refused.
pub fn copy_source(source: &str, range: &str) -> (Option<Source>, Option<(u64, u64)>) {
    let src = match CopySource::parse(source) {
        Ok(CopySource::Bucket {
            bucket,
            key,
            version_id,
        }) if fields::check_key(&key).is_ok() => Some((
            bucket.to_string(),
            key.to_string(),
            version_id.map(|v| v.to_string()),
        )),
        _ => None,
    };
    (src, copy::source_range(range).ok())
}

/// The listener guard's verdict on a request line and headers (raw
/// `name: value` lines; lines that are not a valid header are dropped,
/// as hyper would refuse them): the S3 code it answers, if it refuses.
pub fn guard(
    method: &[u8],
    query: &str,
    header_lines: &[u8],
    allow_sigv2: bool,
) -> Option<&'static str> {
    let method = Method::from_bytes(method).ok()?;
    let mut headers = HeaderMap::new();
    for line in header_lines.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    let query = (!query.is_empty()).then_some(query);
    guard::refusal(&method, query, &headers, allow_sigv2).map(|r| r.code)
}

/// User metadata (`name: value` lines) and a key: true if S3's limits
/// (MetadataTooLarge, KeyTooLongError) let them through.
pub fn metadata(key: &str, lines: &str) -> bool {
    let map: HashMap<String, String> = lines
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    fields::check_key(key).is_ok() && fields::check_metadata(&Some(map)).is_ok()
}
