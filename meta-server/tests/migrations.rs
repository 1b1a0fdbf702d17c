//! The state DB's schema moves forward from what earlier releases wrote,
//! and a DB newer than the binary is refused and left as it was.
//!
//! tests/fixtures/state-v1.db is a state.db at schema version 1 as the
//! first release wrote it (MIGRATIONS[0] only, a few rows). It is made
//! once, by `HAMSTER_BLESS=1 cargo nextest run -p hamster-meta --test
//! migrations` when missing, and never rewritten.

mod samples;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hamster_meta::raft::state_machine::StateDb;
use hamster_meta::state::access;
use hamster_meta::state::model::{AccessKey, Bucket, Lifecycle, ShardMap, Unit, Version};
use hamster_meta::state::reads as q;
use hamster_meta::state::schema::{self, SchemaError};
use sqlx::{Connection, SqliteConnection};

use samples as s;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-v1.db")
}

/// The rows the fixture holds, as the reads should return them.
fn v1_bucket() -> Bucket {
    // Migration 10 gives it no owner, though the fixture has one key:
    // owners come from the log (Op::AdoptBuckets), not from a migration.
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
        // Added by migration 10: every existing key may create buckets.
        can_create_bucket: true,
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
    let b = s::bucket();
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

    // Migration 7 indexes the shards the rows name.
    let v = v1_version();
    let mut want: BTreeSet<String> = BTreeSet::new();
    for m in [
        v.shard_map.expect("map"),
        s::part(1).shard_map.expect("map"),
    ] {
        want.extend(m.shards.into_iter().map(|l| l.shard_id));
    }
    let named: BTreeSet<String> = q::referenced_shards(&mut c)
        .await
        .expect("refs")
        .into_iter()
        .collect();
    assert_eq!(named, want);
}

/// One shard_refs row as migration 7 or the write path makes it.
type RefRow = (
    String,
    String,
    i64,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
);

async fn ref_rows(c: &mut SqliteConnection) -> Vec<RefRow> {
    sqlx::query_as(
        "SELECT shard_id, blob_id, idx, bucket, key, version_id, upload_id, part_number, k, width, missing \
         FROM shard_refs ORDER BY shard_id, version_id, upload_id",
    )
    .fetch_all(&mut *c)
    .await
    .expect("shard_refs")
}

/// The rows a unit's map gives.
fn rows_for(unit: (&str, &str, &str, &str, u32), m: &ShardMap) -> Vec<RefRow> {
    let (bucket, key, version_id, upload_id, part) = unit;
    let width = i64::from(m.data_shards + m.parity_shards);
    let missing = width - m.shards.len() as i64;
    m.shards
        .iter()
        .map(|l| {
            (
                l.shard_id.clone(),
                l.blob_id.clone(),
                i64::from(l.index),
                bucket.into(),
                key.into(),
                version_id.into(),
                upload_id.into(),
                i64::from(part),
                i64::from(m.data_shards),
                width,
                missing,
            )
        })
        .collect()
}

