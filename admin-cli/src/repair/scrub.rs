//! The scrub half of `hamster repair`: StartRepair answers at once, then
//! the passes are followed through `Admin.ScrubProgress` (any meta-server)
//! every second until each started blob-server has finished and delivered
//! its findings. One that is marked down, lost its pass (restarted), or
//! cannot be asked for [`GIVE_UP_AFTER`] is named and counted unreachable.

use std::collections::BTreeMap;
use std::time::Duration;

use hamster_proto::pb::{
    BlobScrub, ScrubProgressRequest, StartRepairResponse, admin_client::AdminClient,
};
use tokio::time::Instant;

use crate::conn::MetaConn;
use crate::rotate::progress;

/// How long one ScrubProgress read may take (the meta-server asks each
/// blob-server with a 10 s timeout, in parallel).
const POLL_TIMEOUT: Duration = Duration::from_secs(20);
/// A blob-server that cannot be asked this long is given up on.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(30);
/// Without a terminal, a progress line this often.
const LINE_EVERY: Duration = Duration::from_secs(10);

/// The scrub's totals, as the final report shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub blobs_started: Vec<String>,
    /// Passes finished with their findings delivered.
    pub blobs_scrubbed: u32,
    /// Not started, or given up on while followed.
    pub blobs_unreachable: Vec<String>,
    pub shards_checked: u64,
    pub bytes_checked: u64,
    /// Moved aside by the passes, plus missing from the servers' lists.
    pub corrupt: u64,
    /// Still scrubbing when the follow stopped (the deadline).
    pub still_running: Vec<String>,
}

impl Totals {
    /// Before any pass is followed: what StartRepair answered.
    pub fn started(s: &StartRepairResponse) -> Self {
        Self {
            blobs_started: s.blobs_started.clone(),
            blobs_unreachable: s.blobs_unreachable.clone(),
            corrupt: s.missing,
            ..Self::default()
        }
    }
}

/// What one ScrubProgress answer says of a followed blob-server.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    Running,
    Done,
    /// Will not finish: marked down, or its pass is gone.
    Lost(String),
    /// Could not be asked this time.
    Failed(String),
}

pub fn seen(b: Option<&BlobScrub>) -> Seen {
    let Some(b) = b else {
        return Seen::Failed("not in the registry".into());
    };
    if b.error == "marked down" {
        return Seen::Lost(b.error.clone());
    }
    if !b.error.is_empty() {
        return Seen::Failed(b.error.clone());
    }
    if b.started_ms == 0 {
        return Seen::Lost("restarted: its scrub pass was lost".into());
    }
    if b.finished_ms > 0 && b.finished_ms >= b.started_ms {
        Seen::Done
    } else {
        Seen::Running
    }
}

/// One followed blob-server.
#[derive(Default)]
struct Followed {
    last: Option<BlobScrub>,
    failing_since: Option<Instant>,
    done: bool,
}

async fn poll(meta: &MetaConn) -> anyhow::Result<Vec<BlobScrub>> {
    let read = meta.on_any(async |ch| {
        AdminClient::new(ch)
            .scrub_progress(ScrubProgressRequest {})
            .await
            .map(|r| r.into_inner().blobs)
    });
    tokio::time::timeout(POLL_TIMEOUT, read)
        .await
        .map_err(|_| anyhow::anyhow!("no ScrubProgress answer within {POLL_TIMEOUT:?}"))?
}

