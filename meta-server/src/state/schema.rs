//! The metadata schema, versioned. Each migration runs once, in order, in
//! its own transaction, and `PRAGMA user_version` records the last one
//! applied. Never edit a released migration: add the next one. A DB newer
//! than this binary is refused ([`SchemaError::TooNew`]).
//!
//! Derived tables: `shard_refs` (every shard a version, a completed part
//! or an open upload's part names, one row each) is written by
//! [`super::writes`] in the same call as the JSON maps it mirrors, so it
//! is always exact; the durability view and the sweep read it.
//! `shard_faults` holds shards blob-servers reported bad while a map
//! still names them.
//!
//! The JSON columns (`versions.shard_map`, `parts`, `user_metadata`,
//! `stored_headers`; `uploads.template`; `parts.shard_map`;
//! `buckets.lock_config`; the `settings` and `rotations` rows;
//! `applied_commands.response`; `sm_meta`) carry no version of their own:
//! they are versioned by this schema version. Changing any of their
//! encodings is a migration that bumps `user_version` and rewrites the
//! rows; the golden files (tests/golden/column) pin each one (ADR 0020).

use sqlx::SqliteConnection;

use super::format::TooNew;

/// Migrations in order; `MIGRATIONS[i]` brings the schema to version i+1.
pub const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "
    CREATE TABLE sm_meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);

    CREATE TABLE buckets (
        name TEXT PRIMARY KEY,
        created_at_ms INTEGER NOT NULL,
        versioning TEXT NOT NULL DEFAULT '',
        object_lock_enabled INTEGER NOT NULL DEFAULT 0,
        lock_config TEXT NOT NULL DEFAULT ''
    );

    -- seq is the log index that wrote the version: newest first per key.
    CREATE TABLE versions (
        bucket TEXT NOT NULL,
        key TEXT NOT NULL,
        version_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        size INTEGER NOT NULL,
        etag TEXT NOT NULL,
        content_type TEXT NOT NULL,
        user_metadata TEXT NOT NULL,
        stored_headers TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL,
        delete_marker INTEGER NOT NULL,
        shard_map TEXT,
        parts TEXT NOT NULL DEFAULT '[]',
        wrapped_dek BLOB NOT NULL,
        kek_fingerprint TEXT NOT NULL,
        lock_mode TEXT NOT NULL DEFAULT '',
        retain_until_ms INTEGER NOT NULL DEFAULT 0,
        legal_hold INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (bucket, key, version_id)
    );
    CREATE INDEX versions_by_seq ON versions (bucket, key, seq DESC);
    CREATE INDEX versions_by_kek ON versions (kek_fingerprint);

    CREATE TABLE uploads (
        upload_id TEXT PRIMARY KEY,
        bucket TEXT NOT NULL,
        key TEXT NOT NULL,
        initiated_at_ms INTEGER NOT NULL,
        template TEXT NOT NULL
    );
    CREATE INDEX uploads_by_key ON uploads (bucket, key, upload_id);

    CREATE TABLE parts (
        upload_id TEXT NOT NULL,
        part_number INTEGER NOT NULL,
        size INTEGER NOT NULL,
        etag TEXT NOT NULL,
        shard_map TEXT,
        wrapped_dek BLOB NOT NULL,
        kek_fingerprint TEXT NOT NULL,
        PRIMARY KEY (upload_id, part_number)
    );

    CREATE TABLE access_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        sealed_secret BLOB NOT NULL,
        created_at_ms INTEGER NOT NULL,
        enabled INTEGER NOT NULL
    );

    CREATE TABLE blob_servers (
        id TEXT PRIMARY KEY,
        address TEXT NOT NULL,
        failure_domain TEXT NOT NULL,
        capacity_bytes INTEGER NOT NULL,
        free_bytes INTEGER NOT NULL,
        state TEXT NOT NULL,
        last_heartbeat_ms INTEGER NOT NULL
    );

    -- Generational trust bundle: CA certificates only, never keys.
    CREATE TABLE trust_bundle (
        generation INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        ca_der BLOB NOT NULL,
        PRIMARY KEY (generation, fingerprint)
    );

    -- State of a master-key or CA rotation, one row per kind.
    CREATE TABLE rotations (kind TEXT PRIMARY KEY, state TEXT NOT NULL);

    -- Answers of recently applied commands, by command id: a retried
    -- proposal gets the same answer and changes nothing.
    CREATE TABLE applied_commands (
        id TEXT PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        response TEXT NOT NULL
    );
    CREATE INDEX applied_commands_by_time ON applied_commands (at_ms);
    ",
    // 2: join tokens (only a hash of each secret).
    "
    CREATE TABLE join_tokens (
        id TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        uses_left INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    ",
    // 3: cluster settings (the erasure profile).
    "
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    ",
    // 4: master-key rotation: who holds which keys (fingerprints only),
    // and which key sealed each S3 secret ('' : sealed before rotations),
    // and an index of multipart objects for the rewrap scans.
    "
    CREATE TABLE key_holders (
        id TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        current_fp TEXT NOT NULL,
        next_fp TEXT NOT NULL,
        last_seen_ms INTEGER NOT NULL
    );
    ALTER TABLE access_keys ADD COLUMN kek_fingerprint TEXT NOT NULL DEFAULT '';
    CREATE INDEX parts_by_kek ON parts (kek_fingerprint);
    CREATE INDEX access_keys_by_kek ON access_keys (kek_fingerprint);
    -- Only multipart objects hold parts: scans of their keys skip the rest.
    CREATE INDEX versions_multipart ON versions (bucket) WHERE parts <> '[]';
    ",
    // 5: CA rotation: each member's loaded trust generation and the CA of
    // its certificate (the bundle itself is a setting).
    "
    CREATE TABLE tls_members (
        role TEXT NOT NULL,
        id TEXT NOT NULL,
        generation INTEGER NOT NULL,
        cert_ca TEXT NOT NULL,
        last_seen_ms INTEGER NOT NULL,
        PRIMARY KEY (role, id)
    );
    ",
    // 6: drop the first schema's trust_bundle table: nothing ever wrote
    // it; the trust bundle is a setting (ADR 0019).
    "
    DROP TABLE IF EXISTS trust_bundle;
    ",
    // 7: durability. shard_refs: one row per shard a unit's map names
    // (a version's own map: upload_id '', part_number 0; a completed
    // part: upload_id '', part_number n; an open upload's part:
    // version_id '', upload_id set), kept exact by every write, filled
    // here from the JSON maps. `missing`: how many of the unit's k+m
    // indexes its map lacks (a degraded commit), the same on each of its
    // rows. shard_faults: shards a blob-server reported bad.
    "
    CREATE TABLE shard_refs (
        shard_id TEXT NOT NULL,
        blob_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        bucket TEXT NOT NULL,
        key TEXT NOT NULL,
        version_id TEXT NOT NULL,
        upload_id TEXT NOT NULL,
        part_number INTEGER NOT NULL,
        k INTEGER NOT NULL,
        width INTEGER NOT NULL,
        missing INTEGER NOT NULL
    );
    -- A version's units are found by (upload_id '', version_id, bucket,
    -- key), an upload's by (upload_id, version_id ''): one index serves both.
    CREATE INDEX shard_refs_by_unit ON shard_refs (upload_id, version_id, bucket, key, part_number);
    CREATE INDEX shard_refs_by_shard ON shard_refs (shard_id);
    CREATE INDEX shard_refs_by_blob ON shard_refs (blob_id);
    CREATE INDEX shard_refs_short ON shard_refs (upload_id, version_id, bucket, key, part_number)
        WHERE missing > 0;

    INSERT INTO shard_refs
    SELECT json_extract(s.value, '$.shard_id'), json_extract(s.value, '$.blob_id'),
           json_extract(s.value, '$.index'), v.bucket, v.key, v.version_id, '', 0,
           json_extract(v.shard_map, '$.data_shards'),
           json_extract(v.shard_map, '$.data_shards') + json_extract(v.shard_map, '$.parity_shards'),
           0
    FROM versions v, json_each(v.shard_map, '$.shards') s
    WHERE v.shard_map IS NOT NULL;

    INSERT INTO shard_refs
    SELECT json_extract(s.value, '$.shard_id'), json_extract(s.value, '$.blob_id'),
           json_extract(s.value, '$.index'), v.bucket, v.key, v.version_id, '',
           json_extract(p.value, '$.part_number'),
           json_extract(p.value, '$.shard_map.data_shards'),
           json_extract(p.value, '$.shard_map.data_shards')
             + json_extract(p.value, '$.shard_map.parity_shards'),
           0
    FROM versions v, json_each(v.parts) p, json_each(p.value, '$.shard_map.shards') s
    WHERE v.parts <> '[]';

    INSERT INTO shard_refs
    SELECT json_extract(s.value, '$.shard_id'), json_extract(s.value, '$.blob_id'),
           json_extract(s.value, '$.index'), COALESCE(u.bucket, ''), COALESCE(u.key, ''), '',
           p.upload_id, p.part_number,
           json_extract(p.shard_map, '$.data_shards'),
           json_extract(p.shard_map, '$.data_shards') + json_extract(p.shard_map, '$.parity_shards'),
           0
    FROM parts p LEFT JOIN uploads u ON u.upload_id = p.upload_id, json_each(p.shard_map, '$.shards') s
    WHERE p.shard_map IS NOT NULL;

    UPDATE shard_refs SET missing = MAX(0, width - (
        SELECT COUNT(DISTINCT o.idx) FROM shard_refs o
        WHERE o.upload_id = shard_refs.upload_id AND o.version_id = shard_refs.version_id
          AND o.bucket = shard_refs.bucket AND o.key = shard_refs.key
          AND o.part_number = shard_refs.part_number AND o.idx >= 0 AND o.idx < o.width));

    CREATE TABLE shard_faults (
        shard_id TEXT PRIMARY KEY,
        blob_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        at_ms INTEGER NOT NULL
    );

    ALTER TABLE blob_servers ADD COLUMN last_scrub_ms INTEGER NOT NULL DEFAULT 0;
    ",
    // 8: blob-server lifecycle (ADR 0025): the operator's intent apart
    // from liveness ('in', 'draining', 'drained', 'removed'), a drain's
    // target ('' : anywhere), the store as the server last reported it,
    // and when it was removed. Every server known so far is in service.
    "
    ALTER TABLE blob_servers ADD COLUMN lifecycle TEXT NOT NULL DEFAULT 'in';
    ALTER TABLE blob_servers ADD COLUMN drain_to TEXT NOT NULL DEFAULT '';
    ALTER TABLE blob_servers ADD COLUMN shards_stored INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE blob_servers ADD COLUMN bytes_stored INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE blob_servers ADD COLUMN removed_ms INTEGER NOT NULL DEFAULT 0;
    -- When the server last left drained (an undrain): shards minted on
    -- it before then may have been deleted by the drain's cleanup, so no
    -- new map may name them.
    ALTER TABLE blob_servers ADD COLUMN fence_ms INTEGER NOT NULL DEFAULT 0;

    -- A drain pages through a server's units in unit order, and asks the
    -- widest map naming it: both from this index alone. It serves every
    -- lookup by blob_id the first one did.
    CREATE INDEX shard_refs_by_blob_unit
        ON shard_refs (blob_id, bucket, key, version_id, upload_id, part_number, width);
    DROP INDEX shard_refs_by_blob;
    ",
    // 9: backup and restore (ADR 0026). The cluster's id, kept for its
    // life: its first CA's fingerprint (a running cluster: the issuing CA
    // it has now). held_orphans: shards the sweep found after a restore
    // that no row names, written before the restore: kept and listed
    // until an operator releases them.
    "
    INSERT OR IGNORE INTO settings (key, value)
        SELECT 'cluster_id', json_extract(value, '$.issuing') FROM settings
        WHERE key = 'trust' AND json_extract(value, '$.issuing') IS NOT NULL;

    CREATE TABLE held_orphans (
        blob_id TEXT NOT NULL,
        shard_id TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        modified_ms INTEGER NOT NULL,
        found_ms INTEGER NOT NULL,
        released INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (blob_id, shard_id)
    );
    ",
    // 10: per-key authorization (ADR 0027). A bucket's owner ('' : none)
    // and its own maximum retention (NULL: the cluster's, the settings row
    // 'max_retention_days', absent: 36500); grants per (bucket, key); who
    // may create buckets. Every existing bucket stays ownerless: this runs
    // at each replica's own log position, so anything derived from the
    // data here (e.g. "the only key made them") could differ between
    // replicas. Owners come from the log: Op::AdoptBuckets, Op::SetBucket.
    "
    ALTER TABLE buckets ADD COLUMN owner TEXT NOT NULL DEFAULT '';
    ALTER TABLE buckets ADD COLUMN max_retention_days INTEGER;
    ALTER TABLE access_keys ADD COLUMN can_create_bucket INTEGER NOT NULL DEFAULT 1;

    CREATE TABLE bucket_grants (
        bucket TEXT NOT NULL,
        key_id TEXT NOT NULL,
        can_read INTEGER NOT NULL,
        can_write INTEGER NOT NULL,
        is_owner INTEGER NOT NULL,
        PRIMARY KEY (bucket, key_id)
    );
    CREATE INDEX bucket_grants_by_key ON bucket_grants (key_id, bucket);
    CREATE INDEX buckets_by_owner ON buckets (owner, name);
    ",
    // 11: S3 compatibility round two (issue 21). A version's checksum
    // (algorithm, base64 value, type; '' none) and the multipart upload
    // that made it; a part's checksum (base64; '' none); a bucket's
    // PublicAccessBlock (JSON; '' none set).
    "
    ALTER TABLE versions ADD COLUMN checksum_algorithm TEXT NOT NULL DEFAULT '';
    ALTER TABLE versions ADD COLUMN checksum_value TEXT NOT NULL DEFAULT '';
    ALTER TABLE versions ADD COLUMN checksum_type TEXT NOT NULL DEFAULT '';
    ALTER TABLE versions ADD COLUMN upload_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE parts ADD COLUMN checksum_value TEXT NOT NULL DEFAULT '';
    ALTER TABLE buckets ADD COLUMN public_access_block TEXT NOT NULL DEFAULT '';
    ",
];

/// The schema version this binary writes.
pub fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "database schema version {found} is newer than this binary's {known}; upgrade the binary"
    )]
    TooNew { found: i64, known: i64 },
    /// A negative user_version: not a file this project wrote.
    #[error("database schema version {0} is not one this project writes")]
    Foreign(i64),
    /// snapshot.json written in a newer format.
    #[error(transparent)]
    Format(#[from] TooNew),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// Refuses a schema version newer than this binary's (or negative).
pub fn check_version(found: i64) -> Result<(), SchemaError> {
    if found < 0 {
        return Err(SchemaError::Foreign(found));
    }
    if found > current_version() {
        return Err(SchemaError::TooNew {
            found,
            known: current_version(),
        });
    }
    Ok(())
}

/// Brings the schema up to date.
pub async fn migrate(conn: &mut SqliteConnection) -> Result<(), SchemaError> {
    let found: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut *conn)
        .await?;
    check_version(found)?;
    let done = usize::try_from(found).unwrap_or(usize::MAX);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::raw_sql(*sql).execute(&mut *tx).await?;
        // PRAGMA takes no bind parameters; the value is our own integer.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "PRAGMA user_version = {}",
            i + 1
        )))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    Ok(())
}
