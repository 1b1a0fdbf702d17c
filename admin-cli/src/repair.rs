//! `hamster repair`: a full check now, followed to the end.
//!
//! One meta-server starts an unthrottled scrub pass on every live
//! blob-server, records the shards missing from their lists, and answers
//! at once; the command follows the passes ([`scrub`]) until all have
//! delivered what they found, while the meta leader's planner rebuilds
//! it. Then it follows `Admin.Durability` every second until nothing is
//! under-replicated (exit 0), or nothing repairable is left while some
//! units are unrecoverable (exit 1, naming them), or `--timeout-secs`
//! passes (exit 2, naming what is left). The report also counts (and
//! `--json` lists) the shards held since a restore (ADR 0026).

mod scrub;

use std::io::IsTerminal;
use std::time::Duration;

use hamster_proto::pb::{
    DegradedUnit, DurabilityRequest, DurabilityResponse, StartRepairRequest, StartRepairResponse,
    admin_client::AdminClient,
};
use scrub::Totals;
use tokio::time::Instant;

use crate::Exit;
use crate::conn::MetaConn;
use crate::rotate::progress;

#[derive(Debug, clap::Args)]
pub struct RepairArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    /// Print one JSON object at the end instead of text.
    #[arg(long)]
    pub json: bool,
    /// Start the scrub passes, then return without following them or the
    /// repair.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up (exit 2) after this long, the scrub included.
    #[arg(long, default_value_t = 3600)]
    pub timeout_secs: u64,
}

/// The most units one Durability answer lists.
const MAX_UNITS: u32 = 1000;
/// How long one Durability read may take.
const POLL_TIMEOUT: Duration = Duration::from_secs(20);
/// Without a terminal, a progress line this often.
const LINE_EVERY: Duration = Duration::from_secs(10);

/// How the follow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Nothing under-replicated.
    Repaired,
    /// Nothing repairable left, some units below k good shards.
    Unrecoverable,
    TimedOut,
    /// `--no-wait`: not followed.
    Started,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Repaired => "repaired",
            Outcome::Unrecoverable => "unrecoverable",
            Outcome::TimedOut => "timeout",
            Outcome::Started => "started",
        }
    }
}

/// What a Durability answer means for the follow, if it ends it.
fn judge(d: &DurabilityResponse) -> Option<Outcome> {
    if d.under_replicated == 0 {
        Some(Outcome::Repaired)
    } else if d.repair_queue == 0 && d.unrecoverable > 0 {
        Some(Outcome::Unrecoverable)
    } else {
        None
    }
}

/// "bucket/key@version", "bucket/key@version part 3", or
/// "bucket/key upload U part 3".
pub fn unit_name(u: &DegradedUnit) -> String {
    let mut s = format!("{}/{}", u.bucket, u.key);
    if u.upload_id.is_empty() {
        s.push_str(&format!("@{}", u.version_id));
    } else {
        s.push_str(&format!(" upload {}", u.upload_id));
    }
    if u.part_number > 0 {
        s.push_str(&format!(" part {}", u.part_number));
    }
    s
}

fn unit_json(u: &DegradedUnit) -> serde_json::Value {
    serde_json::json!({
        "bucket": u.bucket, "key": u.key, "version_id": u.version_id,
        "upload_id": u.upload_id, "part_number": u.part_number, "good": u.good,
        "data_shards": u.data_shards, "total_shards": u.total_shards,
    })
}

fn unrecoverable_units(d: &DurabilityResponse) -> Vec<&DegradedUnit> {
    d.units.iter().filter(|u| u.good < u.data_shards).collect()
}

async fn start(meta: &MetaConn) -> anyhow::Result<StartRepairResponse> {
    meta.on_any(async |ch| {
        AdminClient::new(ch)
            .start_repair(StartRepairRequest {})
            .await
            .map(tonic::Response::into_inner)
    })
    .await
}

/// One Durability read, bounded (a hung connection must not outlive
/// the command's deadline).
async fn durability(meta: &MetaConn, limit: u32) -> anyhow::Result<DurabilityResponse> {
    let read = meta.on_any(async |ch| {
        AdminClient::new(ch)
            .durability(DurabilityRequest { limit })
            .await
            .map(tonic::Response::into_inner)
    });
    tokio::time::timeout(POLL_TIMEOUT, read)
        .await
        .map_err(|_| anyhow::anyhow!("no Durability answer within {POLL_TIMEOUT:?}"))?
}

