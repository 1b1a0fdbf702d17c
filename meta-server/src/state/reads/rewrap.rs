//! The rewrapper's walk: keys still wrapped by a master key, a page at a
//! time, after a keyset cursor.
//!
//! Each table is walked in the order of the index that finds its keys
//! (`*_by_kek`, whose entries are ordered by rowid; `versions_multipart`
//! for parts of completed objects, by bucket then rowid), so a page is
//! one index range and never a scan of what already moved. A rowid is
//! only a position on the leader that walks: a row that changes rowid
//! is found again when the walk restarts from the beginning, and the
//! rotation closes only when a walk from the beginning finds nothing.

use sqlx::{Row, SqliteConnection};

use super::super::model::{Part, RewrapTarget};
use super::from_json;

/// Where a walk is: the last row each query returned. The default is the
/// beginning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RewrapCursor {
    versions: i64,
    /// (bucket, rowid, index in `parts`) of a completed object's part.
    version_parts: Option<(String, i64, i64)>,
    upload_parts: i64,
    access_keys: i64,
}

impl RewrapCursor {
    pub fn at_start(&self) -> bool {
        *self == Self::default()
    }
}

/// Every key still on `fp`, up to `limit`, from the beginning.
pub async fn wrapped_by(
    c: &mut SqliteConnection,
    fp: &str,
    limit: usize,
) -> Result<Vec<(RewrapTarget, Vec<u8>)>, sqlx::Error> {
    wrapped_by_after(c, fp, &mut RewrapCursor::default(), limit).await
}

/// Up to `limit` keys on `fp` after `at`, which moves past them.
pub async fn wrapped_by_after(
    c: &mut SqliteConnection,
    fp: &str,
    at: &mut RewrapCursor,
    limit: usize,
) -> Result<Vec<(RewrapTarget, Vec<u8>)>, sqlx::Error> {
    let mut out = Vec::new();
    let left = |out: &Vec<_>| i64::try_from(limit - out.len()).unwrap_or(i64::MAX);
    // Delete markers have no key: `delete_marker = 0` only filters.
    let rows = sqlx::query(
        "SELECT rowid, bucket, key, version_id, wrapped_dek FROM versions \
         WHERE kek_fingerprint = ? AND rowid > ? AND delete_marker = 0 ORDER BY rowid LIMIT ?",
    )
    .bind(fp)
    .bind(at.versions)
    .bind(left(&out))
    .fetch_all(&mut *c)
    .await?;
    for r in rows {
        at.versions = r.get("rowid");
        let target = RewrapTarget::Version {
            bucket: r.get("bucket"),
            key: r.get("key"),
            version_id: r.get("version_id"),
        };
        out.push((target, r.get("wrapped_dek")));
    }
    if out.len() < limit {
        version_parts(c, fp, at, limit, &mut out).await?;
    }
    if out.len() < limit {
        let rows = sqlx::query(
            "SELECT rowid, upload_id, part_number, wrapped_dek FROM parts \
             WHERE kek_fingerprint = ? AND rowid > ? ORDER BY rowid LIMIT ?",
        )
        .bind(fp)
        .bind(at.upload_parts)
        .bind(left(&out))
        .fetch_all(&mut *c)
        .await?;
        for r in rows {
            at.upload_parts = r.get("rowid");
            let n: i64 = r.get("part_number");
            let target = RewrapTarget::UploadPart {
                upload_id: r.get("upload_id"),
                part_number: u32::try_from(n).unwrap_or(0),
            };
            out.push((target, r.get("wrapped_dek")));
        }
    }
    if out.len() < limit {
        let rows = sqlx::query(
            "SELECT rowid, id, sealed_secret FROM access_keys \
             WHERE kek_fingerprint = ? AND rowid > ? ORDER BY rowid LIMIT ?",
        )
        .bind(fp)
        .bind(at.access_keys)
        .bind(left(&out))
        .fetch_all(&mut *c)
        .await?;
        for r in rows {
            at.access_keys = r.get("rowid");
            out.push((
                RewrapTarget::AccessKey { id: r.get("id") },
                r.get("sealed_secret"),
            ));
        }
    }
    Ok(out)
}

macro_rules! parts_of {
    ($where:expr) => {
        concat!(
            "SELECT v.rowid AS rid, p.key AS idx, v.bucket, v.key, v.version_id, p.value AS part ",
            "FROM versions v, json_each(v.parts) p WHERE v.parts <> '[]' AND ",
            $where
        )
    };
}

/// [`version_parts`]' statements: the rest of the cursor's bucket, then the
/// buckets after it (public for the test that checks their plans).
pub const VERSION_PARTS: [&str; 2] = [
    parts_of!(
        "v.bucket = ?1 AND v.rowid >= ?2 AND NOT (v.rowid = ?2 AND p.key <= ?3) \
         AND json_extract(p.value, '$.kek_fingerprint') = ?4 ORDER BY v.rowid LIMIT ?5"
    ),
    parts_of!(
        "v.bucket > ?1 AND json_extract(p.value, '$.kek_fingerprint') = ?2 \
         ORDER BY v.bucket, v.rowid LIMIT ?3"
    ),
];

/// Parts of completed objects, in `versions_multipart` order: bucket,
/// rowid, then each object's parts in list order (json_each's). Two
/// statements, the rest of the cursor's bucket then the buckets after it:
/// a row-value `(bucket, rowid) >= (?, ?)` seeks on `bucket` alone, so
/// each page walked the cursor's bucket from its first row again (a
/// rotation quadratic in a bucket's multipart objects).
async fn version_parts(
    c: &mut SqliteConnection,
    fp: &str,
    at: &mut RewrapCursor,
    limit: usize,
    out: &mut Vec<(RewrapTarget, Vec<u8>)>,
) -> Result<(), sqlx::Error> {
    let left = |out: &Vec<_>| i64::try_from(limit - out.len()).unwrap_or(i64::MAX);
    let (bucket, rowid, index) = at.version_parts.clone().unwrap_or((String::new(), 0, -1));
    let [rest_of_bucket, later_buckets] = VERSION_PARTS;
    let rows = sqlx::query(rest_of_bucket)
        .bind(&bucket)
        .bind(rowid)
        .bind(index)
        .bind(fp)
        .bind(left(out))
        .fetch_all(&mut *c)
        .await?;
    take_parts(rows, at, out)?;
    if out.len() < limit {
        let rows = sqlx::query(later_buckets)
            .bind(&bucket)
            .bind(fp)
            .bind(left(out))
            .fetch_all(&mut *c)
            .await?;
        take_parts(rows, at, out)?;
    }
    Ok(())
}

/// Appends a page of [`version_parts`] rows, moving the cursor past each.
fn take_parts(
    rows: Vec<sqlx::sqlite::SqliteRow>,
    at: &mut RewrapCursor,
    out: &mut Vec<(RewrapTarget, Vec<u8>)>,
) -> Result<(), sqlx::Error> {
    for r in rows {
        let part: Part = from_json(r.get("part"))?;
        let bucket: String = r.get("bucket");
        at.version_parts = Some((bucket.clone(), r.get("rid"), r.get("idx")));
        let target = RewrapTarget::VersionPart {
            bucket,
            key: r.get("key"),
            version_id: r.get("version_id"),
            part_number: part.part_number,
        };
        out.push((target, part.wrapped_dek));
    }
    Ok(())
}
