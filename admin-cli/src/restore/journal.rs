//! `DIR/restore.pending`: the swap a `restore --dir` is making, written
//! (and synced) before its first rename and removed after its last. While
//! it exists the dev dir may be half old, half restored, and a restored
//! meta-server beside old ones would diverge silently; so `hamster dev`
//! refuses to start, and the next `hamster restore --dir` first finishes
//! the swap it records ([`super::aside::finish`]), which only renames:
//! nothing is deleted.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The journal's name in a dev dir.
pub const FILE: &str = "restore.pending";
const VERSION: u32 = 1;

/// One meta-server's swap: its old data dir goes to `aside` (if it holds
/// anything), then the restored `staged` dir takes its place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Swap {
    pub data_dir: PathBuf,
    pub aside: PathBuf,
    pub staged: PathBuf,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub version: u32,
    pub swaps: Vec<Swap>,
}

pub fn path(dev_dir: &Path) -> PathBuf {
    dev_dir.join(FILE)
}

/// Writes the journal durably (the file, then the dir).
pub fn write(dev_dir: &Path, swaps: &[Swap]) -> anyhow::Result<()> {
    let j = Journal {
        version: VERSION,
        swaps: swaps.to_vec(),
    };
    let p = path(dev_dir);
    hamster_proto::trust_sync::replace_file(&p, &serde_json::to_vec_pretty(&j)?, 0o644)
        .with_context(|| format!("writing {}", p.display()))
}

/// The journal an interrupted restore left, if any.
pub fn read(dev_dir: &Path) -> anyhow::Result<Option<Journal>> {
    let p = path(dev_dir);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
    };
    let j: Journal = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not a restore journal; finish the swap it was for by hand",
            p.display()
        )
    })?;
    anyhow::ensure!(
        j.version <= VERSION,
        "{} was written by a newer hamster",
        p.display()
    );
    Ok(Some(j))
}

/// Removes the journal, durably: the swap is complete.
pub fn remove(dev_dir: &Path) -> anyhow::Result<()> {
    let p = path(dev_dir);
    std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
    sync_dir(dev_dir)
}

pub use crate::init::sync_dir;

/// `hamster dev`'s refusal while a journal exists.
pub fn refuse_if_pending(dev_dir: &Path) -> anyhow::Result<()> {
    let p = path(dev_dir);
    anyhow::ensure!(
        !p.exists(),
        "a restore was interrupted: run `hamster restore --from FILE --dir {}` again (it \
         finishes the interrupted swap first) or see {}",
        dev_dir.display(),
        p.display()
    );
    Ok(())
}