pub async fn run(a: &RepairArgs) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(a.timeout_secs);
    let started = match tokio::time::timeout_at(deadline, start(&a.meta)).await {
        Ok(r) => r.map_err(|e| e.context("starting the repair"))?,
        Err(_) => {
            return Err(Exit {
                code: 2,
                message: format!(
                    "timed out after {} s waiting for the repair to start",
                    a.timeout_secs
                ),
            }
            .into());
        }
    };
    if !started.blobs_unreachable.is_empty() {
        // Their shards count as good until the leader marks them down.
        eprintln!(
            "warning: not scrubbed (unreachable): {}; their shards count as good until the \
             meta tier marks them down",
            started.blobs_unreachable.join(", ")
        );
    }
    if !started.blobs_unlisted.is_empty() {
        eprintln!(
            "warning: could not list the shards of {}: shards missing from them are found by \
             the leader's sweep later",
            started.blobs_unlisted.join(", ")
        );
    }
    if !a.json {
        println!(
            "scrub started on {} blob-servers; {} shards missing from their servers",
            started.blobs_started.len(),
            started.missing
        );
    }
    if a.no_wait {
        let last = durability(&a.meta, MAX_UNITS).await?;
        return report(a, &Totals::started(&started), Outcome::Started, &last);
    }
    let totals = scrub::follow(&a.meta, &started, deadline).await;
    if !a.json {
        println!(
            "scrubbed {} blob-servers: {} shards, {} bytes checked, {} corrupt or missing",
            totals.blobs_scrubbed, totals.shards_checked, totals.bytes_checked, totals.corrupt
        );
    }
    let (outcome, last) = if totals.still_running.is_empty() {
        follow(a, deadline).await?
    } else {
        (Outcome::TimedOut, durability(&a.meta, MAX_UNITS).await?)
    };
    report(a, &totals, outcome, &last)
}

