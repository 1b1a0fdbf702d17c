//! The Raft log on SQLite (ADR 0006).
//!
//! One file, `raft-log.db`, WAL mode with `synchronous=FULL`: a transaction
//! is on disk when its commit returns, so [`append`] reports the entries
//! flushed only after the commit. All appends arrive in order from one
//! task; the batch openraft hands us (several client writes that queued
//! while the previous fsync ran) is one transaction: that is our group
//! commit.
//!
//! The file's layout is versioned by `PRAGMA user_version` ([`LAYOUT`]); a
//! file from before the stamp (0, with or without tables) is this layout.
//! Entries are JSON of openraft's `Entry`, each command with its own
//! format version (`state::format`).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{RaftLogReader, StorageIOError, Vote};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Row, SqlitePool};

use super::{Entry, LogId, NodeId, StorageError, TypeConfig};
use crate::state::format::{self, TooNew};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);
";

/// The layout of raft-log.db this binary writes (its `user_version`).
/// A change of layout is the next number, with the upgrade in [`LogStore::open`].
pub const LAYOUT: i64 = 1;

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Written by a newer binary: refused, and left untouched.
    #[error(transparent)]
    TooNew(#[from] TooNew),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// The log store. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct LogStore {
    pool: SqlitePool,
    /// Last committed index this node has recorded (+1; 0 = none), for status.
    committed: Arc<AtomicU64>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogStore")
    }
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_logs(&e).into()
}
fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

/// Opens a SQLite file in WAL mode with full fsync on commit.
pub async fn open_pool(path: &Path, max_connections: u32) -> Result<SqlitePool, sqlx::Error> {
    super::private::prepare_db(path)?;
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(std::time::Duration::from_secs(10));
    SqlitePoolOptions::new()
        .max_connections(max_connections)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(opts)
        .await
}

/// The `user_version` of an existing SQLite file (None: no file), read
/// without changing the file: no journal-mode switch, nothing created, so
/// a file from a newer binary can be refused untouched.
pub async fn user_version(path: &Path) -> Result<Option<i64>, sqlx::Error> {
    if !path.exists() {
        return Ok(None);
    }
    let mut conn =
        sqlx::SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path)).await?;
    let v: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(Some(v))
}

impl LogStore {
    pub async fn open(path: &Path) -> Result<Self, OpenError> {
        // Checked before the pool opens (and switches the file to WAL), so
        // a refused file is left untouched. No file: 0, made below.
        let found = user_version(path).await?.unwrap_or(0);
        // A negative stamp is nothing we wrote: refused like a newer one.
        let stamp = u64::try_from(found).unwrap_or(u64::MAX);
        format::check("raft-log.db", stamp, LAYOUT as u64)?;
        // One connection: the log has a single writer and readers are few.
        let pool = open_pool(path, 1).await?;
        if found < LAYOUT {
            // New, or written before the stamp (the same layout): create
            // what is missing and stamp it, in one transaction.
            let mut tx = pool.begin().await?;
            sqlx::raw_sql(SCHEMA).execute(&mut *tx).await?;
            // PRAGMA takes no bind parameters; the value is our own integer.
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "PRAGMA user_version = {LAYOUT}"
            )))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        let store = Self {
            pool,
            committed: Arc::new(AtomicU64::new(0)),
        };
        if let Ok(Some(c)) = store.get_json::<LogId>("committed").await {
            store.committed.store(c.index + 1, Ordering::Relaxed);
        }
        Ok(store)
    }

    /// Closes the pool (offline tools). Clones share it: none may be
    /// used afterwards.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The committed index last saved, if any.
    pub fn committed_index(&self) -> Option<u64> {
        self.committed.load(Ordering::Relaxed).checked_sub(1)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StorageError> {
        let row = sqlx::query("SELECT value FROM kv WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(read_err)?;
        match row {
            None => Ok(None),
            Some(r) => {
                let bytes: Vec<u8> = r.get(0);
                serde_json::from_slice(&bytes).map(Some).map_err(read_err)
            }
        }
    }

    async fn put_json<T: serde::Serialize>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(value).map_err(write_err)?;
        sqlx::query("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(bytes)
            .execute(&self.pool)
            .await
            .map_err(write_err)?;
        Ok(())
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (i64, i64) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => *e,
        Bound::Unbounded => u64::MAX,
    };
    // SQLite integers are i64; log indexes never reach 2^63.
    (
        i64::try_from(start).unwrap_or(i64::MAX),
        i64::try_from(end).unwrap_or(i64::MAX),
    )
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = bounds(&range);
        let rows = sqlx::query("SELECT entry FROM log WHERE idx >= ? AND idx < ? ORDER BY idx")
            .bind(start)
            .bind(end)
            .fetch_all(&self.pool)
            .await
            .map_err(read_err)?;
        rows.iter()
            .map(|r| serde_json::from_slice::<Entry>(r.get::<&[u8], _>(0)).map_err(read_err))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.get_json("last_purged").await?;
        let row = sqlx::query("SELECT entry FROM log ORDER BY idx DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(read_err)?;
        let last = match row {
            Some(r) => Some(
                serde_json::from_slice::<Entry>(r.get::<&[u8], _>(0))
                    .map_err(read_err)?
                    .log_id,
            ),
            None => last_purged,
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.put_json("vote", vote)
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.get_json("vote").await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.put_json("committed", &committed).await?;
        if let Some(c) = committed {
            self.committed.store(c.index + 1, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_json::<Option<LogId>>("committed").await?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let started = std::time::Instant::now();
        let mut tx = self.pool.begin().await.map_err(write_err)?;
        for entry in entries {
            let idx = i64::try_from(entry.log_id.index).unwrap_or(i64::MAX);
            let bytes = serde_json::to_vec(&entry).map_err(write_err)?;
            sqlx::query("INSERT OR REPLACE INTO log (idx, entry) VALUES (?, ?)")
                .bind(idx)
                .bind(bytes)
                .execute(&mut *tx)
                .await
                .map_err(write_err)?;
        }
        // synchronous=FULL: durable when commit returns.
        let res = tx.commit().await;
        match res {
            Ok(()) => {
                metrics::histogram!("hamster_raft_append_seconds")
                    .record(started.elapsed().as_secs_f64());
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(write_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let idx = i64::try_from(log_id.index).unwrap_or(i64::MAX);
        sqlx::query("DELETE FROM log WHERE idx >= ?")
            .bind(idx)
            .execute(&self.pool)
            .await
            .map_err(write_err)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let idx = i64::try_from(log_id.index).unwrap_or(i64::MAX);
        let bytes = serde_json::to_vec(&log_id).map_err(write_err)?;
        // Record the purge point and delete in one transaction.
        let mut tx = self.pool.begin().await.map_err(write_err)?;
        sqlx::query("INSERT INTO kv (key, value) VALUES ('last_purged', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .bind(bytes)
            .execute(&mut *tx)
            .await
            .map_err(write_err)?;
        sqlx::query("DELETE FROM log WHERE idx <= ?")
            .bind(idx)
            .execute(&mut *tx)
            .await
            .map_err(write_err)?;
        tx.commit().await.map_err(write_err)?;
        Ok(())
    }
}
