//! The state-machine test harness shared by the `apply_*.rs`, `listing.rs`,
//! `object_lock.rs` and rotation tests: a fresh migrated DB per test,
//! commands applied as log entries, a full dump to prove rejections change
//! nothing.
//!
//! - this file: [`Db`] (apply, expect success or an exact rejection, read
//!   back through the reads module) and [`dump`];
//! - [`build`]: builders of commands and records (versions, parts,
//!   uploads, keys, blob-servers) and the expected rejections;
//! - [`listing`]: a naive model of listings and the checks against it.
#![allow(dead_code, unused_imports)]

pub mod build;
pub mod listing;

pub use build::*;

pub use std::collections::{BTreeMap, BTreeSet};
pub use std::sync::Arc;

pub use hamster_meta::raft::state_machine::StateDb;
pub use hamster_meta::state::access::{self, Rights};
pub use hamster_meta::state::apply::apply;
pub use hamster_meta::state::commands::{Actor, Command, MetaError, Op, Response};
pub use hamster_meta::state::model::{
    AccessKey, BadShard, BlobServer, BlobState, Bucket, BucketGrant, CaPhase, DefaultRetention,
    Lifecycle, LockMode, Part, Role, ShardLocation, ShardMap, ShardSwap, Unit, Upload, Version,
    Versioning,
};
pub use hamster_meta::state::multipart::MIN_PART_SIZE;
pub use hamster_meta::state::reads::{self as q, Cursor, Entry, Walk};
pub use hamster_meta::state::reads::{DegradedUnit, DurabilitySummary};
pub use md5::{Digest, Md5};
pub use sqlx::pool::PoolConnection;
pub use sqlx::{Connection, Sqlite, SqliteConnection};
pub use tempfile::TempDir;

/// "Now" for most commands: a fixed time, far in the past of the wall
/// clock, so a test passes only if apply uses the command's time.
pub const NOW: i64 = 1_600_000_000_000;