/// Polls Durability every second until it ends the follow or the
/// deadline passes; answers the last view, with its unit list.
async fn follow(
    a: &RepairArgs,
    deadline: Instant,
) -> anyhow::Result<(Outcome, DurabilityResponse)> {
    let bar = std::io::stderr().is_terminal();
    let mut base: Option<u64> = None;
    let mut last: Option<DurabilityResponse> = None;
    let mut last_error: Option<anyhow::Error>;
    let mut last_line = Instant::now();
    let outcome = loop {
        // The list is fetched once at the end; each poll only counts.
        match durability(&a.meta, 1).await {
            Ok(d) => {
                last_error = None;
                let base = *base.get_or_insert(d.shards_repaired);
                let done = d.shards_repaired.saturating_sub(base);
                if let Some(o) = judge(&d) {
                    last = Some(d);
                    break o;
                }
                let tail = format!(
                    "{done} shards rebuilt, {} units waiting, {} unrecoverable",
                    d.repair_queue, d.unrecoverable
                );
                if bar {
                    progress(done, done + d.repair_queue, false, &tail);
                } else if last_line.elapsed() >= LINE_EVERY {
                    eprintln!("repair: {tail}");
                    last_line = Instant::now();
                }
                last = Some(d);
            }
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= deadline {
            break Outcome::TimedOut;
        }
        tokio::time::sleep_until((Instant::now() + Duration::from_secs(1)).min(deadline)).await;
    };
    if bar {
        eprintln!();
    }
    if outcome == Outcome::Repaired
        && let Some(mut d) = last
    {
        // The view that said so (a later one may already show new writes),
        // with every held orphan it can list (the polls ask for one row).
        if !d.orphans.is_empty()
            && let Ok(full) = durability(&a.meta, MAX_UNITS).await
        {
            d.held_orphans = full.held_orphans;
            d.orphans = full.orphans;
        }
        return Ok((outcome, d));
    }
    // The final view with its units; the last poll if that read fails.
    let last = match (durability(&a.meta, MAX_UNITS).await, last) {
        (Ok(d), _) => d,
        (Err(_), Some(d)) => d,
        (Err(e), None) => {
            let e = last_error.unwrap_or(e);
            return Err(Exit {
                code: 2,
                message: format!("the meta tier never answered Durability: {e:#}"),
            }
            .into());
        }
    };
    // The final read may have moved on (e.g. the last repair landed).
    let outcome = judge(&last).unwrap_or(outcome);
    Ok((outcome, last))
}

fn report(
    a: &RepairArgs,
    scrub: &Totals,
    outcome: Outcome,
    d: &DurabilityResponse,
) -> anyhow::Result<()> {
    let lost = unrecoverable_units(d);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "outcome": outcome.name(),
                "scrub": {
                    "blobs_started": scrub.blobs_started,
                    "blobs_scrubbed": scrub.blobs_scrubbed,
                    "blobs_unreachable": scrub.blobs_unreachable,
                    "shards_checked": scrub.shards_checked,
                    "bytes_checked": scrub.bytes_checked,
                    "corrupt": scrub.corrupt,
                },
                "under_replicated": d.under_replicated,
                "unrecoverable": d.unrecoverable,
                "repair_queue": d.repair_queue,
                "shards_repaired": d.shards_repaired,
                "last_scrub_ms": d.last_scrub_ms,
                "unrecoverable_units": lost.iter().map(|u| unit_json(u)).collect::<Vec<_>>(),
                "held_orphans": d.held_orphans,
                "orphans": d.orphans.iter().map(crate::orphans::orphan_json).collect::<Vec<_>>(),
            })
        );
    } else {
        for u in &lost {
            println!(
                "unrecoverable  {}  ({} of {} data shards good)",
                unit_name(u),
                u.good,
                u.data_shards
            );
        }
        if d.unrecoverable > lost.len() as u64 {
            println!(
                "... and {} more unrecoverable",
                d.unrecoverable - lost.len() as u64
            );
        }
        if d.held_orphans > 0 {
            println!(
                "{} shards no metadata names are held since a restore (hamster orphans list)",
                d.held_orphans
            );
        }
    }
    let summary = format!(
        "{} under-replicated ({} waiting for repair, {} unrecoverable); {} shards repaired in all",
        d.under_replicated, d.repair_queue, d.unrecoverable, d.shards_repaired
    );
    match outcome {
        Outcome::Repaired => {
            if !a.json {
                println!("repaired: every version and part has all its shards");
            }
            Ok(())
        }
        Outcome::Started => {
            if !a.json {
                println!("repair started: {summary}");
            }
            Ok(())
        }
        Outcome::Unrecoverable => Err(Exit {
            code: 1,
            message: format!(
                "{} units are unrecoverable (fewer than k good shards): {summary}",
                d.unrecoverable
            ),
        }
        .into()),
        Outcome::TimedOut => {
            let waiting: Vec<String> = d
                .units
                .iter()
                .filter(|u| u.good >= u.data_shards)
                .take(20)
                .map(|u| format!("{} ({}/{} good)", unit_name(u), u.good, u.total_shards))
                .collect();
            let scrubbing = if scrub.still_running.is_empty() {
                String::new()
            } else {
                format!(" Still scrubbing: {}.", scrub.still_running.join(", "))
            };
            Err(Exit {
                code: 2,
                message: format!(
                    "timed out after {} s: {summary}.{scrubbing} Left: {}",
                    a.timeout_secs,
                    if waiting.is_empty() {
                        "-".into()
                    } else {
                        waiting.join(", ")
                    }
                ),
            }
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(under: u64, lost: u64) -> DurabilityResponse {
        DurabilityResponse {
            under_replicated: under,
            unrecoverable: lost,
            repair_queue: under - lost,
            ..Default::default()
        }
    }

    #[test]
    fn the_follow_ends_when_all_is_repaired_or_only_lost_units_are_left() {
        assert_eq!(judge(&view(0, 0)), Some(Outcome::Repaired));
        assert_eq!(judge(&view(3, 0)), None);
        assert_eq!(judge(&view(3, 1)), None, "repairs are still queued");
        assert_eq!(judge(&view(2, 2)), Some(Outcome::Unrecoverable));
    }

    #[test]
    fn units_are_named_by_version_or_upload_and_part() {
        let v = DegradedUnit {
            bucket: "b".into(),
            key: "k/x".into(),
            version_id: "v1".into(),
            ..Default::default()
        };
        assert_eq!(unit_name(&v), "b/k/x@v1");
        let p = DegradedUnit {
            part_number: 3,
            ..v.clone()
        };
        assert_eq!(unit_name(&p), "b/k/x@v1 part 3");
        let open = DegradedUnit {
            version_id: String::new(),
            upload_id: "u9".into(),
            part_number: 2,
            ..v
        };
        assert_eq!(unit_name(&open), "b/k/x upload u9 part 2");
    }
}
