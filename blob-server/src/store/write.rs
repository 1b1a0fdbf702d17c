//! Durable shard writes. The framed bytes (blocks and their CRCs) are held
//! in memory until [`FLUSH_AT`] of them wait, then written in one blocking
//! call; the commit does everything left in one more. A small shard (most
//! of them) thus costs two trips to the blocking pool: create (existence
//! checks, temp file) and commit — where each tokio::fs call used to be one.
//!
//! Durability is unchanged: the commit acknowledges only after the file is
//! fsynced, linked into place and its directory fsynced.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::count::Counts;
use super::format::{self, BlockWriter, HEADER_LEN, Header};
use super::tmp::TempFile;
use super::{QUARANTINE, ShardInfo, Store, StoreError, blocking, fsync_dir_now, io, taken};

/// Framed bytes buffered before they go to disk (per write in progress).
pub const FLUSH_AT: usize = 256 << 10;

impl Store {
    /// Starts writing shard `id`; nothing is visible until
    /// [`ShardWrite::commit`]. An id already taken is refused here, before
    /// any byte is sent; the commit checks again, atomically.
    pub async fn create(&self, id: &str, shard_index: u32) -> Result<ShardWrite, StoreError> {
        let (dest, stripe) = self.locate(id)?;
        let aside = self.root.join(QUARANTINE).join(id);
        let (store, d, a, name) = (self.clone(), dest.clone(), aside.clone(), id.to_string());
        let disk = blocking("creating a shard", move || {
            if taken(&d)? || taken(&a)? {
                return Err(StoreError::Exists(name));
            }
            let nonce: u64 = rand::random();
            // Registered before the file exists, so the cleaner spares it.
            let tmp = TempFile::register(&store, format!("{name}.{nonce:016x}"));
            let file = File::create(&tmp.path).map_err(io("creating a temp file"))?;
            Ok(Disk {
                tmp,
                file,
                at: HEADER_LEN as u64,
            })
        })
        .await??;
        Ok(ShardWrite {
            id: id.into(),
            disk: Some(disk),
            dest,
            aside,
            counts: self.counts.clone(),
            durable_dirs: self.durable_dirs.clone(),
            stripe,
            shard_index,
            blocks: BlockWriter::new(format::BLOCK_SIZE),
            pending: Vec::new(),
        })
    }
}

/// The temp file, moved into each blocking call and back: a call whose
/// caller went away still removes it (the [`TempFile`] drops with it).
struct Disk {
    tmp: TempFile,
    file: File,
    /// Where the next bytes go (the header is written last, at 0).
    at: u64,
}

impl Disk {
    fn append(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.file
            .write_all_at(bytes, self.at)
            .map_err(io("writing a shard"))?;
        self.at += bytes.len() as u64;
        Ok(())
    }

    /// Writes what is left and the header, and fsyncs the file.
    fn finish(&mut self, header: &Header, rest: &[u8]) -> Result<(), StoreError> {
        self.append(rest)?;
        self.file
            .write_all_at(&header.encode(), 0)
            .map_err(io("writing the header"))?;
        let started = std::time::Instant::now();
        let synced = self.file.sync_all().map_err(io("fsync of a shard"));
        crate::observe::fsync("file", started);
        synced
    }
}

/// A flush whose caller went away took the file with it.
fn gone() -> StoreError {
    io("writing a shard")(std::io::Error::other(
        "an earlier write of this shard failed or was cancelled",
    ))
}

/// Set when dropped: a commit future dropped (its caller gone) must not
/// link a shard its blocking part has not linked yet.
struct Abandoned(Arc<AtomicBool>);

impl Drop for Abandoned {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A shard being written; dropped without commit, nothing remains.
pub struct ShardWrite {
    id: String,
    /// None once a flush failed or was cancelled (the file went with it).
    disk: Option<Disk>,
    dest: PathBuf,
    /// Its quarantine path: an id set aside is not written again either.
    aside: PathBuf,
    counts: Arc<Counts>,
    durable_dirs: DurableDirs,
    stripe: usize,
    shard_index: u32,
    blocks: BlockWriter,
    /// Framed bytes not yet on disk.
    pending: Vec<u8>,
}

impl ShardWrite {
    pub async fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        let pending = &mut self.pending;
        let Ok(()) = self.blocks.push::<std::convert::Infallible>(data, |b| {
            pending.extend_from_slice(b);
            Ok(())
        });
        if self.pending.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes the pending bytes to the file, in one blocking call.
    async fn flush(&mut self) -> Result<(), StoreError> {
        let mut disk = self.disk.take().ok_or_else(gone)?;
        let bytes = std::mem::take(&mut self.pending);
        let (disk, mut bytes) = blocking("writing a shard", move || {
            disk.append(&bytes).map(|()| (disk, bytes))
        })
        .await??;
        // The buffer is kept for the next round, unless one large chunk
        // grew it well past the threshold.
        bytes.clear();
        if bytes.capacity() > 4 * FLUSH_AT {
            bytes = Vec::new();
        }
        self.pending = bytes;
        self.disk = Some(disk);
        Ok(())
    }

