//! `hamster blob drain ID [--to NEW]` and `hamster blob replace OLD --with
//! NEW`: the meta tier stops placing shards on the server, its leader's
//! mover copies each shard away and swaps each map through Raft, then
//! empties the server. The command follows `ListBlobServers` every second:
//! first the shards maps name on it (start → 0), then its store as its
//! heartbeat reports it (→ 0). Exit 0 when both are 0; 1 if the drain was
//! refused, cancelled (undrain) or the server removed meanwhile; 2 on
//! timeout, naming what is left (the drain goes on without the command).

use std::io::IsTerminal;
use std::time::Duration;

use hamster_proto::pb::{BlobServer, DrainBlobRequest};
use tokio::time::Instant;

use super::{FollowArgs, LINE_EVERY, human_bytes};
use crate::Exit;
use crate::conn::MetaConn;
use crate::rotate::progress;

#[derive(Debug, clap::Args)]
pub struct DrainArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    /// The blob-server to drain.
    pub id: String,
    /// Move its shards onto this server only (what `blob replace` does).
    #[arg(long, value_name = "NEW")]
    pub to: Option<String>,
    #[command(flatten)]
    pub follow: FollowArgs,
}

#[derive(Debug, clap::Args)]
pub struct ReplaceArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    /// The blob-server to empty.
    pub old: String,
    /// The server that takes every shard of OLD (joined, active, empty
    /// or not).
    #[arg(long, value_name = "NEW")]
    pub with: String,
    #[command(flatten)]
    pub follow: FollowArgs,
}

/// With shards left and none moved for this long, the progress line
/// says the drain is stuck.
const STALL_AFTER: Duration = Duration::from_secs(60);

pub async fn run_drain(a: &DrainArgs) -> anyhow::Result<()> {
    let to = a.to.clone().unwrap_or_default();
    drain(&a.meta, &a.id, &to, &a.follow, false).await
}

pub async fn run_replace(a: &ReplaceArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.old != a.with,
        "--with must name another server than {}",
        a.old
    );
    drain(&a.meta, &a.old, &a.with, &a.follow, true).await
}

/// Where a drain stands, read from the server's registry row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Maps still name this many shards on it (0: all moved, the drain
    /// is being finished).
    Moving(u64),
    /// No map names it; its store still holds this many shards.
    Emptying(u64),
    /// No map names it and its store is empty.
    Drained,
    /// In service again (undrained).
    InService,
    Removed,
    /// Not registered.
    Unknown,
}

fn stage(b: Option<&BlobServer>) -> Stage {
    let Some(b) = b else {
        return Stage::Unknown;
    };
    match b.lifecycle.as_str() {
        "removed" => Stage::Removed,
        "drained" if b.shards_named > 0 => Stage::Moving(b.shards_named),
        "drained" if b.shards_stored > 0 => Stage::Emptying(b.shards_stored),
        "drained" => Stage::Drained,
        "draining" => Stage::Moving(b.shards_named),
        _ => Stage::InService,
    }
}

/// How the command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Drained,
    TimedOut,
    /// `--no-wait`.
    Started,
    /// Undrained by someone while followed.
    Cancelled,
    Removed,
    Unknown,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Drained => "drained",
            Outcome::TimedOut => "timeout",
            Outcome::Started => "started",
            Outcome::Cancelled => "cancelled",
            Outcome::Removed => "removed",
            Outcome::Unknown => "unknown",
        }
    }
}

/// Whether a stage ends the follow. "In service" ends it only once the
/// drain was seen under way (a read that does not show it yet is not a
/// cancel).
fn ends(s: Stage, seen_draining: bool) -> Option<Outcome> {
    match s {
        Stage::Drained => Some(Outcome::Drained),
        Stage::Removed => Some(Outcome::Removed),
        Stage::Unknown => Some(Outcome::Unknown),
        Stage::InService if seen_draining => Some(Outcome::Cancelled),
        Stage::InService | Stage::Moving(_) | Stage::Emptying(_) => None,
    }
}

