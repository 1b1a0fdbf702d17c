//! The shard file format, version 1 (ADR 0010). Pinned by a golden file
//! (`tests/golden/shard-v1.bin`): change it only with a new version.
//!
//! ```text
//! header, 64 bytes, little-endian:
//!    0..8   magic "HMSTSHRD"
//!    8..10  format version (1)
//!   10..12  flags (0)
//!   12..16  block size in bytes
//!   16..20  shard index (position in its stripe set, 0..k+m)
//!   20..28  payload length in bytes
//!   28..32  shard checksum: CRC32C over the block CRCs, in order
//!   32..60  zero
//!   60..64  CRC32C of bytes 0..60
//! then each block: up to `block size` payload bytes, then their CRC32C
//! (4 bytes); every block is full but the last.
//! ```
//!
//! A reader verifies the header and every block it touches: a corrupt
//! block is an error, never bytes.

pub const MAGIC: [u8; 8] = *b"HMSTSHRD";
pub const VERSION: u16 = 1;
pub const HEADER_LEN: usize = 64;
/// Block size new shards are written with.
pub const BLOCK_SIZE: u32 = 64 * 1024;
/// CRC bytes after each block.
pub const CRC_LEN: usize = 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("not a shard file (bad magic)")]
    BadMagic,
    #[error("shard format version {0} is not supported")]
    UnsupportedVersion(u16),
    #[error("shard header checksum mismatch")]
    HeaderChecksum,
    #[error("shard header is invalid: {0}")]
    BadHeader(&'static str),
    #[error("block {0} is corrupt (checksum mismatch)")]
    CorruptBlock(u64),
    #[error("shard file is truncated")]
    Truncated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub block_size: u32,
    pub shard_index: u32,
    pub data_len: u64,
    pub shard_crc: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..10].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&self.block_size.to_le_bytes());
        h[16..20].copy_from_slice(&self.shard_index.to_le_bytes());
        h[20..28].copy_from_slice(&self.data_len.to_le_bytes());
        h[28..32].copy_from_slice(&self.shard_crc.to_le_bytes());
        let crc = crc32c::crc32c(&h[0..60]);
        h[60..64].copy_from_slice(&crc.to_le_bytes());
        h
    }

    pub fn decode(h: &[u8]) -> Result<Self, FormatError> {
        if h.len() < HEADER_LEN {
            return Err(FormatError::Truncated);
        }
        if h[0..8] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        if crc32c::crc32c(&h[0..60]) != u32_at(h, 60) {
            return Err(FormatError::HeaderChecksum);
        }
        let version = u16::from_le_bytes([h[8], h[9]]);
        if version != VERSION {
            return Err(FormatError::UnsupportedVersion(version));
        }
        let block_size = u32_at(h, 12);
        if block_size == 0 {
            return Err(FormatError::BadHeader("block size 0"));
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&h[20..28]);
        let header = Self {
            block_size,
            shard_index: u32_at(h, 16),
            data_len: u64::from_le_bytes(len),
            shard_crc: u32_at(h, 28),
        };
        // Readers trust `file_len` and the block offsets once the file's
        // length matches: lengths that wrap them would pass that check
        // and size a read from the header alone (found by fuzzing).
        if header.checked_file_len().is_none() {
            return Err(FormatError::BadHeader("lengths overflow"));
        }
        Ok(header)
    }

    fn checked_file_len(&self) -> Option<u64> {
        self.blocks()
            .checked_mul(CRC_LEN as u64)?
            .checked_add(self.data_len)?
            .checked_add(HEADER_LEN as u64)
    }

    pub fn blocks(&self) -> u64 {
        self.data_len.div_ceil(u64::from(self.block_size))
    }

    /// Payload bytes in block `i`.
    pub fn block_len(&self, i: u64) -> u64 {
        let bs = u64::from(self.block_size);
        (self.data_len - i * bs).min(bs)
    }

    /// Where block `i` starts in the file.
    pub fn block_offset(&self, i: u64) -> u64 {
        HEADER_LEN as u64 + i * (u64::from(self.block_size) + CRC_LEN as u64)
    }

    /// The whole file's length.
    pub fn file_len(&self) -> u64 {
        HEADER_LEN as u64 + self.data_len + self.blocks() * CRC_LEN as u64
    }
}

