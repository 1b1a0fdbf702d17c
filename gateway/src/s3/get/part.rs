//! GET and HEAD with `?partNumber=N`: the bytes of one part of a
//! multipart object, answered 206 with its Content-Range and the parts
//! count (x-amz-mp-parts-count), as AWS does. A single-part object has
//! one "part": N = 1 is the whole object (no parts count). A part that
//! does not exist is 416 InvalidPartNumber, as AWS answers.

use std::ops::Range;

use hamster_proto::pb;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

use super::super::Gateway;
use super::super::error::internal;
use super::units::PARTS_PAGE;
use crate::meta_call;

/// Where part N lies in the object, and what the answer says of it.
#[derive(Debug, PartialEq, Eq)]
pub struct PartRange {
    pub range: Range<u64>,
    /// None only for the empty single-part object (nothing to name).
    pub content_range: Option<String>,
    /// The object's parts count; None for a single-part object.
    pub parts_count: Option<i32>,
}

/// The answer to a part number outside 1..=10000 (400, as AWS), and to
/// one asked for together with a Range (400 InvalidRequest).
pub fn check_request(part_number: i32, with_range: bool) -> S3Result<u32> {
    if with_range {
        return Err(s3_error!(
            InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter"
        ));
    }
    match u32::try_from(part_number) {
        Ok(n @ 1..=10_000) => Ok(n),
        _ => Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        )),
    }
}

/// 416 InvalidPartNumber: the object has no such part.
pub fn not_satisfiable() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("InvalidPartNumber".into()),
        "The requested partnumber is not satisfiable",
    );
    e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
    e
}

/// Part `n` of version `v`. A multipart object's parts are paged from the
/// meta tier until part `n` (summing the sizes before it), a page of
/// records at a time, whatever the part count.
pub async fn locate(gw: &Gateway, v: &pb::ObjectVersion, n: u32) -> S3Result<PartRange> {
    if v.parts_count == 0 {
        if n != 1 {
            return Err(not_satisfiable());
        }
        return Ok(whole(v.size));
    }
    let mut req = pb::GetPartsRequest {
        bucket: v.bucket.clone(),
        key: v.key.clone(),
        version_id: v.version_id.clone(),
        etag: v.etag.clone(),
        created_at_ms: v.created_at_ms,
        part_number_marker: 0,
        max_parts: PARTS_PAGE,
    };
    let mut start = 0u64;
    loop {
        let r = meta_call!(gw.meta, get_parts, req.clone()).await?;
        if r.is_truncated && (r.parts.is_empty() || r.next_part_number_marker == 0) {
            return Err(internal(
                "get",
                "GetParts: a truncated page without a marker",
            ));
        }
        for p in &r.parts {
            if p.part_number > n {
                return Err(not_satisfiable());
            }
            if p.part_number == n {
                let range = start..start + p.size;
                let content_range = (!range.is_empty())
                    .then(|| format!("bytes {}-{}/{}", range.start, range.end - 1, v.size));
                return Ok(PartRange {
                    range,
                    content_range,
                    parts_count: Some(i32::try_from(v.parts_count).unwrap_or(i32::MAX)),
                });
            }
            start += p.size;
        }
        if !r.is_truncated {
            return Err(not_satisfiable());
        }
        req.part_number_marker = r.next_part_number_marker;
    }
}

/// Part 1 of a single-part object: all of it.
fn whole(size: u64) -> PartRange {
    PartRange {
        range: 0..size,
        content_range: (size > 0).then(|| format!("bytes 0-{}/{size}", size - 1)),
        parts_count: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_numbers_outside_the_s3_range_or_with_a_range_are_400() {
        assert_eq!(check_request(1, false).ok(), Some(1));
        assert_eq!(check_request(10_000, false).ok(), Some(10_000));
        for n in [0, -1, 10_001] {
            let e = check_request(n, false).expect_err("out of range");
            assert_eq!(*e.code(), S3ErrorCode::InvalidArgument);
        }
        let e = check_request(1, true).expect_err("with a range");
        assert_eq!(*e.code(), S3ErrorCode::InvalidRequest);
        let e = not_satisfiable();
        assert_eq!(e.code().as_str(), "InvalidPartNumber");
        assert_eq!(e.status_code().map(|s| s.as_u16()), Some(416));
    }

    #[test]
    fn part_one_of_a_single_part_object_is_all_of_it() {
        assert_eq!(
            whole(5),
            PartRange {
                range: 0..5,
                content_range: Some("bytes 0-4/5".into()),
                parts_count: None,
            }
        );
        assert_eq!(whole(0).content_range, None);
    }
}
