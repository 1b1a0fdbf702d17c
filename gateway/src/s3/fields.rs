//! What several S3 topics answer or check alike: timestamps, the
//! x-amz-version-id header, the key and user metadata limits, user
//! metadata as sent, the headers a version stores for GET to give back
//! (and a 304 repeats), and a bucket's Owner.

use std::collections::HashMap;

use hamster_proto::access::display_name;
use hamster_proto::pb;
use http::{HeaderMap, HeaderValue};
use s3s::dto::{CreateBucketConfiguration, Initiator, Metadata, Owner, Timestamp, TimestampFormat};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

/// Unix milliseconds as an S3 timestamp.
pub fn timestamp(ms: i64) -> Timestamp {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

/// The x-amz-version-id a response carries: none on a bucket that was
/// never versioned, "null" for the null version of one that was.
pub fn version_header(v: &pb::ObjectVersion) -> Option<String> {
    let shown = !v.version_id.is_empty() && (v.version_id != "null" || v.bucket_versioned);
    shown.then(|| v.version_id.clone())
}

/// S3's limit on key length, in bytes of UTF-8.
pub const MAX_KEY_LEN: usize = 1024;

/// KeyTooLongError for a key S3 would refuse.
pub fn check_key(key: &str) -> S3Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(s3_error!(KeyTooLongError, "keys are at most 1024 bytes"));
    }
    Ok(())
}

/// S3's limit on user metadata: the bytes of every x-amz-meta- name
/// (without the prefix) and value, summed, as AWS counts them. Above it
/// a version would carry up to the 8 KB header limit through Raft.
pub const MAX_USER_METADATA: usize = 2048;

/// MetadataTooLarge for user metadata S3 would refuse; checked before
/// the body is read.
pub fn check_metadata(metadata: &Option<Metadata>) -> S3Result<()> {
    let size = metadata.iter().flatten().fold(0usize, |n, (k, v)| {
        n.saturating_add(k.len()).saturating_add(v.len())
    });
    if size > MAX_USER_METADATA {
        return Err(s3_error!(
            MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size of {MAX_USER_METADATA} bytes"
        ));
    }
    Ok(())
}

/// User metadata as AWS keeps it (issue 21 point 9), from the request's
/// own x-amz-meta-* headers rather than s3s' decoded copy: an ASCII value
/// is kept byte for byte, RFC 2047 encoded-words included (s3s decodes
/// them, and would give back another spelling, or plain ASCII); a raw
/// UTF-8 value is kept as text, which s3s answers as =?UTF-8?B?...?=.
/// s3s has already refused duplicates and bytes that are not UTF-8.
pub fn user_metadata(headers: &HeaderMap) -> Option<Metadata> {
    let mut m = Metadata::default();
    for (name, value) in headers {
        let Some(key) = name.as_str().strip_prefix("x-amz-meta-") else {
            continue;
        };
        if key.is_empty() {
            continue;
        }
        if let Ok(v) = std::str::from_utf8(value.as_bytes()) {
            m.insert(key.to_string(), v.to_string());
        }
    }
    (!m.is_empty()).then_some(m)
}

