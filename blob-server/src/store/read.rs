//! Verified range reads. Opening a shard (open, stat, header) is one trip
//! to the blocking pool; each step then reads up to [`READ_CHUNK`] bytes of
//! whole blocks with one positioned read and checks every block's CRC in
//! the same trip, where a seek and a read per 64 KiB block were two.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::format::{self, CRC_LEN, FormatError, HEADER_LEN, Header};
use super::{Store, StoreError, blocking, io};

/// Payload bytes a step returns at most: one GetShard message, well within
/// tonic's 4 MiB default decoding limit of the gateway and rebuild clients.
pub const READ_CHUNK: u64 = 1 << 20;

impl Store {
    /// Opens a shard and checks its header and length. The header is read
    /// in order, so the file's offset is then at block 0 (the whole-shard
    /// check reads on from there).
    pub(super) async fn open_shard(&self, id: &str) -> Result<(File, Header), StoreError> {
        let path = self.path(id)?;
        let id = id.to_string();
        blocking("opening a shard", move || open_now(&path, &id)).await?
    }
}

fn open_now(path: &Path, id: &str) -> Result<(File, Header), StoreError> {
    let mut file = match File::open(path) {
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
    let meta = file.metadata().map_err(io(format!("stat {id}")))?;
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
        .map_err(io(format!("reading {id}")))?;
    let header = Header::decode(&h).map_err(corrupt)?;
    if on_disk != header.file_len() {
        return Err(corrupt(FormatError::Truncated));
    }
    Ok((file, header))
}

/// A verified range read, up to [`READ_CHUNK`] bytes at a time.
pub struct ShardRead {
    id: Arc<str>,
    file: Arc<File>,
    header: Header,
    pos: u64,
    end: u64,
}

impl ShardRead {
    /// Payload bytes `pos..end` of an opened shard (checked by the caller
    /// to lie within it).
    pub(super) fn new(id: &str, file: File, header: Header, pos: u64, end: u64) -> Self {
        Self {
            id: id.into(),
            file: Arc::new(file),
            header,
            pos,
            end,
        }
    }

    /// The next step of the range (at most [`READ_CHUNK`] bytes), as one
    /// slice per block of a single read, or None at its end. A block that
    /// fails its checksum is an error, never data.
    pub async fn next(&mut self) -> Result<Option<Vec<Bytes>>, StoreError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let pos = self.pos;
        let bs = u64::from(self.header.block_size);
        let mut stop = pos.saturating_add(READ_CHUNK);
        // Steps end on a block boundary, so no block is read twice (unless
        // a block is larger than a whole step).
        let aligned = stop / bs * bs;
        if aligned > pos {
            stop = aligned;
        }
        let end = stop.min(self.end);
        let (file, header, id) = (self.file.clone(), self.header, self.id.clone());
        let data = blocking("reading a shard", move || {
            read_range(&file, &header, &id, pos, end)
        })
        .await??;
        self.pos = end;
        Ok(Some(data))
    }
}