/// Checks one block read with its trailing CRC; returns the payload part.
pub fn verify_block(index: u64, block_with_crc: &[u8]) -> Result<&[u8], FormatError> {
    if block_with_crc.len() < CRC_LEN {
        return Err(FormatError::Truncated);
    }
    let (data, crc) = block_with_crc.split_at(block_with_crc.len() - CRC_LEN);
    if crc32c::crc32c(data) != u32_at(crc, 0) {
        return Err(FormatError::CorruptBlock(index));
    }
    Ok(data)
}

/// Cuts a byte stream into blocks with their CRCs, and keeps the running
/// shard checksum. Holds no bytes: each piece of payload is passed on as
/// it comes, its block's CRC built up across pieces (`crc32c_append`) and
/// passed on after the block's last byte, so the framed stream costs no
/// copy of its own (ADR 0043).
pub struct BlockWriter {
    block_size: usize,
    /// Payload bytes of the open block, and their CRC so far.
    open_len: usize,
    open_crc: u32,
    data_len: u64,
    shard_crc: u32,
}

impl BlockWriter {
    pub fn new(block_size: u32) -> Self {
        Self {
            block_size: block_size as usize,
            open_len: 0,
            open_crc: 0,
            data_len: 0,
            shard_crc: 0,
        }
    }

    /// Feeds bytes; calls `emit` with the framed stream in order: payload
    /// pieces, and each completed block's CRC after its payload.
    pub fn push<E>(
        &mut self,
        mut data: &[u8],
        mut emit: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        while !data.is_empty() {
            let take = (self.block_size - self.open_len).min(data.len());
            let (piece, rest) = data.split_at(take);
            self.open_crc = crc32c::crc32c_append(self.open_crc, piece);
            emit(piece)?;
            data = rest;
            self.open_len += take;
            self.data_len += take as u64;
            if self.open_len == self.block_size {
                self.seal(&mut emit)?;
            }
        }
        Ok(())
    }

    /// Closes the open block: its CRC goes out and into the shard's.
    fn seal<E>(&mut self, emit: &mut impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        let crc = self.open_crc.to_le_bytes();
        self.shard_crc = crc32c::crc32c_append(self.shard_crc, &crc);
        (self.open_len, self.open_crc) = (0, 0);
        emit(&crc)
    }

    /// Emits the last, partial block's CRC; returns the header describing
    /// all.
    pub fn finish<E>(
        mut self,
        shard_index: u32,
        mut emit: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<Header, E> {
        if self.open_len > 0 {
            self.seal(&mut emit)?;
        }
        Ok(Header {
            block_size: self.block_size as u32,
            shard_index,
            data_len: self.data_len,
            shard_crc: self.shard_crc,
        })
    }
}

/// A whole shard file in memory (tests, small shards).
pub fn encode_shard(data: &[u8], shard_index: u32, block_size: u32) -> Vec<u8> {
    use std::convert::Infallible;
    let mut body = Vec::new();
    let mut w = BlockWriter::new(block_size);
    let Ok(()) = w.push::<Infallible>(data, |b| {
        body.extend_from_slice(b);
        Ok(())
    });
    let Ok(header) = w.finish::<Infallible>(shard_index, |b| {
        body.extend_from_slice(b);
        Ok(())
    });
    let mut out = header.encode().to_vec();
    out.extend_from_slice(&body);
    out
}

/// Decodes and verifies a whole shard file in memory.
pub fn decode_shard(file: &[u8]) -> Result<(Header, Vec<u8>), FormatError> {
    let header = Header::decode(file)?;
    if file.len() as u64 != header.file_len() {
        return Err(FormatError::Truncated);
    }
    let mut data = Vec::with_capacity(header.data_len as usize);
    let mut crcs = 0u32;
    for i in 0..header.blocks() {
        let start = header.block_offset(i) as usize;
        let end = start + header.block_len(i) as usize + CRC_LEN;
        let block = verify_block(i, &file[start..end])?;
        crcs = crc32c::crc32c_append(crcs, &file[end - CRC_LEN..end]);
        data.extend_from_slice(block);
    }
    if crcs != header.shard_crc {
        return Err(FormatError::BadHeader(
            "shard checksum does not match its blocks",
        ));
    }
    Ok((header, data))
}
