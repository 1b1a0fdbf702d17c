//! GetObjectAttributes: what a version is, without its body — ETag,
//! checksum (with its type), size, storage class and, for a multipart
//! object, its parts a page at a time (Meta.GetParts: never more than a
//! page of part records held). Only the attributes asked for are shown.
//! A delete marker answers as GET does (404, or 405 by version id, with
//! x-amz-delete-marker).

use hamster_proto::pb;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::fields::{timestamp, version_header};
use super::get::resolve;
use crate::meta_call;

/// Parts shown per answer unless MaxParts asks for fewer (S3's limit).
const MAX_PARTS: i32 = 1000;

/// The attributes a request asked for.
#[derive(Default, Debug, PartialEq, Eq)]
struct Asked {
    etag: bool,
    checksum: bool,
    parts: bool,
    size: bool,
    storage_class: bool,
}

/// The x-amz-object-attributes list; a name S3 does not know is 400
/// InvalidArgument, as AWS answers, and so is none at all.
fn asked(list: &[ObjectAttributes]) -> S3Result<Asked> {
    let mut a = Asked::default();
    for name in list {
        // s3s splits the header on commas; spaces around names are allowed.
        match name.as_str().trim() {
            ObjectAttributes::ETAG => a.etag = true,
            ObjectAttributes::CHECKSUM => a.checksum = true,
            ObjectAttributes::OBJECT_PARTS => a.parts = true,
            ObjectAttributes::OBJECT_SIZE => a.size = true,
            ObjectAttributes::STORAGE_CLASS => a.storage_class = true,
            _ => {
                return Err(s3_error!(
                    InvalidArgument,
                    "Invalid attribute name specified."
                ));
            }
        }
    }
    if a == Asked::default() {
        return Err(s3_error!(
            InvalidRequest,
            "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty"
        ));
    }
    Ok(a)
}

/// A checksum value in the field of its algorithm, for a whole object
/// ([`Checksum`]) or a part ([`ObjectPart`]); an algorithm this gateway
/// does not know shows nothing rather than a wrong field.
#[derive(Default)]
struct Fields {
    crc32: Option<String>,
    crc32c: Option<String>,
    crc64nvme: Option<String>,
    sha1: Option<String>,
    sha256: Option<String>,
}

fn fields(algorithm: &str, value: &str) -> Fields {
    let mut f = Fields::default();
    if value.is_empty() {
        return f;
    }
    let slot = match algorithm {
        ChecksumAlgorithm::CRC32 => &mut f.crc32,
        ChecksumAlgorithm::CRC32C => &mut f.crc32c,
        ChecksumAlgorithm::CRC64NVME => &mut f.crc64nvme,
        ChecksumAlgorithm::SHA1 => &mut f.sha1,
        ChecksumAlgorithm::SHA256 => &mut f.sha256,
        _ => return f,
    };
    *slot = Some(value.to_string());
    f
}

/// The object's checksum as GetObjectAttributes shows it: a composite
/// value without its "-N" suffix (the part count is in ObjectParts).
fn checksum(v: &pb::ObjectVersion) -> Option<Checksum> {
    let value = match v.checksum_value.rsplit_once('-') {
        Some((base, n)) if n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => base,
        _ => v.checksum_value.as_str(),
    };
    let f = fields(&v.checksum_algorithm, value);
    if f.crc32.is_none()
        && f.crc32c.is_none()
        && f.crc64nvme.is_none()
        && f.sha1.is_none()
        && f.sha256.is_none()
    {
        return None;
    }
    Some(Checksum {
        checksum_crc32: f.crc32,
        checksum_crc32c: f.crc32c,
        checksum_crc64nvme: f.crc64nvme,
        checksum_sha1: f.sha1,
        checksum_sha256: f.sha256,
        checksum_type: (!v.checksum_type.is_empty())
            .then(|| ChecksumType::from(v.checksum_type.clone())),
    })
}

