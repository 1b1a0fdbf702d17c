//! `--dir`: the restore writes each meta-server's new data dir beside
//! the old one (`<dir>.restoring-<secs>`); only once every one is written
//! are the old dirs moved aside (`<dir>.pre-restore-<secs>`, never
//! deleted) and the new ones renamed into place. A refused or failed
//! restore so leaves the dev dir as it was.
//!
//! The swap is journaled ([`super::journal`]): every "move aside" rename,
//! then every "rename in", each followed by a sync of the parent dir, the
//! journal removed last. A swap cut short (crash, error) is finished by
//! [`finish`] from the journal; until then `hamster dev` refuses to start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use super::journal::{self, Swap, sync_dir};

/// (where a data dir was, where it is now).
pub type Moved = Vec<(PathBuf, PathBuf)>;

/// `<dir>.<tag>-<unix secs>`, with a counter if that is taken.
fn free_name(dir: &Path, tag: &str, secs: u64) -> PathBuf {
    let base = format!("{}.{tag}-{secs}", dir.display());
    let mut path = PathBuf::from(&base);
    let mut n = 1;
    while path.exists() {
        n += 1;
        path = PathBuf::from(format!("{base}-{n}"));
    }
    path
}

/// Where the restore writes the new data dir for `dir` (does not exist).
pub fn staging(dir: &Path, secs: u64) -> PathBuf {
    free_name(dir, "restoring", secs)
}

