//! `--data-dir`: the node is seeded in a staging dir INSIDE its data dir,
//! `DATA/.restoring-<nonce>/` (same filesystem; DATA itself may be a
//! volume mount point that cannot be renamed). Only when seeding is done
//! are the files renamed into DATA — `raft-log.db` first, `state.db`
//! LAST, DATA synced after each — so a meta-server finds no state.db
//! until the restore is whole. A failed or interrupted restore removes
//! the staging dir; a leftover one (a killed restore) is named by the
//! in-use check.

use std::path::{Path, PathBuf};

use anyhow::Context;
use hamster_meta::backup::reseed::RAFT_LOG_DB;
use hamster_meta::raft::state_machine::STATE_DB;

use super::aside::remove_tree;
use super::journal::sync_dir;

/// The staging dir's name prefix in a data dir.
pub const PREFIX: &str = ".restoring-";

/// Why a restore must not seed `data`, if it must not: it holds a
/// meta-server's state, or a killed restore's staging dir.
pub fn refusal(data: &Path) -> Option<String> {
    if [STATE_DB, RAFT_LOG_DB]
        .iter()
        .any(|f| data.join(f).exists())
    {
        return Some(format!(
            "{} already holds a meta-server's state (state.db or raft-log.db); a restore \
             writes only into a new or empty data dir",
            data.display()
        ));
    }
    leftover(data).map(|l| {
        format!(
            "{} holds {}, left by an interrupted restore: remove it and retry",
            data.display(),
            l.display()
        )
    })
}

/// A `.restoring-*` dir in `data`, if there is one.
pub fn leftover(data: &Path) -> Option<PathBuf> {
    std::fs::read_dir(data)
        .ok()?
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(PREFIX))
        .map(|e| e.path())
}

/// What DATA holds now, said after a failed or interrupted restore.
pub fn describe(data: &Path) -> String {
    let has = |f: &str| data.join(f).exists();
    if has(STATE_DB) {
        format!("{} holds a restored state.db", data.display())
    } else if has(RAFT_LOG_DB) {
        format!(
            "{} holds raft-log.db but no state.db: remove {} and retry",
            data.display(),
            data.join(RAFT_LOG_DB).display()
        )
    } else if let Some(l) = leftover(data) {
        format!(
            "a partial restore is left in {}: remove it and retry",
            l.display()
        )
    } else {
        format!(
            "{} holds no meta-server state: nothing was restored",
            data.display()
        )
    }
}

/// A staging dir in a data dir.
pub struct Staging {
    data: PathBuf,
    dir: PathBuf,
    /// The restore made DATA: it goes again if the restore fails.
    made_data: bool,
}

/// The seeded files in the order they move into DATA: state.db last.
const MOVES: [&str; 6] = [
    "raft-log.db",
    "raft-log.db-wal",
    "raft-log.db-shm",
    "state.db-wal",
    "state.db-shm",
    "state.db",
];

impl Staging {
    /// Makes `DATA/.restoring-<nonce>/` (and DATA if it is missing).
    pub fn create(data: &Path) -> anyhow::Result<Self> {
        let made_data = !data.exists();
        std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let dir = data.join(format!("{PREFIX}{}-{nanos:x}", std::process::id()));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            data: data.to_path_buf(),
            dir,
            made_data,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes the staging dir (and DATA if the restore made it and it is
    /// empty); answers what DATA holds now.
    pub fn discard(self) -> String {
        if let Err(e) = remove_tree(&self.dir) {
            eprintln!("could not remove {}: {e}", self.dir.display());
        }
        if self.made_data {
            let _ = std::fs::remove_dir(&self.data);
        }
        describe(&self.data)
    }

    /// Renames the seeded files into DATA, state.db last, syncing DATA
    /// after each; then removes the staging dir. On an error the files
    /// moved so far go back and the staging dir is removed.
    pub fn commit(self) -> anyhow::Result<()> {
        if [STATE_DB, RAFT_LOG_DB]
            .iter()
            .any(|f| self.data.join(f).exists())
        {
            let data = self.data.clone();
            self.discard();
            anyhow::bail!(
                "{} gained a meta-server's state while the restore ran (is a meta-server \
                 running on it?); nothing was moved in",
                data.display()
            );
        }
        let mut moved: Vec<&str> = Vec::new();
        for f in MOVES {
            let (from, to) = (self.dir.join(f), self.data.join(f));
            if !from.exists() {
                continue;
            }
            let step = std::fs::rename(&from, &to)
                .with_context(|| format!("renaming {} to {}", from.display(), to.display()))
                .and_then(|()| sync_dir(&self.data));
            if let Err(e) = step {
                for f in moved.iter().rev() {
                    let _ = std::fs::rename(self.data.join(f), self.dir.join(f));
                }
                let _ = sync_dir(&self.data);
                let state = self.discard();
                return Err(e.context(state));
            }
            moved.push(f);
        }
        if let Err(e) = remove_tree(&self.dir) {
            eprintln!("could not remove {}: {e}", self.dir.display());
        }
        sync_dir(&self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_files_move_in_and_the_staging_dir_goes() {
        let tmp = tempfile::tempdir().expect("tmp");
        let data = tmp.path().join("data");
        let s = Staging::create(&data).expect("staging");
        let dir = s.dir().to_path_buf();
        assert!(dir.starts_with(&data));
        assert!(
            refusal(&data)
                .expect("a leftover")
                .contains("interrupted restore")
        );
        for f in ["state.db", "raft-log.db", ".meta.restore-1.db"] {
            std::fs::write(dir.join(f), f).expect("write");
        }
        s.commit().expect("commit");
        assert_eq!(
            std::fs::read(data.join("state.db")).expect("state"),
            b"state.db"
        );
        assert!(data.join("raft-log.db").exists());
        assert!(!dir.exists());
        assert_eq!(std::fs::read_dir(&data).expect("ls").count(), 2);
        assert!(refusal(&data).expect("in use").contains("already holds"));
    }

    #[test]
    fn a_discarded_restore_leaves_the_data_dir_as_it_was() {
        let tmp = tempfile::tempdir().expect("tmp");
        // A data dir the restore made goes again.
        let new = tmp.path().join("new");
        let s = Staging::create(&new).expect("staging");
        std::fs::write(s.dir().join("state.db"), b"half").expect("write");
        let said = s.discard();
        assert!(said.contains("nothing was restored"), "{said}");
        assert!(!new.exists());
        // One that existed (a mount point, say) stays, empty.
        let mount = tmp.path().join("mount");
        std::fs::create_dir(&mount).expect("mkdir");
        let s = Staging::create(&mount).expect("staging");
        std::fs::write(s.dir().join("raft-log.db"), b"half").expect("write");
        s.discard();
        assert!(mount.is_dir());
        assert_eq!(std::fs::read_dir(&mount).expect("ls").count(), 0);
        assert!(refusal(&mount).is_none());
    }
}
