//! The state-machine test harness shared by `apply.rs` and
//! `object_lock.rs`: a fresh migrated DB per test, commands applied as log
//! entries, a full dump to prove rejections change nothing, and builders.
#![allow(dead_code, unused_imports)]

pub use std::collections::{BTreeMap, BTreeSet};
pub use std::sync::Arc;

pub use hamster_meta::raft::state_machine::StateDb;
pub use hamster_meta::state::apply::{MIN_PART_SIZE, apply};
pub use hamster_meta::state::commands::{Command, MetaError, Op, Response};
pub use hamster_meta::state::model::{
    AccessKey, BlobServer, Bucket, DefaultRetention, Part, ShardLocation, ShardMap, Upload, Version,
};
pub use hamster_meta::state::queries::{self as q, Cursor, Entry, Walk};
pub use md5::{Digest, Md5};
pub use sqlx::pool::PoolConnection;
pub use sqlx::{Connection, Sqlite, SqliteConnection};
pub use tempfile::TempDir;

/// "Now" for most commands: a fixed time, far in the past of the wall
/// clock, so a test passes only if apply uses the command's time.
pub const NOW: i64 = 1_600_000_000_000;

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// A fresh state DB in a tempdir, one connection, and the next log index.
pub struct Db {
    pub conn: PoolConnection<Sqlite>,
    pub seq: u64,
    _state: Arc<StateDb>,
    _dir: TempDir,
}

impl Db {
    pub async fn new() -> Db {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDb::open(dir.path()).await.expect("open state db");
        let conn = state.acquire().await.expect("acquire a connection");
        Db {
            conn,
            seq: 0,
            _state: state,
            _dir: dir,
        }
    }

    pub fn c(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }

    /// Applies `op` at time `at`, as the next log entry.
    pub async fn run_at(&mut self, at: i64, op: Op) -> Response {
        self.seq += 1;
        let cmd = Command {
            id: String::new(),
            at_ms: at,
            op,
        };
        apply(&mut self.conn, self.seq, &cmd)
            .await
            .unwrap_or_else(|e| panic!("storage error applying {cmd:?}: {e}"))
    }

    pub async fn run(&mut self, op: Op) -> Response {
        self.run_at(NOW, op).await
    }

    /// Applies `op` and expects it to succeed (anything but `Response::Err`).
    pub async fn ok(&mut self, op: Op) -> Response {
        let name = op.name();
        let r = self.run(op).await;
        assert!(!matches!(r, Response::Err(_)), "{name} was rejected: {r:?}");
        r
    }

    /// Applies `op` and expects it to be rejected with `want` (see
    /// [`same_error`]) and to leave every table exactly as it was.
    pub async fn reject_at(&mut self, at: i64, op: Op, want: MetaError) {
        let before = dump(self.c()).await;
        let what = format!("{op:?}");
        let what = what.get(..300).unwrap_or(&what).to_string();
        let got = self.run_at(at, op).await;
        match &got {
            Response::Err(e) if same_error(e, &want) => {}
            other => panic!("{what}\n  expected rejection {want:?}\n  got {other:?}"),
        }
        assert_eq!(
            dump(self.c()).await,
            before,
            "{what}: rejected with {want:?} but the DB changed"
        );
    }

    pub async fn reject(&mut self, op: Op, want: MetaError) {
        self.reject_at(NOW, op, want).await;
    }

    /// Applies several commands in one transaction, as the state machine
    /// applies a batch; answers each command's log index and response.
    pub async fn batch(&mut self, ops: Vec<(i64, Op)>) -> Vec<(u64, Response)> {
        let mut tx = Connection::begin(&mut *self.conn).await.expect("begin");
        let mut out = Vec::new();
        for (at, op) in ops {
            self.seq += 1;
            let cmd = Command {
                id: String::new(),
                at_ms: at,
                op,
            };
            let r = apply(&mut tx, self.seq, &cmd)
                .await
                .unwrap_or_else(|e| panic!("storage error applying {cmd:?}: {e}"));
            out.push((self.seq, r));
        }
        tx.commit().await.expect("commit");
        out
    }

    pub async fn dump(&mut self) -> Vec<String> {
        dump(self.c()).await
    }
}