    /// Finishes the file and makes it durable and visible: header, fsync,
    /// link into place (refused if the id is taken), fsync of the directory.
    /// Dropped before its blocking part links the shard, it links nothing.
    pub async fn commit(mut self) -> Result<ShardInfo, StoreError> {
        let pending = &mut self.pending;
        let Ok(header) = self
            .blocks
            .finish::<std::convert::Infallible>(self.shard_index, |b| {
                pending.extend_from_slice(b);
                Ok(())
            });
        let disk = self.disk.take().ok_or_else(gone)?;
        let Self {
            id,
            dest,
            aside,
            counts,
            durable_dirs,
            stripe,
            pending,
            ..
        } = self;
        let abandoned = Arc::new(AtomicBool::new(false));
        let _watch = Abandoned(abandoned.clone());
        // Its own task: a caller that goes away once the shard is linked
        // cannot leave it uncounted (the flag stops it before the link).
        let file_len = header.file_len();
        let task = tokio::spawn(async move {
            // Held (shared) across the link and its count, as every change
            // of a file of this stripe is: a recount is wholly before or after.
            let _counted = counts.enter(stripe).await;
            let landed = blocking("committing a shard", move || {
                let paths = Paths {
                    dest: &dest,
                    aside: &aside,
                    durable_dirs: &durable_dirs,
                };
                land(disk, &header, &pending, paths, &id, &abandoned)
            })
            .await?;
            if landed.linked {
                counts.added(stripe, file_len);
            }
            landed.result
        });
        task.await
            .map_err(|e| io("committing a shard")(std::io::Error::other(e.to_string())))??;
        Ok(header.into())
    }
}

/// What a commit's blocking part did: whether the shard was linked into
/// place (then it is counted, even if a later fsync failed), and how it ended.
struct Landed {
    linked: bool,
    result: Result<(), StoreError>,
}

/// Everything a commit does on disk, in order; the temp name is unlinked
/// when `disk` drops at the end.
/// Fan-out directories made durable in their parents (`Store::durable_dirs`).
type DurableDirs = Arc<std::sync::Mutex<std::collections::HashSet<PathBuf>>>;

/// Where a commit links its shard, what it must not find, and the
/// directories known durable.
struct Paths<'a> {
    dest: &'a Path,
    aside: &'a Path,
    durable_dirs: &'a DurableDirs,
}

