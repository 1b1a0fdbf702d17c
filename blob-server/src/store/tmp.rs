//! `tmp/`: writes in progress. A write's temp file is removed when the
//! write ends without a commit (an error, ENOSPC, a cut stream: the
//! [`TempFile`] is dropped). The cleaner is the backstop for anything that
//! still escapes (a failed unlink, a file left by a bug): it removes files
//! of no live write, so it never races a write however slow (a rebuild
//! paced at the 10 kB/s floor can keep a shard open for hours).

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use super::{Store, StoreError, io};

/// How often the cleaner looks at tmp/.
pub const CLEAN_EVERY: Duration = Duration::from_secs(30);
/// A file of no live write older than this is removed. The age only
/// shields a file between its creation and the moment it is known (none:
/// a write is registered before its file exists) and files another
/// process put there; a minute is far beyond either.
pub const ORPHAN_AGE: Duration = Duration::from_secs(60);

/// The names (in tmp/) of the writes in progress.
#[derive(Debug, Default)]
pub(super) struct LiveTemps(Mutex<HashSet<OsString>>);

impl LiveTemps {
    fn names(&self) -> std::sync::MutexGuard<'_, HashSet<OsString>> {
        // A panic while holding this lock leaves a plain set: still valid.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A file in tmp/, removed when dropped: committed, the shard lives on
/// under its own name; not, it was never acknowledged. A crash leaves it
/// to the next start-up, which empties tmp/.
pub(super) struct TempFile {
    pub(super) path: PathBuf,
    live: Arc<LiveTemps>,
}

impl TempFile {
    /// Registers `name` as live before anything creates it.
    pub(super) fn register(store: &Store, name: String) -> Self {
        store.live.names().insert(name.clone().into());
        Self {
            path: store.root.join("tmp").join(name),
            live: store.live.clone(),
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %self.path.display(), error = %e, "could not remove a temp file; the cleaner will retry");
        }
        if let Some(name) = self.path.file_name() {
            self.live.names().remove(name);
        }
    }
}

impl Store {
    /// Removes the files in tmp/ that belong to no live write and were last
    /// modified more than `age` ago; returns how many.
    pub async fn clean_tmp(&self, age: Duration) -> Result<usize, StoreError> {
        let dir = self.root.join("tmp");
        let mut entries = tokio::fs::read_dir(&dir)
            .await
            .map_err(io("listing tmp/"))?;
        let now = SystemTime::now();
        let mut removed = 0;
        while let Some(e) = entries.next_entry().await.map_err(io("listing tmp/"))? {
            if self.live.names().contains(&e.file_name()) {
                continue;
            }
            // Gone meanwhile, or unreadable: the next round looks again.
            let Ok(modified) = e.metadata().await.and_then(|m| m.modified()) else {
                continue;
            };
            if now.duration_since(modified).unwrap_or_default() < age {
                continue;
            }
            match tokio::fs::remove_file(e.path()).await {
                Ok(()) => removed += 1,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    tracing::warn!(file = %e.path().display(), error = %err, "could not remove a stale temp file");
                }
            }
        }
        Ok(removed)
    }

    /// Runs [`Store::clean_tmp`] every [`CLEAN_EVERY`], for good.
    pub async fn run_tmp_cleaner(self) {
        let mut tick = tokio::time::interval(CLEAN_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.clean_tmp(ORPHAN_AGE).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(files = n, "removed stale temp files"),
                Err(e) => tracing::warn!(error = %e, "cleaning tmp/"),
            }
        }
    }
}