/// What the progress line says after the bar.
fn tail(b: &BlobServer, start: u64, elapsed: Duration, stalled: Duration) -> String {
    let id = &b.id;
    let down = b.state == "down";
    match stage(Some(b)) {
        Stage::Moving(0) => format!("{id}: all {start} shards moved; finishing the drain"),
        Stage::Moving(named) => {
            let moved = start.saturating_sub(named);
            let mut s = format!("{id}: {moved} of {start} shards moved, {named} left");
            if moved > 0 && elapsed.as_secs_f64() >= 1.0 {
                s.push_str(&format!(
                    " ({:.1} shards/s)",
                    moved as f64 / elapsed.as_secs_f64()
                ));
            }
            if down {
                s.push_str(&format!(
                    "; {id} is DOWN: its shards are rebuilt from the others (slower)"
                ));
            } else if stalled >= STALL_AFTER {
                s.push_str(&format!(
                    "; nothing moved for {} s (the meta leader's log says why)",
                    stalled.as_secs()
                ));
            }
            s
        }
        Stage::Emptying(stored) => {
            let mut s = format!(
                "{id}: no map names it; its store still holds {stored} shards ({})",
                human_bytes(b.bytes_stored)
            );
            if down {
                s.push_str(&format!(
                    "; {id} is DOWN: it is emptied when it returns (removing it is safe now)"
                ));
            }
            s
        }
        Stage::Drained => format!("{id}: drained"),
        Stage::InService | Stage::Removed | Stage::Unknown => format!("{id}: {}", b.state),
    }
}

/// What is left, for the timeout's message.
fn left(b: Option<&BlobServer>, id: &str) -> String {
    let Some(b) = b else {
        return format!("the meta tier never answered about {id}");
    };
    let down = if b.state == "down" {
        format!(" ({id} is down)")
    } else {
        String::new()
    };
    match stage(Some(b)) {
        Stage::Moving(n) => format!("{n} shards on {id} are still named by shard maps{down}"),
        Stage::Emptying(n) => format!(
            "no map names {id}, but it still reports {n} shards ({}) in its store{down}",
            human_bytes(b.bytes_stored)
        ),
        _ => format!("{id} is {}", b.state),
    }
}

async fn drain(
    meta: &MetaConn,
    id: &str,
    to: &str,
    f: &FollowArgs,
    replace: bool,
) -> anyhow::Result<()> {
    let began = Instant::now();
    let deadline = began + Duration::from_secs(f.timeout_secs);
    let what = if replace {
        format!("replace {id} with {to}")
    } else {
        format!("drain {id}")
    };
    let req = DrainBlobRequest {
        id: id.to_string(),
        to: to.to_string(),
    };
    let answer = super::call(meta, async |mut c| {
        c.drain_blob(req.clone())
            .await
            .map(tonic::Response::into_inner)
    })
    .await?
    .map_err(|s| super::refused(&what, &s))?;
    let first = answer.server;
    let named = first.as_ref().map_or(0, |b| b.shards_named);
    let mut follow = Follow::new(id, named, began);
    follow.seen_draining = matches!(stage(first.as_ref()), Stage::Moving(_) | Stage::Emptying(_));
    if !f.json {
        let onto = if to.is_empty() {
            String::new()
        } else {
            format!(" onto {to}")
        };
        println!("{id} takes no new shards; {named} shards to move{onto}");
    }
    follow.last = first;
    let outcome = if f.no_wait {
        Outcome::Started
    } else {
        follow.run(meta, deadline).await
    };
    report(f, id, to, replace, &follow, outcome)
}

/// The follow's memory between polls.
struct Follow {
    id: String,
    /// Shards named on the server when the command started (or more, if
    /// a commit raced the drain).
    start: u64,
    began: Instant,
    last: Option<BlobServer>,
    seen_draining: bool,
    last_named: u64,
    last_move: Instant,
}

