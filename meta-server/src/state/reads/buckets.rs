//! Reads of buckets beyond one by name: a page of those a key reaches
//! (ListBuckets), a bucket's counts (`hamster bucket info`), and those
//! whose retention limit is the cluster's.

use sqlx::{Row, SqliteConnection};

use super::{bucket_row, to_u64};
use crate::state::model::Bucket;

/// Largest page of buckets, and the page of a request that names none.
pub const MAX_BUCKETS_PAGE: u32 = 10_000;

/// Buckets in name order after `after`, starting with `prefix`, at most
/// `limit` (0 or above [`MAX_BUCKETS_PAGE`]: that), and whether more
/// follow. `key` Some: only those the key owns or has a grant on (any
/// right); None: all (an admin).
pub async fn buckets_page(
    c: &mut SqliteConnection,
    key: Option<&str>,
    prefix: &str,
    after: &str,
    limit: u32,
) -> Result<(Vec<Bucket>, bool), sqlx::Error> {
    if key == Some("") {
        return Ok((Vec::new(), false));
    }
    let limit = if limit == 0 || limit > MAX_BUCKETS_PAGE {
        MAX_BUCKETS_PAGE
    } else {
        limit
    };
    let rows = sqlx::query(
        "SELECT * FROM buckets b WHERE name > ?1 AND substr(name, 1, length(?2)) = ?2 \
         AND (?3 IS NULL OR owner = ?3 OR EXISTS \
              (SELECT 1 FROM bucket_grants g WHERE g.bucket = b.name AND g.key_id = ?3)) \
         ORDER BY name LIMIT ?4",
    )
    .bind(after)
    .bind(prefix)
    .bind(key)
    .bind(i64::from(limit) + 1)
    .fetch_all(&mut *c)
    .await?;
    let more = rows.len() > limit as usize;
    let page = rows
        .iter()
        .take(limit as usize)
        .map(bucket_row)
        .collect::<Result<_, _>>()?;
    Ok((page, more))
}

/// What a bucket holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketStats {
    /// Current versions that are not delete markers, and their bytes (a
    /// multipart object's size is its version's).
    pub objects: u64,
    pub bytes: u64,
    /// Every version, delete markers included, and their bytes.
    pub versions: u64,
    pub version_bytes: u64,
    /// Unfinished multipart uploads.
    pub uploads: u64,
}

pub async fn bucket_stats(
    c: &mut SqliteConnection,
    bucket: &str,
) -> Result<BucketStats, sqlx::Error> {
    // A key's current version is its highest seq (versions_by_seq).
    let row = sqlx::query(
        "SELECT \
           (SELECT COUNT(*) FROM versions v WHERE v.bucket = ?1 AND v.delete_marker = 0 \
              AND v.seq = (SELECT MAX(w.seq) FROM versions w WHERE w.bucket = v.bucket AND w.key = v.key)) \
             AS objects, \
           (SELECT COALESCE(SUM(v.size), 0) FROM versions v WHERE v.bucket = ?1 AND v.delete_marker = 0 \
              AND v.seq = (SELECT MAX(w.seq) FROM versions w WHERE w.bucket = v.bucket AND w.key = v.key)) \
             AS bytes, \
           (SELECT COUNT(*) FROM versions WHERE bucket = ?1) AS versions, \
           (SELECT COALESCE(SUM(size), 0) FROM versions WHERE bucket = ?1) AS version_bytes, \
           (SELECT COUNT(*) FROM uploads WHERE bucket = ?1) AS uploads",
    )
    .bind(bucket)
    .fetch_one(&mut *c)
    .await?;
    Ok(BucketStats {
        objects: to_u64(row.get("objects")),
        bytes: to_u64(row.get("bytes")),
        versions: to_u64(row.get("versions")),
        version_bytes: to_u64(row.get("version_bytes")),
        uploads: to_u64(row.get("uploads")),
    })
}

/// Buckets with a default retention and no retention limit of their own
/// (the cluster default bounds them), in name order.
pub async fn buckets_on_cluster_limit(
    c: &mut SqliteConnection,
) -> Result<Vec<Bucket>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT * FROM buckets WHERE max_retention_days IS NULL AND lock_config <> '' ORDER BY name",
    )
    .fetch_all(&mut *c)
    .await?;
    rows.iter().map(bucket_row).collect()
}
