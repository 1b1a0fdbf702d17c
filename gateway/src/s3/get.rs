//! GetObject (with Range) and HeadObject: resolve the version with a
//! linearizable read, then, for GET, stream the range through the read
//! pipeline (fan-in with reconstruction, decrypt).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use hamster_proto::pb;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::conditions::Conditions;
use super::error::internal;
use super::fields::{timestamp, version_header};
use crate::meta_call;
use crate::pipeline::read::ReadError;

mod part;
mod units;
use units::{Opener, Units};

/// What GET and HEAD both answer with.
struct Described {
    content_type: Option<String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    expires: Option<Timestamp>,
    metadata: Option<Metadata>,
    e_tag: Option<ETag>,
    last_modified: Option<Timestamp>,
    version_id: Option<String>,
    lock: super::lock::Shown,
}

fn describe(v: &pb::ObjectVersion) -> Described {
    let h = |k: &str| v.stored_headers.get(k).cloned();
    Described {
        content_type: (!v.content_type.is_empty()).then(|| v.content_type.clone()),
        cache_control: h("cache-control"),
        content_disposition: h("content-disposition"),
        content_encoding: h("content-encoding"),
        content_language: h("content-language"),
        expires: h("expires").and_then(|e| Timestamp::parse(TimestampFormat::HttpDate, &e).ok()),
        metadata: (!v.user_metadata.is_empty())
            .then(|| v.user_metadata.clone().into_iter().collect()),
        e_tag: Some(ETag::Strong(v.etag.clone())),
        last_modified: Some(timestamp(v.created_at_ms)),
        version_id: version_header(v),
        lock: super::lock::shown(v),
    }
}

