//! Shards on disk. A blob-server knows nothing of objects, keys or
//! buckets: a shard is an id and bytes.
//!
//! - [`format`]: the shard file format (header, per-block CRC32C).
//! - [`verify`]: a whole-shard check, window by window (the scrub's).
//! - [`walk`]: listings (whole or an error), the scrub's walk, expiry
//!   of quarantined copies.
//! - [`count`]: live shards and bytes, exact, for the heartbeat.
//! - [`tmp`]: temp files of writes in progress, and their cleaner.
//! - this module: where shards live, durable writes, verified reads.
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
mod tmp;
pub mod verify;
pub mod walk;

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use count::Counts;
use format::{BlockWriter, CRC_LEN, FormatError, HEADER_LEN, Header};
use tmp::{LiveTemps, TempFile};

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
}

/// Whether anything is at `path`.
async fn taken(path: &Path) -> Result<bool, StoreError> {
    match tokio::fs::symlink_metadata(path).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(format!("stat {}", path.display()))(e)),
    }
}

async fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    let d = tokio::fs::File::open(dir)
        .await
        .map_err(io(format!("open {}", dir.display())))?;
    let started = std::time::Instant::now();
    let synced = d
        .sync_all()
        .await
        .map_err(io(format!("fsync {}", dir.display())));
    crate::observe::fsync("dir", started);
    synced
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

    /// Starts writing shard `id`; nothing is visible until
    /// [`ShardWrite::commit`]. An id already taken is refused here, before
    /// any byte is sent; the commit checks again, atomically.
    pub async fn create(&self, id: &str, shard_index: u32) -> Result<ShardWrite, StoreError> {
        let (dest, stripe) = self.locate(id)?;
        let aside = self.root.join(QUARANTINE).join(id);
        if taken(&dest).await? || taken(&aside).await? {
            return Err(StoreError::Exists(id.into()));
        }
        let nonce: u64 = rand::random();
        let tmp = TempFile::register(self, format!("{id}.{nonce:016x}"));
        let mut file = tokio::fs::File::create(&tmp.path)
            .await
            .map_err(io("creating a temp file"))?;
        // Room for the header, written last when the lengths are known.
        file.write_all(&[0u8; HEADER_LEN])
            .await
            .map_err(io("writing"))?;
        Ok(ShardWrite {
            id: id.into(),
            file,
            tmp,
            dest,
            aside,
            counts: self.counts.clone(),
            stripe,
            shard_index,
            blocks: BlockWriter::new(format::BLOCK_SIZE),
            pending: Vec::new(),
        })
    }

    async fn open_shard(&self, id: &str) -> Result<(tokio::fs::File, Header), StoreError> {
        let path = self.path(id)?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(id.into()));
            }
            Err(e) => return Err(io(format!("open {id}"))(e)),
        };
        let corrupt = |source| StoreError::Corrupt {
            id: id.into(),
            source,
        };
        let meta = file.metadata().await.map_err(io(format!("stat {id}")))?;
        if !meta.is_file() {
            // Not the store's doing, and not bytes that failed a check.
            let e = std::io::Error::other("not a regular file");
            return Err(io(format!("open {id}"))(e));
        }
        // Truncation is judged by length; a failed read is an I/O error.
        let on_disk = meta.len();
        if on_disk < HEADER_LEN as u64 {
            return Err(corrupt(FormatError::Truncated));
        }
        let mut h = [0u8; HEADER_LEN];
        file.read_exact(&mut h)
            .await
            .map_err(io(format!("reading {id}")))?;
        let header = Header::decode(&h).map_err(corrupt)?;
        if on_disk != header.file_len() {
            return Err(corrupt(FormatError::Truncated));
        }
        Ok((file, header))
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
        Ok(ShardRead {
            id: id.into(),
            file,
            header,
            pos: offset,
            end,
        })
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
        let (file, header) = self.open_shard(id).await?;
        Ok(verify::ShardVerify {
            id: id.into(),
            file,
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

/// A shard being written; dropped without commit, nothing remains.
pub struct ShardWrite {
    id: String,
    file: tokio::fs::File,
    tmp: TempFile,
    dest: PathBuf,
    /// Its quarantine path: an id set aside is not written again either.
    aside: PathBuf,
    counts: Arc<Counts>,
    stripe: usize,
    shard_index: u32,
    blocks: BlockWriter,
    pending: Vec<u8>,
}

impl ShardWrite {
    pub async fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        let pending = &mut self.pending;
        let Ok(()) = self.blocks.push::<std::convert::Infallible>(data, |b| {
            pending.extend_from_slice(b);
            Ok(())
        });
        if !self.pending.is_empty() {
            self.file
                .write_all(&self.pending)
                .await
                .map_err(io("writing a shard"))?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Finishes the file and makes it durable and visible: header, fsync,
    /// link into place (refused if the id is taken), fsync of the directory.
    pub async fn commit(mut self) -> Result<ShardInfo, StoreError> {
        let pending = &mut self.pending;
        let Ok(header) = self
            .blocks
            .finish::<std::convert::Infallible>(self.shard_index, |b| {
                pending.extend_from_slice(b);
                Ok(())
            });
        self.file
            .write_all(&self.pending)
            .await
            .map_err(io("writing a shard"))?;
        self.file
            .seek(SeekFrom::Start(0))
            .await
            .map_err(io("seeking"))?;
        self.file
            .write_all(&header.encode())
            .await
            .map_err(io("writing the header"))?;
        let started = std::time::Instant::now();
        let synced = self.file.sync_all().await.map_err(io("fsync of a shard"));
        crate::observe::fsync("file", started);
        synced?;
        let dir = self
            .dest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let created = !dir.exists();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(io("creating a shard directory"))?;
        if taken(&self.aside).await? {
            return Err(StoreError::Exists(self.id));
        }
        // Unlike a rename, a link never replaces what is there: two writes
        // of one id cannot both land, whatever passed `create`'s check.
        {
            let _counted = self.counts.enter(self.stripe).await;
            match tokio::fs::hard_link(&self.tmp.path, &self.dest).await {
                Ok(()) => self.counts.added(self.stripe, header.file_len()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(StoreError::Exists(self.id));
                }
                Err(e) => return Err(io("linking a shard into place")(e)),
            }
        }
        fsync_dir(&dir).await?;
        if created {
            // New fan-out directories must survive a crash too.
            for d in dir.ancestors().skip(1).take(2) {
                fsync_dir(d).await?;
            }
        }
        Ok(header.into())
    }
}

/// A verified range read, one block at a time.
pub struct ShardRead {
    id: String,
    file: tokio::fs::File,
    header: Header,
    pos: u64,
    end: u64,
}

impl ShardRead {
    /// The next piece of the range (at most one block), or None at its end.
    /// A block that fails its checksum is an error, never data.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let bs = u64::from(self.header.block_size);
        let i = self.pos / bs;
        let block_len = self.header.block_len(i) as usize;
        let mut buf = vec![0u8; block_len + CRC_LEN];
        self.file
            .seek(SeekFrom::Start(self.header.block_offset(i)))
            .await
            .map_err(io("seeking"))?;
        // The length was checked at open: a failed read is an I/O error
        // (a file cut short since is found by length at the next open).
        self.file
            .read_exact(&mut buf)
            .await
            .map_err(io(format!("reading {}", self.id)))?;
        let data = format::verify_block(i, &buf).map_err(|source| StoreError::Corrupt {
            id: self.id.clone(),
            source,
        })?;
        let from = (self.pos - i * bs) as usize;
        let to = ((self.end - i * bs) as usize).min(block_len);
        self.pos = i * bs + to as u64;
        Ok(Some(data[from..to].to_vec()))
    }
}
