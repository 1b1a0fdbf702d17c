//! Scrub: walks every shard file verifying its header, every block CRC and
//! the shard checksum. A corrupt shard is moved aside into `quarantine/`
//! (never served again) and reported to the meta tier, which has it
//! rebuilt elsewhere. An I/O error is not corruption: a shard that fails
//! to read is judged unreadable (moved aside and reported alike) only if
//! it fails again in a later pass, so a one-off error (EIO once) never
//! costs a good shard; errors of the process, not the disk (out of
//! descriptors or memory), are never held against a shard.
//!
//! Quarantined copies are removed by a delete of their id (the meta tier
//! frees it once repaired); one it never frees (its unit deleted
//! meanwhile) is removed by the scrub a week after it was moved aside.
//!
//! The background walk is paced (`--scrub-rate`)
//! and pauses between passes. An on-demand pass (the `Scrub` RPC) runs at
//! full speed in its own task: the call only starts it (or joins the one
//! running), since a pass over a real disk outlives any connection, and
//! `ScrubStatus` follows it. Its end shows there only once its findings
//! were delivered. Reads that hit a corrupt block go through
//! [`Scrubber::set_aside`] too.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::pace::Pacer;
use crate::report::Reporter;
use crate::store::{Store, StoreError};

/// The first background pass starts after a random delay up to this (or
/// the pause, if shorter), so a fleet restarted together does not scrub in
/// lockstep.
const MAX_FIRST_DELAY: Duration = Duration::from_secs(60);
/// How long an on-demand pass keeps trying to deliver its report itself
/// (the background sender goes on after that).
const REPORT_PATIENCE: Duration = Duration::from_secs(30);
/// Corrupt ids a status answer lists at most (the count is always whole).
pub const MAX_LISTED_CORRUPT: usize = 1000;
/// How long a quarantined copy is kept if the meta tier never frees it.
pub const QUARANTINE_KEEP: Duration = Duration::from_secs(7 * 24 * 3600);
/// Shards remembered as failing to read once (beyond this, a new one is
/// not remembered, so not judged, until others are resolved).
const MAX_STRIKES: usize = 100_000;

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassStats {
    pub shards_checked: u64,
    pub bytes_checked: u64,
    /// Shards this pass moved aside.
    pub corrupt: Vec<String>,
    pub finished_ms: i64,
}

/// The on-demand pass, as `ScrubStatus` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OnDemand {
    pub started_ms: i64,
    /// The shard files' total size when it started (0 until counted).
    pub bytes_total: u64,
    /// So far. As answered, `finished_ms` is 0 until the pass ended and
    /// its findings were delivered to the meta tier; `corrupt` lists at
    /// most [`MAX_LISTED_CORRUPT`] ids.
    pub stats: PassStats,
    /// Shards the pass moved aside, all of them counted.
    pub corrupt_count: u64,
}

/// How a pass is run.
enum Mode {
    /// The background walk: paced, yielding to on-demand passes.
    Background(Pacer),
    /// Unthrottled, its progress kept for `ScrubStatus`.
    OnDemand,
}

/// Drops the on-demand pass if its walk never ended (its task was
/// dropped): `ScrubStatus` then shows no pass rather than one that hangs.
struct Walking<'a> {
    scrubber: &'a Scrubber,
    started_ms: i64,
    ended: bool,
}

impl Drop for Walking<'_> {
    fn drop(&mut self) {
        let mut d = self.scrubber.demand();
        if !self.ended && d.as_ref().is_some_and(|p| p.started_ms == self.started_ms) {
            *d = None;
        }
    }
}

/// How one shard's check ended.
enum Checked {
    Good(u64),
    /// Bad; the reason, and the bytes read before it was found.
    Bad(String, u64),
    /// An I/O error reading it; the bytes read before.
    Unreadable(String, u64),
    /// Deleted meanwhile, or the process short of descriptors or memory:
    /// not judged.
    Skipped,
}

