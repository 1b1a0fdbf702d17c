//! The state machine: committed commands applied to the metadata DB.
//!
//! `state.db` (SQLite, WAL, synchronous=FULL) holds the metadata and, in
//! `sm_meta`, the last applied log id and membership: each batch openraft
//! hands us is applied in one transaction together with `last_applied`, so
//! a crash leaves either the whole batch or none of it (ADR 0006).
//!
//! A snapshot is a consistent copy of the DB (`VACUUM INTO`), kept as
//! `snapshot-ID.db`, named by `snapshot.json`, which is replaced last. Installing one replaces `state.db`
//! under the write lock that readers take briefly to get the pool.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, Row, SqlitePool};
use tokio::sync::RwLock;

use super::log_store::open_pool;
use super::{Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::state::apply::apply_entry;
use crate::state::commands::Response;
use crate::state::schema;

const STATE_DB: &str = "state.db";
const SNAPSHOT_META: &str = "snapshot.json";
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

/// The metadata DB, shared by the state machine (writer) and the gRPC
/// services (readers).
pub struct StateDb {
    dir: PathBuf,
    pool: RwLock<SqlitePool>,
}

impl StateDb {
    pub async fn open(dir: &Path) -> Result<Arc<Self>, schema::SchemaError> {
        let pool = open_state(&dir.join(STATE_DB)).await?;
        Ok(Arc::new(Self {
            dir: dir.to_path_buf(),
            pool: RwLock::new(pool),
        }))
    }

    /// The current pool. Held only long enough to clone it.
    pub async fn pool(&self) -> SqlitePool {
        self.pool.read().await.clone()
    }
}

async fn open_state(path: &Path) -> Result<SqlitePool, schema::SchemaError> {
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

/// What `snapshot.json` records: the snapshot's meta and its data file.
#[derive(Serialize, Deserialize)]
struct StoredSnapshotMeta {
    meta: SnapshotMeta,
    file: String,
}

/// Makes `data` the current snapshot: the data file first, then the
/// pointer to it (atomic), then the previous data file goes.
fn save_snapshot(dir: &Path, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError> {
    let previous: Option<StoredSnapshotMeta> = std::fs::read(dir.join(SNAPSHOT_META))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let file = format!("snapshot-{}.db", meta.snapshot_id);
    write_durably(&dir.join(&file), data).map_err(snap_write)?;
    let stored = serde_json::to_vec(&StoredSnapshotMeta {
        meta: meta.clone(),
        file: file.clone(),
    })
    .map_err(snap_write)?;
    write_durably(&dir.join(SNAPSHOT_META), &stored).map_err(snap_write)?;
    if let Some(p) = previous
        && p.file != file
    {
        let _ = std::fs::remove_file(dir.join(p.file));
    }
    Ok(())
}

pub struct StateMachine {
    db: Arc<StateDb>,
    /// Distinguishes snapshots built at the same log id.
    counter: Arc<AtomicU64>,
}

impl StateMachine {
    pub fn new(db: Arc<StateDb>) -> Self {
        Self {
            db,
            counter: Arc::new(AtomicU64::new(0)),
        }
    }
}

async fn read_sm_meta<T: serde::de::DeserializeOwned>(
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

async fn write_sm_meta<T: Serialize>(
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
fn write_durably(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    fsync_dir(path.parent().unwrap_or(Path::new(".")))
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let pool = self.db.pool().await;
        let mut conn = pool.acquire().await.map_err(sm_read)?;
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
        let pool = self.db.pool().await;
        let mut conn = pool.acquire().await.map_err(sm_write)?;
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
            counter: self.counter.clone(),
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
        // Keep it as our current snapshot, then make it the live DB.
        save_snapshot(&dir, meta, &data)?;

        let mut guard = self.db.pool.write().await;
        guard.close().await;
        let live = dir.join(STATE_DB);
        // A stale WAL must never be replayed onto the new file.
        for ext in ["db-wal", "db-shm"] {
            let _ = std::fs::remove_file(live.with_extension(ext));
        }
        write_durably(&live, &data).map_err(snap_write)?;
        let pool = open_state(&live)
            .await
            .map_err(|e| snap_write(std::io::Error::other(e.to_string())))?;
        {
            // The snapshot's own sm_meta matches meta; write it to be sure.
            let mut conn = pool.acquire().await.map_err(sm_write)?;
            write_sm_meta(&mut conn, "last_applied", &meta.last_log_id).await?;
            write_sm_meta(&mut conn, "membership", &meta.last_membership).await?;
        }
        *guard = pool;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let dir = &self.db.dir;
        let meta_path = dir.join(SNAPSHOT_META);
        if !meta_path.exists() {
            return Ok(None);
        }
        let stored: StoredSnapshotMeta =
            serde_json::from_slice(&std::fs::read(&meta_path).map_err(snap_read)?)
                .map_err(snap_read)?;
        let data = std::fs::read(dir.join(&stored.file)).map_err(snap_read)?;
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

pub struct SnapshotBuilder {
    db: Arc<StateDb>,
    counter: Arc<AtomicU64>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let dir = self.db.dir.clone();
        let tmp = dir.join("snapshot.building.db");
        let _ = std::fs::remove_file(&tmp);
        {
            // VACUUM INTO copies one consistent read transaction of the DB,
            // while apply goes on.
            let pool = self.db.pool().await;
            let mut conn = pool.acquire().await.map_err(snap_write)?;
            sqlx::query("VACUUM INTO ?")
                .bind(tmp.to_string_lossy().to_string())
                .execute(&mut *conn)
                .await
                .map_err(snap_write)?;
        }
        // The copy says what it contains.
        let (last, membership) = {
            let mut conn = sqlx::SqliteConnection::connect_with(
                &sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(&tmp)
                    .read_only(true),
            )
            .await
            .map_err(snap_read)?;
            let last: Option<LogId> = read_sm_meta::<Option<LogId>>(&mut conn, "last_applied")
                .await?
                .flatten();
            let m: StoredMembership = read_sm_meta(&mut conn, "membership")
                .await?
                .unwrap_or_default();
            let _ = conn.close().await;
            (last, m)
        };
        let data = std::fs::read(&tmp).map_err(snap_read)?;
        let _ = std::fs::remove_file(&tmp);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last {
            Some(l) => format!("{}-{}-{n}", l.leader_id.term, l.index),
            None => format!("0-0-{n}"),
        };
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: membership,
            snapshot_id,
        };
        save_snapshot(&dir, &meta, &data)?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes = data.len(), "snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