impl Follow {
    fn new(id: &str, start: u64, began: Instant) -> Self {
        Self {
            id: id.to_string(),
            start,
            began,
            last: None,
            seen_draining: false,
            last_named: start,
            last_move: began,
        }
    }

    /// Polls every second until the drain ends or `deadline`.
    async fn run(&mut self, meta: &MetaConn, deadline: Instant) -> Outcome {
        let bar = std::io::stderr().is_terminal();
        let mut last_line = Instant::now();
        let outcome = loop {
            let line = match super::servers(meta).await {
                Ok(r) => {
                    let b = r.servers.into_iter().find(|b| b.id == self.id);
                    let s = stage(b.as_ref());
                    if let Some(o) = ends(s, self.seen_draining) {
                        self.last = b.or(self.last.take());
                        break o;
                    }
                    self.seen_draining |= matches!(s, Stage::Moving(_) | Stage::Emptying(_));
                    let named = b.as_ref().map_or(0, |b| b.shards_named);
                    self.start = self.start.max(named);
                    if named != self.last_named {
                        self.last_named = named;
                        self.last_move = Instant::now();
                    }
                    self.last = b;
                    self.last.as_ref().map(|b| {
                        tail(
                            b,
                            self.start,
                            self.began.elapsed(),
                            self.last_move.elapsed(),
                        )
                    })
                }
                Err(e) => Some(format!("{}: the meta tier did not answer: {e:#}", self.id)),
            };
            if let Some(line) = line {
                let named = self.last.as_ref().map_or(0, |b| b.shards_named);
                if bar {
                    let done = self.start.saturating_sub(named);
                    progress(done, self.start, true, &format!("{line}{}", "\x1b[K"));
                } else if last_line.elapsed() >= LINE_EVERY {
                    eprintln!("drain: {line}");
                    last_line = Instant::now();
                }
            }
            if Instant::now() >= deadline {
                break Outcome::TimedOut;
            }
            tokio::time::sleep_until((Instant::now() + Duration::from_secs(1)).min(deadline)).await;
        };
        if bar {
            eprintln!();
        }
        outcome
    }

    fn moved(&self) -> u64 {
        let named = match self.last.as_ref() {
            Some(b) => b.shards_named,
            None => self.start,
        };
        self.start.saturating_sub(named)
    }
}

