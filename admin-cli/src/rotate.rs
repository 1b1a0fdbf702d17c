//! `hamster rotate-key`: opens a master-key rotation and follows it until
//! it closes.
//!
//! The meta tier refuses to open it, naming the nodes, until every live
//! key holder (meta-servers and gateways) reports the next key loaded.
//! From the opening on, new writes use the next key; the meta leader
//! rewraps every existing data key and S3 secret in batches through Raft
//! and closes the rotation only when a full scan finds none left on the
//! old key. Running the command again while a rotation is open follows
//! that rotation: it is how to resume watching after an interruption.

use std::io::Write;
use std::time::{Duration, Instant};

use hamster_proto::pb::{StartKeyRotationRequest, admin_client::AdminClient};

use crate::conn::{MetaConn, StatusPoller};

#[derive(Debug, clap::Args)]
pub struct RotateKeyArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    /// Rotate to this key (default: the answering meta-server's next key).
    #[arg(long)]
    pub to: Option<String>,
    /// Progress as JSON lines instead of a bar.
    #[arg(long)]
    pub json: bool,
    /// Open the rotation and return without following it.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up following after the meta tier has not answered for this long.
    #[arg(long, default_value_t = 120)]
    pub unreachable_secs: u64,
    /// Give up following when the count on the old key has not moved for
    /// this long (the rotation stays open; the leader's log says why).
    #[arg(long, default_value_t = 300)]
    pub stall_secs: u64,
}

pub async fn run(a: &RotateKeyArgs) -> anyhow::Result<()> {
    let started = AdminClient::new(a.meta.channel()?)
        .start_key_rotation(StartKeyRotationRequest {
            new_kek_fingerprint: a.to.clone().unwrap_or_default(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("rotate-key refused: {}", s.message()))?
        .into_inner();
    let (old, new, total) = (
        started.old_kek_fingerprint,
        started.new_kek_fingerprint,
        started.to_rewrap,
    );
    if a.json {
        println!(
            "{}",
            serde_json::json!({"event": "opened", "old": old, "new": new, "to_rewrap": total})
        );
    } else {
        println!("rotation open: {old} -> {new}; {total} keys to rewrap; new writes use {new}");
    }
    if a.no_wait {
        return Ok(());
    }
    let mut poller = StatusPoller::new(a.unreachable_secs);
    let mut last_move = (Instant::now(), u64::MAX);
    loop {
        let Some(s) = poller.poll(&a.meta).await? else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let closed = s.key_rotation == "none" && s.master_key_fingerprint == new;
        let left = if closed { 0 } else { s.versions_on_old_key };
        if a.json {
            println!(
                "{}",
                serde_json::json!({
                    "event": if closed { "closed" } else { "progress" },
                    "key_rotation": s.key_rotation,
                    "versions_on_old_key": left,
                    "to_rewrap": total,
                })
            );
        } else {
            bar(total, left);
        }
        if closed {
            if !a.json {
                println!("\nrotation closed: no key is left on {old}; every node may now drop it");
            }
            return Ok(());
        }
        anyhow::ensure!(
            s.key_rotation == "rewrapping",
            "the rotation is no longer open, but the write key is {} (not {new})",
            s.master_key_fingerprint
        );
        // Stalled: say so and stop following, rather than wait forever.
        let remaining = left + s.access_keys_on_old_key;
        if remaining != last_move.1 {
            last_move = (Instant::now(), remaining);
        }
        anyhow::ensure!(
            last_move.0.elapsed() < Duration::from_secs(a.stall_secs),
            "no progress for {} s with {remaining} keys left on {old}; the rotation stays \
             open. The meta leader's log says why (\"master-key rotation stalled\", e.g. \
             a leader without both keys); fix it and run rotate-key again to follow",
            a.stall_secs
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A one-line progress bar on stderr.
fn bar(total: u64, left: u64) {
    let done = total.saturating_sub(left);
    progress(
        done,
        total,
        true,
        &format!("{done}/{total} rewrapped, {left} left"),
    );
}

/// A one-line progress bar on stderr, `done` of `total`, then `tail`.
/// With nothing to count, the bar is full if `empty_full`.
pub fn progress(done: u64, total: u64, empty_full: bool, tail: &str) {
    const WIDTH: u64 = 40;
    let empty = if empty_full { WIDTH } else { 0 };
    let filled = (done * WIDTH)
        .checked_div(total)
        .unwrap_or(empty)
        .min(WIDTH);
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "\r[{}{}] {tail}",
        "#".repeat(filled as usize),
        " ".repeat((WIDTH - filled) as usize)
    );
    let _ = err.flush();
}