/// Rejections whose text is only a message are compared by variant; those
/// that name a thing (bucket, version, upload, part...) exactly.
pub fn same_error(got: &MetaError, want: &MetaError) -> bool {
    use MetaError::*;
    match (got, want) {
        (InvalidArgument(_), InvalidArgument(_))
        | (AccessDenied(_), AccessDenied(_))
        | (InvalidPart(_), InvalidPart(_))
        | (InvalidRequest(_), InvalidRequest(_))
        | (InvalidBucketState(_), InvalidBucketState(_))
        | (MethodNotAllowed(_), MethodNotAllowed(_))
        | (RotationRefused(_), RotationRefused(_))
        | (WrongMasterKey(_), WrongMasterKey(_)) => true,
        _ => got == want,
    }
}

/// Every row of every table, as text: `table(quote(col1),quote(col2),...)`,
/// sorted. `quote()` keeps types apart (1 vs '1' vs X'01' vs NULL).
pub async fn dump(c: &mut SqliteConnection) -> Vec<String> {
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut *c)
            .await
            .expect("list tables");
    for t in [
        "buckets",
        "versions",
        "uploads",
        "parts",
        "access_keys",
        "blob_servers",
        "sm_meta",
    ] {
        assert!(
            tables.iter().any(|x| x == t),
            "table {t} missing from {tables:?}"
        );
    }
    let mut out = Vec::new();
    for t in &tables {
        let cols: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
                .bind(t)
                .fetch_all(&mut *c)
                .await
                .expect("table columns");
        assert!(!cols.is_empty(), "no columns for {t}");
        let expr = cols
            .iter()
            .map(|c| format!("quote(\"{c}\")"))
            .collect::<Vec<_>>()
            .join(" || ',' || ");
        let sql = format!("SELECT '{t}(' || {expr} || ')' FROM \"{t}\" ORDER BY 1");
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *c)
            .await
            .expect("dump table");
        out.extend(rows);
    }
    out
}

/// Rows of one table in the dump.
pub fn rows_of<'a>(dump: &'a [String], table: &str) -> Vec<&'a String> {
    let head = format!("{table}(");
    dump.iter().filter(|r| r.starts_with(&head)).collect()
}

// ---------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------

pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// S3's multipart ETag, computed here from scratch: MD5 over the
/// concatenated binary MD5s of the parts, then "-N".
pub fn s3_multipart_etag(part_md5s_hex: &[&str]) -> String {
    let mut all = Vec::new();
    for e in part_md5s_hex {
        let bin = hex::decode(e.trim_matches('"')).expect("part ETag is hex");
        assert_eq!(bin.len(), 16);
        all.extend_from_slice(&bin);
    }
    format!("{}-{}", hex::encode(Md5::digest(&all)), part_md5s_hex.len())
}

pub fn shards(tag: &str) -> ShardMap {
    ShardMap {
        data_shards: 2,
        parity_shards: 1,
        segment_size: 1 << 20,
        shards: (0..3)
            .map(|i| ShardLocation {
                index: i,
                blob_id: format!("blob-{i}"),
                shard_id: format!("{tag}-shard-{i}"),
                checksum: vec![i as u8, 0xab, 0xcd],
            })
            .collect(),
    }
}

pub fn ver(bucket: &str, key: &str, id: &str, tag: &str) -> Version {
    Version {
        bucket: bucket.into(),
        key: key.into(),
        version_id: id.into(),
        size: 100 + tag.len() as u64,
        etag: md5_hex(tag.as_bytes()),
        content_type: "text/plain".into(),
        user_metadata: BTreeMap::from([("tag".to_string(), tag.to_string())]),
        stored_headers: BTreeMap::from([("cache-control".to_string(), "no-cache".to_string())]),
        created_at_ms: NOW - 7,
        delete_marker: false,
        shard_map: Some(shards(tag)),
        wrapped_dek: vec![0xde, 0xad, tag.len() as u8],
        kek_fingerprint: "kek-a".into(),
        lock_mode: String::new(),
        retain_until_ms: 0,
        legal_hold: false,
        parts: Vec::new(),
    }
}

pub fn part(n: u32, size: u64, tag: &str) -> Part {
    Part {
        part_number: n,
        size,
        etag: md5_hex(tag.as_bytes()),
        shard_map: Some(shards(tag)),
        wrapped_dek: vec![n as u8, 7],
        kek_fingerprint: "kek-a".into(),
    }
}

pub fn template(bucket: &str, key: &str) -> Version {
    Version {
        bucket: bucket.into(),
        key: key.into(),
        // Everything below but the headers, metadata and lock settings is
        // the proposer's business and must not leak into the object.
        version_id: "template-id".into(),
        size: 999,
        etag: "template-etag".into(),
        content_type: "video/mp4".into(),
        user_metadata: BTreeMap::from([("owner".to_string(), "ann".to_string())]),
        stored_headers: BTreeMap::from([("content-disposition".to_string(), "inline".to_string())]),
        created_at_ms: 1,
        delete_marker: false,
        shard_map: Some(shards("template")),
        wrapped_dek: vec![9, 9],
        kek_fingerprint: "kek-template".into(),
        lock_mode: String::new(),
        retain_until_ms: 0,
        legal_hold: false,
        parts: vec![part(1, 1, "template-part")],
    }
}