fn land(
    mut disk: Disk,
    header: &Header,
    rest: &[u8],
    Paths {
        dest,
        aside,
        durable_dirs,
    }: Paths<'_>,
    id: &str,
    abandoned: &AtomicBool,
) -> Landed {
    let not_linked = |e| Landed {
        linked: false,
        result: Err(e),
    };
    if let Err(e) = disk.finish(header, rest) {
        return not_linked(e);
    }
    let dir = dest.parent().map(Path::to_path_buf).unwrap_or_default();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return not_linked(io("creating a shard directory")(e));
    }
    match taken(aside) {
        Ok(false) => {}
        Ok(true) => return not_linked(StoreError::Exists(id.into())),
        Err(e) => return not_linked(e),
    }
    if abandoned.load(Ordering::Acquire) {
        let e = std::io::Error::other("the commit's caller went away");
        return not_linked(io("committing a shard")(e));
    }
    // Unlike a rename, a link never replaces what is there: two writes of
    // one id cannot both land, whatever passed `create`'s check.
    match std::fs::hard_link(&disk.tmp.path, dest) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return not_linked(StoreError::Exists(id.into()));
        }
        Err(e) => return not_linked(io("linking a shard into place")(e)),
    }
    let mut result = fsync_dir_now(&dir);
    // A fan-out directory must survive a crash too. Whether this commit or
    // a concurrent one created it, its entry in its parents is fsynced
    // before any commit in it is acknowledged (once per directory and run).
    let known = |d: &Path| durable_dirs.lock().is_ok_and(|k| k.contains(d));
    if result.is_ok() && !known(&dir) {
        result = dir.ancestors().skip(1).take(2).try_for_each(fsync_dir_now);
        if result.is_ok()
            && let Ok(mut k) = durable_dirs.lock()
        {
            k.insert(dir.clone());
        }
    }
    Landed {
        linked: true,
        result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 253) as u8).collect()
    }

    fn tmp_count(root: &Path) -> usize {
        std::fs::read_dir(root.join("tmp")).map_or(0, Iterator::count)
    }

    #[tokio::test]
    async fn a_shard_larger_than_the_buffer_reaches_disk_in_flushes_and_round_trips() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).await.expect("open");
        let bytes = data(2 * FLUSH_AT + 12_345);
        let mut w = store.create("big", 1).await.expect("create");
        let mut flushed = false;
        for c in bytes.chunks(70_000) {
            let before = w.pending.len();
            w.write(c).await.expect("write");
            // Nothing written until the buffer passed its threshold.
            flushed |= w.pending.len() < before;
            let on_disk = std::fs::metadata(&w.disk.as_ref().expect("open").tmp.path)
                .expect("temp file")
                .len();
            assert_eq!(on_disk > 0, flushed);
            assert!(w.pending.len() < FLUSH_AT);
        }
        assert!(flushed);
        let info = w.commit().await.expect("commit");
        assert_eq!(info.len, bytes.len() as u64);
        assert_eq!(tmp_count(dir.path()), 0);
        let mut r = store.read("big", 0, 0).await.expect("read");
        let mut out = Vec::new();
        while let Some(blocks) = r.next().await.expect("piece") {
            out.extend_from_slice(&blocks.concat());
        }
        assert!(out == bytes, "the bytes read back differ");
    }

    #[tokio::test]
    async fn a_small_shard_is_written_only_at_its_commit() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).await.expect("open");
        let mut w = store.create("small", 0).await.expect("create");
        w.write(&data(4096)).await.expect("write");
        let tmp = w.disk.as_ref().expect("open").tmp.path.clone();
        assert_eq!(std::fs::metadata(&tmp).expect("temp file").len(), 0);
        assert_eq!(
            w.commit().await.expect("commit"),
            store.stat("small").await.expect("stat")
        );
        let mut r = store.read("small", 10, 100).await.expect("read");
        assert_eq!(
            r.next().await.expect("piece").map(|b| b.concat()),
            Some(data(4096)[10..110].to_vec())
        );
        assert_eq!(r.next().await.expect("end"), None);
    }

    #[tokio::test]
    async fn a_commit_whose_caller_went_away_links_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).await.expect("open");
        let mut w = store.create("cut", 0).await.expect("create");
        w.write(&data(100)).await.expect("write");
        let disk = w.disk.take().expect("open");
        let abandoned = AtomicBool::new(true);
        let landed = land(
            disk,
            &Header {
                block_size: 64,
                shard_index: 0,
                data_len: 0,
                shard_crc: 0,
            },
            &[],
            Paths {
                dest: &w.dest,
                aside: &w.aside,
                durable_dirs: &w.durable_dirs,
            },
            "cut",
            &abandoned,
        );
        assert!(!landed.linked);
        assert!(matches!(landed.result, Err(StoreError::Io { .. })));
        assert!(matches!(
            store.stat("cut").await,
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(tmp_count(dir.path()), 0);
    }

    #[tokio::test]
    async fn a_failed_flush_removes_its_file_and_fails_the_rest_of_the_write() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).await.expect("open");
        let mut w = store.create("doomed", 0).await.expect("create");
        // The file cannot be written (as a failing disk would refuse it):
        // the first flush fails.
        let tmp = w.disk.as_ref().expect("open").tmp.path.clone();
        w.disk.as_mut().expect("open").file = File::open(&tmp).expect("read-only");
        let e = w.write(&data(FLUSH_AT)).await.expect_err("flush");
        assert!(matches!(e, StoreError::Io { .. }), "{e:?}");
        assert!(matches!(
            w.write(&data(FLUSH_AT)).await,
            Err(StoreError::Io { .. })
        ));
        assert!(matches!(w.commit().await, Err(StoreError::Io { .. })));
        assert_eq!(tmp_count(dir.path()), 0);
        assert!(matches!(
            store.stat("doomed").await,
            Err(StoreError::NotFound(_))
        ));
    }
}
