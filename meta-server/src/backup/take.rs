//! Taking a backup: a consistent copy of the state DB (`VACUUM INTO`, a
//! temp file in the data dir, as a snapshot is built; apply goes on), the
//! header read from the copy itself, then the file written in order.
//!
//! The caller makes the copy current first (`Meta::linearize`: everything
//! acknowledged before the call is in); the copy then says which index it
//! holds. The temp file goes when the [`Copy`] is dropped, whether the
//! backup finished or its reader went away.

use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::{Stream, StreamExt};
use sqlx::{Connection, SqliteConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::format::{self, BackupError, BackupHeader, Summer};
use crate::cluster::now_ms;
use crate::raft::NodeId;
use crate::raft::state_machine::{StateDb, open_read_only, vacuum};
use crate::state::{ca_rotation, key_rotation, reads};

/// Bytes per piece of the body, read and sent.
pub const CHUNK: usize = 1 << 20;

/// A file removed when this is dropped.
#[derive(Debug)]
pub struct TempFile(PathBuf);

impl TempFile {
    pub fn new(path: PathBuf) -> Self {
        Self(path)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        format::remove_db(&self.0);
    }
}

/// A copy of the state DB and the header that describes it.
#[derive(Debug)]
pub struct Copy {
    pub header: BackupHeader,
    file: TempFile,
}

fn db_err(e: sqlx::Error) -> BackupError {
    BackupError::Db(e.to_string())
}

/// Copies `db` now (into its data dir) and reads the header facts from
/// the copy.
pub async fn copy(db: &StateDb, source_raft_id: NodeId) -> Result<Copy, BackupError> {
    let nonce: u32 = rand::random();
    let file = TempFile::new(db.dir().join(format!("backup-{nonce:08x}.db")));
    let mut conn = db.acquire().await.map_err(db_err)?;
    // The copy runs in a task that owns the temp file: if the caller goes
    // away mid-copy (the client hung up), SQLite still finishes writing
    // it, and the file is removed only then, not before it exists. (A
    // crash mid-copy leaves one: StateDb::open removes it.)
    let copying = tokio::spawn(async move {
        match vacuum(&mut conn, file.path()).await {
            Ok(()) => Ok(file),
            Err(e) => Err(db_err(e)),
        }
    });
    let file = copying
        .await
        .map_err(|e| BackupError::Io(std::io::Error::other(e.to_string())))??;
    let header = facts(file.path(), source_raft_id, now_ms()).await?;
    Ok(Copy { header, file })
}

/// The header of a backup of the state DB file at `path` (not in use by
/// anyone else: a copy, or an offline data dir's).
pub async fn facts(
    path: &Path,
    source_raft_id: NodeId,
    created_ms: i64,
) -> Result<BackupHeader, BackupError> {
    let db_bytes = std::fs::metadata(path)?.len();
    let mut conn = open_read_only(path).await.map_err(db_err)?;
    let read = read_facts(&mut conn).await;
    let _ = conn.close().await;
    let mut header = read?;
    header.source_raft_id = source_raft_id;
    header.created_ms = created_ms;
    header.db_bytes = db_bytes;
    Ok(header)
}

async fn read_facts(c: &mut SqliteConnection) -> Result<BackupHeader, BackupError> {
    let applied = format::applied_of(c)
        .await?
        .ok_or_else(|| BackupError::Db("the state holds no applied entry yet".into()))?;
    let schema_version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut *c)
        .await
        .map_err(db_err)?;
    let write_key = key_rotation::write_key(c).await.map_err(db_err)?;
    let bundle = ca_rotation::bundle(c).await.map_err(db_err)?;
    let removed_blob_servers = reads::removed_blob_servers(c).await.map_err(db_err)?;
    Ok(BackupHeader {
        format: format::BACKUP_FORMAT,
        cluster_id: ca_rotation::cluster_id(c).await.map_err(db_err)?,
        raft_term: applied.leader_id.term,
        raft_index: applied.index,
        created_ms: 0,
        source_raft_id: 0,
        schema_version,
        db_bytes: 0,
        key_fingerprints: key_fingerprints(c, &write_key).await.map_err(db_err)?,
        trust_generation: bundle.as_ref().map_or(0, |b| b.generation),
        trust_cas: bundle
            .as_ref()
            .map(|b| {
                b.cas
                    .iter()
                    .filter_map(|p| ca_rotation::ca_fingerprint(p))
                    .collect()
            })
            .unwrap_or_default(),
        issuing_ca: bundle.map(|b| b.issuing).unwrap_or_default(),
        write_key,
        removed_blob_servers,
        versions: count(c, "SELECT COUNT(*) FROM versions").await?,
        buckets: count(c, "SELECT COUNT(*) FROM buckets").await?,
        access_keys: count(c, "SELECT COUNT(*) FROM access_keys").await?,
    })
}