/// A state DB at schema 6 (before shard_refs) holding a single-part
/// version, a multipart version with a degraded part, a delete marker
/// and an open upload's part: migration 7 fills shard_refs from their
/// JSON, so the durability view sees them.
#[tokio::test]
async fn migration_7_indexes_every_shard_the_existing_rows_name() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("state.db");
    let mut c = SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true),
    )
    .await
    .expect("create");
    for sql in &schema::MIGRATIONS[..6] {
        sqlx::raw_sql(*sql).execute(&mut c).await.expect("schema");
    }
    sqlx::raw_sql("PRAGMA user_version = 6")
        .execute(&mut c)
        .await
        .expect("stamp");
    let plain = Version {
        key: "plain.txt".into(),
        version_id: "v-plain".into(),
        delete_marker: false,
        parts: Vec::new(),
        ..s::version()
    };
    let mut degraded = s::part(2);
    if let Some(m) = degraded.shard_map.as_mut() {
        m.shards.remove(1);
    }
    let multi = Version {
        key: "big.bin".into(),
        version_id: "v-multi".into(),
        delete_marker: false,
        shard_map: None,
        parts: vec![s::part(1), degraded.clone()],
        ..s::version()
    };
    let marker = Version {
        key: "gone.txt".into(),
        version_id: "v-marker".into(),
        delete_marker: true,
        shard_map: None,
        parts: Vec::new(),
        ..s::version()
    };
    for (seq, v) in [&plain, &multi, &marker].into_iter().enumerate() {
        sqlx::query(
            "INSERT INTO versions (bucket, key, version_id, seq, size, etag, content_type,
             user_metadata, stored_headers, created_at_ms, delete_marker, shard_map, parts,
             wrapped_dek, kek_fingerprint, lock_mode, retain_until_ms, legal_hold)
             VALUES (?, ?, ?, ?, 1, 'e', 't', '{}', '{}', 1, ?, ?, ?, X'01', 'kek', '', 0, 0)",
        )
        .bind(&v.bucket)
        .bind(&v.key)
        .bind(&v.version_id)
        .bind(seq as i64 + 1)
        .bind(v.delete_marker)
        .bind(v.shard_map.as_ref().map(json))
        .bind(json(&v.parts))
        .execute(&mut c)
        .await
        .expect("version");
    }
    let u = s::upload();
    let open_part = s::part(3);
    sqlx::query("INSERT INTO uploads VALUES (?, ?, ?, 1, '{}')")
        .bind(&u.upload_id)
        .bind(&u.bucket)
        .bind(&u.key)
        .execute(&mut c)
        .await
        .expect("upload");
    sqlx::query("INSERT INTO parts VALUES (?, 3, 1, 'e', ?, X'01', 'kek')")
        .bind(&u.upload_id)
        .bind(json(open_part.shard_map.as_ref().expect("map")))
        .execute(&mut c)
        .await
        .expect("part");
    for id in ["blob-1", "blob-2", "blob-3"] {
        sqlx::query("INSERT INTO blob_servers VALUES (?, 'a:1', 'r', 1, 1, 'active', 1)")
            .bind(id)
            .execute(&mut c)
            .await
            .expect("blob");
    }
    c.close().await.expect("close");

    let db = StateDb::open(dir.path()).await.expect("open v6");
    let mut c = db.acquire().await.expect("conn");
    let b = &plain.bucket;
    let mut want = rows_for((b, "plain.txt", "v-plain", "", 0), &s::shard_map(7));
    want.extend(rows_for(
        (b, "big.bin", "v-multi", "", 1),
        &s::part(1).shard_map.expect("map"),
    ));
    want.extend(rows_for(
        (b, "big.bin", "v-multi", "", 2),
        degraded.shard_map.as_ref().expect("map"),
    ));
    want.extend(rows_for(
        (&u.bucket, &u.key, "", &u.upload_id, 3),
        open_part.shard_map.as_ref().expect("map"),
    ));
    want.sort();
    assert_eq!(ref_rows(&mut c).await, want);

    // The degraded part is the one unit short of k+m.
    let summary = q::durability_summary(&mut c).await.expect("summary");
    assert_eq!(
        (
            summary.under_replicated,
            summary.unrecoverable,
            summary.last_scrub_ms
        ),
        (1, 0, 0)
    );
    let units = q::degraded_units(&mut c, 10).await.expect("units");
    assert_eq!(units.len(), 1);
    assert_eq!(units[0].unit, Unit::version(b, "big.bin", "v-multi", 2));
    assert_eq!(units[0].good, vec![0, 2]);
    assert_eq!(units[0].map, degraded.shard_map.expect("map"));
    let faults: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM shard_faults")
        .fetch_one(&mut *c)
        .await
        .expect("faults");
    assert_eq!(faults, 0);
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