/// Payload bytes `pos..end` (not empty, within the shard), from one read of
/// the whole blocks that hold them, every one of them checked: a slice of
/// that read per block, so the payload is not copied out of it (and the
/// read buffer is never zeroed first).
fn read_range(
    file: &File,
    h: &Header,
    id: &str,
    pos: u64,
    end: u64,
) -> Result<Vec<Bytes>, StoreError> {
    let bs = u64::from(h.block_size);
    let (first, last) = (pos / bs, (end - 1) / bs);
    let start = h.block_offset(first);
    let stop = h.block_offset(last) + h.block_len(last) + CRC_LEN as u64;
    let want = (stop - start) as usize;
    let mut buf = Vec::with_capacity(want);
    // `&File` reads at its own cursor; this read is the file's only user
    // (steps of one ShardRead run one at a time).
    let mut f = file;
    f.seek(SeekFrom::Start(start))
        .and_then(|_| f.take(want as u64).read_to_end(&mut buf))
        .map_err(io(format!("reading {id}")))?;
    if buf.len() != want {
        // Cut short under an open read: an I/O error, as `read_exact` says
        // it (the next open judges the file by its length).
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        return Err(io(format!("reading {id}"))(eof));
    }
    let buf = Bytes::from(buf);
    let mut out = Vec::with_capacity((last - first + 1) as usize);
    let mut at = 0usize;
    for i in first..=last {
        let len = h.block_len(i) as usize;
        format::verify_block(i, &buf[at..at + len + CRC_LEN]).map_err(|source| {
            StoreError::Corrupt {
                id: id.into(),
                source,
            }
        })?;
        let base = i * bs;
        let from = pos.saturating_sub(base) as usize;
        let to = (end - base).min(len as u64) as usize;
        out.push(buf.slice(at + from..at + to));
        at += len + CRC_LEN;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 13 % 241) as u8).collect()
    }

    async fn pieces(
        store: &Store,
        id: &str,
        off: u64,
        len: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut r = store.read(id, off, len).await?;
        let mut out = Vec::new();
        while let Some(blocks) = r.next().await? {
            let p = blocks.concat();
            assert!(!p.is_empty() && p.len() as u64 <= READ_CHUNK, "{}", p.len());
            out.push(p);
        }
        Ok(out)
    }

    async fn stored(bytes: &[u8]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).await.expect("open");
        let mut w = store.create("s", 0).await.expect("create");
        for c in bytes.chunks(100_000) {
            w.write(c).await.expect("write");
        }
        w.commit().await.expect("commit");
        (dir, store)
    }

    #[tokio::test]
    async fn a_range_across_many_blocks_and_steps_returns_exactly_its_bytes() {
        let bs = format::BLOCK_SIZE as u64;
        let bytes = data(3 * READ_CHUNK as usize + 999);
        let (_dir, store) = stored(&bytes).await;
        // Starts and ends mid-block; spans several steps.
        let (off, len) = (bs + 17, 2 * READ_CHUNK + 5 * bs + 33);
        let got = pieces(&store, "s", off, len).await.expect("read");
        assert!(got.len() >= 3, "{} pieces", got.len());
        // After the first, every step starts on a block boundary.
        let mut at = off + got[0].len() as u64;
        for p in &got[1..] {
            assert_eq!(at % bs, 0);
            at += p.len() as u64;
        }
        let joined: Vec<u8> = got.concat();
        assert!(
            joined == bytes[off as usize..(off + len) as usize],
            "wrong bytes"
        );
        // Within one block; up to the last byte.
        for (off, len) in [(5u64, 10u64), (bytes.len() as u64 - 3, 0)] {
            let want = if len == 0 {
                &bytes[off as usize..]
            } else {
                &bytes[off as usize..(off + len) as usize]
            };
            assert_eq!(
                pieces(&store, "s", off, len).await.expect("read").concat(),
                want
            );
        }
    }

    #[tokio::test]
    async fn a_flipped_byte_in_block_three_fails_the_step_that_holds_it() {
        let bs = format::BLOCK_SIZE as usize;
        let bytes = data(8 * bs);
        let (dir, store) = stored(&bytes).await;
        let path = store.path("s").expect("path");
        let mut raw = std::fs::read(&path).expect("read");
        raw[HEADER_LEN + 3 * (bs + CRC_LEN) + 7] ^= 1;
        std::fs::write(&path, &raw).expect("write");
        for (off, len) in [(0, 0), (bs as u64 + 1, 3 * bs as u64)] {
            let e = pieces(&store, "s", off, len).await.expect_err("corrupt");
            assert!(
                matches!(
                    e,
                    StoreError::Corrupt {
                        source: FormatError::CorruptBlock(3),
                        ..
                    }
                ),
                "{e:?}"
            );
        }
        // Ranges that miss block 3 still read.
        assert_eq!(
            pieces(&store, "s", 0, 3 * bs as u64)
                .await
                .expect("0-2")
                .concat(),
            &bytes[..3 * bs]
        );
        assert_eq!(
            pieces(&store, "s", 4 * bs as u64, 0)
                .await
                .expect("4-")
                .concat(),
            &bytes[4 * bs..]
        );
        drop(dir);
    }
}