/// Follows every started pass until all ended or `deadline`; answers
/// the totals (`still_running` names those the deadline cut short).
pub async fn follow(meta: &MetaConn, start: &StartRepairResponse, deadline: Instant) -> Totals {
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut out = Totals::started(start);
    let mut followed: BTreeMap<String, Followed> = start
        .blobs_started
        .iter()
        .map(|id| (id.clone(), Followed::default()))
        .collect();
    let mut last_line = Instant::now();
    let mut last_error: Option<anyhow::Error> = None;
    while followed.values().any(|f| !f.done) && Instant::now() < deadline {
        match poll(meta).await {
            Ok(blobs) => {
                last_error = None;
                let now = Instant::now();
                let mut gone = Vec::new();
                for (id, f) in followed.iter_mut().filter(|(_, f)| !f.done) {
                    let b = blobs.iter().find(|b| &b.blob_id == id);
                    match seen(b) {
                        s @ (Seen::Running | Seen::Done) => {
                            f.failing_since = None;
                            f.done = s == Seen::Done;
                            f.last = b.cloned();
                        }
                        Seen::Lost(why) => gone.push((id.clone(), why)),
                        Seen::Failed(why) => {
                            let since = *f.failing_since.get_or_insert(now);
                            if now.duration_since(since) >= GIVE_UP_AFTER {
                                gone.push((id.clone(), why));
                            }
                        }
                    }
                }
                for (id, why) in gone {
                    eprintln!(
                        "{}warning: blob-server {id} not scrubbed: {why}",
                        clear(bar)
                    );
                    followed.remove(&id);
                    out.blobs_unreachable.push(id);
                }
            }
            Err(e) => last_error = Some(e),
        }
        let (tail, done, total) = line(&followed);
        if bar {
            progress(done, total, false, &tail);
        } else if last_line.elapsed() >= LINE_EVERY {
            eprintln!("scrub: {tail}");
            last_line = Instant::now();
        }
        if followed.values().all(|f| f.done) {
            break;
        }
        tokio::time::sleep_until((Instant::now() + Duration::from_secs(1)).min(deadline)).await;
    }
    if bar {
        eprintln!();
    }
    if let Some(e) = last_error {
        eprintln!("warning: the last ScrubProgress read failed: {e:#}");
    }
    for (id, f) in followed {
        if let Some(b) = &f.last {
            out.shards_checked += b.shards_checked;
            out.bytes_checked += b.bytes_checked;
            out.corrupt += b.corrupt;
        }
        if f.done {
            out.blobs_scrubbed += 1;
        } else {
            out.still_running.push(id);
        }
    }
    out
}

/// "\r" and a cleared line when a bar is on screen.
fn clear(bar: bool) -> &'static str {
    if bar { "\r\x1b[2K" } else { "" }
}

/// The progress line: its text, bytes checked and bytes to check.
fn line(followed: &BTreeMap<String, Followed>) -> (String, u64, u64) {
    let (mut done, mut total, mut shards, mut corrupt) = (0, 0, 0, 0);
    for b in followed.values().filter_map(|f| f.last.as_ref()) {
        done += b.bytes_checked;
        total += b.bytes_total.max(b.bytes_checked);
        shards += b.shards_checked;
        corrupt += b.corrupt;
    }
    let finished = followed.values().filter(|f| f.done).count();
    let tail = format!(
        "{finished} of {} blob-servers done, {shards} shards, {:.1} of {:.1} GiB checked, {corrupt} corrupt",
        followed.len(),
        gib(done),
        gib(total),
    );
    (tail, done, total)
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(started: i64, finished: i64, error: &str) -> BlobScrub {
        BlobScrub {
            blob_id: "b1".into(),
            started_ms: started,
            finished_ms: finished,
            error: error.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_pass_is_done_once_it_shows_an_end_after_its_start() {
        assert_eq!(seen(Some(&blob(100, 0, ""))), Seen::Running);
        assert_eq!(seen(Some(&blob(100, 250, ""))), Seen::Done);
        assert_eq!(seen(Some(&blob(100, 100, ""))), Seen::Done);
        // A later pass joined by another caller: still running.
        assert_eq!(seen(Some(&blob(300, 0, ""))), Seen::Running);
    }

    #[test]
    fn down_restarted_and_unanswering_servers_are_told_apart() {
        assert!(matches!(
            seen(Some(&blob(0, 0, "marked down"))),
            Seen::Lost(_)
        ));
        // Answered, but no pass since it started: ours was lost.
        assert!(matches!(seen(Some(&blob(0, 0, ""))), Seen::Lost(_)));
        assert!(matches!(
            seen(Some(&blob(0, 0, "connection refused"))),
            Seen::Failed(_)
        ));
        assert!(matches!(seen(None), Seen::Failed(_)));
    }

    #[test]
    fn totals_start_from_the_missing_shards_and_unreachable_servers() {
        let t = Totals::started(&StartRepairResponse {
            blobs_started: vec!["a".into(), "b".into()],
            blobs_unreachable: vec!["c".into()],
            missing: 4,
            ..Default::default()
        });
        assert_eq!(t.corrupt, 4);
        assert_eq!(t.blobs_unreachable, ["c"]);
        assert_eq!(t.blobs_scrubbed, 0);
    }
}
