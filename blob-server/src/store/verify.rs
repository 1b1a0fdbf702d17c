//! A whole-shard check for the scrub: header, length, every block's CRC
//! and the shard checksum over the block CRCs, read a window at a time so
//! the caller can pace itself between windows. Only format and checksum
//! failures are `StoreError::Corrupt`.

use tokio::io::AsyncReadExt;

use super::format::{self, CRC_LEN, FormatError, HEADER_LEN, Header};
use super::{StoreError, io};

/// Bytes read per step (whole blocks; at least one block).
const WINDOW: u64 = 1 << 20;

/// A shard being verified; see [`super::Store::verify`].
pub struct ShardVerify {
    pub(super) id: String,
    pub(super) file: tokio::fs::File,
    pub(super) header: Header,
    pub(super) next_block: u64,
    pub(super) crcs: u32,
    pub(super) started: bool,
}

impl ShardVerify {
    fn corrupt(&self, source: FormatError) -> StoreError {
        StoreError::Corrupt {
            id: self.id.clone(),
            source,
        }
    }

    /// Checks the next window; Ok(Some(bytes read)) until the shard is
    /// done, then Ok(None). A bad block or checksum is `StoreError::Corrupt`.
    pub async fn step(&mut self) -> Result<Option<u64>, StoreError> {
        let header_bytes = if self.started { 0 } else { HEADER_LEN as u64 };
        self.started = true;
        let blocks = self.header.blocks();
        if self.next_block >= blocks {
            if self.crcs != self.header.shard_crc {
                return Err(self.corrupt(FormatError::BadHeader(
                    "shard checksum does not match its blocks",
                )));
            }
            // An empty shard still had its header read.
            return Ok((header_bytes > 0).then_some(header_bytes));
        }
        let bs = u64::from(self.header.block_size);
        let count = (WINDOW / bs).max(1).min(blocks - self.next_block);
        let first = self.next_block;
        let last = first + count - 1;
        let len = self.header.block_offset(last) + self.header.block_len(last) + CRC_LEN as u64
            - self.header.block_offset(first);
        let mut buf = vec![0u8; len as usize];
        // The file is read in order: the offset is where the last step
        // ended. Its length was checked at open, so a failed read is an I/O
        // error, not corruption (a file cut short since is found by length
        // at the next open).
        self.file
            .read_exact(&mut buf)
            .await
            .map_err(io(format!("reading {}", self.id)))?;
        let mut at = 0usize;
        for i in first..=last {
            let end = at + self.header.block_len(i) as usize + CRC_LEN;
            format::verify_block(i, &buf[at..end]).map_err(|e| self.corrupt(e))?;
            self.crcs = crc32c::crc32c_append(self.crcs, &buf[end - CRC_LEN..end]);
            at = end;
        }
        self.next_block = last + 1;
        Ok(Some(len + header_bytes))
    }
}