pub fn create(name: &str, object_lock_enabled: bool) -> Op {
    Op::CreateBucket {
        name: name.into(),
        object_lock_enabled,
    }
}

pub fn delete_bucket(name: &str) -> Op {
    Op::DeleteBucket { name: name.into() }
}

pub fn commit(version: Version) -> Op {
    Op::CommitVersion { version }
}

pub fn del(bucket: &str, key: &str, version_id: Option<&str>, marker: &str) -> Op {
    Op::DeleteObject {
        bucket: bucket.into(),
        key: key.into(),
        version_id: version_id.map(Into::into),
        marker_version_id: marker.into(),
        bypass_governance: false,
    }
}

pub fn del_bypass(bucket: &str, key: &str, version_id: &str) -> Op {
    Op::DeleteObject {
        bucket: bucket.into(),
        key: key.into(),
        version_id: Some(version_id.into()),
        marker_version_id: "unused-marker".into(),
        bypass_governance: true,
    }
}

pub fn upload(bucket: &str, key: &str, upload_id: &str) -> Upload {
    Upload {
        bucket: bucket.into(),
        key: key.into(),
        upload_id: upload_id.into(),
        initiated_at_ms: NOW - 100,
        template: template(bucket, key),
    }
}

pub fn begin(bucket: &str, key: &str, upload_id: &str) -> Op {
    Op::BeginMultipart {
        upload: upload(bucket, key, upload_id),
    }
}

pub fn put_part(bucket: &str, key: &str, upload_id: &str, part: Part) -> Op {
    Op::CommitPart {
        bucket: bucket.into(),
        key: key.into(),
        upload_id: upload_id.into(),
        part,
    }
}

pub fn complete(
    bucket: &str,
    key: &str,
    upload_id: &str,
    parts: &[(u32, &str)],
    version_id: &str,
) -> Op {
    Op::CompleteMultipart {
        bucket: bucket.into(),
        key: key.into(),
        upload_id: upload_id.into(),
        parts: parts.iter().map(|(n, e)| (*n, e.to_string())).collect(),
        version_id: version_id.into(),
    }
}

pub fn abort(bucket: &str, key: &str, upload_id: &str) -> Op {
    Op::AbortMultipart {
        bucket: bucket.into(),
        key: key.into(),
        upload_id: upload_id.into(),
    }
}

pub fn access_key(id: &str) -> AccessKey {
    AccessKey {
        id: id.into(),
        name: format!("name of {id}"),
        sealed_secret: vec![1, 2, 3, 4, 5],
        created_at_ms: NOW - 1,
        enabled: true,
        kek_fingerprint: "kek-a".into(),
    }
}

pub fn blob(id: &str, address: &str) -> BlobServer {
    BlobServer {
        id: id.into(),
        address: address.into(),
        failure_domain: "rack-1".into(),
        capacity_bytes: 1000,
        free_bytes: 600,
        // Both are the state machine's to set, whatever the proposer says.
        state: "dead".into(),
        last_heartbeat_ms: 5,
    }
}

pub fn invalid() -> MetaError {
    MetaError::InvalidArgument(String::new())
}

pub fn denied() -> MetaError {
    MetaError::AccessDenied(String::new())
}

pub fn invalid_part() -> MetaError {
    MetaError::InvalidPart(String::new())
}

/// Sorts shard maps so sets of freed maps compare regardless of order.
pub fn sorted(mut maps: Vec<ShardMap>) -> Vec<ShardMap> {
    maps.sort_by(|a, b| a.shards[0].shard_id.cmp(&b.shards[0].shard_id));
    maps
}

pub async fn all_versions_of(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
) -> Vec<(String, bool, bool)> {
    // prefix = key and no delimiter: keys that start with `key`; keep `key`.
    let page = q::list(c, bucket, key, "", Cursor::Start, 1000, Walk::AllVersions)
        .await
        .expect("list");
    page.entries
        .into_iter()
        .filter_map(|e| match e {
            Entry::Version { version, is_latest } if version.key == key => {
                Some((version.version_id, version.delete_marker, is_latest))
            }
            _ => None,
        })
        .collect()
}
