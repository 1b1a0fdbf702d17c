//! The state machine: committed commands applied to the metadata DB.
//!
//! `state.db` (SQLite, WAL, synchronous=FULL) holds the metadata and, in
//! `sm_meta`, the last applied log id and membership: each batch openraft
//! hands us is applied in one transaction together with `last_applied`, so
//! a crash leaves either the whole batch or none of it (ADR 0006).
//!
//! A snapshot is a consistent copy of the DB (`VACUUM INTO`), kept as
//! `snapshot-TERM-INDEX-NONCE.db`, named by `snapshot.json`, which is
//! replaced last and never by an older snapshot. An installed snapshot is
//! checked (`quick_check`, its own `last_applied`) before it replaces
//! `state.db` under the write lock readers take briefly. At start-up a
//! saved snapshot newer than `state.db` restores it (a crash mid-install).
//!
//! Versions (ADR 0020): `snapshot.json` carries its own format version
//! ([`SNAPSHOT_FORMAT`]; none: 0, the same layout as 1); a snapshot DB is
//! versioned by its schema's `user_version`. Anything newer than this
//! binary — state.db, a saved or a received snapshot — is refused, and
//! left as it was.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, Row, Sqlite, SqlitePool};
use tokio::sync::{Mutex, RwLock};

use super::log_store::{open_pool, user_version};
use super::{Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::state::apply::apply_entry;
use crate::state::commands::Response;
use crate::state::format::{self, TooNew};
use crate::state::schema;

pub const STATE_DB: &str = "state.db";
pub const INCOMING_DB: &str = "incoming.db";
pub const SNAPSHOT_META: &str = "snapshot.json";
/// Connections for readers plus the one applying writer.
const POOL_SIZE: u32 = 8;

fn sm_read(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_state_machine(&e).into()
}
fn sm_write(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(&e).into()
}
fn snap_write(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_snapshot(None, &e).into()
}
fn snap_read(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_snapshot(None, &e).into()
}
fn other(msg: String) -> std::io::Error {
    std::io::Error::other(msg)
}

/// Runs blocking file I/O off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| other(e.to_string()))?
}

/// The metadata DB, shared by the state machine (writer) and the gRPC
/// services (readers).
pub struct StateDb {
    dir: PathBuf,
    pool: RwLock<SqlitePool>,
    /// Serializes snapshot saves (a build and an install can race).
    snapshots: Mutex<()>,
}

/// The `snapshot.json` layout this binary writes.
pub const SNAPSHOT_FORMAT: u64 = 1;

/// What `snapshot.json` records: the snapshot's meta and its data file.
/// Public so the golden tests can pin its encoding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredSnapshotMeta {
    /// Format version, written first (absent: 0, written before versions).
    #[serde(default)]
    pub v: u64,
    pub meta: SnapshotMeta,
    pub file: String,
}

/// The saved snapshot's record, if there is a readable one; refused if
/// written in a newer format.
fn read_stored(dir: &Path) -> Result<Option<StoredSnapshotMeta>, TooNew> {
    /// Just the version: a newer layout may not parse as this one.
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        v: u64,
    }
    let Ok(bytes) = std::fs::read(dir.join(SNAPSHOT_META)) else {
        return Ok(None);
    };
    if let Ok(p) = serde_json::from_slice::<Probe>(&bytes) {
        format::check("snapshot.json", p.v, SNAPSHOT_FORMAT)?;
    }
    Ok(serde_json::from_slice(&bytes).ok())
}

/// Whole-DB copies made in the data dir that are never state: a snapshot
/// being built, a backup being streamed, a restore's verified DB. One
/// found when the DB opens was left by a crash or an abandoned copy.
pub const TEMP_COPY_PREFIXES: [&str; 3] = ["building-", "backup-", RESTORE_TEMP_PREFIX];
/// A restore's verified DB, made in the first data dir it writes.
pub const RESTORE_TEMP_PREFIX: &str = ".restore-";

/// Whether `name` (a file in the data dir) is such a copy, or a file
/// SQLite keeps beside one.
pub fn is_temp_copy(name: &str) -> bool {
    let db = ["-wal", "-shm", "-journal"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    db.ends_with(".db") && TEMP_COPY_PREFIXES.iter().any(|p| db.starts_with(p))
}

/// Removes the temp copies left in `dir` (see [`is_temp_copy`]); called
/// when the DB opens, before anything in the dir may make a new one.
fn remove_temp_copies(dir: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        if e.file_name().to_str().is_some_and(is_temp_copy) {
            tracing::info!(file = %e.path().display(), "removing a stale copy of the state DB");
            std::fs::remove_file(e.path())?;
        }
    }
    Ok(())
}

