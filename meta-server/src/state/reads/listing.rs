//! Listings: ListObjects and ListObjectVersions pages over the versions
//! table, their cursors and continuation tokens.
//!
//! Keys compare as bytes (SQLite's BINARY collation on UTF-8), which is the
//! order S3 lists in.
//!
//! A listing reads only what an S3 listing shows (key, version id, size,
//! ETag, time, marker, latest): never a shard map, data key, metadata or
//! parts, so a page of 1000 large multipart objects stays small on the
//! wire and in memory (ADR 0031).

use hamster_proto::ids::is_version_id;
use sqlx::{Row, SqliteConnection};

use super::super::model::Version;
use super::super::objects::NULL_VERSION;
use super::{MAX_PAGE, to_u64};

/// The smallest string greater than every string that starts with `prefix`
/// (None: no such string, everything after `prefix` has it as a prefix).
pub fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Where a listing resumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cursor {
    Start,
    /// Strictly after this key.
    After(String),
    /// At or after this key (the end of a common prefix).
    From(String),
    /// After this version: older versions of the key, then later keys.
    AfterVersion(String, i64),
}

/// Encodes a continuation token (opaque to clients).
pub fn encode_token(c: &Cursor) -> String {
    match c {
        Cursor::Start => String::new(),
        Cursor::After(k) => format!("a{}", hex::encode(k)),
        Cursor::From(k) => format!("f{}", hex::encode(k)),
        Cursor::AfterVersion(k, s) => format!("v{s}.{}", hex::encode(k)),
    }
}

/// Decodes a continuation token; None if it was not one of ours.
pub fn decode_token(t: &str) -> Option<Cursor> {
    if t.is_empty() {
        return Some(Cursor::Start);
    }
    let key = |h: &str| String::from_utf8(hex::decode(h).ok()?).ok();
    match t.as_bytes()[0] {
        b'a' => Some(Cursor::After(key(t.get(1..)?)?)),
        b'f' => Some(Cursor::From(key(t.get(1..)?)?)),
        b'v' => {
            let (seq, k) = t.get(1..)?.split_once('.')?;
            Some(Cursor::AfterVersion(key(k)?, seq.parse().ok()?))
        }
        _ => None,
    }
}

/// Where a versions listing resumes after (`key`, version `id`): the
/// version-id-marker is a position in the (key, newest first) order, not
/// a reference. A version that exists (a delete marker and "null"
/// included) resumes right after itself. One deleted since resumes at
/// the first remaining version of `key`: its place went with it (ids are
/// not ordered like commits: "null", or minted on another gateway's
/// clock), and starting there never skips a version. The only versions
/// listed again are newer ones of `key` still present, which the
/// emptying loop (list a page, delete what it listed) has deleted.
/// None: `id` names nothing and is not an id's shape (S3's 400).
pub async fn after_version(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
    id: &str,
) -> Result<Option<Cursor>, sqlx::Error> {
    // An existing id of an older shape is still a position.
    Ok(match super::version_seq(c, bucket, key, id).await? {
        Some(seq) => Some(Cursor::AfterVersion(key.to_string(), seq)),
        None if id == NULL_VERSION || is_version_id(id) => Some(Cursor::From(key.to_string())),
        None => None,
    })
}

/// One entry of a listing: a version, or a common prefix.
// Most entries are versions: boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    Version { version: Version, is_latest: bool },
    Prefix(String),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub entries: Vec<Entry>,
    pub is_truncated: bool,
    /// Where the next page starts (meaningful when truncated).
    pub next: Option<Cursor>,
}

/// Which rows a listing walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk {
    /// Current versions that are not delete markers (ListObjects).
    Latest,
    /// Every version and marker, newest first per key (ListObjectVersions).
    AllVersions,
}

const BATCH: i64 = 256;
macro_rules! is_latest {
    () => {
        "seq = (SELECT MAX(seq) FROM versions w WHERE w.bucket = v.bucket AND w.key = v.key)"
    };
}
/// What a listing shows of a version: nothing else is read.
macro_rules! listed_cols {
    () => {
        "bucket, key, version_id, seq, size, etag, created_at_ms, delete_marker"
    };
}
/// `$bound` is `key < ?4` when the prefix has an end, `?4 IS NULL` (no
/// bound, ?4 bound to NULL) when it has none: written as one `(?4 IS NULL
/// OR key < ?4)`, SQLite cannot use the bound to stop its index walk, and
/// a prefix listing that reached the prefix's end kept reading the rest of
/// the bucket for rows it would never return.
macro_rules! list_sql {
    ($bound:expr, $filter:expr) => {
        concat!(
            "SELECT ",
            listed_cols!(),
            ", (",
            is_latest!(),
            ") AS is_latest FROM versions v ",
            "WHERE bucket = ?1 AND (key > ?2 OR (key = ?2 AND seq < ?3)) AND ",
            $bound,
            " ",
            $filter,
            " ORDER BY key, seq DESC LIMIT ?5"
        )
    };
}
/// Current versions only (ListObjects): [under a prefix with an end, with
/// no end].
const LIST_LATEST: [&str; 2] = [
    list_sql!("key < ?4", concat!("AND ", is_latest!())),
    list_sql!("?4 IS NULL", concat!("AND ", is_latest!())),
];
/// Every version and marker (ListObjectVersions), likewise.
const LIST_ALL: [&str; 2] = [list_sql!("key < ?4", ""), list_sql!("?4 IS NULL", "")];