pub struct Scrubber {
    store: Store,
    reporter: Arc<Reporter>,
    /// One pass at a time: an on-demand pass holds it throughout; the
    /// background walk takes it per window, so it pauses for the other.
    turn: tokio::sync::Mutex<()>,
    /// The current or last on-demand pass; its `finished_ms` is set when
    /// its walk ends (delivered or not): until then a new `Scrub` joins it.
    demand: Mutex<Option<OnDemand>>,
    /// Shards that failed to read in a pass and have not read well since:
    /// failing again in another pass, they are judged unreadable.
    strikes: Mutex<HashSet<String>>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An I/O error that says nothing about the shard (out of descriptors or
/// memory): the shard is left alone and checked again next pass.
fn transient(e: &StoreError) -> bool {
    use rustix::io::Errno;
    let StoreError::Io { source, .. } = e else {
        return false;
    };
    [
        Errno::MFILE,
        Errno::NFILE,
        Errno::NOMEM,
        Errno::AGAIN,
        Errno::INTR,
    ]
    .iter()
    .any(|n| source.raw_os_error() == Some(n.raw_os_error()))
}

impl Scrubber {
    pub fn new(store: Store, reporter: Arc<Reporter>) -> Arc<Self> {
        Arc::new(Self {
            store,
            reporter,
            turn: tokio::sync::Mutex::new(()),
            demand: Mutex::default(),
            strikes: Mutex::default(),
        })
    }

    fn demand(&self) -> MutexGuard<'_, Option<OnDemand>> {
        self.demand.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn strikes(&self) -> MutexGuard<'_, HashSet<String>> {
        self.strikes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Turns a check into a verdict: an unreadable shard is bad only if it
    /// failed to read in an earlier pass too (and not read well since).
    fn verdict(&self, id: &str, checked: Checked) -> Checked {
        let mut strikes = self.strikes();
        match checked {
            Checked::Unreadable(reason, n) => {
                if strikes.remove(id) {
                    return Checked::Bad(format!("unreadable in two passes: {reason}"), n);
                }
                tracing::warn!(shard = %id, %reason, "shard unreadable; judged if it fails again next pass");
                if strikes.len() < MAX_STRIKES {
                    strikes.insert(id.to_string());
                }
                Checked::Skipped
            }
            other => {
                if !matches!(other, Checked::Skipped) {
                    strikes.remove(id);
                }
                other
            }
        }
    }

    pub fn reporter(&self) -> &Arc<Reporter> {
        &self.reporter
    }

    /// Moves a bad shard aside and queues its report; true if this call
    /// moved it (a shard already gone or moved is not reported twice).
    pub async fn set_aside(&self, id: &str, reason: String) -> bool {
        match self.store.quarantine(id).await {
            Ok(true) => {
                tracing::error!(shard = %id, %reason, "corrupt shard moved aside");
                self.reporter.bad(id, reason);
                true
            }
            Ok(false) => false,
            Err(e) => {
                // Still in place: it keeps failing its checks where read.
                tracing::error!(shard = %id, error = %e, "could not move a corrupt shard aside");
                false
            }
        }
    }

    async fn check(&self, id: &str, mut pacer: Option<&mut Pacer>) -> Checked {
        let mut bytes = 0u64;
        let judge = |e: StoreError, bytes| match e {
            StoreError::NotFound(_) => Checked::Skipped,
            e if transient(&e) => Checked::Skipped,
            StoreError::Io { .. } => Checked::Unreadable(e.to_string(), bytes),
            e => {
                if let StoreError::Corrupt { .. } = e {
                    crate::observe::checksum_failure("scrub");
                }
                Checked::Bad(e.to_string(), bytes)
            }
        };
        let mut shard = match self.store.verify(id).await {
            Ok(v) => v,
            Err(e) => return judge(e, 0),
        };
        loop {
            let step = {
                // The background walk waits here while an on-demand pass runs.
                let _turn = if pacer.is_some() {
                    Some(self.turn.lock().await)
                } else {
                    None
                };
                shard.step().await
            };
            match step {
                Ok(Some(n)) => {
                    bytes += n;
                    if let Some(p) = pacer.as_deref_mut() {
                        p.pace(n).await;
                    }
                }
                Ok(None) => return Checked::Good(bytes),
                Err(e) => return judge(e, bytes),
            }
        }
    }

    /// One walk over every shard.
    async fn pass(&self, mut mode: Mode) -> PassStats {
        let mut stats = PassStats::default();
        let kind = match mode {
            Mode::Background(_) => "background",
            Mode::OnDemand => "on_demand",
        };
        // Progress is judged against the store's count at the start (a
        // share above 1 from writes meanwhile is shown as 1).
        let total = self.store.counts().bytes;
        crate::observe::scrub_progress(kind, 0, total);
        for dir in self.store.shard_dirs().await {
            for id in self.store.ids_in(dir).await {
                let pacer = match &mut mode {
                    Mode::Background(p) => Some(p),
                    Mode::OnDemand => None,
                };
                let checked = self.check(&id, pacer).await;
                let (bad, bytes) = match self.verdict(&id, checked) {
                    Checked::Good(n) => (None, n),
                    Checked::Bad(reason, n) => (Some(reason), n),
                    Checked::Unreadable(..) | Checked::Skipped => continue,
                };
                stats.shards_checked += 1;
                stats.bytes_checked += bytes;
                crate::observe::scrub_checked(kind, bytes);
                crate::observe::scrub_progress(kind, stats.bytes_checked, total);
                let moved = match bad {
                    Some(reason) => self.set_aside(&id, reason).await,
                    None => false,
                };
                if let Mode::OnDemand = mode {
                    self.progressed(bytes, moved.then_some(&id));
                }
                if moved {
                    stats.corrupt.push(id);
                }
            }
        }
        match self.store.expire_quarantine(QUARANTINE_KEEP).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "quarantined copies older than a week removed"),
            Err(e) => tracing::warn!(error = %e, "could not expire quarantined copies"),
        }
        // The heartbeat's counts are kept per operation; a walk now and
        // then mends whatever changed behind the store's back.
        match self.store.recount().await {
            Ok(c) => tracing::debug!(shards = c.shards, bytes = c.bytes, "store recounted"),
            Err(e) => tracing::warn!(error = %e, "could not recount the store"),
        }
        stats.finished_ms = now_ms();
        crate::observe::scrub_finished(kind, stats.finished_ms);
        stats
    }

