//! Shards on disk. A blob-server knows nothing of objects, keys or
//! buckets: a shard is an id and bytes.
//!
//! - [`format`]: the shard file format (header, per-block CRC32C).
//! - [`verify`]: a whole-shard check, window by window (the scrub's).
//! - [`walk`]: listings (whole or an error), the scrub's walk, expiry
//!   of quarantined copies.
//! - [`count`]: live shards and bytes, exact, for the heartbeat.
//! - [`tmp`]: temp files of writes in progress, and their cleaner.
//! - [`write`]: durable writes, buffered in memory so a small shard costs
//!   two blocking calls (create, commit).
//! - [`read`]: verified range reads, many blocks per blocking call.
//! - this module: where shards live, deletes, quarantine.
//!
//! Layout under the data dir: `shards/AB/CD/ID` (AB, CD: the first bytes of
//! SHA-256(ID), to spread files over directories), `tmp/` for writes in
//! progress (emptied at start-up, orphans cleaned every 30 s), and
//! `quarantine/ID` for shards found corrupt: moved aside, never served or
//! listed, removed by a delete. A write is acknowledged only after the file
//! is fsynced, linked into place and its directory fsynced.
//!
//! A shard id is written once (invariant 10): a write to an id that exists,
//! or whose copy is in quarantine, is refused, so no writer (a gateway, a
//! repairing peer) can replace a stored shard. Only format and checksum
//! failures are corruption; an I/O error says nothing about the bytes and
//! is answered as such.

pub mod count;
pub mod format;
pub mod read;
mod tmp;
pub mod verify;
pub mod walk;
pub mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use count::Counts;
use format::{FormatError, Header};
use tmp::LiveTemps;

pub use read::ShardRead;
pub use write::ShardWrite;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid shard id {0:?}: 1-200 of [A-Za-z0-9._-], not starting with '.'")]
    BadId(String),
    #[error("no shard {0}")]
    NotFound(String),
    #[error("shard {0} exists (or its copy is in quarantine): a shard id is written once")]
    Exists(String),
    #[error("shard {id}: {source}")]
    Corrupt { id: String, source: FormatError },
    #[error("range {offset}+{len} is outside shard {id} of {size} bytes")]
    OutOfRange {
        id: String,
        offset: u64,
        len: u64,
        size: u64,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
    let what = what.into();
    move |source| StoreError::Io { what, source }
}

pub fn valid_id(id: &str) -> bool {
    (1..=200).contains(&id.len())
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// What a stored shard is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardInfo {
    pub shard_index: u32,
    pub len: u64,
    pub checksum: u32,
}

impl From<Header> for ShardInfo {
    fn from(h: Header) -> Self {
        Self {
            shard_index: h.shard_index,
            len: h.data_len,
            checksum: h.shard_crc,
        }
    }
}

/// Where corrupt shards are moved, under the data dir.
pub const QUARANTINE: &str = "quarantine";

#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
    /// Shared by every clone: one count per store.
    counts: Arc<Counts>,
    /// The temp files of writes in progress (the cleaner leaves them).
    live: Arc<LiveTemps>,
    /// Fan-out directories whose entry in their parent this process has
    /// made durable (a commit fsyncs a directory's ancestors until then,
    /// whoever created it).
    durable_dirs: Arc<std::sync::Mutex<std::collections::HashSet<PathBuf>>>,
}

/// Runs `f` on tokio's blocking pool. Each tokio::fs call is a trip of
/// its own there and back (a wake-up and a thread switch each way), so a
/// sequence of file system calls goes in one closure: one trip.
pub(crate) async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    // Fails only if `f` panicked or the runtime is shutting down.
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io(what)(std::io::Error::other(e.to_string())))
}

/// Whether anything is at `path` (blocking).
fn taken(path: &Path) -> Result<bool, StoreError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(format!("stat {}", path.display()))(e)),
    }
}

/// Makes `dir`'s entries durable (blocking).
fn fsync_dir_now(dir: &Path) -> Result<(), StoreError> {
    let d = std::fs::File::open(dir).map_err(io(format!("open {}", dir.display())))?;
    let started = std::time::Instant::now();
    let synced = d.sync_all().map_err(io(format!("fsync {}", dir.display())));
    crate::observe::fsync("dir", started);
    synced
}

async fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    let dir = dir.to_path_buf();
    blocking("fsync of a directory", move || fsync_dir_now(&dir)).await?
}