/// The statements a listing runs (for the test that checks their plans).
pub const LIST_STATEMENTS: [&str; 4] = [LIST_LATEST[0], LIST_LATEST[1], LIST_ALL[0], LIST_ALL[1]];

/// A listed version: the shown fields, every other one empty.
fn listed_row(r: &sqlx::sqlite::SqliteRow) -> Result<(Version, i64), sqlx::Error> {
    Ok((
        Version {
            bucket: r.try_get("bucket")?,
            key: r.try_get("key")?,
            version_id: r.try_get("version_id")?,
            size: to_u64(r.try_get("size")?),
            etag: r.try_get("etag")?,
            created_at_ms: r.try_get("created_at_ms")?,
            delete_marker: r.try_get("delete_marker")?,
            ..Version::default()
        },
        r.try_get("seq")?,
    ))
}

/// Lists a bucket: keys with `prefix`, from `cursor`, grouped by
/// `delimiter`, at most `max` entries (versions and prefixes together).
pub async fn list(
    c: &mut SqliteConnection,
    bucket: &str,
    prefix: &str,
    delimiter: &str,
    mut cursor: Cursor,
    max: u32,
    walk: Walk,
) -> Result<Page, sqlx::Error> {
    let max = max.min(MAX_PAGE) as usize;
    let mut page = Page::default();
    if max == 0 {
        return Ok(page);
    }
    // Never start before the prefix.
    let before_prefix = match &cursor {
        Cursor::Start => true,
        Cursor::After(k) | Cursor::From(k) | Cursor::AfterVersion(k, _) => k.as_str() < prefix,
    };
    if before_prefix {
        cursor = Cursor::From(prefix.to_string());
    }
    let upper = prefix_successor(prefix);
    let latest_only = walk == Walk::Latest;
    loop {
        // One clause for every cursor: (key, seq) strictly after the bound,
        // with seq = MAX to include all of the key and MIN to skip it.
        let (key, seq) = match &cursor {
            Cursor::Start => (String::new(), i64::MAX),
            Cursor::From(k) => (k.clone(), i64::MAX),
            Cursor::After(k) => (k.clone(), i64::MIN),
            Cursor::AfterVersion(k, s) => (k.clone(), *s),
        };
        let sql = if latest_only { LIST_LATEST } else { LIST_ALL }[usize::from(upper.is_none())];
        let rows = sqlx::query(sql)
            .bind(bucket)
            .bind(&key)
            .bind(seq)
            .bind(upper.as_deref())
            .bind(BATCH)
            .fetch_all(&mut *c)
            .await?;
        let fetched = rows.len();
        let mut jumped = false;
        for row in &rows {
            let (v, seq) = listed_row(row)?;
            let is_latest: bool = row.get("is_latest");
            cursor = if latest_only {
                Cursor::After(v.key.clone())
            } else {
                Cursor::AfterVersion(v.key.clone(), seq)
            };
            if latest_only && v.delete_marker {
                continue;
            }
            let Some(rest) = v.key.strip_prefix(prefix) else {
                continue;
            };
            // Group by the delimiter after the prefix.
            if !delimiter.is_empty()
                && let Some(pos) = rest.find(delimiter)
            {
                let cp = v.key[..prefix.len() + pos + delimiter.len()].to_string();
                if page.entries.len() == max {
                    page.is_truncated = true;
                    return Ok(page);
                }
                page.entries.push(Entry::Prefix(cp.clone()));
                let Some(next) = prefix_successor(&cp) else {
                    return Ok(page);
                };
                page.next = Some(Cursor::From(next.clone()));
                cursor = Cursor::From(next);
                jumped = true;
                break;
            }
            if page.entries.len() == max {
                page.is_truncated = true;
                return Ok(page);
            }
            page.next = Some(cursor.clone());
            page.entries.push(Entry::Version {
                version: v,
                is_latest,
            });
        }
        if !jumped && (fetched as i64) < BATCH {
            break;
        }
    }
    Ok(page)
}