/// A Content-Encoding as stored: without `aws-chunked`, which is the
/// request's transport framing (s3s has already unwrapped it), not the
/// object's encoding; None when nothing else is left.
pub fn stored_encoding(sent: &Option<String>) -> Option<String> {
    let sent = sent.as_deref()?;
    let kept: Vec<&str> = sent
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

/// CreateBucket's LocationConstraint: any region name, and the legacy
/// values AWS still takes ("US", which s3cmd may send, and "EU"), are
/// accepted (issue 21 point 11). The cluster has one location whatever
/// was asked, and GetBucketLocation says so (us-east-1, shown as empty,
/// as AWS shows it); anything else is InvalidLocationConstraint, before
/// any bucket is made.
pub fn check_location(config: Option<&CreateBucketConfiguration>) -> S3Result<()> {
    let Some(loc) = config.and_then(|c| c.location_constraint.as_ref()) else {
        return Ok(());
    };
    let loc = loc.as_str();
    let region = !loc.is_empty()
        && loc.len() <= 64
        && loc
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if loc.is_empty() || loc == "US" || loc == "EU" || region {
        return Ok(());
    }
    Err(s3_error!(
        InvalidLocationConstraint,
        "The specified location-constraint is not valid"
    ))
}

/// The stored headers a GET gives back (PutObject, CopyObject with
/// REPLACE, CreateMultipartUpload).
pub fn stored_headers(
    cache_control: &Option<String>,
    content_disposition: &Option<String>,
    content_encoding: &Option<String>,
    content_language: &Option<String>,
    expires: &Option<Timestamp>,
) -> HashMap<String, String> {
    let mut h = HashMap::new();
    let content_encoding = &stored_encoding(content_encoding);
    for (k, v) in [
        ("cache-control", cache_control),
        ("content-disposition", content_disposition),
        ("content-encoding", content_encoding),
        ("content-language", content_language),
    ] {
        if let Some(v) = v {
            h.insert(k.to_string(), v.clone());
        }
    }
    if let Some(e) = expires {
        let mut buf = Vec::new();
        if e.format(TimestampFormat::HttpDate, &mut buf).is_ok() {
            h.insert("expires".into(), String::from_utf8_lossy(&buf).into_owned());
        }
    }
    h
}

/// The Owner of a bucket's listings: its owner key (objects are the
/// bucket owner's, ADR 0027); None for an ownerless bucket.
pub fn owner(b: &pb::Bucket) -> Option<Owner> {
    (!b.owner.is_empty()).then(|| Owner {
        id: Some(b.owner.clone()),
        display_name: Some(display_name(&b.owner, &b.owner_name)),
    })
}

/// The Initiator of a bucket's uploads: the bucket's owner, like Owner
/// (the key that began an upload is not recorded).
pub fn initiator(b: &pb::Bucket) -> Option<Initiator> {
    owner(b).map(|o| Initiator {
        id: o.id,
        display_name: o.display_name,
    })
}

/// A 304 Not Modified with the validators and caching headers a 200
/// would carry (RFC 9110 §15.4.5; AWS sends ETag, Last-Modified and the
/// stored Cache-Control and Expires); any other error unchanged.
pub fn not_modified(mut e: S3Error, v: &pb::ObjectVersion) -> S3Error {
    if *e.code() != S3ErrorCode::NotModified {
        return e;
    }
    let mut h = HeaderMap::new();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", v.etag)) {
        h.insert(http::header::ETAG, etag);
    }
    let mut date = Vec::new();
    if timestamp(v.created_at_ms)
        .format(TimestampFormat::HttpDate, &mut date)
        .is_ok()
        && let Ok(date) = HeaderValue::from_bytes(&date)
    {
        h.insert(http::header::LAST_MODIFIED, date);
    }
    for name in [http::header::CACHE_CONTROL, http::header::EXPIRES] {
        if let Some(value) = v
            .stored_headers
            .get(name.as_str())
            .and_then(|s| HeaderValue::from_str(s).ok())
        {
            h.insert(name, value);
        }
    }
    e.set_headers(h);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_chunked_is_framing_not_an_encoding() {
        let ce = |s: &str| stored_encoding(&Some(s.to_string()));
        assert_eq!(ce("gzip, aws-chunked").as_deref(), Some("gzip"));
        assert_eq!(ce("aws-chunked"), None);
        assert_eq!(ce("AWS-Chunked,gzip").as_deref(), Some("gzip"));
        assert_eq!(ce("gzip, br").as_deref(), Some("gzip, br"));
        assert_eq!(stored_encoding(&None), None);
        let h = stored_headers(&None, &None, &Some("aws-chunked".into()), &None, &None);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn legacy_locations_are_taken() {
        let at = |l: &str| {
            check_location(Some(&CreateBucketConfiguration {
                location_constraint: Some(l.to_string().into()),
                ..Default::default()
            }))
            .is_ok()
        };
        for ok in ["US", "EU", "us-east-1", "eu-west-1", ""] {
            assert!(at(ok), "{ok}");
        }
        for bad in ["us east", "Mars", "<x>"] {
            assert!(!at(bad), "{bad}");
        }
        assert!(check_location(None).is_ok());
    }

    #[test]
    fn metadata_is_kept_as_sent() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-meta-q",
            HeaderValue::from_static("=?utf-8?Q?caf=C3=A9?="),
        );
        h.insert(
            "x-amz-meta-raw",
            HeaderValue::from_bytes("café".as_bytes()).expect("obs-text"),
        );
        h.insert("x-amz-meta-", HeaderValue::from_static("no name"));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        let m = user_metadata(&h).expect("some");
        assert_eq!(m.len(), 2);
        assert_eq!(m["q"], "=?utf-8?Q?caf=C3=A9?=");
        assert_eq!(m["raw"], "café");
        assert!(user_metadata(&HeaderMap::new()).is_none());
    }

    #[test]
    fn a_304_repeats_the_validators() {
        let mut v = pb::ObjectVersion {
            etag: "abc".into(),
            created_at_ms: 1_700_000_000_000,
            ..Default::default()
        };
        v.stored_headers
            .insert("cache-control".into(), "max-age=60".into());
        let e = not_modified(s3_error!(NotModified), &v);
        let h = e.headers().expect("headers");
        assert_eq!(h["etag"], "\"abc\"");
        assert_eq!(h["last-modified"], "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(h["cache-control"], "max-age=60");
        let other = not_modified(s3_error!(PreconditionFailed), &v);
        assert!(other.headers().is_none());
    }
}
