//! Parts a page at a time (ADR 0031): a completed object's (GetParts,
//! what a gateway's read walks) and an open upload's (ListParts). Both are
//! linearizable reads, and both cut their page in SQL.

use hamster_proto::message_size::PARTS_PAGE_BYTES;
use hamster_proto::pb;
use prost::Message;

use super::page_size;
use crate::cluster::Meta;
use crate::grpc::errors::ServiceError;
use crate::state::commands::MetaError;
use crate::state::outcome::reject;
use crate::state::reads::{self as q, PartsPage, PartsRefusal};

/// A page on the wire: cut again, before [`PARTS_PAGE_BYTES`] of encoded
/// parts, so wide shard maps make shorter pages, never bigger ones. The
/// first part always goes (one part is far below the limit).
fn parts_pb(page: PartsPage) -> (Vec<pb::Part>, bool, u32) {
    let mut is_truncated = page.is_truncated;
    let mut out = Vec::with_capacity(page.parts.len());
    let mut bytes = 0usize;
    for p in page.parts {
        let p = pb::Part::from(p);
        // Tag, length prefix and body, as the repeated field encodes it.
        bytes += p.encoded_len() + 8;
        if !out.is_empty() && bytes > PARTS_PAGE_BYTES {
            is_truncated = true;
            break;
        }
        out.push(p);
    }
    let next = match (is_truncated, out.last()) {
        (true, Some(p)) => p.part_number,
        _ => 0,
    };
    (out, is_truncated, next)
}

/// GetParts: the version is named exactly and must still have the etag
/// and time the caller read, else NoSuchVersion.
pub async fn get_parts(
    meta: &Meta,
    r: pb::GetPartsRequest,
) -> Result<pb::GetPartsResponse, ServiceError> {
    if r.version_id.is_empty() {
        return Err(ServiceError::InvalidArgument(
            "GetParts names the version exactly (version_id is required)".into(),
        ));
    }
    let max = page_size(r.max_parts);
    let page = meta
        .read_or_refuse(async |c| {
            if q::bucket(c, &r.bucket).await?.is_none() {
                return reject(MetaError::NoSuchBucket(r.bucket.clone()));
            }
            let (bucket, key, id) = (&r.bucket, &r.key, &r.version_id);
            let (etag, at) = (&r.etag, r.created_at_ms);
            match q::version_parts_page(c, bucket, key, id, etag, at, r.part_number_marker, max)
                .await?
            {
                Ok(page) => Ok(page),
                Err(PartsRefusal::NoSuchVersion) => {
                    reject(MetaError::NoSuchVersion(r.version_id.clone()))
                }
            }
        })
        .await??;
    let (parts, is_truncated, next_part_number_marker) = parts_pb(page);
    Ok(pb::GetPartsResponse {
        parts,
        is_truncated,
        next_part_number_marker,
    })
}

/// ListParts: an open upload's parts after the marker.
pub async fn list_parts(
    meta: &Meta,
    r: pb::ListPartsRequest,
) -> Result<pb::ListPartsResponse, ServiceError> {
    let max = page_size(r.max_parts);
    let page = meta
        .read_or_refuse(async |c| match q::upload(c, &r.upload_id).await? {
            Some(u) if u.bucket == r.bucket && u.key == r.key => Ok((
                q::upload_parts_page(c, &r.upload_id, r.part_number_marker, max).await?,
                u.template.checksum_algorithm,
            )),
            _ => reject(MetaError::NoSuchUpload(r.upload_id.clone())),
        })
        .await??;
    let (page, checksum_algorithm) = page;
    let (parts, is_truncated, next_part_number_marker) = parts_pb(page);
    Ok(pb::ListPartsResponse {
        parts,
        is_truncated,
        next_part_number_marker,
        checksum_algorithm,
    })
}
