//! Walks over the store's directories: the listing the meta tier trusts
//! (whole, or it ends in an error), the scrub's directory-by-directory
//! walk, and the expiry of quarantined copies.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc::Sender;

use super::{QUARANTINE, Store, StoreError, fsync_dir, io, valid_id};

/// One listed shard: (id, modified ms, bytes), or the error that ended
/// the list.
pub type Listed = Result<(String, i64, u64), StoreError>;

fn ms_since_epoch(t: SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Store {
    /// Sends (id, modified ms, bytes) of every shard last written before
    /// `before_ms`, in no particular order, until the receiver goes away.
    /// The list is whole or its last item is an error: the meta tier
    /// takes a shard absent from a whole list as lost, so a directory that
    /// cannot be read must not pass for an empty one.
    pub fn list(&self, before_ms: i64, tx: Sender<Listed>) {
        let root = self.root.join("shards");
        let fail = tx.clone();
        tokio::spawn(async move {
            let walk = tokio::task::spawn_blocking(move || list_blocking(&root, before_ms, &tx));
            let e = match walk.await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e,
                Err(join) => StoreError::Io {
                    what: "listing shards".into(),
                    source: std::io::Error::other(join.to_string()),
                },
            };
            let _ = fail.send(Err(e)).await;
        });
    }

    /// Every fan-out directory `shards/AB/CD` (the scrub walks them one at
    /// a time, so a huge store is never listed at once). Best effort: the
    /// scrub checks what it can read.
    pub async fn shard_dirs(&self) -> Vec<PathBuf> {
        let root = self.root.join("shards");
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for a in lenient_entries(&root) {
                out.extend(lenient_entries(&a));
            }
            out
        })
        .await
        .unwrap_or_default()
    }

    /// The total size of the shard files (a scrub pass's progress bar).
    pub async fn shard_bytes(&self) -> u64 {
        let root = self.root.join("shards");
        tokio::task::spawn_blocking(move || {
            let mut total = 0u64;
            for a in lenient_entries(&root) {
                for b in lenient_entries(&a) {
                    for f in lenient_entries(&b) {
                        if let Ok(m) = std::fs::metadata(&f) {
                            total = total.saturating_add(m.len());
                        }
                    }
                }
            }
            total
        })
        .await
        .unwrap_or_default()
    }

    /// The valid shard ids in `dir` (one of [`Store::shard_dirs`]).
    pub async fn ids_in(&self, dir: PathBuf) -> Vec<String> {
        tokio::task::spawn_blocking(move || {
            lenient_entries(&dir)
                .into_iter()
                .filter_map(|f| f.file_name()?.to_str().map(str::to_string))
                .filter(|id| valid_id(id))
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    /// Removes the quarantined copies moved aside more than `keep` ago;
    /// answers how many it removed.
    pub async fn expire_quarantine(&self, keep: Duration) -> Result<usize, StoreError> {
        let dir = self.root.join(QUARANTINE);
        let walk = dir.clone();
        let removed = tokio::task::spawn_blocking(move || {
            let cutoff = SystemTime::now().checked_sub(keep);
            let mut removed = 0;
            for f in entries(&walk)? {
                // Moved aside when its mtime was set (see `Store::quarantine`).
                let set_aside = match std::fs::symlink_metadata(&f).and_then(|m| m.modified()) {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        tracing::warn!(file = %f.display(), error = %e, "quarantine: cannot stat");
                        continue;
                    }
                };
                if cutoff.is_none_or(|c| set_aside >= c) {
                    continue;
                }
                match std::fs::remove_file(&f) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(file = %f.display(), error = %e, "quarantine: cannot remove")
                    }
                }
            }
            Ok::<_, StoreError>(removed)
        })
        .await
        .map_err(|e| StoreError::Io {
            what: "expiring quarantine".into(),
            source: std::io::Error::other(e.to_string()),
        })??;
        if removed > 0 {
            fsync_dir(&dir).await?;
        }
        Ok(removed)
    }
}

fn list_blocking(root: &Path, before_ms: i64, tx: &Sender<Listed>) -> Result<(), StoreError> {
    for a in entries(root)? {
        for b in entries(&a)? {
            for f in entries(&b)? {
                let Some(id) = f.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                if !valid_id(id) {
                    continue;
                }
                let (modified, len) =
                    match std::fs::metadata(&f).and_then(|m| Ok((m.modified()?, m.len()))) {
                        Ok(t) => t,
                        // Deleted since its directory was read: not a shard now.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(io(format!("stat {}", f.display()))(e)),
                    };
                let ms = ms_since_epoch(modified);
                if ms < before_ms && tx.blocking_send(Ok((id.to_string(), ms, len))).is_err() {
                    // The caller went away: nobody to tell.
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Every entry of `dir`, or an error. Fan-out directories are never
/// removed, so even NotFound here is an error, not a race.
fn entries(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    std::fs::read_dir(dir)
        .and_then(|rd| rd.map(|e| e.map(|e| e.path())).collect())
        .map_err(io(format!("listing {}", dir.display())))
}

/// The entries of `dir` that could be read; none if it cannot be.
fn lenient_entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}
