//! `hamster blob rebalance`: wakes the meta leader's mover and follows
//! the balance (`ListBlobServers`) every 2 s until every server in
//! service is within the band of its target (exit 0), or the timeout
//! (exit 2; the mover goes on). The mover also runs by itself: this only
//! hurries and watches it.

use std::io::IsTerminal;
use std::time::Duration;

use hamster_proto::pb::{Balance, RebalanceRequest};
use tokio::time::Instant;

use super::list::{distance, worst};
use super::{FollowArgs, LINE_EVERY, balance_json, balance_line, human_bytes};
use crate::Exit;
use crate::conn::MetaConn;
use crate::rotate::progress;

#[derive(Debug, clap::Args)]
pub struct RebalanceArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    #[command(flatten)]
    pub follow: FollowArgs,
}

const POLL_EVERY: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Balanced,
    TimedOut,
    Started,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Balanced => "balanced",
            Outcome::TimedOut => "timeout",
            Outcome::Started => "started",
        }
    }
}

/// Bytes above their target, summed over the servers: what is left to
/// move (the bar's measure).
fn excess(b: &Balance) -> u64 {
    b.servers
        .iter()
        .map(|s| s.bytes_stored.saturating_sub(s.target_bytes))
        .sum()
}

/// The progress line's text.
fn tail(b: &Balance) -> String {
    let out = b.servers.iter().filter(|s| !s.within_band).count();
    let farthest = worst(b).map_or(String::new(), |w| {
        format!(
            "; farthest: {} holds {} of target {} ({})",
            w.id,
            human_bytes(w.bytes_stored),
            human_bytes(w.target_bytes),
            distance(w)
        )
    });
    let mover = if b.moving { "moving" } else { "idle" };
    format!(
        "{out} of {} servers outside the {} % band{farthest}; {} above target; mover {mover}",
        b.servers.len(),
        b.band_pct,
        human_bytes(excess(b)),
    )
}

pub async fn run(a: &RebalanceArgs) -> anyhow::Result<()> {
    let f = &a.follow;
    let began = Instant::now();
    let deadline = began + Duration::from_secs(f.timeout_secs);
    let r = super::call(&a.meta, async |mut c| {
        c.rebalance(RebalanceRequest {})
            .await
            .map(tonic::Response::into_inner)
    })
    .await?
    .map_err(|s| super::refused("rebalance", &s))?;
    let first = r.balance.unwrap_or_default();
    if !f.json {
        println!("{}", balance_line(&first));
    }
    let (outcome, last) = if first.within_band {
        (Outcome::Balanced, first)
    } else if f.no_wait {
        (Outcome::Started, first)
    } else {
        follow(&a.meta, first, deadline).await
    };
    let secs = began.elapsed().as_secs();
    if f.json {
        println!(
            "{}",
            serde_json::json!({
                "outcome": outcome.name(),
                "seconds": secs,
                "balance": balance_json(Some(&last)),
            })
        );
    }
    match outcome {
        Outcome::Balanced => {
            if !f.json {
                println!(
                    "balanced in {secs} s: every server in service is within the {} % band",
                    last.band_pct
                );
            }
            Ok(())
        }
        Outcome::Started => {
            if !f.json {
                println!("the mover is awake; follow it with `hamster blob rebalance`");
            }
            Ok(())
        }
        Outcome::TimedOut => Err(Exit {
            code: 2,
            message: format!(
                "timed out after {} s: {}. The mover goes on; `hamster blob rebalance` follows \
                 it again",
                f.timeout_secs,
                tail(&last)
            ),
        }
        .into()),
    }
}

/// Polls every 2 s until the balance is within the band or `deadline`;
/// answers the last balance seen.
async fn follow(meta: &MetaConn, first: Balance, deadline: Instant) -> (Outcome, Balance) {
    let bar = std::io::stderr().is_terminal();
    let total = excess(&first);
    let mut last = first;
    let mut last_line = Instant::now();
    let outcome = loop {
        tokio::time::sleep_until((Instant::now() + POLL_EVERY).min(deadline)).await;
        let line = match super::servers(meta).await {
            Ok(r) => {
                last = r.balance.unwrap_or_default();
                if last.within_band {
                    break Outcome::Balanced;
                }
                tail(&last)
            }
            Err(e) => format!("the meta tier did not answer: {e:#}"),
        };
        if bar {
            let done = total.saturating_sub(excess(&last));
            progress(done, total, false, &format!("{line}\x1b[K"));
        } else if last_line.elapsed() >= LINE_EVERY {
            eprintln!("rebalance: {line}");
            last_line = Instant::now();
        }
        if Instant::now() >= deadline {
            break Outcome::TimedOut;
        }
    };
    if bar {
        eprintln!();
    }
    (outcome, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::list::tests::bal;

    #[test]
    fn what_is_left_to_move_is_the_bytes_above_target() {
        let b = Balance {
            band_pct: 10,
            servers: vec![
                bal("a", 30 << 20, 20 << 20, false),
                bal("b", 25 << 20, 20 << 20, false),
                bal("new", 5 << 20, 20 << 20, false),
            ],
            ..Default::default()
        };
        assert_eq!(excess(&b), 15 << 20);
        assert_eq!(
            tail(&b),
            "3 of 3 servers outside the 10 % band; farthest: new holds 5.0 MiB of target \
             20.0 MiB (-75 %); 15.0 MiB above target; mover idle"
        );
    }
}