fn report(
    f: &FollowArgs,
    id: &str,
    to: &str,
    replace: bool,
    follow: &Follow,
    outcome: Outcome,
) -> anyhow::Result<()> {
    let secs = follow.began.elapsed().as_secs();
    let last = follow.last.as_ref();
    if f.json {
        println!(
            "{}",
            serde_json::json!({
                "id": id,
                "to": to,
                "outcome": outcome.name(),
                "shards_moved": follow.moved(),
                "shards_named": last.map_or(0, |b| b.shards_named),
                "shards_stored": last.map_or(0, |b| b.shards_stored),
                "bytes_stored": last.map_or(0, |b| b.bytes_stored),
                "state": last.map_or("", |b| b.state.as_str()),
                "seconds": secs,
            })
        );
    }
    let again = if replace {
        format!("hamster blob replace {id} --with {to}")
    } else if to.is_empty() {
        format!("hamster blob drain {id}")
    } else {
        format!("hamster blob drain {id} --to {to}")
    };
    match outcome {
        Outcome::Drained => {
            if !f.json {
                println!(
                    "{id} drained in {secs} s: {} shards moved; no shard map names it and its \
                     store is empty",
                    follow.moved()
                );
                if replace {
                    println!(
                        "next: hamster blob remove {id}   ({to} holds its shards; then stop \
                         {id}'s process and wipe its data dir)"
                    );
                } else {
                    println!(
                        "next: hamster blob remove {id} to retire it (then stop its process and \
                         wipe its data dir), or hamster blob undrain {id} to put it back"
                    );
                }
            }
            Ok(())
        }
        Outcome::Started => {
            if !f.json {
                println!("follow it with `{again}` (it goes on meanwhile) or `hamster blob list`");
            }
            Ok(())
        }
        Outcome::TimedOut => Err(Exit {
            code: 2,
            message: format!(
                "timed out after {} s: {}. The drain goes on; `{again}` follows it again, \
                 `hamster blob undrain {id}` cancels it",
                f.timeout_secs,
                left(last, id)
            ),
        }
        .into()),
        Outcome::Cancelled => Err(Exit {
            code: 1,
            message: format!(
                "the drain of {id} was cancelled (undrained) after {} shards moved; it takes \
                 new shards again",
                follow.moved()
            ),
        }
        .into()),
        Outcome::Removed => Err(Exit {
            code: 1,
            message: format!("{id} was removed while it drained"),
        }
        .into()),
        Outcome::Unknown => Err(Exit {
            code: 1,
            message: format!("{id} is not a registered blob-server"),
        }
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(lifecycle: &str, state: &str, named: u64, stored: u64) -> BlobServer {
        BlobServer {
            id: "b1".into(),
            lifecycle: lifecycle.into(),
            state: state.into(),
            shards_named: named,
            shards_stored: stored,
            bytes_stored: stored * 1024,
            ..Default::default()
        }
    }

    #[test]
    fn a_drain_ends_only_when_no_map_names_the_server_and_its_store_is_empty() {
        let at = |l, n, s| stage(Some(&row(l, "draining", n, s)));
        assert_eq!(at("draining", 40, 40), Stage::Moving(40));
        assert_eq!(at("draining", 0, 40), Stage::Moving(0), "not finished yet");
        assert_eq!(at("drained", 0, 12), Stage::Emptying(12));
        assert_eq!(at("drained", 0, 0), Stage::Drained);
        assert_eq!(at("removed", 0, 0), Stage::Removed);
        assert_eq!(at("in", 5, 5), Stage::InService);
        assert_eq!(stage(None), Stage::Unknown);
        for s in [Stage::Moving(3), Stage::Moving(0), Stage::Emptying(1)] {
            assert_eq!(ends(s, true), None, "{s:?}");
        }
        assert_eq!(ends(Stage::Drained, false), Some(Outcome::Drained));
    }

    #[test]
    fn back_in_service_is_a_cancel_only_once_the_drain_was_seen() {
        assert_eq!(ends(Stage::InService, false), None);
        assert_eq!(ends(Stage::InService, true), Some(Outcome::Cancelled));
        assert_eq!(ends(Stage::Removed, false), Some(Outcome::Removed));
        assert_eq!(ends(Stage::Unknown, false), Some(Outcome::Unknown));
    }

    #[test]
    fn the_progress_line_counts_moves_and_says_when_the_server_is_down() {
        let s = Duration::from_secs;
        let line = tail(&row("draining", "draining", 30, 100), 100, s(10), s(1));
        assert_eq!(line, "b1: 70 of 100 shards moved, 30 left (7.0 shards/s)");
        let line = tail(&row("draining", "down", 30, 100), 100, s(10), s(1));
        assert!(line.contains("b1 is DOWN"), "{line}");
        let line = tail(&row("draining", "draining", 30, 100), 100, s(200), s(90));
        assert!(line.ends_with("nothing moved for 90 s (the meta leader's log says why)"));
        let line = tail(&row("drained", "drained", 0, 3), 100, s(10), s(1));
        assert_eq!(
            line,
            "b1: no map names it; its store still holds 3 shards (3.0 KiB)"
        );
        let line = tail(&row("drained", "down", 0, 3), 100, s(10), s(1));
        assert!(line.contains("removing it is safe now"), "{line}");
    }

    #[test]
    fn a_timeout_names_what_is_left() {
        assert_eq!(
            left(Some(&row("draining", "down", 7, 7)), "b1"),
            "7 shards on b1 are still named by shard maps (b1 is down)"
        );
        assert_eq!(
            left(Some(&row("drained", "drained", 0, 2)), "b1"),
            "no map names b1, but it still reports 2 shards (2.0 KiB) in its store"
        );
        assert_eq!(left(None, "b1"), "the meta tier never answered about b1");
    }
}
