//! What several S3 topics answer or check alike: timestamps, the
//! x-amz-version-id header, the key and user metadata limits, the headers a
//! version stores for GET to give back, and a bucket's Owner.

use std::collections::HashMap;

use hamster_proto::access::display_name;
use hamster_proto::pb;
use s3s::dto::{Initiator, Metadata, Owner, Timestamp, TimestampFormat};
use s3s::{S3Result, s3_error};

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
