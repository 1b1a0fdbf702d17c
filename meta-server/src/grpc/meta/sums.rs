//! Checks of the checksums a CompleteMultipartUpload lists (issue 21).

use std::collections::HashMap;

use hamster_proto::pb;

use crate::cluster::Meta;
use crate::grpc::errors::ServiceError;
use crate::state::commands::MetaError;
use crate::state::reads as q;

/// A part checksum the client listed in CompleteMultipartUpload must be
/// the one stored with the part (S3: InvalidPart). Checked before
/// proposing: apply checks each part's ETag, and a part uploaded again
/// with the same ETag has the same bytes, so the same checksum. Only the
/// upload of the request's bucket and key is read: another's parts are
/// never compared (apply answers NoSuchUpload for it).
pub(super) async fn listed_checksums_match(
    meta: &Meta,
    r: &pb::CompleteMultipartRequest,
) -> Result<(), ServiceError> {
    if r.parts.iter().all(|p| p.checksum_value.is_empty()) {
        return Ok(());
    }
    let stored = meta
        .read(async |c| match q::upload(c, &r.upload_id).await? {
            Some(u) if u.bucket == r.bucket && u.key == r.key => q::parts(c, &r.upload_id).await,
            _ => Ok(Vec::new()),
        })
        .await?;
    // By part number: up to 10,000 listed against as many stored.
    let stored: HashMap<u32, &str> = stored
        .iter()
        .map(|s| (s.part_number, s.checksum_value.as_str()))
        .collect();
    for p in r.parts.iter().filter(|p| !p.checksum_value.is_empty()) {
        let Some(&stored) = stored.get(&p.part_number) else {
            continue; // apply answers for a part never uploaded
        };
        // A part stored without one (its upload named no algorithm) is
        // not refused: SDKs list their default CRC32 for it regardless.
        if !stored.is_empty() && stored != p.checksum_value {
            let n = p.part_number;
            let why = format!("part {n}: the checksum listed is not the part's");
            return Err(MetaError::InvalidPart(why).into());
        }
    }
    Ok(())
}