/// One page of a multipart version's parts, after `marker`.
async fn parts(
    gw: &Gateway,
    v: &pb::ObjectVersion,
    marker: i32,
    max: i32,
) -> S3Result<GetObjectAttributesParts> {
    let total = i32::try_from(v.parts_count).unwrap_or(i32::MAX);
    let mut out = GetObjectAttributesParts {
        total_parts_count: Some(total),
        part_number_marker: Some(marker),
        max_parts: Some(max),
        is_truncated: Some(false),
        ..Default::default()
    };
    let req = pb::GetPartsRequest {
        bucket: v.bucket.clone(),
        key: v.key.clone(),
        version_id: v.version_id.clone(),
        etag: v.etag.clone(),
        created_at_ms: v.created_at_ms,
        part_number_marker: u32::try_from(marker).unwrap_or(0),
        // MaxParts 0 lists nothing, but one is asked to know if any follow.
        max_parts: u32::try_from(max.max(1)).unwrap_or(1),
    };
    let r = meta_call!(gw.meta, get_parts, req).await?;
    let shown = if max == 0 { &[][..] } else { &r.parts[..] };
    let listed: Vec<ObjectPart> = shown
        .iter()
        .map(|p| {
            let f = fields(&v.checksum_algorithm, &p.checksum_value);
            ObjectPart {
                part_number: i32::try_from(p.part_number).ok(),
                size: i64::try_from(p.size).ok(),
                checksum_crc32: f.crc32,
                checksum_crc32c: f.crc32c,
                checksum_crc64nvme: f.crc64nvme,
                checksum_sha1: f.sha1,
                checksum_sha256: f.sha256,
            }
        })
        .collect();
    if max == 0 {
        out.is_truncated = Some(!r.parts.is_empty());
        out.parts = Some(listed);
        return Ok(out);
    }
    out.is_truncated = Some(r.is_truncated);
    if r.is_truncated {
        out.next_part_number_marker = i32::try_from(r.next_part_number_marker).ok();
    } else if let Some(last) = listed.last() {
        out.next_part_number_marker = last.part_number;
    }
    out.parts = Some(listed);
    Ok(out)
}

pub async fn get(
    gw: &Gateway,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    // SSE-C headers are refused here as on GET (`sse.rs`).
    super::sse::check(&req.headers)?;
    let i = &req.input;
    let a = asked(&i.object_attributes)?;
    let marker = i.part_number_marker.unwrap_or(0);
    if marker < 0 {
        return Err(s3_error!(
            InvalidArgument,
            "Argument part-number-marker must be an integer between 0 and 2147483647"
        ));
    }
    let max = match i.max_parts {
        None => MAX_PARTS,
        Some(n) if n < 0 => {
            return Err(s3_error!(
                InvalidArgument,
                "Argument max-parts must be an integer between 0 and 2147483647"
            ));
        }
        Some(n) => n.min(MAX_PARTS),
    };
    let v = resolve(gw, &i.bucket, &i.key, i.version_id.as_deref()).await?;
    let object_parts = if a.parts && v.parts_count > 0 {
        Some(parts(gw, &v, marker, max).await?)
    } else {
        None
    };
    Ok(S3Response::new(GetObjectAttributesOutput {
        e_tag: a.etag.then(|| ETag::Strong(v.etag.clone())),
        checksum: if a.checksum { checksum(&v) } else { None },
        object_parts,
        object_size: if a.size {
            i64::try_from(v.size).ok()
        } else {
            None
        },
        storage_class: a
            .storage_class
            .then(|| StorageClass::from_static(StorageClass::STANDARD)),
        last_modified: Some(timestamp(v.created_at_ms)),
        version_id: version_header(&v),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<ObjectAttributes> {
        list.iter()
            .map(|n| ObjectAttributes::from(n.to_string()))
            .collect()
    }

    #[test]
    fn unknown_or_no_attributes_are_refused() {
        let a = asked(&names(&["ETag", " ObjectSize"])).expect("known");
        assert!(a.etag && a.size && !a.parts && !a.checksum && !a.storage_class);
        let e = asked(&names(&["ETag", "Colour"])).expect_err("unknown");
        assert_eq!(e.code().as_str(), "InvalidArgument");
        let e = asked(&[]).expect_err("none");
        assert_eq!(e.code().as_str(), "InvalidRequest");
    }

    #[test]
    fn a_composite_checksum_is_shown_without_its_part_count() {
        let v = pb::ObjectVersion {
            checksum_algorithm: "CRC32".into(),
            checksum_value: "AAAAAA==-3".into(),
            checksum_type: "COMPOSITE".into(),
            ..Default::default()
        };
        let c = checksum(&v).expect("a checksum");
        assert_eq!(c.checksum_crc32.as_deref(), Some("AAAAAA=="));
        assert_eq!(
            c.checksum_type.as_ref().map(|t| t.as_str()),
            Some("COMPOSITE")
        );
        let full = pb::ObjectVersion {
            checksum_algorithm: "SHA256".into(),
            checksum_value: "q-q=".into(),
            checksum_type: "FULL_OBJECT".into(),
            ..Default::default()
        };
        // "-q=" is not a part count: the value stays whole.
        let c = checksum(&full).expect("a checksum");
        assert_eq!(c.checksum_sha256.as_deref(), Some("q-q="));
        assert!(checksum(&pb::ObjectVersion::default()).is_none());
    }
}
