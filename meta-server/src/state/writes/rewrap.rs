//! Master-key rotation's writes: rewrapped keys moved from the old master
//! key to the new one, each only if it still holds the bytes the
//! rewrapper read (a compare-and-set per row).
//!
//! [`rewrap_rows`] moves a whole batch with one `UPDATE ... FROM (VALUES
//! ...)` per table and chunk instead of one statement per key: every
//! statement is a round trip to SQLite's worker thread, and a batch is
//! applied on every replica. The per-key functions remain for a batch
//! that names a key twice (`key_rotation` keeps its in-order semantics).

use sqlx::SqliteConnection;

use super::super::model::{KeyRotation, RewrapTarget, Rewrapped};

/// Rows per statement: at most 5 parameters a row, far under SQLite's
/// bound-parameter limit (32766).
pub const REWRAP_CHUNK: usize = 500;

/// A table whose rows hold a wrapped key: its key columns, and the column
/// of the wrapped (or sealed) bytes.
struct Table {
    name: &'static str,
    keys: &'static [&'static str],
    bytes: &'static str,
}

const VERSIONS: Table = Table {
    name: "versions",
    keys: &["bucket", "key", "version_id"],
    bytes: "wrapped_dek",
};
const UPLOAD_PARTS: Table = Table {
    name: "parts",
    keys: &["upload_id", "part_number"],
    bytes: "wrapped_dek",
};
const ACCESS_KEYS: Table = Table {
    name: "access_keys",
    keys: &["id"],
    bytes: "sealed_secret",
};

enum KeyVal<'a> {
    Text(&'a str),
    Int(i64),
}

/// The bulk statement of each table for `n` rows (for the test that
/// checks how SQLite runs them).
pub fn bulk_statements(n: usize) -> Vec<String> {
    [VERSIONS, UPLOAD_PARTS, ACCESS_KEYS]
        .iter()
        .map(|t| bulk_sql(t, n))
        .collect()
}

/// The statement for `n` rows of `t`. VALUES columns are column1.. in
/// order: the key columns, then the old bytes, then the new.
///
/// The unary `+` keeps SQLite from using the `*_by_kek` index for the
/// fingerprint test: left free, the planner walks every row still on the
/// old key and probes the VALUES rows for each, so a batch cost grew with
/// the keys left (93 ms per 500 at 5k versions, 226 ms at 50k: a
/// rotation slowed as the table grew). With it, each VALUES row is one
/// primary-key lookup (3 ms per 500 at any size).
fn bulk_sql(t: &Table, n: usize) -> String {
    let k = t.keys.len();
    let row = format!("({})", vec!["?"; k + 2].join(","));
    let values = vec![row.as_str(); n].join(",");
    let keys: Vec<String> = (t.keys.iter().enumerate())
        .map(|(i, c)| format!("{}.{c} = n.column{}", t.name, i + 1))
        .collect();
    format!(
        "UPDATE {t} SET {b} = n.column{new}, kek_fingerprint = ? FROM (VALUES {values}) AS n \
         WHERE {keys} AND +{t}.kek_fingerprint = ? AND {t}.{b} = n.column{old}",
        t = t.name,
        b = t.bytes,
        new = k + 2,
        old = k + 1,
        keys = keys.join(" AND "),
    )
}