    /// Counts one checked shard into the on-demand pass.
    fn progressed(&self, bytes: u64, moved: Option<&String>) {
        let mut d = self.demand();
        let Some(p) = d.as_mut() else { return };
        p.stats.shards_checked += 1;
        p.stats.bytes_checked += bytes;
        if let Some(id) = moved {
            p.corrupt_count += 1;
            if p.stats.corrupt.len() < MAX_LISTED_CORRUPT {
                p.stats.corrupt.push(id.clone());
            }
        }
    }

    /// Starts an unthrottled full pass in its own task, or joins the
    /// on-demand pass still walking; answers its state at once.
    pub fn start_now(self: &Arc<Self>) -> OnDemand {
        {
            let mut d = self.demand();
            // A pass still walking (no end yet) is joined.
            if d.as_ref().is_none_or(|p| p.stats.finished_ms != 0) {
                let started_ms = now_ms();
                *d = Some(OnDemand {
                    started_ms,
                    ..OnDemand::default()
                });
                tokio::spawn(self.clone().on_demand_pass(started_ms));
            }
        }
        self.on_demand().unwrap_or_default()
    }

    /// The current or last on-demand pass (None: none since start-up),
    /// its end shown only once its report was delivered.
    pub fn on_demand(&self) -> Option<OnDemand> {
        let mut p = self.demand().clone()?;
        if p.stats.finished_ms > self.reporter.delivered_pass_ms() {
            p.stats.finished_ms = 0;
        }
        Some(p)
    }

    /// Holds every pass before its next shard until the guard is dropped
    /// (an on-demand pass before its first). For tests: a pass that is
    /// observably still running.
    #[doc(hidden)]
    pub async fn hold(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.turn.lock().await
    }

    async fn on_demand_pass(self: Arc<Self>, started_ms: i64) {
        let mut walking = Walking {
            scrubber: &self,
            started_ms,
            ended: false,
        };
        let stats = {
            let _turn = self.turn.lock().await;
            let total = self.store.shard_bytes().await;
            if let Some(p) = self.demand().as_mut() {
                p.bytes_total = total;
            }
            self.pass(Mode::OnDemand).await
        };
        tracing::info!(
            shards = stats.shards_checked,
            bytes = stats.bytes_checked,
            corrupt = stats.corrupt.len(),
            "on-demand scrub pass finished"
        );
        if let Some(p) = self.demand().as_mut() {
            p.stats.finished_ms = stats.finished_ms;
        }
        walking.ended = true;
        drop(walking);
        self.reporter.pass_finished(stats.finished_ms);
        if let Err(e) = self.reporter.flush_within(REPORT_PATIENCE).await {
            tracing::warn!(error = %e.message(), corrupt = stats.corrupt.len(),
                "on-demand scrub: report not delivered yet; the background sender keeps trying");
        }
    }

    /// Runs forever: a paced full pass at `bytes_per_sec`, then `pause`.
    pub async fn run(self: Arc<Self>, bytes_per_sec: f64, pause: Duration) {
        let pause = pause.max(Duration::from_secs(1));
        let first = MAX_FIRST_DELAY.min(pause).mul_f64(rand::random::<f64>());
        tokio::time::sleep(first).await;
        loop {
            let stats = self.pass(Mode::Background(Pacer::new(bytes_per_sec))).await;
            tracing::info!(
                shards = stats.shards_checked,
                bytes = stats.bytes_checked,
                corrupt = stats.corrupt.len(),
                "scrub pass finished"
            );
            self.reporter.pass_finished(stats.finished_ms);
            tokio::time::sleep(pause).await;
        }
    }
}
