//! Append-only JSON-lines files: the gateway's access log and the
//! meta-server's admin audit log (issue 23, ADR 0035).
//!
//! A record is one JSON object on one line. Writers never wait on the
//! disk: [`JsonLog::write`] hands the line to a task that appends it and
//! flushes at least once a second (and whenever its queue runs dry). When
//! the queue is full (the disk is slower than the requests) the record is
//! dropped and counted in `hamster_log_records_dropped_total{log}`: a
//! request is never slowed or failed for its log line. The file is opened
//! 0600 in append mode, and reopened on SIGHUP-driven [`JsonLog::reopen`]
//! so logrotate can move it away.
//!
//! Callers build records from fields they choose; nothing here adds a
//! header, signature or secret.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Records queued for the writer before new ones are dropped.
const QUEUE: usize = 16 * 1024;
/// The longest a written record waits in memory.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

enum Msg {
    Line(Vec<u8>),
    /// Only a wake-up: the request itself is the flag, which a full
    /// queue cannot lose.
    Reopen,
}

/// A JSON-lines log; cheap to clone (every clone feeds the same file).
#[derive(Clone)]
pub struct JsonLog {
    tx: mpsc::Sender<Msg>,
    name: &'static str,
    reopen: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
#[error("opening {path}: {source}")]
pub struct OpenError {
    path: PathBuf,
    source: std::io::Error,
}

async fn open(path: &Path) -> Result<tokio::fs::File, OpenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = tokio::fs::create_dir_all(dir).await;
    }
    tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .await
        .map_err(|source| OpenError {
            path: path.to_path_buf(),
            source,
        })
}

impl JsonLog {
    /// Opens (creating, 0600) `path` for appending and starts its writer.
    /// `name` labels the dropped-records counter ("access", "audit").
    pub async fn open(path: &Path, name: &'static str) -> Result<Self, OpenError> {
        let file = open(path).await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let reopen = Arc::new(AtomicBool::new(false));
        tokio::spawn(writer(path.to_path_buf(), file, rx, reopen.clone()));
        Ok(Self { tx, name, reopen })
    }

    /// Queues one record as a line; never blocks.
    pub fn write(&self, record: &serde_json::Value) {
        let mut line = match serde_json::to_vec(record) {
            Ok(l) => l,
            Err(_) => return,
        };
        line.push(b'\n');
        if self.tx.try_send(Msg::Line(line)).is_err() {
            metrics::counter!("hamster_log_records_dropped_total", "log" => self.name).increment(1);
        }
    }

    /// Closes and reopens the file at its path (after logrotate moved it).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::SeqCst);
        let _ = self.tx.try_send(Msg::Reopen);
    }
}

/// A record's `time`: RFC 3339 UTC with milliseconds,
/// 2026-01-02T03:04:05.678Z (every log written here uses it).
pub fn rfc3339_ms(t: SystemTime) -> String {
    let nanos = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(0),
        Err(_) => 0,
    };
    from_unix_nanos(nanos)
}

/// [`rfc3339_ms`] of Unix milliseconds (a stored time, e.g. a retention date).
pub fn rfc3339_from_millis(ms: i64) -> String {
    from_unix_nanos(i128::from(ms) * 1_000_000)
}

fn from_unix_nanos(nanos: i128) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

async fn writer(
    path: PathBuf,
    file: tokio::fs::File,
    mut rx: mpsc::Receiver<Msg>,
    reopen: Arc<AtomicBool>,
) {
    let mut out = tokio::io::BufWriter::new(file);
    let mut dirty = false;
    loop {
        if reopen.swap(false, Ordering::SeqCst) {
            let _ = out.flush().await;
            match open(&path).await {
                Ok(f) => out = tokio::io::BufWriter::new(f),
                Err(e) => tracing::warn!(error = %e, "log reopen failed; keeping the old file"),
            }
            dirty = false;
        }
        let msg = if dirty {
            match tokio::time::timeout(FLUSH_EVERY, rx.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    // Quiet for a second: what is buffered goes out now.
                    if let Err(e) = out.flush().await {
                        tracing::warn!(path = %path.display(), error = %e, "log flush failed");
                    }
                    dirty = false;
                    continue;
                }
            }
        } else {
            rx.recv().await
        };
        match msg {
            None => {
                let _ = out.flush().await;
                return;
            }
            Some(Msg::Line(l)) => {
                if let Err(e) = out.write_all(&l).await {
                    tracing::warn!(path = %path.display(), error = %e, "log write failed");
                }
                dirty = true;
                // A busy log still reaches the file within a second.
                if rx.is_empty() || out.buffer().len() > 64 * 1024 {
                    let _ = out.flush().await;
                    dirty = false;
                }
            }
            // The flag is read at the top of the loop.
            Some(Msg::Reopen) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_reach_the_file_as_lines_within_a_second() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("logs/access.jsonl");
        let log = JsonLog::open(&path, "access").await.expect("open");
        log.write(&serde_json::json!({"op": "PutObject", "status": 200}));
        log.write(&serde_json::json!({"op": "GetObject", "status": 404}));
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        let lines = loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.lines().count() == 2 || std::time::Instant::now() > deadline {
                break text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let v: Vec<serde_json::Value> = lines
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(v.len(), 2, "{lines}");
        assert_eq!(v[1]["op"], "GetObject");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // After a move, reopen starts a new file at the path.
        std::fs::rename(&path, dir.path().join("old.jsonl")).expect("mv");
        log.reopen();
        log.write(&serde_json::json!({"op": "DeleteObject"}));
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while std::fs::read_to_string(&path)
            .unwrap_or_default()
            .is_empty()
        {
            assert!(std::time::Instant::now() < deadline, "not reopened");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