/// A state DB at schema 7 (before the blob-server lifecycle): migration 8
/// puts every server in service, with nothing stored or drained, and
/// indexes shard_refs by server and unit in place of by server alone.
#[tokio::test]
async fn migration_8_puts_every_known_server_in_service() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("state.db");
    let mut c = SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true),
    )
    .await
    .expect("create");
    for sql in &schema::MIGRATIONS[..7] {
        sqlx::raw_sql(*sql).execute(&mut c).await.expect("schema");
    }
    sqlx::raw_sql("PRAGMA user_version = 7")
        .execute(&mut c)
        .await
        .expect("stamp");
    for (id, state) in [("blob-1", "active"), ("blob-2", "down")] {
        sqlx::query("INSERT INTO blob_servers VALUES (?, 'a:1', 'r', 10, 4, ?, 9, 8)")
            .bind(id)
            .bind(state)
            .execute(&mut c)
            .await
            .expect("blob");
    }
    sqlx::query("INSERT INTO shard_refs VALUES ('s1', 'blob-2', 0, 'b', 'k', 'v', '', 0, 2, 3, 0)")
        .execute(&mut c)
        .await
        .expect("ref");
    c.close().await.expect("close");

    let db = StateDb::open(dir.path()).await.expect("open v7");
    let mut c = db.acquire().await.expect("conn");
    let servers = q::blob_servers(&mut c).await.expect("servers");
    let seen: Vec<_> = servers
        .iter()
        .map(|s| {
            (
                s.id.as_str(),
                s.lifecycle,
                s.drain_to.as_str(),
                s.shards_stored,
                s.bytes_stored,
                s.last_scrub_ms,
                s.display_state(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("blob-1", Lifecycle::In, "", 0, 0, 8, "active"),
            ("blob-2", Lifecycle::In, "", 0, 0, 8, "down"),
        ]
    );
    assert_eq!(
        q::revoked_identities(&mut c).await.expect("revoked"),
        Vec::<String>::new()
    );
    assert_eq!(
        q::shards_named_on_count(&mut c, "blob-2").await.expect("n"),
        1
    );
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'shard_refs' ORDER BY name",
    )
    .fetch_all(&mut *c)
    .await
    .expect("indexes");
    assert!(
        indexes.contains(&"shard_refs_by_blob_unit".to_string()),
        "{indexes:?}"
    );
    assert!(
        !indexes.contains(&"shard_refs_by_blob".to_string()),
        "{indexes:?}"
    );
}

/// A state DB at schema 9 (before per-key authorization) with these
/// access keys and plain buckets.
async fn schema_9_db(dir: &Path, keys: &[&str], buckets: &[&str]) {
    let mut c = SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.join("state.db"))
            .create_if_missing(true),
    )
    .await
    .expect("create");
    for sql in &schema::MIGRATIONS[..9] {
        sqlx::raw_sql(*sql).execute(&mut c).await.expect("schema");
    }
    sqlx::raw_sql("PRAGMA user_version = 9")
        .execute(&mut c)
        .await
        .expect("stamp");
    for k in keys {
        sqlx::query(
            "INSERT INTO access_keys (id, name, sealed_secret, created_at_ms, enabled, kek_fingerprint) \
             VALUES (?, 'n', X'01', 1, 1, 'kek')",
        )
        .bind(k)
        .execute(&mut c)
        .await
        .expect("key");
    }
    for b in buckets {
        sqlx::query(
            "INSERT INTO buckets (name, created_at_ms, versioning, object_lock_enabled, lock_config) \
             VALUES (?, 1, '', 0, '')",
        )
        .bind(b)
        .execute(&mut c)
        .await
        .expect("bucket");
    }
    c.close().await.expect("close");
}

/// Migration 10 (ADR 0027) changes the schema, not who owns what: it
/// runs at each replica's own log position, so an owner it derived from
/// the keys ("the only key made them") could differ between replicas
/// that migrated before and after a key was created. Every existing
/// bucket stays ownerless whatever the number of keys; every key may
/// create buckets; no grants, no limits of their own, the cluster
/// default 36500 days.
#[tokio::test]
async fn migration_10_leaves_every_bucket_ownerless_whatever_the_keys() {
    for keys in [&[][..], &["AKIAONLY"][..], &["AKIAONE", "AKIATWO"][..]] {
        let dir = tempfile::tempdir().expect("tmp");
        schema_9_db(dir.path(), keys, &["logs", "photos"]).await;
        let db = StateDb::open(dir.path()).await.expect("open v9");
        let mut c = db.acquire().await.expect("conn");
        let owners: Vec<(String, String, Option<u32>)> = q::buckets(&mut c)
            .await
            .expect("buckets")
            .into_iter()
            .map(|b| (b.name, b.owner, b.max_retention_days))
            .collect();
        assert_eq!(
            owners,
            vec![
                ("logs".into(), String::new(), None),
                ("photos".into(), String::new(), None),
            ],
            "{keys:?}"
        );
        for k in keys {
            assert_eq!(q::key_grants(&mut c, k).await.expect("grants"), vec![]);
            let key = q::access_key(&mut c, k).await.expect("key").expect("kept");
            assert!(key.can_create_bucket, "{k}");
        }
        let grants: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bucket_grants")
            .fetch_one(&mut *c)
            .await
            .expect("grants");
        assert_eq!(grants, 0);
        assert_eq!(
            access::cluster_max_retention_days(&mut c)
                .await
                .expect("limit"),
            36_500
        );
    }
}