async fn count(c: &mut SqliteConnection, sql: &'static str) -> Result<u64, BackupError> {
    let n: i64 = sqlx::query_scalar(sql)
        .fetch_one(&mut *c)
        .await
        .map_err(db_err)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Every master key something in the DB is wrapped or sealed under: the
/// places `reads::wrapped_by` (the rewrapper's targets) reads from.
///
/// A multipart object's version row wraps no key (its parts each carry
/// their own, counted from `versions.parts`), so its empty fingerprint
/// names nothing. Only an S3 secret with no fingerprint means a key: it
/// was sealed before rotations existed, by the write key.
pub async fn key_fingerprints(
    c: &mut SqliteConnection,
    write_key: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let mut fps: Vec<String> = sqlx::query_scalar(
        "SELECT kek_fingerprint FROM versions WHERE delete_marker = 0 \
         UNION SELECT COALESCE(json_extract(p.value, '$.kek_fingerprint'), '') FROM versions v, json_each(v.parts) p \
           WHERE v.parts <> '[]' \
         UNION SELECT kek_fingerprint FROM parts",
    )
    .fetch_all(&mut *c)
    .await?;
    fps.retain(|f| !f.is_empty());
    let secrets: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT kek_fingerprint FROM access_keys")
            .fetch_all(&mut *c)
            .await?;
    for f in secrets {
        if !f.is_empty() {
            fps.push(f);
        } else if !write_key.is_empty() {
            fps.push(write_key.to_string());
        }
    }
    fps.sort();
    fps.dedup();
    Ok(fps)
}

impl Copy {
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Where [`chunks`] is in the file.
enum Phase {
    Prefix,
    Body(tokio::fs::File),
    Trailer,
    Done,
}

struct Reader {
    copy: Copy,
    sum: Summer,
    phase: Phase,
    left: u64,
    started: Instant,
}

/// The backup file of `copy`, in order: magic and header, the DB in
/// [`CHUNK`]s, the checksum. One chunk in memory at a time; the copy is
/// removed when the stream ends or is dropped. An error ends the stream,
/// so a reader never takes a short file for a whole one.
pub fn chunks(copy: Copy) -> impl Stream<Item = Result<Vec<u8>, BackupError>> + Send {
    let r = Reader {
        left: copy.header.db_bytes,
        copy,
        sum: Summer::default(),
        phase: Phase::Prefix,
        started: Instant::now(),
    };
    futures::stream::unfold(r, next_chunk)
}

async fn next_chunk(mut r: Reader) -> Option<(Result<Vec<u8>, BackupError>, Reader)> {
    let data = match std::mem::replace(&mut r.phase, Phase::Done) {
        Phase::Done => return None,
        Phase::Prefix => {
            let opened = match format::prefix(&r.copy.header) {
                Ok(head) => tokio::fs::File::open(r.copy.path())
                    .await
                    .map(|f| (head, f))
                    .map_err(BackupError::Io),
                Err(e) => Err(e),
            };
            match opened {
                Ok((head, f)) => {
                    r.phase = Phase::Body(f);
                    head
                }
                Err(e) => return Some((Err(e), r)),
            }
        }
        Phase::Body(mut f) if r.left > 0 => {
            let want = usize::try_from(r.left).unwrap_or(CHUNK).min(CHUNK);
            let mut buf = vec![0u8; want];
            if let Err(e) = f.read_exact(&mut buf).await {
                return Some((Err(e.into()), r));
            }
            r.left -= want as u64;
            r.phase = if r.left > 0 {
                Phase::Body(f)
            } else {
                Phase::Trailer
            };
            buf
        }
        // The body is out (or empty): the checksum of all before it.
        Phase::Body(_) | Phase::Trailer => {
            let sum = std::mem::take(&mut r.sum);
            tracing::info!(
                index = r.copy.header.raft_index,
                db_bytes = r.copy.header.db_bytes,
                ms = r.started.elapsed().as_millis() as u64,
                "backup written"
            );
            return Some((Ok(sum.trailer().to_vec()), r));
        }
    };
    r.sum.update(&data);
    Some((Ok(data), r))
}

/// A backup of an open state DB written to `out` (created, or truncated;
/// synced): tools and tests; the running server streams [`chunks`].
pub async fn write_file(
    db: &StateDb,
    source_raft_id: NodeId,
    out: &Path,
) -> Result<BackupHeader, BackupError> {
    let copy = copy(db, source_raft_id).await?;
    let header = copy.header.clone();
    let mut f = tokio::fs::File::from_std(crate::raft::private::create(out)?);
    let mut stream = std::pin::pin!(chunks(copy));
    while let Some(chunk) = stream.next().await {
        f.write_all(&chunk?).await?;
    }
    f.sync_all().await?;
    Ok(header)
}
