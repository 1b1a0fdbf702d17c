//! `--data-dir … --initial-members LIST` on a member that is not the
//! lowest raft id in LIST. The state exists once: the lowest member is
//! seeded with it and the whole membership, and this one is left empty
//! with a marker ([`reseed::AWAIT_MARKER`]) that makes its meta-server
//! skip `initialize` and wait for that leader's snapshot. Restoring each
//! member separately would give each a different DB (restore time, trust
//! generation, rewrap nonces), and the members would diverge.
//!
//! So the procedure stays: run the same restore command on every member,
//! then start them all. Here the file is verified (header and checksum;
//! the seeded member checks the database) and the node must hold every
//! master key it names.

use std::path::Path;

use anyhow::Context;
use hamster_meta::backup::format::{self, BackupHeader};
use hamster_meta::backup::reseed::{self, AWAIT_MARKER};
use hamster_meta::backup::restore::{Member, NodeFacts, RestoreError};

use super::{RestoreArgs, print, staging, target};

pub async fn run(
    a: &RestoreArgs,
    t: &target::Target,
    facts: &NodeFacts,
    leader: &Member,
) -> anyhow::Result<()> {
    let (id, data) = t.seed.first().context("no data dir to write")?;
    if let Some(why) = staging::refusal(data) {
        anyhow::bail!("{why}");
    }
    let from = a.from.clone();
    let header = tokio::task::spawn_blocking(move || format::verify(&from))
        .await
        .context("verifying the backup")?
        .map_err(RestoreError::from)?;
    check_keys(&header, facts)?;
    reseed::await_leader(data)
        .with_context(|| format!("marking {} to await the leader", data.display()))?;
    print::awaiting(
        a,
        &print::Awaiting {
            header: &header,
            data,
            self_id: *id,
            leader,
        },
    );
    Ok(())
}

/// Refuses unless the node holds every master key the header names.
pub fn check_keys(header: &BackupHeader, facts: &NodeFacts) -> Result<(), RestoreError> {
    let (current, next) = facts.keyring.fingerprints();
    let held: Vec<String> = std::iter::once(current).chain(next).collect();
    let missing: Vec<&str> = header
        .key_fingerprints
        .iter()
        .filter(|f| !held.contains(f))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(RestoreError::MissingMasterKey {
        needed: missing.join(", "),
        held,
    })
}

/// A data dir an earlier restore left to await a leader is not seeded
/// over: its marker would outlive the seeding.
pub fn refuse_marker(data: &Path) -> anyhow::Result<()> {
    let marker = data.join(AWAIT_MARKER);
    anyhow::ensure!(
        !marker.exists(),
        "{} was left to await the leader by an earlier restore ({}): remove that file to \
         seed this node instead",
        data.display(),
        marker.display()
    );
    Ok(())
}