/// `VACUUM INTO dest` on `conn`: a consistent copy of its DB in one read
/// transaction. `dest` must not exist.
pub async fn vacuum(conn: &mut sqlx::SqliteConnection, dest: &Path) -> Result<(), sqlx::Error> {
    // Made 0600 first: SQLite would create it 0644.
    super::private::prepare_db(dest)?;
    sqlx::query("VACUUM INTO ?")
        .bind(dest.to_string_lossy().to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// A read-only connection to the SQLite file at `path` (a copy to check
/// or read, not a DB in use).
pub async fn open_read_only(path: &Path) -> Result<sqlx::SqliteConnection, sqlx::Error> {
    sqlx::SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .read_only(true),
    )
    .await
}

impl StateDb {
    pub async fn open(dir: &Path) -> Result<Arc<Self>, schema::SchemaError> {
        let live = dir.join(STATE_DB);
        {
            let dir = dir.to_path_buf();
            blocking(move || remove_temp_copies(&dir))
                .await
                .map_err(sqlx::Error::Io)?;
        }
        let mut pool = open_state(&live).await?;
        // A crash after a snapshot was saved but before it replaced
        // state.db: the snapshot is newer than the DB, restore from it.
        if let Some(stored) = read_stored(dir)? {
            let applied = {
                let mut conn = pool.acquire().await?;
                read_sm_meta::<Option<LogId>>(&mut conn, "last_applied")
                    .await
                    .ok()
                    .flatten()
                    .flatten()
            };
            if stored.meta.last_log_id > applied {
                // Refused before it replaces anything.
                if let Some(found) = user_version(&dir.join(&stored.file)).await? {
                    schema::check_version(found)?;
                }
                tracing::warn!(snapshot = ?stored.meta.last_log_id, applied = ?applied, "state.db is behind the saved snapshot; restoring it");
                pool.close().await;
                let (from, to) = (dir.join(&stored.file), live.clone());
                blocking(move || replace_db_file(&from, &to, true))
                    .await
                    .map_err(sqlx::Error::Io)?;
                pool = open_state(&live).await?;
            }
        }
        Ok(Arc::new(Self {
            dir: dir.to_path_buf(),
            pool: RwLock::new(pool),
            snapshots: Mutex::new(()),
        }))
    }

    /// Checks a snapshot received from the leader and saves it durably.
    /// Called before openraft is handed it, because openraft may purge the
    /// log up to it while the install is still running: the snapshot must
    /// already be on disk then, or a crash leaves a gap nothing covers.
    pub async fn save_received(
        &self,
        meta: &SnapshotMeta,
        data: &[u8],
    ) -> Result<(), StorageError> {
        let incoming = self.dir.join(INCOMING_DB);
        {
            let (path, data) = (incoming.clone(), data.to_vec());
            blocking(move || write_durably(&path, &data))
                .await
                .map_err(snap_write)?;
        }
        verify_snapshot_file(&incoming, meta).await?;
        save_snapshot(self, meta, data.to_vec()).await
    }

    /// The data dir this DB lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A consistent copy of the DB at `dest` (`VACUUM INTO`: one read
    /// transaction, while apply goes on). `dest` must not exist.
    pub async fn vacuum_into(&self, dest: &Path) -> Result<(), sqlx::Error> {
        let mut conn = self.acquire().await?;
        vacuum(&mut conn, dest).await
    }

    /// Closes the pool (offline tools, before the files are changed
    /// under another handle). Nothing may use this DB afterwards.
    pub async fn close(&self) {
        self.pool.read().await.close().await;
    }

    /// A connection to the current DB, taken under the read guard so an
    /// install cannot close the pool between the clone and the acquire.
    pub async fn acquire(&self) -> Result<PoolConnection<Sqlite>, sqlx::Error> {
        let guard = self.pool.read().await;
        guard.acquire().await
    }
}

async fn open_state(path: &Path) -> Result<SqlitePool, schema::SchemaError> {
    // A newer DB is refused before the switch to WAL can touch it.
    if let Some(found) = user_version(path).await? {
        schema::check_version(found)?;
    }
    // Switching a new file to WAL and migrating need the file to
    // ourselves: do both on one connection before the pool opens more.
    {
        let setup = open_pool(path, 1).await?;
        let mut conn = setup.acquire().await?;
        schema::migrate(&mut conn).await?;
        drop(conn);
        setup.close().await;
    }
    Ok(open_pool(path, POOL_SIZE).await?)
}

pub(crate) async fn read_sm_meta<T: serde::de::DeserializeOwned>(
    conn: &mut sqlx::SqliteConnection,
    key: &str,
) -> Result<Option<T>, StorageError> {
    let row = sqlx::query("SELECT value FROM sm_meta WHERE key = ?")
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(sm_read)?;
    match row {
        None => Ok(None),
        Some(r) => serde_json::from_slice(r.get::<&[u8], _>(0))
            .map(Some)
            .map_err(sm_read),
    }
}

pub(crate) async fn write_sm_meta<T: Serialize>(
    conn: &mut sqlx::SqliteConnection,
    key: &str,
    value: &T,
) -> Result<(), StorageError> {
    let bytes = serde_json::to_vec(value).map_err(sm_write)?;
    sqlx::query("INSERT INTO sm_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
        .bind(key)
        .bind(bytes)
        .execute(&mut *conn)
        .await
        .map_err(sm_write)?;
    Ok(())
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Writes `data` to `path` durably (temp file, fsync, rename, fsync dir).
pub(crate) fn write_durably(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("writing");
    let mut f = super::private::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    fsync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Makes `from` the DB file at `to` (copying or renaming), dropping any
/// WAL of the old one first: a stale WAL must never replay onto new data.
fn replace_db_file(from: &Path, to: &Path, copy: bool) -> std::io::Result<()> {
    for ext in ["db-wal", "db-shm"] {
        match std::fs::remove_file(to.with_extension(ext)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if copy {
        write_durably(to, &std::fs::read(from)?)
    } else {
        std::fs::rename(from, to)?;
        fsync_dir(to.parent().unwrap_or(Path::new(".")))
    }
}

/// Makes `data` the current snapshot unless a newer one is saved: data
/// file first, then the pointer (atomic), then the previous file goes.
/// File names come from the log id and a local nonce, never from a peer.
async fn save_snapshot(
    db: &StateDb,
    meta: &SnapshotMeta,
    data: Vec<u8>,
) -> Result<(), StorageError> {
    let _one_at_a_time = db.snapshots.lock().await;
    let dir = db.dir.clone();
    let meta = meta.clone();
    blocking(move || {
        let previous = read_stored(&dir).map_err(|e| other(e.to_string()))?;
        if let Some(p) = &previous
            && p.meta.last_log_id >= meta.last_log_id
            && dir.join(&p.file).exists()
        {
            // Never replace a newer snapshot with an older one; one at the
            // same log id holds the same state (apply is deterministic).
            return Ok(());
        }
        let (term, index) = meta
            .last_log_id
            .map_or((0, 0), |l| (l.leader_id.term, l.index));
        let nonce: u32 = rand::random();
        let file = format!("snapshot-{term}-{index}-{nonce:08x}.db");
        write_durably(&dir.join(&file), &data)?;
        let stored = serde_json::to_vec(&StoredSnapshotMeta {
            v: SNAPSHOT_FORMAT,
            meta,
            file: file.clone(),
        })
        .map_err(|e| other(e.to_string()))?;
        write_durably(&dir.join(SNAPSHOT_META), &stored)?;
        if let Some(p) = previous
            && p.file != file
        {
            let _ = std::fs::remove_file(dir.join(p.file));
        }
        Ok(())
    })
    .await
    .map_err(snap_write)
}

/// Checks a received snapshot before it may replace anything: SQLite's
/// integrity check, a schema this binary knows, and that it says it is
/// what its meta says.
async fn verify_snapshot_file(path: &Path, meta: &SnapshotMeta) -> Result<(), StorageError> {
    let mut conn = open_read_only(path).await.map_err(snap_read)?;
    let check: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut conn)
        .await
        .map_err(snap_read)?;
    if check != "ok" {
        let _ = conn.close().await;
        return Err(snap_read(other(format!(
            "snapshot fails SQLite's integrity check: {check}"
        ))));
    }
    let found: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut conn)
        .await
        .map_err(snap_read)?;
    if let Err(e) = schema::check_version(found) {
        let _ = conn.close().await;
        return Err(snap_read(other(format!("snapshot refused: {e}"))));
    }
    let last: Option<LogId> = read_sm_meta::<Option<LogId>>(&mut conn, "last_applied")
        .await?
        .flatten();
    let _ = conn.close().await;
    if last != meta.last_log_id {
        return Err(snap_read(other(format!(
            "snapshot holds {last:?}, its meta says {:?}",
            meta.last_log_id
        ))));
    }
    Ok(())
}

pub struct StateMachine {
    db: Arc<StateDb>,
}

impl StateMachine {
    pub fn new(db: Arc<StateDb>) -> Self {
        Self { db }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let mut conn = self.db.acquire().await.map_err(sm_read)?;
        let last: Option<LogId> = read_sm_meta::<Option<LogId>>(&mut conn, "last_applied")
            .await?
            .flatten();
        let membership: StoredMembership = read_sm_meta(&mut conn, "membership")
            .await?
            .unwrap_or_default();
        Ok((last, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut conn = self.db.acquire().await.map_err(sm_write)?;
        let mut tx = conn.begin().await.map_err(sm_write)?;
        let mut responses = Vec::new();
        let mut last = None;
        let mut membership = None;
        for entry in entries {
            let resp = match &entry.payload {
                EntryPayload::Blank => Response::Ok,
                EntryPayload::Normal(cmd) => apply_entry(&mut tx, entry.log_id.index, cmd)
                    .await
                    .map_err(|e| StorageError::from(StorageIOError::apply(entry.log_id, &e)))?,
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), m.clone()));
                    Response::Ok
                }
            };
            last = Some(entry.log_id);
            responses.push(resp);
        }
        if let Some(last) = last {
            write_sm_meta(&mut tx, "last_applied", &Some(last)).await?;
        }
        if let Some(m) = membership {
            write_sm_meta(&mut tx, "membership", &m).await?;
        }
        // The batch and last_applied become durable together.
        tx.commit().await.map_err(sm_write)?;
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let dir = self.db.dir.clone();
        let data = snapshot.into_inner();
        tracing::info!(snapshot = %meta.snapshot_id, last = ?meta.last_log_id, bytes = data.len(), "installing snapshot");
        let incoming = dir.join(INCOMING_DB);
        {
            let (path, data) = (incoming.clone(), data.clone());
            blocking(move || write_durably(&path, &data))
                .await
                .map_err(snap_write)?;
        }
        verify_snapshot_file(&incoming, meta).await?;
        save_snapshot(&self.db, meta, data).await?;

        let mut guard = self.db.pool.write().await;
        // Fold the WAL into the old file before closing (best effort; the
        // file is replaced next anyway).
        if let Ok(mut c) = guard.acquire().await {
            let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut *c)
                .await;
        }
        guard.close().await;
        let live = dir.join(STATE_DB);
        {
            let (from, to) = (incoming.clone(), live.clone());
            blocking(move || replace_db_file(&from, &to, false))
                .await
                .map_err(snap_write)?;
        }
        let pool = open_state(&live)
            .await
            .map_err(|e| snap_write(other(e.to_string())))?;
        *guard = pool;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let dir = self.db.dir.clone();
        let found = blocking(move || {
            let Some(stored) = read_stored(&dir).map_err(|e| other(e.to_string()))? else {
                return Ok(None);
            };
            let data = std::fs::read(dir.join(&stored.file))?;
            Ok(Some((stored.meta, data)))
        })
        .await
        .map_err(snap_read)?;
        Ok(found.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

pub struct SnapshotBuilder {
    db: Arc<StateDb>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let dir = self.db.dir.clone();
        let nonce: u32 = rand::random();
        let tmp = dir.join(format!("building-{nonce:08x}.db"));
        self.db.vacuum_into(&tmp).await.map_err(snap_write)?;
        // The copy says what it contains.
        let (last, membership) = {
            let mut conn = open_read_only(&tmp).await.map_err(snap_read)?;
            let last: Option<LogId> = read_sm_meta::<Option<LogId>>(&mut conn, "last_applied")
                .await?
                .flatten();
            let m: StoredMembership = read_sm_meta(&mut conn, "membership")
                .await?
                .unwrap_or_default();
            let _ = conn.close().await;
            (last, m)
        };
        let data = {
            let tmp = tmp.clone();
            blocking(move || {
                let data = std::fs::read(&tmp)?;
                let _ = std::fs::remove_file(&tmp);
                Ok(data)
            })
            .await
            .map_err(snap_read)?
        };
        let snapshot_id = match last {
            Some(l) => format!("{}-{}-{nonce:08x}", l.leader_id.term, l.index),
            None => format!("0-0-{nonce:08x}"),
        };
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: membership,
            snapshot_id,
        };
        save_snapshot(&self.db, &meta, data.clone()).await?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes = data.len(), "snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
