//! `--check`: the restore's own verification and checks, run on a
//! temporary copy that is then removed. The whole file is verified into a
//! temp DB (checksum, SQLite check, schema, index) and adjusted to the
//! node exactly as a restore with `--accept-older` would (ADR 0026), so
//! the verdict names every way the backup is older, how many keys would
//! be rewrapped, and a master key the node lacks. Nothing else is written.

use std::path::{Path, PathBuf};

use anyhow::Context;
use hamster_meta::backup::format::{self, BackupHeader};
use hamster_meta::backup::restore::{NodeFacts, RestoreError};
use hamster_meta::backup::{adjust, restore};

pub struct Verdict {
    pub header: BackupHeader,
    /// Why the backup is older than the node, one line each.
    pub older: Vec<String>,
    /// Keys a restore would rewrap to the node's current master key.
    pub rewrapped: u64,
    /// What a restore would refuse with, if it would.
    pub refusal: Option<String>,
    /// The node's master keys (current, then next).
    pub held: Vec<String>,
}

pub async fn judge(
    backup: &Path,
    node: &NodeFacts,
    first_seed: Option<&Path>,
    accept_older: bool,
) -> anyhow::Result<Verdict> {
    let tmp = temp_db(first_seed);
    let judged = async {
        let header = format::verify_into(backup, &tmp).await?;
        let now = hamster_meta::cluster::now_ms();
        let adjusted = adjust::adjust(&tmp, &header, node, true, now).await;
        Ok::<_, RestoreError>((header, adjusted))
    }
    .await;
    format::remove_db(&tmp);
    let (header, adjusted) = judged.with_context(|| format!("{}", backup.display()))?;
    let (current, next) = node.keyring.fingerprints();
    let held = std::iter::once(current).chain(next).collect();
    Ok(match adjusted {
        Ok(a) => Verdict {
            refusal: (!accept_older && !a.accepted_older.is_empty())
                .then(|| restore::RestoreError::Older(a.accepted_older.clone()).to_string()),
            header,
            older: a.accepted_older,
            rewrapped: a.rewrapped,
            held,
        },
        Err(e @ RestoreError::MissingMasterKey { .. }) => Verdict {
            header,
            older: Vec::new(),
            rewrapped: 0,
            refusal: Some(e.to_string()),
            held,
        },
        Err(e) => return Err(e).with_context(|| format!("{}", backup.display())),
    })
}

/// A temporary DB in the first data dir if it exists (the restore's own
/// disk; its parent may be another filesystem, read-only, e.g. `/` for a
/// compose volume at `/data`), else beside it, else in the system's temp
/// dir. Its name is neither state nor a staging dir, so a copy a killed
/// `--check` left never makes the dir look in use.
fn temp_db(first_seed: Option<&Path>) -> PathBuf {
    let name = format!(".hamster-restore-check-{}.db", std::process::id());
    first_seed
        .into_iter()
        .chain(first_seed.and_then(Path::parent))
        .find(|p| p.is_dir())
        .map_or_else(|| std::env::temp_dir().join(&name), |p| p.join(&name))
}