/// A day in milliseconds, for retention times.
pub const DAY: i64 = 86_400_000;

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
        let seq = self.seq;
        self.apply_cmd(seq, &Command::new("", at, op)).await
    }

    /// Applies `cmd` as log entry `seq`, whatever `self.seq` says (to
    /// replay an index, or to apply a retried command again).
    pub async fn apply_cmd(&mut self, seq: u64, cmd: &Command) -> Response {
        apply(&mut self.conn, seq, cmd)
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

    /// In bucket "bkt": a completed two-part object "mp" (upload "u1",
    /// version "mv") and an upload "open" ("u2") with one part.
    pub async fn multipart_pair(&mut self) {
        self.ok(begin("bkt", "mp", "u1")).await;
        self.ok(put_part("bkt", "mp", "u1", part(1, MIN_PART_SIZE, "p1")))
            .await;
        self.ok(put_part("bkt", "mp", "u1", part(2, 10, "p2")))
            .await;
        let (e1, e2) = (md5_hex(b"p1"), md5_hex(b"p2"));
        self.ok(complete("bkt", "mp", "u1", &[(1, &e1), (2, &e2)], "mv"))
            .await;
        self.ok(begin("bkt", "open", "u2")).await;
        self.ok(put_part("bkt", "open", "u2", part(1, 10, "p3")))
            .await;
    }

    /// Applies `op` and expects it to be rejected with `want` (see
    /// [`same_error`]) and to leave every table exactly as it was.
    pub async fn reject_at(&mut self, at: i64, op: Op, want: MetaError) {
        self.reject_cmd(at, None, op, want).await;
    }

    /// Applies `op` at `at` for `by`, as the next log entry.
    pub async fn run_by_at(&mut self, at: i64, by: Option<Actor>, op: Op) -> Response {
        self.seq += 1;
        let seq = self.seq;
        let mut cmd = Command::new("", at, op);
        cmd.by = by;
        self.apply_cmd(seq, &cmd).await
    }

    /// Applies `op` for `by` and expects it to succeed.
    pub async fn ok_by(&mut self, by: Actor, op: Op) -> Response {
        let name = op.name();
        let r = self.run_by_at(NOW, Some(by.clone()), op).await;
        assert!(
            !matches!(r, Response::Err(_)),
            "{name} by {by:?} was rejected: {r:?}"
        );
        r
    }

    /// [`Db::reject`] for a command acting for `by`.
    pub async fn reject_by(&mut self, by: Option<Actor>, op: Op, want: MetaError) {
        self.reject_cmd(NOW, by, op, want).await;
    }

    /// A write by key `key_id` to `bucket` (a version of "k") is refused
    /// with AccessDenied and changes nothing.
    pub async fn write_refused(&mut self, key_id: &str, bucket: &str) {
        self.reject_by(
            Some(key(key_id)),
            commit(ver(bucket, "k", "x", "x")),
            denied(),
        )
        .await;
    }

    async fn reject_cmd(&mut self, at: i64, by: Option<Actor>, op: Op, want: MetaError) {
        let before = dump(self.c()).await;
        let what = format!("{op:?} by {by:?}");
        let what = what.get(..300).unwrap_or(&what).to_string();
        let got = self.run_by_at(at, by, op).await;
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
            let cmd = Command::new("", at, op);
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

    // Reads of the applied state, through the reads module.

    pub async fn bucket(&mut self, name: &str) -> Option<Bucket> {
        q::bucket(self.c(), name).await.expect("bucket")
    }

    pub async fn buckets(&mut self) -> Vec<Bucket> {
        q::buckets(self.c()).await.expect("buckets")
    }

    /// A version by id, with its log index.
    pub async fn version(&mut self, bucket: &str, key: &str, id: &str) -> Option<(Version, i64)> {
        q::version(self.c(), bucket, key, id)
            .await
            .expect("version")
    }

    pub async fn latest(&mut self, bucket: &str, key: &str) -> Option<Version> {
        q::latest(self.c(), bucket, key).await.expect("latest")
    }

    pub async fn version_seq(&mut self, bucket: &str, key: &str, id: &str) -> Option<i64> {
        q::version_seq(self.c(), bucket, key, id)
            .await
            .expect("seq")
    }

    pub async fn upload(&mut self, upload_id: &str) -> Option<Upload> {
        q::upload(self.c(), upload_id).await.expect("upload")
    }

    pub async fn parts(&mut self, upload_id: &str) -> Vec<Part> {
        q::parts(self.c(), upload_id).await.expect("parts")
    }

    /// Open uploads of `bucket` (prefix, key and upload-id markers, max):
    /// (uploads, truncated).
    pub async fn uploads(
        &mut self,
        bucket: &str,
        prefix: &str,
        key_marker: &str,
        upload_marker: &str,
        max: u32,
    ) -> (Vec<Upload>, bool) {
        q::uploads(self.c(), bucket, prefix, key_marker, upload_marker, max)
            .await
            .expect("uploads")
    }

    /// The rights `key_id` has on `bucket`, as apply decides them.
    pub async fn rights(&mut self, key_id: &str, bucket: &str) -> Rights {
        access::rights(self.c(), key_id, bucket)
            .await
            .expect("rights")
    }

    pub async fn access_key(&mut self, id: &str) -> Option<AccessKey> {
        q::access_key(self.c(), id).await.expect("key")
    }

    pub async fn access_keys(&mut self) -> Vec<AccessKey> {
        q::access_keys(self.c()).await.expect("keys")
    }

    pub async fn blob_servers(&mut self) -> Vec<BlobServer> {
        q::blob_servers(self.c()).await.expect("servers")
    }

    /// The durability counts `status` shows.
    pub async fn summary(&mut self) -> DurabilitySummary {
        q::durability_summary(self.c()).await.expect("summary")
    }

    /// Up to `limit` units below k+m good shards, as the planner reads them.
    pub async fn degraded(&mut self, limit: u32) -> Vec<DegradedUnit> {
        q::degraded_units(self.c(), limit).await.expect("degraded")
    }

    /// Every version of `key` (id, delete marker, latest), newest first.
    pub async fn all_versions_of(&mut self, bucket: &str, key: &str) -> Vec<(String, bool, bool)> {
        all_versions_of(self.c(), bucket, key).await
    }
}

/// Keys alice, bob and carol; alice owns "abc" (plain) and "vault" (lock
/// enabled): where the per-key authorization tests start.
pub async fn access_world() -> Db {
    let mut db = Db::new().await;
    for k in ["alice", "bob", "carol"] {
        db.ok(Op::PutAccessKey { key: access_key(k) }).await;
    }
    db.ok_by(key("alice"), create("abc", false)).await;
    db.ok_by(key("alice"), create("vault", true)).await;
    db
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
        | (WrongMasterKey(_), WrongMasterKey(_))
        | (ShardMapChanged(_), ShardMapChanged(_))
        | (NotEnoughBlobServers(_), NotEnoughBlobServers(_))
        | (ConditionalRequestConflict(_), ConditionalRequestConflict(_)) => true,
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
