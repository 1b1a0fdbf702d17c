//! Reads sized for the wire (ADR 0031): a version without its parts (and
//! how many it has), a completed object's parts a page at a time, and an
//! open upload's parts a page at a time. Pages are cut in SQL, so a
//! 10,000-part object is never decoded whole to answer one page.

use sqlx::{Row, SqliteConnection};

use super::super::model::{Part, Version};
use super::{MAX_PAGE, from_json, part_row, version_row};

/// The version columns with `parts` left out (an empty list in its
/// place) and their count beside them.
macro_rules! head_cols {
    () => {
        "bucket, key, version_id, seq, size, etag, content_type, user_metadata, stored_headers, \
         created_at_ms, delete_marker, shard_map, '[]' AS parts, wrapped_dek, kek_fingerprint, \
         lock_mode, retain_until_ms, legal_hold, checksum_algorithm, checksum_value, \
         checksum_type, upload_id, json_array_length(parts) AS parts_count"
    };
}

/// A version as answered to a gateway: every field but `parts`, and the
/// number of parts it has (0: a single-part object or a marker).
#[derive(Clone, Debug, PartialEq)]
pub struct Head {
    pub version: Version,
    pub parts_count: u32,
}

fn head_row(r: &sqlx::sqlite::SqliteRow) -> Result<Head, sqlx::Error> {
    let (version, _) = version_row(r)?;
    let n: i64 = r.try_get("parts_count")?;
    Ok(Head {
        version,
        parts_count: u32::try_from(n).unwrap_or(u32::MAX),
    })
}

/// A version without its parts: `id` None is the key's current version
/// (possibly a delete marker).
pub async fn version_head(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
    id: Option<&str>,
) -> Result<Option<Head>, sqlx::Error> {
    const BY_ID: &str = concat!(
        "SELECT ",
        head_cols!(),
        " FROM versions WHERE bucket = ? AND key = ? AND version_id = ?"
    );
    const LATEST: &str = concat!(
        "SELECT ",
        head_cols!(),
        " FROM versions WHERE bucket = ? AND key = ? ORDER BY seq DESC LIMIT 1"
    );
    let q = match id {
        Some(id) => sqlx::query(BY_ID).bind(bucket).bind(key).bind(id),
        None => sqlx::query(LATEST).bind(bucket).bind(key),
    };
    let row = q.fetch_optional(&mut *c).await?;
    row.as_ref().map(head_row).transpose()
}

/// One page of parts, and whether more follow.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartsPage {
    pub parts: Vec<Part>,
    pub is_truncated: bool,
}

/// `max` (0 or above MAX_PAGE: MAX_PAGE), and a SQL LIMIT one past it
/// (the extra row says whether the page is truncated).
fn limit(max: u32) -> (usize, i64) {
    let max = if max == 0 {
        MAX_PAGE
    } else {
        max.min(MAX_PAGE)
    };
    (max as usize, i64::from(max) + 1)
}

fn cut(mut parts: Vec<Part>, max: usize) -> PartsPage {
    let is_truncated = parts.len() > max;
    parts.truncate(max);
    PartsPage {
        parts,
        is_truncated,
    }
}

/// Why a completed object's parts cannot be paged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartsRefusal {
    /// No such version, a delete marker, or one whose etag or time differ
    /// from what the caller read (it was replaced in between).
    NoSuchVersion,
}

/// The parts of version `id` numbered above `marker`, at most `max`, in
/// part order, if that version still has `etag` and `created_at_ms`.
/// The object's parts are stored in part order (CompleteMultipart
/// refuses any other), so the array index orders them.
#[allow(clippy::too_many_arguments)]
pub async fn version_parts_page(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
    id: &str,
    etag: &str,
    created_at_ms: i64,
    marker: u32,
    max: u32,
) -> Result<Result<PartsPage, PartsRefusal>, sqlx::Error> {
    let found = sqlx::query(
        "SELECT etag, created_at_ms, delete_marker FROM versions \
         WHERE bucket = ? AND key = ? AND version_id = ?",
    )
    .bind(bucket)
    .bind(key)
    .bind(id)
    .fetch_optional(&mut *c)
    .await?;
    let same = found.is_some_and(|r| {
        r.get::<String, _>("etag") == etag
            && r.get::<i64, _>("created_at_ms") == created_at_ms
            && !r.get::<bool, _>("delete_marker")
    });
    if !same {
        return Ok(Err(PartsRefusal::NoSuchVersion));
    }
    let (max, lim) = limit(max);
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT p.value FROM versions v, json_each(v.parts) p \
         WHERE v.bucket = ?1 AND v.key = ?2 AND v.version_id = ?3 \
         AND json_extract(p.value, '$.part_number') > ?4 ORDER BY p.key LIMIT ?5",
    )
    .bind(bucket)
    .bind(key)
    .bind(id)
    .bind(i64::from(marker))
    .bind(lim)
    .fetch_all(&mut *c)
    .await?;
    let parts = rows
        .iter()
        .map(|s| from_json(s))
        .collect::<Result<Vec<Part>, _>>()?;
    Ok(Ok(cut(parts, max)))
}

/// An open upload's parts numbered above `marker`, at most `max`.
pub async fn upload_parts_page(
    c: &mut SqliteConnection,
    upload_id: &str,
    marker: u32,
    max: u32,
) -> Result<PartsPage, sqlx::Error> {
    let (max, lim) = limit(max);
    let rows = sqlx::query(
        "SELECT * FROM parts WHERE upload_id = ? AND part_number > ? \
         ORDER BY part_number LIMIT ?",
    )
    .bind(upload_id)
    .bind(i64::from(marker))
    .bind(lim)
    .fetch_all(&mut *c)
    .await?;
    let parts = rows.iter().map(part_row).collect::<Result<Vec<_>, _>>()?;
    Ok(cut(parts, max))
}

/// Part `n` of an open upload, if it was uploaded (one row, however many
/// parts the upload has).
pub async fn upload_part(
    c: &mut SqliteConnection,
    upload_id: &str,
    n: u32,
) -> Result<Option<Part>, sqlx::Error> {
    let row = sqlx::query("SELECT * FROM parts WHERE upload_id = ? AND part_number = ?")
        .bind(upload_id)
        .bind(i64::from(n))
        .fetch_optional(&mut *c)
        .await?;
    row.as_ref().map(part_row).transpose()
}
