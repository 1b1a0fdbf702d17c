//! The backup file, format 1 (ADR 0026):
//!
//! ```text
//! bytes 0..8   magic b"HAMSTRBK"
//! u32 BE H     length of the header
//! H bytes      header JSON (BackupHeader)
//! db_bytes     the SQLite state DB as VACUUM INTO wrote it
//! 32 bytes     SHA-256 of everything before it
//! ```
//!
//! Written in one pass ([`prefix`], the DB, then [`Summer::trailer`]) and
//! read in one pass ([`verify`], [`verify_into`]), both in bounded memory.
//! The DB holds wrapped data keys and sealed S3 secrets only: no master
//! key, CA key, node key or S3 secret is ever in a backup.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Connection;

use crate::raft::LogId;
use crate::raft::state_machine::open_read_only;
use crate::state::schema;

pub const MAGIC: &[u8; 8] = b"HAMSTRBK";
/// The format this binary writes (and the newest it reads).
pub const BACKUP_FORMAT: u64 = 1;
/// Length of the trailer (SHA-256).
pub const TRAILER_LEN: u64 = 32;
/// A header is a few KiB (trust PEMs); anything this big is not ours.
const MAX_HEADER: u32 = 16 << 20;
/// Read buffer for verifying.
const CHUNK: usize = 1 << 20;

/// What a backup says about itself: the facts restore checks before it
/// changes anything.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupHeader {
    pub format: u64,
    pub cluster_id: String,
    pub raft_term: u64,
    pub raft_index: u64,
    pub created_ms: i64,
    pub source_raft_id: u64,
    pub schema_version: i64,
    pub db_bytes: u64,
    /// Every master key a wrapped data key or sealed S3 secret in the DB
    /// is under (fingerprints, sorted).
    pub key_fingerprints: Vec<String>,
    /// The cluster's write key in the DB.
    pub write_key: String,
    pub trust_generation: u64,
    /// Fingerprints of the trusted CAs.
    pub trust_cas: Vec<String>,
    pub issuing_ca: String,
    /// Ids of blob-servers the DB has as removed.
    pub removed_blob_servers: Vec<String>,
    pub versions: u64,
    pub buckets: u64,
    pub access_keys: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("not a Hamster backup")]
    NotABackup,
    #[error("backup format {found} was written by a newer hamster (this one reads up to {known})")]
    TooNew { found: u64, known: u64 },
    #[error("backup is truncated")]
    Truncated,
    #[error("backup is corrupt: checksum mismatch")]
    Checksum,
    #[error("backup is corrupt: {0} bytes after the checksum")]
    Trailing(u64),
    #[error("backup header is unreadable: {0}")]
    BadHeader(String),
    /// The body is not the DB the header describes (or not a sound one).
    #[error("backup database refused: {0}")]
    Db(String),
    #[error("backup database schema {found} is newer than this binary's {known}; upgrade hamster")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("backup I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Magic, header length and header: the first bytes of the file.
pub fn prefix(header: &BackupHeader) -> Result<Vec<u8>, BackupError> {
    let json = serde_json::to_vec(header).map_err(|e| BackupError::BadHeader(e.to_string()))?;
    let len = u32::try_from(json.len())
        .ok()
        .filter(|l| *l <= MAX_HEADER)
        .ok_or_else(|| BackupError::BadHeader("header too large".into()))?;
    let mut out = Vec::with_capacity(12 + json.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// The running checksum of a file being written: feed it every byte in
/// order, then append [`Summer::trailer`].
#[derive(Default)]
pub struct Summer(Sha256);

impl Summer {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    pub fn trailer(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// Reads exactly `buf.len()` bytes, or says the file ended.
fn read_exact(r: &mut impl Read, buf: &mut [u8]) -> Result<(), BackupError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => BackupError::Truncated,
        _ => BackupError::Io(e),
    })
}

/// Parses the header JSON: the format first, since a newer one may not
/// parse as this one.
fn parse_header(json: &[u8]) -> Result<BackupHeader, BackupError> {
    #[derive(Deserialize)]
    struct Probe {
        format: u64,
    }
    let probe: Probe =
        serde_json::from_slice(json).map_err(|e| BackupError::BadHeader(e.to_string()))?;
    if probe.format > BACKUP_FORMAT {
        return Err(BackupError::TooNew {
            found: probe.format,
            known: BACKUP_FORMAT,
        });
    }
    if probe.format == 0 {
        return Err(BackupError::BadHeader("format 0".into()));
    }
    serde_json::from_slice(json).map_err(|e| BackupError::BadHeader(e.to_string()))
}

/// One pass over the file: the header, every body byte to `body`, the
/// checksum compared last.
fn scan(path: &Path, mut body: Option<&mut dyn Write>) -> Result<BackupHeader, BackupError> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut r = BufReader::with_capacity(CHUNK, file);
    let mut sum = Summer::default();

    let mut magic = [0u8; 8];
    let got = read_up_to(&mut r, &mut magic)?;
    if magic[..got] != MAGIC[..got] || got == 0 {
        return Err(BackupError::NotABackup);
    }
    if got < magic.len() {
        return Err(BackupError::Truncated);
    }
    sum.update(&magic);
    let mut len = [0u8; 4];
    read_exact(&mut r, &mut len)?;
    sum.update(&len);
    let len = u32::from_be_bytes(len);
    if len > MAX_HEADER {
        return Err(BackupError::BadHeader(format!("header length {len}")));
    }
    if 12 + u64::from(len) > size {
        return Err(BackupError::Truncated);
    }
    let mut json = vec![0u8; len as usize];
    read_exact(&mut r, &mut json)?;
    sum.update(&json);
    let header = parse_header(&json)?;

    // A crafted db_bytes must not wrap the sum into a "whole" file.
    let expected = (12 + u64::from(len) + TRAILER_LEN)
        .checked_add(header.db_bytes)
        .ok_or_else(|| BackupError::BadHeader(format!("db_bytes {}", header.db_bytes)))?;
    if size < expected {
        return Err(BackupError::Truncated);
    }
    if size > expected {
        return Err(BackupError::Trailing(size - expected));
    }
    let mut left = header.db_bytes;
    let mut buf = vec![0u8; CHUNK];
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        read_exact(&mut r, &mut buf[..n])?;
        sum.update(&buf[..n]);
        if let Some(w) = body.as_mut() {
            w.write_all(&buf[..n])?;
        }
        left -= n as u64;
    }
    let mut trailer = [0u8; 32];
    read_exact(&mut r, &mut trailer)?;
    if sum.trailer() != trailer {
        return Err(BackupError::Checksum);
    }
    Ok(header)
}