/// Moves `rows` of `t` (no row named twice): how many moved.
async fn bulk(
    c: &mut SqliteConnection,
    t: &Table,
    r: &KeyRotation,
    rows: &[(Vec<KeyVal<'_>>, &Rewrapped)],
) -> Result<u64, sqlx::Error> {
    let mut moved = 0;
    for chunk in rows.chunks(REWRAP_CHUNK) {
        let sql = bulk_sql(t, chunk.len());
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(&r.new);
        for (keys, item) in chunk {
            for k in keys {
                q = match k {
                    KeyVal::Text(s) => q.bind(*s),
                    KeyVal::Int(n) => q.bind(*n),
                };
            }
            q = q.bind(&item.old).bind(&item.new);
        }
        // With no row named twice, each row of `t` joins at most one
        // VALUES row: rows changed = keys moved.
        moved += q.bind(&r.old).execute(&mut *c).await?.rows_affected();
    }
    Ok(moved)
}

/// Moves every version, upload-part and access-key item of `items` (the
/// caller has checked no target appears twice; parts of completed
/// objects are left to the caller): how many moved.
pub async fn rewrap_rows(
    c: &mut SqliteConnection,
    r: &KeyRotation,
    items: &[Rewrapped],
) -> Result<u64, sqlx::Error> {
    let (mut versions, mut parts, mut secrets) = (Vec::new(), Vec::new(), Vec::new());
    for item in items {
        match &item.target {
            RewrapTarget::Version {
                bucket,
                key,
                version_id,
            } => versions.push((
                vec![
                    KeyVal::Text(bucket),
                    KeyVal::Text(key),
                    KeyVal::Text(version_id),
                ],
                item,
            )),
            RewrapTarget::UploadPart {
                upload_id,
                part_number,
            } => parts.push((
                vec![
                    KeyVal::Text(upload_id),
                    KeyVal::Int(i64::from(*part_number)),
                ],
                item,
            )),
            RewrapTarget::AccessKey { id } => secrets.push((vec![KeyVal::Text(id)], item)),
            RewrapTarget::VersionPart { .. } => {}
        }
    }
    Ok(bulk(c, &VERSIONS, r, &versions).await?
        + bulk(c, &UPLOAD_PARTS, r, &parts).await?
        + bulk(c, &ACCESS_KEYS, r, &secrets).await?)
}

/// Moves a version's data key from `r.old` to `r.new` if it still holds
/// `item.old`: true if it moved.
pub async fn rewrap_version(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
    version_id: &str,
    r: &KeyRotation,
    item: &Rewrapped,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE versions SET wrapped_dek = ?, kek_fingerprint = ? \
         WHERE bucket = ? AND key = ? AND version_id = ? AND kek_fingerprint = ? AND wrapped_dek = ?",
    )
    .bind(&item.new)
    .bind(&r.new)
    .bind(bucket)
    .bind(key)
    .bind(version_id)
    .bind(&r.old)
    .bind(&item.old)
    .execute(&mut *c)
    .await?;
    Ok(n.rows_affected() > 0)
}

/// Moves an uploaded part's data key, as [`rewrap_version`] does.
pub async fn rewrap_upload_part(
    c: &mut SqliteConnection,
    upload_id: &str,
    part_number: u32,
    r: &KeyRotation,
    item: &Rewrapped,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE parts SET wrapped_dek = ?, kek_fingerprint = ? \
         WHERE upload_id = ? AND part_number = ? AND kek_fingerprint = ? AND wrapped_dek = ?",
    )
    .bind(&item.new)
    .bind(&r.new)
    .bind(upload_id)
    .bind(i64::from(part_number))
    .bind(&r.old)
    .bind(&item.old)
    .execute(&mut *c)
    .await?;
    Ok(n.rows_affected() > 0)
}

/// Moves a sealed S3 secret, as [`rewrap_version`] does.
pub async fn rewrap_access_key(
    c: &mut SqliteConnection,
    id: &str,
    r: &KeyRotation,
    item: &Rewrapped,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "UPDATE access_keys SET sealed_secret = ?, kek_fingerprint = ? \
         WHERE id = ? AND kek_fingerprint = ? AND sealed_secret = ?",
    )
    .bind(&item.new)
    .bind(&r.new)
    .bind(id)
    .bind(&r.old)
    .bind(&item.old)
    .execute(&mut *c)
    .await?;
    Ok(n.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bulk_statement_binds_new_fp_rows_then_old_fp() {
        let sql = bulk_sql(&UPLOAD_PARTS, 2);
        assert_eq!(
            sql,
            "UPDATE parts SET wrapped_dek = n.column4, kek_fingerprint = ? \
             FROM (VALUES (?,?,?,?),(?,?,?,?)) AS n \
             WHERE parts.upload_id = n.column1 AND parts.part_number = n.column2 \
             AND +parts.kek_fingerprint = ? AND parts.wrapped_dek = n.column3"
        );
        assert_eq!(sql.matches('?').count(), 2 + 2 * 4);
    }
}
