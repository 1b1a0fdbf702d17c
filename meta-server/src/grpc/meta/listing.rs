//! Where a listing page starts (ObjectsV1/V2, versions): cursors from
//! markers and tokens, never before the prefix.

use hamster_proto::pb;

use crate::state::commands::MetaError;
use crate::state::outcome::{ApplyError, reject};
use crate::state::reads::{self as q, Cursor, Walk};

/// Where a listing starts: never before the prefix.
pub(super) fn start_at(cursor: Cursor, prefix: &str) -> Cursor {
    let key = match &cursor {
        Cursor::Start => return Cursor::From(prefix.to_string()),
        Cursor::After(k) | Cursor::From(k) | Cursor::AfterVersion(k, _) => k,
    };
    if key.as_str() < prefix {
        Cursor::From(prefix.to_string())
    } else {
        cursor
    }
}

/// Resuming after `marker`. A marker that is itself one of this listing's
/// common prefixes (prefix, then text, then its first delimiter at the
/// very end) resumes after everything under it, so the prefix is not
/// listed twice; any other marker resumes right after that key.
pub(super) fn after_marker(marker: &str, prefix: &str, delimiter: &str) -> Cursor {
    if marker.is_empty() {
        return Cursor::Start;
    }
    if !delimiter.is_empty()
        && let Some(rest) = marker.strip_prefix(prefix)
        && let Some(pos) = rest.find(delimiter)
        && pos > 0
        && pos + delimiter.len() == rest.len()
        && let Some(next) = q::prefix_successor(marker)
    {
        return Cursor::From(next);
    }
    Cursor::After(marker.to_string())
}

/// Where a ListObjectVersions page starts: after key-marker, or at the
/// position version-id-marker names in it ([`q::after_version`]); a
/// malformed id that names nothing is 400, as on S3.
pub(super) async fn versions_cursor(
    c: &mut sqlx::SqliteConnection,
    r: &pb::ListVersionsRequest,
) -> Result<Cursor, ApplyError> {
    let (key, id) = (&r.key_marker, &r.version_id_marker);
    if key.is_empty() || id.is_empty() {
        return Ok(after_marker(key, &r.prefix, &r.delimiter));
    }
    match q::after_version(c, &r.bucket, key, id).await? {
        Some(cursor) => Ok(cursor),
        None => reject(MetaError::InvalidArgument(
            "Invalid version id specified".into(),
        )),
    }
}

/// Lists `bucket` if it exists.
#[allow(clippy::too_many_arguments)]
pub(super) async fn list_bucket(
    c: &mut sqlx::SqliteConnection,
    bucket: &str,
    prefix: &str,
    delimiter: &str,
    cursor: Cursor,
    max: u32,
    walk: Walk,
) -> Result<q::Page, ApplyError> {
    if q::bucket(c, bucket).await?.is_none() {
        return reject(MetaError::NoSuchBucket(bucket.to_string()));
    }
    let cursor = start_at(cursor, prefix);
    Ok(q::list(c, bucket, prefix, delimiter, cursor, max, walk).await?)
}
