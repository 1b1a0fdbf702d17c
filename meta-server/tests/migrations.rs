//! The state DB's schema moves forward from what earlier releases wrote,
//! and a DB newer than the binary is refused and left as it was.
//!
//! tests/fixtures/state-v1.db is a state.db at schema version 1 as the
//! first release wrote it (MIGRATIONS[0] only, a few rows). It is made
//! once, by `HAMSTER_BLESS=1 cargo nextest run -p hamster-meta --test
//! migrations` when missing, and never rewritten.

mod samples;

use std::path::{Path, PathBuf};

use hamster_meta::raft::state_machine::StateDb;
use hamster_meta::state::model::{AccessKey, Bucket, Version};
use hamster_meta::state::reads as q;
use hamster_meta::state::schema::{self, SchemaError};
use sqlx::{Connection, SqliteConnection};

use samples as s;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-v1.db")
}

/// The rows the fixture holds, as the reads should return them.
fn v1_bucket() -> Bucket {
    s::bucket()
}
fn v1_version() -> Version {
    Version {
        parts: Vec::new(), // v1 wrote single-part objects only ('[]')
        ..s::version()
    }
}
fn v1_access_key() -> AccessKey {
    AccessKey {
        id: "AKIAFIRST".into(),
        name: "first-key".into(),
        sealed_secret: vec![1, 0x42, 0x43],
        created_at_ms: s::AT_MS - 99,
        enabled: true,
        // Added by migration 4: '' for secrets sealed before rotations.
        kek_fingerprint: String::new(),
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("json")
}

/// Builds the fixture: schema 1 only, rows as version 1 wrote them.
async fn build_fixture(path: &Path) {
    let mut c = SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true),
    )
    .await
    .expect("create");
    // Small pages keep the checked-in file small (one page per table).
    sqlx::raw_sql("PRAGMA page_size = 512")
        .execute(&mut c)
        .await
        .expect("page size");
    sqlx::raw_sql(schema::MIGRATIONS[0])
        .execute(&mut c)
        .await
        .expect("schema 1");
    sqlx::raw_sql("PRAGMA user_version = 1")
        .execute(&mut c)
        .await
        .expect("stamp");
    let b = v1_bucket();
    sqlx::query("INSERT INTO buckets VALUES (?, ?, ?, ?, ?)")
        .bind(&b.name)
        .bind(b.created_at_ms)
        .bind(b.versioning.as_str())
        .bind(b.object_lock_enabled)
        .bind(json(&b.default_retention.expect("retention")))
        .execute(&mut c)
        .await
        .expect("bucket");
    let v = v1_version();
    sqlx::query(
        "INSERT INTO versions (bucket, key, version_id, seq, size, etag, content_type,
         user_metadata, stored_headers, created_at_ms, delete_marker, shard_map, parts,
         wrapped_dek, kek_fingerprint, lock_mode, retain_until_ms, legal_hold)
         VALUES (?, ?, ?, 7, ?, ?, ?, ?, ?, ?, ?, ?, '[]', ?, ?, ?, ?, ?)",
    )
    .bind(&v.bucket)
    .bind(&v.key)
    .bind(&v.version_id)
    .bind(v.size as i64)
    .bind(&v.etag)
    .bind(&v.content_type)
    .bind(json(&v.user_metadata))
    .bind(json(&v.stored_headers))
    .bind(v.created_at_ms)
    .bind(v.delete_marker)
    .bind(json(&v.shard_map.clone().expect("map")))
    .bind(&v.wrapped_dek)
    .bind(&v.kek_fingerprint)
    .bind(v.lock_mode.as_str())
    .bind(v.retain_until_ms)
    .bind(v.legal_hold)
    .execute(&mut c)
    .await
    .expect("version");
    let u = s::upload();
    sqlx::query("INSERT INTO uploads VALUES (?, ?, ?, ?, ?)")
        .bind(&u.upload_id)
        .bind(&u.bucket)
        .bind(&u.key)
        .bind(u.initiated_at_ms)
        .bind(json(&u.template))
        .execute(&mut c)
        .await
        .expect("upload");
    let p = s::part(1);
    sqlx::query("INSERT INTO parts VALUES (?, ?, ?, ?, ?, ?, ?)")
        .bind(&u.upload_id)
        .bind(p.part_number)
        .bind(p.size as i64)
        .bind(&p.etag)
        .bind(json(&p.shard_map.clone().expect("map")))
        .bind(&p.wrapped_dek)
        .bind(&p.kek_fingerprint)
        .execute(&mut c)
        .await
        .expect("part");
    let k = v1_access_key();
    sqlx::query("INSERT INTO access_keys VALUES (?, ?, ?, ?, ?)")
        .bind(&k.id)
        .bind(&k.name)
        .bind(&k.sealed_secret)
        .bind(k.created_at_ms)
        .bind(k.enabled)
        .execute(&mut c)
        .await
        .expect("access key");
    c.close().await.expect("close");
}

#[tokio::test]
async fn the_v1_fixture_is_there() {
    let path = fixture();
    if !path.exists() && std::env::var_os("HAMSTER_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        build_fixture(&path).await;
    }
    assert!(
        path.exists(),
        "missing {} (HAMSTER_BLESS=1 makes it)",
        path.display()
    );
}

#[tokio::test]
async fn a_v1_state_db_migrates_to_today_and_reads_back() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::copy(fixture(), dir.path().join("state.db")).expect("copy fixture");
    let db = StateDb::open(dir.path()).await.expect("open v1");
    let mut c = db.acquire().await.expect("conn");
    let found: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut *c)
        .await
        .expect("version");
    assert_eq!(found, schema::current_version());

    assert_eq!(
        q::bucket(&mut c, "photos").await.expect("read"),
        Some(v1_bucket())
    );
    let v = v1_version();
    assert_eq!(
        q::version(&mut c, &v.bucket, &v.key, &v.version_id)
            .await
            .expect("read"),
        Some((v, 7))
    );
    assert_eq!(
        q::upload(&mut c, "upload-7f3e").await.expect("read"),
        Some(s::upload())
    );
    assert_eq!(
        q::parts(&mut c, "upload-7f3e").await.expect("read"),
        vec![s::part(1)]
    );
    assert_eq!(
        q::access_key(&mut c, "AKIAFIRST").await.expect("read"),
        Some(v1_access_key())
    );
    let trust_bundle: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name = 'trust_bundle'")
            .fetch_one(&mut *c)
            .await
            .expect("master");
    assert_eq!(trust_bundle, 0, "migration 6 drops trust_bundle");
}

#[tokio::test]
async fn a_state_db_newer_than_the_binary_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("state.db");
    std::fs::copy(fixture(), &path).expect("copy fixture");
    let newer = schema::current_version() + 1;
    {
        let mut c = SqliteConnection::connect_with(
            &sqlx::sqlite::SqliteConnectOptions::new().filename(&path),
        )
        .await
        .expect("conn");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "PRAGMA user_version = {newer}"
        )))
        .execute(&mut c)
        .await
        .expect("stamp");
        c.close().await.expect("close");
    }
    let before = std::fs::read(&path).expect("read");
    match StateDb::open(dir.path()).await {
        Err(SchemaError::TooNew { found, known }) => {
            assert_eq!((found, known), (newer, schema::current_version()));
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a newer state.db was opened"),
    }
    assert_eq!(std::fs::read(&path).expect("read"), before);
    assert!(!dir.path().join("state.db-wal").exists());
}