pub async fn resolve(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<pb::ObjectVersion> {
    let req = pb::GetVersionRequest {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id: version_id.unwrap_or_default().to_string(),
    };
    let r = meta_call!(gw.meta, get_version, req).await?;
    let v = r
        .version
        .ok_or_else(|| internal("resolve", "empty GetVersion answer"))?;
    if v.delete_marker {
        return Err(marker_error(&v, version_id.is_some()));
    }
    Ok(v)
}

/// A read that lands on a delete marker: 405 when it was named by id,
/// 404 NoSuchKey when it is the key's current version; both say so in
/// x-amz-delete-marker and give the marker's id.
fn marker_error(v: &pb::ObjectVersion, by_id: bool) -> s3s::S3Error {
    let mut e = if by_id {
        s3_error!(
            MethodNotAllowed,
            "The specified method is not allowed against this resource."
        )
    } else {
        s3_error!(NoSuchKey)
    };
    let mut h = http::HeaderMap::new();
    h.insert(
        "x-amz-delete-marker",
        http::HeaderValue::from_static("true"),
    );
    if let Some(id) = version_header(v).and_then(|id| http::HeaderValue::from_str(&id).ok()) {
        h.insert("x-amz-version-id", id);
    }
    e.set_headers(h);
    e
}

/// The plaintext of `range` of a version, single-part or multipart (each
/// part its own encrypted, erasure-coded unit). The first segment is read
/// before this returns, so "cannot read at all" is an error status. A
/// multipart object's parts are paged from the meta tier as the read
/// proceeds ([`units`]); a range deep inside one pages from the first
/// part, skipping whole pages of records before it.
pub async fn object_body(
    gw: &Gateway,
    v: &pb::ObjectVersion,
    range: Range<u64>,
) -> S3Result<ReceiverStream<Result<Bytes, ReadError>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    if range.is_empty() {
        return Ok(ReceiverStream::new(rx));
    }
    let opener = Opener::new(gw, v);
    let mut units = Units::of(gw, v);
    // The first unit the range touches, and where the next one starts.
    let mut base = 0u64;
    let (first, sub) = loop {
        let Some(unit) = units.next().await? else {
            return Err(internal("get", "the object's parts end before the range"));
        };
        let (start, end) = (base, base + unit.size);
        base = end;
        if unit.size > 0 && end > range.start {
            break (unit, range.start - start..range.end.min(end) - start);
        }
    };
    let first = Arc::new(opener.open(&first)?).stream(sub).await?;
    tokio::spawn(async move {
        let mut current = Box::pin(first);
        loop {
            while let Some(piece) = current.next().await {
                let failed = piece.is_err();
                if tx.send(piece).await.is_err() || failed {
                    return;
                }
            }
            if base >= range.end {
                return;
            }
            // The next unit with data; any failure ends the body short.
            let next = async {
                loop {
                    let unit = units
                        .next()
                        .await
                        .map_err(|e| ReadError::Unit(e.to_string()))?;
                    let Some(unit) = unit else {
                        return Err(ReadError::Unit("the object's parts end early".into()));
                    };
                    let start = base;
                    base += unit.size;
                    if unit.size == 0 {
                        continue;
                    }
                    let reader = opener
                        .open(&unit)
                        .map_err(|e| ReadError::Unit(e.to_string()))?;
                    let sub = 0..range.end.min(base) - start;
                    return Arc::new(reader).stream(sub).await;
                }
            };
            match next.await {
                Ok(s) => current = Box::pin(s),
                Err(e) => {
                    tracing::error!(error = %e, "read failed mid-body");
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    });
    Ok(ReceiverStream::new(rx))
}

pub async fn head(
    gw: &Gateway,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    super::sse::check(&req.headers)?;
    let i = &req.input;
    let v = resolve(gw, &i.bucket, &i.key, i.version_id.as_deref()).await?;
    Conditions {
        if_match: i.if_match.as_ref(),
        if_none_match: i.if_none_match.as_ref(),
        if_modified_since: i.if_modified_since.as_ref(),
        if_unmodified_since: i.if_unmodified_since.as_ref(),
    }
    .check_read(&v.etag, v.created_at_ms)
    .map_err(|e| super::fields::not_modified(e, &v))?;
    // ?partNumber=N: that part's size and place, 206 as AWS answers.
    let part = match i.part_number {
        Some(n) => Some(part::locate(gw, &v, part::check_request(n, i.range.is_some())?).await?),
        None => None,
    };
    let d = describe(&v);
    // Shown only when asked, and only for the whole object.
    let whole = i.range.is_none() && i.part_number.is_none();
    let sum = super::checksums::for_read(&v, i.checksum_mode.as_ref(), whole);
    let size = part
        .as_ref()
        .map_or(v.size, |p| p.range.end - p.range.start);
    let (content_range, parts_count) = part
        .map(|p| (p.content_range, p.parts_count))
        .unwrap_or_default();
    let status = content_range
        .is_some()
        .then_some(http::StatusCode::PARTIAL_CONTENT);
    let mut answer = S3Response::new(HeadObjectOutput {
        accept_ranges: Some("bytes".into()),
        content_length: i64::try_from(size).ok(),
        content_range,
        parts_count,
        content_type: d.content_type,
        cache_control: d.cache_control,
        content_disposition: d.content_disposition,
        content_encoding: d.content_encoding,
        content_language: d.content_language,
        expires: d.expires,
        metadata: d.metadata,
        e_tag: d.e_tag,
        last_modified: d.last_modified,
        version_id: d.version_id,
        object_lock_mode: d.lock.mode,
        object_lock_retain_until_date: d.lock.until,
        object_lock_legal_hold_status: d.lock.legal_hold,
        checksum_crc32: sum.checksum_crc32,
        checksum_crc32c: sum.checksum_crc32c,
        checksum_sha1: sum.checksum_sha1,
        checksum_sha256: sum.checksum_sha256,
        checksum_crc64nvme: sum.checksum_crc64nvme,
        checksum_type: sum.checksum_type,
        server_side_encryption: super::sse::aes256(),
        ..Default::default()
    });
    answer.status = status;
    Ok(answer)
}

/// The bytes a Range header asks for, and its Content-Range (None: the
/// whole object, answered 200). A suffix range on an empty object
/// (`bytes=-N`, N > 0) is the one range RFC 9110 §14.1.1 finds satisfiable
/// there, and AWS answers it 200 with the empty body (readers of file
/// tails, e.g. Trino and arrow's object_store, rely on it). s3s resolves
/// it to `0..0`, whose Content-Range would underflow `end - 1`. Any other
/// range on an empty object is 416 InvalidRange (s3s's check, as AWS).
pub(crate) fn satisfiable(
    r: &s3s::dto::Range,
    size: u64,
) -> S3Result<(Range<u64>, Option<String>)> {
    let range = r
        .check(size)
        .map_err(|_| s3_error!(InvalidRange, "the range is outside the object"))?;
    if range.is_empty() {
        return Ok((range, None));
    }
    let cr = format!("bytes {}-{}/{}", range.start, range.end - 1, size);
    Ok((range, Some(cr)))
}

pub async fn get(
    gw: &Gateway,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    super::sse::check(&req.headers)?;
    let i = &req.input;
    let v = resolve(gw, &i.bucket, &i.key, i.version_id.as_deref()).await?;
    Conditions {
        if_match: i.if_match.as_ref(),
        if_none_match: i.if_none_match.as_ref(),
        if_modified_since: i.if_modified_since.as_ref(),
        if_unmodified_since: i.if_unmodified_since.as_ref(),
    }
    .check_read(&v.etag, v.created_at_ms)
    .map_err(|e| super::fields::not_modified(e, &v))?;
    let (range, content_range, parts_count) = match (&i.range, i.part_number) {
        // ?partNumber=N: that part's bytes, 206 as AWS answers.
        (r, Some(n)) => {
            let p = part::locate(gw, &v, part::check_request(n, r.is_some())?).await?;
            (p.range, p.content_range, p.parts_count)
        }
        (None, None) => (0..v.size, None, None),
        (Some(r), None) => {
            let (range, cr) = satisfiable(r, v.size)?;
            (range, cr, None)
        }
    };
    let body = StreamingBlob::wrap(object_body(gw, &v, range.clone()).await?);
    let d = describe(&v);
    // Shown only when asked, and only for the whole object.
    let whole = i.range.is_none() && i.part_number.is_none();
    let sum = super::checksums::for_read(&v, i.checksum_mode.as_ref(), whole);
    Ok(S3Response::new(GetObjectOutput {
        body: Some(body),
        accept_ranges: Some("bytes".into()),
        content_length: i64::try_from(range.end - range.start).ok(),
        content_range,
        parts_count,
        content_type: d.content_type,
        cache_control: d.cache_control,
        content_disposition: d.content_disposition,
        content_encoding: d.content_encoding,
        content_language: d.content_language,
        expires: d.expires,
        metadata: d.metadata,
        e_tag: d.e_tag,
        last_modified: d.last_modified,
        version_id: d.version_id,
        object_lock_mode: d.lock.mode,
        object_lock_retain_until_date: d.lock.until,
        object_lock_legal_hold_status: d.lock.legal_hold,
        checksum_crc32: sum.checksum_crc32,
        checksum_crc32c: sum.checksum_crc32c,
        checksum_sha1: sum.checksum_sha1,
        checksum_sha256: sum.checksum_sha256,
        checksum_crc64nvme: sum.checksum_crc64nvme,
        checksum_type: sum.checksum_type,
        server_side_encryption: super::sse::aes256(),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::satisfiable;
    use s3s::S3ErrorCode;
    use s3s::dto::Range;

    #[test]
    fn a_suffix_range_on_an_empty_object_is_the_whole_empty_object_not_an_underflow() {
        let (r, cr) = satisfiable(&Range::Suffix { length: 1 }, 0).expect("satisfiable");
        assert_eq!((r, cr), (0..0, None), "200, empty body, as AWS");
        // Every other range on an empty object, and bytes=-0: 416.
        for r in [
            Range::Int {
                first: 0,
                last: None,
            },
            Range::Int {
                first: 0,
                last: Some(0),
            },
            Range::Suffix { length: 0 },
        ] {
            let e = satisfiable(&r, 0).expect_err("unsatisfiable");
            assert_eq!(*e.code(), S3ErrorCode::InvalidRange);
            assert_eq!(e.status_code().map(|s| s.as_u16()), Some(416));
        }
    }

    #[test]
    fn satisfiable_ranges_keep_their_content_range() {
        let cases = [
            (Range::Suffix { length: 1 }, 4..5, "bytes 4-4/5"),
            (Range::Suffix { length: 9 }, 0..5, "bytes 0-4/5"),
            (
                Range::Int {
                    first: 1,
                    last: Some(2),
                },
                1..3,
                "bytes 1-2/5",
            ),
            (
                Range::Int {
                    first: 3,
                    last: None,
                },
                3..5,
                "bytes 3-4/5",
            ),
        ];
        for (asked, range, cr) in cases {
            let got = satisfiable(&asked, 5).expect("satisfiable");
            assert_eq!(got, (range, Some(cr.to_string())));
        }
        let e = satisfiable(
            &Range::Int {
                first: 5,
                last: None,
            },
            5,
        )
        .expect_err("past the end");
        assert_eq!(*e.code(), S3ErrorCode::InvalidRange);
    }
}
