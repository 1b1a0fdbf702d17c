//! `hamster backup --out FILE`: the meta tier's state at a committed Raft
//! index, streamed by a meta-server (`Admin.Backup`) into a file (ADR
//! 0026). The stream goes to `FILE.partial` (0600, created new), which is
//! fsynced and verified (header and checksum) before it is renamed to
//! FILE: a FILE that exists is a whole, checked backup. On any failure,
//! Ctrl-C included, the partial file is removed and FILE is untouched.
//!
//! The file holds wrapped data keys and sealed S3 secrets only; it is
//! useless without the master keys it names, which it never contains.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use hamster_meta::backup::format::{self, BackupHeader};
use hamster_proto::pb::{BackupRequest, admin_client::AdminClient};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::blob::human_bytes;
use crate::conn::MetaConn;

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    /// Where the backup goes (written beside it first, renamed when whole).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace FILE if it exists (and a FILE.partial left by a killed run).
    #[arg(long)]
    pub force: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `FILE.partial`: where the stream goes until it is whole and checked.
pub fn partial_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// Removes the partial file unless the backup was renamed into place.
struct Partial {
    path: PathBuf,
    done: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

pub async fn run(a: &BackupArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    anyhow::ensure!(
        a.force || !a.out.exists(),
        "{} exists; pass --force to replace it",
        a.out.display()
    );
    let path = partial_path(&a.out);
    if a.force {
        let _ = std::fs::remove_file(&path);
    }
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .await
        .with_context(|| {
            format!(
                "creating {} (another backup to this file may be running; \
                 if not, --force removes it)",
                path.display()
            )
        })?;
    let mut partial = Partial { path, done: false };

    // Ctrl-C drops the stream (the meta-server then removes its copy)
    // and this function's guard removes the partial file.
    let (bytes, sha256) = tokio::select! {
        r = receive(&a.meta, &mut file) => r?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; nothing was written"),
    };
    file.sync_all()
        .await
        .with_context(|| format!("syncing {}", partial.path.display()))?;
    drop(file);

    let check = partial.path.clone();
    let header = tokio::task::spawn_blocking(move || format::verify(&check))
        .await?
        .context("the backup the meta-server sent does not verify")?;
    std::fs::rename(&partial.path, &a.out)
        .with_context(|| format!("renaming to {}", a.out.display()))?;
    partial.done = true;
    sync_parent(&a.out)?;
    print(a, &header, bytes, &sha256, started);
    Ok(())
}

/// The whole stream into `file`: its length and SHA-256 (hex), which is
/// what `sha256sum FILE` prints.
async fn receive(meta: &MetaConn, file: &mut tokio::fs::File) -> anyhow::Result<(u64, String)> {
    let mut stream = meta
        .on_any(async |ch| {
            AdminClient::new(ch)
                .backup(BackupRequest {})
                .await
                .map(tonic::Response::into_inner)
        })
        .await
        .context("starting the backup")?;
    let (mut bytes, mut sha) = (0u64, Sha256::new());
    while let Some(chunk) = stream
        .message()
        .await
        .map_err(|s| anyhow::anyhow!("the backup stream broke: {}", s.message()))?
    {
        sha.update(&chunk.data);
        bytes += chunk.data.len() as u64;
        file.write_all(&chunk.data)
            .await
            .context("writing the backup")?;
    }
    Ok((bytes, hex::encode(sha.finalize())))
}

fn sync_parent(path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    crate::init::sync_dir(dir)
}

fn print(a: &BackupArgs, h: &BackupHeader, bytes: u64, sha256: &str, started: Instant) {
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "file": a.out.display().to_string(), "bytes": bytes,
                "raft_index": h.raft_index, "raft_term": h.raft_term,
                "created_ms": h.created_ms, "cluster_id": h.cluster_id,
                "versions": h.versions, "buckets": h.buckets, "access_keys": h.access_keys,
                "key_fingerprints": h.key_fingerprints, "write_key": h.write_key,
                "issuing_ca": h.issuing_ca, "sha256": sha256,
            })
        );
        return;
    }
    println!(
        "backup {}: {} at raft index {} (term {}), taken {}",
        a.out.display(),
        human_bytes(bytes),
        h.raft_index,
        h.raft_term,
        utc(h.created_ms)
    );
    let or_none = crate::restore::print::or_none;
    println!("  cluster        {}", or_none(&h.cluster_id));
    println!(
        "  holds          {} versions, {} buckets, {} access keys",
        h.versions, h.buckets, h.access_keys
    );
    println!(
        "  master keys    {} (restore needs every one; write key {})",
        or_none(&h.key_fingerprints.join(", ")),
        or_none(&h.write_key)
    );
    println!("  issuing CA     {}", or_none(&h.issuing_ca));
    println!("  sha256         {sha256}");
    println!("  took           {:.1} s", started.elapsed().as_secs_f64());
}

/// Milliseconds since the epoch as "YYYY-MM-DD HH:MM:SS UTC".
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to a civil date (Howard Hinnant's days_from_civil, inverted).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000_123), "2023-11-14 22:13:20 UTC");
    }
}