/// Removes a dir this restore made, with everything in it. Retried for a
/// moment: an interrupted restore's SQLite handles may still be closing.
pub fn remove_tree(dir: &Path) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) if tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Removes the staging dirs of a failed or interrupted restore (only this
/// restore made them: their names were free when it started).
pub fn discard(staged: &[PathBuf]) {
    for dir in staged {
        if let Err(e) = remove_tree(dir) {
            eprintln!(
                "a partial restore is left in {} ({e}); remove it",
                dir.display()
            );
        }
    }
}

/// Puts each staged dir in its data dir's place, journaled in `dev_dir`;
/// the old data dir, if it holds anything, is moved to
/// `<dir>.pre-restore-<secs>` first (an empty one is removed). Answers
/// what was moved aside.
pub fn swap_in(dev_dir: &Path, pairs: &[(PathBuf, PathBuf)], secs: u64) -> anyhow::Result<Moved> {
    let swaps: Vec<Swap> = pairs
        .iter()
        .map(|(dir, staged)| Swap {
            data_dir: dir.clone(),
            aside: free_name(dir, "pre-restore", secs),
            staged: staged.clone(),
        })
        .collect();
    journal::write(dev_dir, &swaps)?;
    finish(dev_dir, &swaps)
}

/// Finishes the swap an interrupted restore journaled in `dev_dir`, if
/// there is one; answers what it moved aside.
pub fn recover(dev_dir: &Path) -> anyhow::Result<Option<Moved>> {
    match journal::read(dev_dir)? {
        Some(j) => finish(dev_dir, &j.swaps).map(Some),
        None => Ok(None),
    }
}

/// Does what is left of `swaps` (each step is skipped if done), then
/// removes the journal. On an error the journal stays and the message
/// says where each member is.
pub fn finish(dev_dir: &Path, swaps: &[Swap]) -> anyhow::Result<Moved> {
    let run = || -> anyhow::Result<()> {
        for s in swaps {
            move_aside(s)?;
        }
        for s in swaps {
            rename_in(s)?;
        }
        journal::remove(dev_dir)
    };
    run().map_err(|e| {
        e.context(format!(
            "the restore stopped while swapping data dirs ({}); {} records the swap: run \
             `hamster restore --from FILE --dir {}` again to finish it (hamster dev refuses \
             to start until then)",
            where_each_is(swaps),
            journal::path(dev_dir).display(),
            dev_dir.display()
        ))
    })?;
    Ok(swaps
        .iter()
        .filter(|s| s.aside.exists())
        .map(|s| (s.data_dir.clone(), s.aside.clone()))
        .collect())
}

fn parent(p: &Path) -> &Path {
    p.parent().unwrap_or(Path::new("."))
}

/// The old data dir out of the way, unless the restored one is in.
fn move_aside(s: &Swap) -> anyhow::Result<()> {
    if !s.staged.exists() || !s.data_dir.exists() {
        return Ok(());
    }
    let empty = std::fs::read_dir(&s.data_dir)
        .with_context(|| format!("reading {}", s.data_dir.display()))?
        .next()
        .is_none();
    if empty {
        std::fs::remove_dir(&s.data_dir)
            .with_context(|| format!("removing the empty {}", s.data_dir.display()))?;
    } else {
        anyhow::ensure!(
            !s.aside.exists(),
            "both {} and {} exist: move one of them away by hand",
            s.data_dir.display(),
            s.aside.display()
        );
        std::fs::rename(&s.data_dir, &s.aside).with_context(|| {
            format!(
                "moving {} aside to {}",
                s.data_dir.display(),
                s.aside.display()
            )
        })?;
    }
    sync_dir(parent(&s.data_dir))
}

fn rename_in(s: &Swap) -> anyhow::Result<()> {
    if !s.staged.exists() {
        anyhow::ensure!(
            s.data_dir.exists(),
            "neither {} nor the restored {} exists",
            s.data_dir.display(),
            s.staged.display()
        );
        return Ok(());
    }
    std::fs::rename(&s.staged, &s.data_dir).with_context(|| {
        format!(
            "renaming the restored {} to {}",
            s.staged.display(),
            s.data_dir.display()
        )
    })?;
    sync_dir(parent(&s.data_dir))
}

/// "meta-1 restored, meta-2 moved aside (restored dir not in place), …".
fn where_each_is(swaps: &[Swap]) -> String {
    swaps
        .iter()
        .map(|s| {
            let name = s.data_dir.file_name().map_or_else(
                || s.data_dir.display().to_string(),
                |n| n.to_string_lossy().into(),
            );
            let state = match (s.staged.exists(), s.data_dir.exists()) {
                (false, true) => "swapped in (restored)".to_string(),
                (true, false) => format!(
                    "old dir moved aside, restored dir not yet in place ({})",
                    s.staged.display()
                ),
                (true, true) => "not swapped (old dir in place)".to_string(),
                (false, false) => "missing".to_string(),
            };
            format!("{name}: {state}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(dir: &Path, file: &str, bytes: &[u8]) {
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::write(dir.join(file), bytes).expect("write");
    }

    #[test]
    fn restored_dirs_take_the_old_ones_place_and_the_old_ones_are_kept() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dirs: Vec<PathBuf> = (1..=3)
            .map(|i| tmp.path().join(format!("meta-{i}")))
            .collect();
        // meta-1 holds state, meta-2 is empty, meta-3 does not exist.
        make(&dirs[0], "state.db", b"old");
        std::fs::create_dir_all(&dirs[1]).expect("mkdir");
        let pairs: Vec<(PathBuf, PathBuf)> = dirs
            .iter()
            .map(|d| {
                let s = staging(d, 7);
                make(&s, "state.db", b"new");
                (d.clone(), s)
            })
            .collect();
        assert_eq!(pairs[0].1, tmp.path().join("meta-1.restoring-7"));

        let moved = swap_in(tmp.path(), &pairs, 7).expect("swap");
        let aside = tmp.path().join("meta-1.pre-restore-7");
        assert_eq!(moved, vec![(dirs[0].clone(), aside.clone())]);
        assert_eq!(std::fs::read(aside.join("state.db")).expect("old"), b"old");
        for (d, s) in &pairs {
            assert_eq!(std::fs::read(d.join("state.db")).expect("new"), b"new");
            assert!(!s.exists());
        }
        assert!(!journal::path(tmp.path()).exists(), "journal removed");

        // A second restore in the same second gets names of its own.
        let again = staging(&dirs[0], 7);
        std::fs::create_dir_all(&again).expect("mkdir");
        let moved = swap_in(tmp.path(), &[(dirs[0].clone(), again)], 7).expect("swap");
        assert_eq!(moved[0].1, tmp.path().join("meta-1.pre-restore-7-2"));
    }

    /// A swap cut short after meta-1 was swapped in and meta-2 moved aside:
    /// finishing it from the journal puts every restored dir in place and
    /// keeps every old one.
    #[test]
    fn an_interrupted_swap_is_finished_from_its_journal() {
        let tmp = tempfile::tempdir().expect("tmp");
        let d = tmp.path();
        let swaps: Vec<Swap> = (1..=3)
            .map(|i| Swap {
                data_dir: d.join(format!("meta-{i}")),
                aside: d.join(format!("meta-{i}.pre-restore-5")),
                staged: d.join(format!("meta-{i}.restoring-5")),
            })
            .collect();
        // meta-1: done. meta-2: moved aside only. meta-3: not started.
        make(&swaps[0].aside, "state.db", b"old-1");
        make(&swaps[0].data_dir, "state.db", b"new");
        make(&swaps[1].aside, "state.db", b"old-2");
        make(&swaps[1].staged, "state.db", b"new");
        make(&swaps[2].data_dir, "state.db", b"old-3");
        make(&swaps[2].staged, "state.db", b"new");
        journal::write(d, &swaps).expect("journal");

        let moved = recover(d).expect("recover").expect("a journal");
        assert_eq!(moved.len(), 3, "{moved:?}");
        for (i, s) in swaps.iter().enumerate() {
            assert_eq!(
                std::fs::read(s.data_dir.join("state.db")).expect("new"),
                b"new"
            );
            let old = format!("old-{}", i + 1);
            assert_eq!(
                std::fs::read(s.aside.join("state.db")).expect("old"),
                old.as_bytes()
            );
            assert!(!s.staged.exists());
        }
        assert!(!journal::path(d).exists());
        assert!(recover(d).expect("nothing left").is_none());
    }

    #[test]
    fn a_swap_that_cannot_finish_keeps_its_journal_and_says_where_each_member_is() {
        let tmp = tempfile::tempdir().expect("tmp");
        let d = tmp.path();
        let swaps = vec![
            Swap {
                data_dir: d.join("meta-1"),
                aside: d.join("meta-1.pre-restore-5"),
                staged: d.join("meta-1.restoring-5"),
            },
            Swap {
                data_dir: d.join("meta-2"),
                aside: d.join("meta-2.pre-restore-5"),
                staged: d.join("meta-2.restoring-5"),
            },
        ];
        make(&swaps[0].data_dir, "state.db", b"new");
        // meta-2: both the old dir and something at its aside name.
        make(&swaps[1].data_dir, "state.db", b"old");
        make(&swaps[1].aside, "state.db", b"other");
        make(&swaps[1].staged, "state.db", b"new");
        journal::write(d, &swaps).expect("journal");
        let e = format!("{:#}", finish(d, &swaps).expect_err("ambiguous"));
        assert!(e.contains("meta-1: swapped in"), "{e}");
        assert!(e.contains("meta-2: not swapped"), "{e}");
        assert!(e.contains("restore.pending"), "{e}");
        assert!(journal::path(d).exists());
        assert_eq!(
            std::fs::read(swaps[1].data_dir.join("state.db")).expect("kept"),
            b"old"
        );
    }

    #[test]
    fn a_failed_restore_leaves_no_staging_dir() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (half, untouched) = (staging(&tmp.path().join("a"), 1), tmp.path().join("b"));
        make(&half, "state.db", b"half");
        std::fs::write(half.join("raft-log.db-wal"), b"wal").expect("write");
        std::fs::write(half.join(".a.restore-1.db"), b"temp").expect("write");
        discard(&[half.clone(), untouched]);
        assert!(!half.exists());
        assert_eq!(std::fs::read_dir(tmp.path()).expect("ls").count(), 0);
    }
}
