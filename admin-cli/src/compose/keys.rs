//! The file steps of a master-key rotation on compose, for
//! docker/rotate-key.sh: the images hold no shell, so each move of a key
//! file in the `master` volume is one command in a one-shot container
//! (the `init` service, which mounts it writable). Each step is
//! idempotent, so the script can be run again after an interruption.
//!
//! Files: `master.key` (current), `master.next.key` (next, read by every
//! holder on SIGHUP), `master.old.key` (the old key, kept from the
//! promotion until the holders all hold the new one). `promote-key` and
//! `drop-old-key` ask the cluster first and refuse unless its rotation
//! has closed on the key in question.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use hamster_proto::pb::{StatusRequest, StatusResponse, admin_client::AdminClient};
use hamster_proto::secrets::MasterKey;

use crate::conn::{MetaConn, StatusPoller};

pub const NEXT: &str = "master.next.key";
pub const OLD: &str = "master.old.key";
const CURRENT: &str = crate::init::MASTER_KEY;

#[derive(Debug, clap::Args)]
pub struct MasterDir {
    /// The master-key directory (the compose `master` volume).
    #[arg(long)]
    pub master: PathBuf,
}

/// A key-file step that first asks the cluster whether it may be taken.
#[derive(Debug, clap::Args)]
pub struct Checked {
    #[command(flatten)]
    pub dir: MasterDir,
    #[command(flatten)]
    pub meta: MetaConn,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Holding {
    /// Every live holder reports `master.next.key` as its next key.
    Next,
    /// Every live holder reports `master.key` as its current key.
    Current,
}

#[derive(Debug, clap::Args)]
pub struct WaitKeys {
    #[command(flatten)]
    pub dir: MasterDir,
    #[arg(long, value_enum)]
    pub holding: Holding,
    #[command(flatten)]
    pub meta: MetaConn,
    /// Give up after this long.
    #[arg(long, default_value_t = 180)]
    pub timeout_secs: u64,
}

/// `master.next.key`, new unless it is there already.
pub fn next_key(a: &MasterDir) -> anyhow::Result<()> {
    let (next, old) = (a.master.join(NEXT), a.master.join(OLD));
    // A third key in play means the last rotation was never finished.
    anyhow::ensure!(
        !old.exists(),
        "{} exists: finish the last rotation first (`hamster compose drop-old-key`)",
        old.display()
    );
    if !next.exists() {
        MasterKey::generate().write_new(&next)?;
    }
    println!("next master key {}", fingerprint(&next)?);
    Ok(())
}

/// Next becomes current; the current one is kept as `master.old.key`.
/// `master.key` is replaced by a rename, so it always holds a whole key.
/// Only once the cluster's rotation to the next key has closed: before,
/// data may still need the current key as the cluster's key.
pub async fn promote(a: &Checked) -> anyhow::Result<()> {
    let m = &a.dir.master;
    let (cur, next, old) = (m.join(CURRENT), m.join(NEXT), m.join(OLD));
    if !next.exists() {
        anyhow::ensure!(old.exists(), "no {} to promote", next.display());
        println!("already promoted: current {}", fingerprint(&cur)?);
        return Ok(());
    }
    closed_on(&a.meta, &fingerprint(&next)?, NEXT).await?;
    if !old.exists() {
        MasterKey::load(&cur)?.write_new(&old)?;
    }
    std::fs::rename(&next, &cur).with_context(|| format!("renaming {}", next.display()))?;
    crate::init::sync_dir(m)?;
    println!("current master key {}", fingerprint(&cur)?);
    Ok(())
}

/// Removes `master.old.key`, only once the rotation has closed on
/// `master.key` and every live key holder reports it as its current key.
pub async fn drop_old(a: &Checked) -> anyhow::Result<()> {
    let old = a.dir.master.join(OLD);
    if !old.exists() {
        println!("no old key");
        return Ok(());
    }
    let want = fingerprint(&a.dir.master.join(CURRENT))?;
    let s = closed_on(&a.meta, &want, CURRENT).await?;
    let lacking: Vec<String> = s
        .key_holders
        .iter()
        .filter(|h| h.live && h.current_kek_fingerprint != want)
        .map(|h| format!("{}/{}", h.role, h.id))
        .collect();
    anyhow::ensure!(
        lacking.is_empty(),
        "not dropping {}: these live key holders do not hold {want} yet: {} \
         (`hamster compose wait-keys --holding current`)",
        old.display(),
        lacking.join(", ")
    );
    std::fs::remove_file(&old).with_context(|| format!("removing {}", old.display()))?;
    crate::init::sync_dir(&a.dir.master)?;
    println!("removed {}", old.display());
    Ok(())
}

/// The status, if the cluster's key rotation is closed on key `fp` (the
/// one in `file`) with nothing left on the old key; an error otherwise.
async fn closed_on(meta: &MetaConn, fp: &str, file: &str) -> anyhow::Result<StatusResponse> {
    let s = meta
        .on_any(async |ch| AdminClient::new(ch).status(StatusRequest {}).await)
        .await?
        .into_inner();
    let closed = s.key_rotation == "none"
        && s.versions_on_old_key == 0
        && s.access_keys_on_old_key == 0
        && s.master_key_fingerprint == fp;
    anyhow::ensure!(
        closed,
        "the cluster's key rotation to {fp} ({file}) has not closed: rotation {:?}, \
         cluster key {}, {} versions and {} access keys on the old key \
         (run `hamster rotate-key` to its end first)",
        s.key_rotation,
        s.master_key_fingerprint,
        s.versions_on_old_key,
        s.access_keys_on_old_key
    );
    Ok(s)
}

/// Polls `hamster status` until every live key holder reports the key.
pub async fn wait(a: &WaitKeys) -> anyhow::Result<()> {
    let file = match a.holding {
        Holding::Next => NEXT,
        Holding::Current => CURRENT,
    };
    let want = fingerprint(&a.dir.master.join(file))?;
    let deadline = Instant::now() + Duration::from_secs(a.timeout_secs);
    let mut poller = StatusPoller::new(a.timeout_secs);
    loop {
        if let Some(s) = poller.poll(&a.meta).await? {
            let live: Vec<_> = s.key_holders.iter().filter(|h| h.live).collect();
            let lacking: Vec<String> = live
                .iter()
                .filter(|h| match a.holding {
                    Holding::Next => h.next_kek_fingerprint != want,
                    Holding::Current => h.current_kek_fingerprint != want,
                })
                .map(|h| format!("{}/{}", h.role, h.id))
                .collect();
            if !live.is_empty() && lacking.is_empty() {
                println!("all {} live key holders hold {want} ({file})", live.len());
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "after {}s, still without {want} ({file}): {}",
                a.timeout_secs,
                lacking.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn fingerprint(path: &Path) -> anyhow::Result<String> {
    Ok(MasterKey::load(path)?.fingerprint())
}