/// Fills `buf` as far as the file goes; answers how much was read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, BackupError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(got)
}

/// Header and checksum of a whole file (streamed; bounded memory). The
/// DB inside is not opened: see [`verify_into`].
pub fn verify(path: &Path) -> Result<BackupHeader, BackupError> {
    scan(path, None)
}

/// [`verify`], writing the body to `db_out` (created or truncated) and
/// checking it as a DB: SQLite's quick_check, a schema this binary
/// knows, and that it holds the index its header says. `db_out` is
/// removed on any error.
pub async fn verify_into(path: &Path, db_out: &Path) -> Result<BackupHeader, BackupError> {
    let result = async {
        let (from, to) = (path.to_path_buf(), db_out.to_path_buf());
        let header = tokio::task::spawn_blocking(move || {
            let mut out = crate::raft::private::create(&to)?;
            let header = scan(&from, Some(&mut out))?;
            out.sync_all()?;
            Ok::<_, BackupError>(header)
        })
        .await
        .map_err(|e| BackupError::Io(std::io::Error::other(e.to_string())))??;
        check_db(db_out, &header).await?;
        Ok(header)
    }
    .await;
    if result.is_err() {
        remove_db(db_out);
    }
    result
}

/// Removes a SQLite file and what SQLite may have left beside it.
pub fn remove_db(path: &Path) {
    let _ = std::fs::remove_file(path);
    for ext in ["-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(ext);
        let _ = std::fs::remove_file(p);
    }
}

async fn check_db(db: &Path, header: &BackupHeader) -> Result<(), BackupError> {
    let bad = |e: sqlx::Error| BackupError::Db(e.to_string());
    let mut conn = open_read_only(db).await.map_err(bad)?;
    let checked = async {
        let found: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut conn)
            .await
            .map_err(bad)?;
        match schema::check_version(found) {
            Ok(()) => {}
            Err(schema::SchemaError::TooNew { found, known }) => {
                return Err(BackupError::SchemaTooNew { found, known });
            }
            Err(e) => return Err(BackupError::Db(e.to_string())),
        }
        let check: String = sqlx::query_scalar("PRAGMA quick_check")
            .fetch_one(&mut conn)
            .await
            .map_err(bad)?;
        if check != "ok" {
            return Err(BackupError::Db(format!(
                "fails SQLite's integrity check: {check}"
            )));
        }
        let applied = applied_of(&mut conn).await?;
        let index = applied.map(|l| l.index);
        if index != Some(header.raft_index) {
            return Err(BackupError::Db(format!(
                "it holds index {index:?}, its header says {}",
                header.raft_index
            )));
        }
        Ok(())
    }
    .await;
    let _ = conn.close().await;
    checked
}

/// The last applied log id a state DB records.
pub(crate) async fn applied_of(
    conn: &mut sqlx::SqliteConnection,
) -> Result<Option<LogId>, BackupError> {
    let raw: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT value FROM sm_meta WHERE key = 'last_applied'")
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| BackupError::Db(e.to_string()))?;
    match raw {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice::<Option<LogId>>(&bytes)
            .map_err(|e| BackupError::Db(format!("last_applied: {e}"))),
    }
}