impl Store {
    /// Opens the store, creating its directories and dropping leftovers of
    /// writes that never finished (they were never acknowledged), and
    /// counts what it holds.
    pub async fn open(root: &Path) -> Result<Self, StoreError> {
        let tmp = root.join("tmp");
        if tmp.exists() {
            tokio::fs::remove_dir_all(&tmp)
                .await
                .map_err(io("clearing tmp/"))?;
        }
        tokio::fs::create_dir_all(&tmp)
            .await
            .map_err(io("creating tmp/"))?;
        tokio::fs::create_dir_all(root.join("shards"))
            .await
            .map_err(io("creating shards/"))?;
        tokio::fs::create_dir_all(root.join(QUARANTINE))
            .await
            .map_err(io("creating quarantine/"))?;
        let store = Self {
            root: root.to_path_buf(),
            counts: Arc::new(Counts::new()),
            live: Arc::default(),
            durable_dirs: Arc::default(),
        };
        store.recount().await?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Refuses an id that can name no shard (before any other work).
    pub fn check_id(&self, id: &str) -> Result<(), StoreError> {
        self.locate(id).map(|_| ())
    }

    fn path(&self, id: &str) -> Result<PathBuf, StoreError> {
        Ok(self.locate(id)?.0)
    }

    /// Where shard `id` lives, and its count stripe.
    fn locate(&self, id: &str) -> Result<(PathBuf, usize), StoreError> {
        if !valid_id(id) {
            return Err(StoreError::BadId(id.to_string()));
        }
        let hash = Sha256::digest(id.as_bytes());
        let h = hex::encode(&hash[..2]);
        let path = self
            .root
            .join("shards")
            .join(&h[0..2])
            .join(&h[2..4])
            .join(id);
        Ok((path, count::stripe_of(hash[0])))
    }

    pub async fn stat(&self, id: &str) -> Result<ShardInfo, StoreError> {
        Ok(self.open_shard(id).await?.1.into())
    }

    /// Opens `len` bytes at `offset` (len 0: to the end) for reading block by block.
    pub async fn read(&self, id: &str, offset: u64, len: u64) -> Result<ShardRead, StoreError> {
        let (file, header) = self.open_shard(id).await?;
        let end = if len == 0 {
            header.data_len
        } else {
            offset.saturating_add(len)
        };
        if offset > header.data_len || end > header.data_len || end < offset {
            return Err(StoreError::OutOfRange {
                id: id.into(),
                offset,
                len,
                size: header.data_len,
            });
        }
        Ok(ShardRead::new(id, file, header, offset, end))
    }

    /// Removes a shard, and its quarantined copy if it was moved aside;
    /// Ok(false) if there was neither.
    pub async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let (path, stripe) = self.locate(id)?;
        let live = {
            let _counted = self.counts.enter(stripe).await;
            // Its size first, for the count. Absent now, it is not removed
            // even if a write lands next: that write came after this delete.
            match file_len(&path, id).await? {
                Some(len) => {
                    let removed = remove(&path, id).await?;
                    if removed {
                        self.counts.removed(stripe, len);
                    }
                    removed
                }
                None => false,
            }
        };
        let aside = remove(&self.root.join(QUARANTINE).join(id), id).await?;
        Ok(live || aside)
    }

    /// Opens a shard for a whole check (header and length checked here).
    pub async fn verify(&self, id: &str) -> Result<verify::ShardVerify, StoreError> {
        // The header was read in order: the file's offset is at block 0.
        let (file, header) = self.open_shard(id).await?;
        Ok(verify::ShardVerify {
            id: id.into(),
            file: tokio::fs::File::from_std(file),
            header,
            next_block: 0,
            crcs: 0,
            started: false,
        })
    }

    /// Moves a shard aside into quarantine/, durably, so it is never
    /// served or listed again; Ok(false) if it was gone (deleted meanwhile).
    pub async fn quarantine(&self, id: &str) -> Result<bool, StoreError> {
        let (from, stripe) = self.locate(id)?;
        let dir = self.root.join(QUARANTINE);
        let to = dir.join(id);
        {
            let _counted = self.counts.enter(stripe).await;
            let Some(len) = file_len(&from, id).await? else {
                return Ok(false);
            };
            match tokio::fs::rename(&from, &to).await {
                Ok(()) => self.counts.removed(stripe, len),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(io(format!("quarantining {id}"))(e)),
            }
        }
        // A rename keeps the file's times; the expiry counts from now.
        let touched = tokio::task::spawn_blocking(move || {
            std::fs::File::open(&to)?.set_modified(std::time::SystemTime::now())
        })
        .await;
        if let Ok(Err(e)) = touched {
            tracing::warn!(shard = %id, error = %e, "quarantine: could not set the time moved aside");
        }
        fsync_dir(&dir).await?;
        if let Some(parent) = from.parent() {
            fsync_dir(parent).await?;
        }
        Ok(true)
    }
}

/// The size of the file at `path`; None if there is none.
async fn file_len(path: &Path, id: &str) -> Result<Option<u64>, StoreError> {
    match tokio::fs::symlink_metadata(path).await {
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(format!("stat {id}"))(e)),
    }
}

/// Removes one file durably; Ok(false) if it did not exist.
async fn remove(path: &Path, id: &str) -> Result<bool, StoreError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                fsync_dir(dir).await?;
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(format!("delete {id}"))(e)),
    }
}
