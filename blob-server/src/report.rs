//! Bad-shard reports to the meta tier (`Registry.ReportScrub`): queued in
//! memory, sent in batches through the [`MetaLink`], kept until delivered.
//! The shards are already moved aside when queued, so no later pass would
//! find them again: a report is never dropped for a failed delivery.
//! The end of a pass goes with the batch that empties the queue, so once
//! it is delivered so is everything found before it ([`Reporter::delivered_pass_ms`]).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hamster_proto::pb;
use tokio::sync::Notify;

use crate::meta_link::MetaLink;

/// Bad shards per request (a report is one Raft command on the meta side).
const BATCH: usize = 500;
/// Per-call deadline.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Wait after the first new entry, so a burst goes in one report.
const GATHER: Duration = Duration::from_millis(300);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Pending {
    bad: Vec<pb::BadShard>,
    /// The latest full pass not yet reported as finished (0: none).
    pass_finished_ms: i64,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.bad.is_empty() && self.pass_finished_ms == 0
    }
}

pub struct Reporter {
    link: Arc<MetaLink>,
    pending: Mutex<Pending>,
    wake: Notify,
    /// One delivery at a time, so batches leave in order and are removed once.
    sending: tokio::sync::Mutex<()>,
    /// The latest pass end delivered (or dropped for want of a meta tier).
    delivered_pass_ms: AtomicI64,
}

impl Reporter {
    pub fn new(link: Arc<MetaLink>) -> Arc<Self> {
        Arc::new(Self {
            link,
            pending: Mutex::default(),
            wake: Notify::new(),
            sending: tokio::sync::Mutex::new(()),
            delivered_pass_ms: AtomicI64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a shard that was moved aside.
    pub fn bad(&self, shard_id: &str, reason: String) {
        self.lock().bad.push(pb::BadShard {
            shard_id: shard_id.to_string(),
            reason,
        });
        self.wake.notify_one();
    }

    /// Queues the end of a full pass (`last_scrub_ms` on the meta side).
    pub fn pass_finished(&self, finished_ms: i64) {
        let mut p = self.lock();
        p.pass_finished_ms = p.pass_finished_ms.max(finished_ms);
        drop(p);
        self.wake.notify_one();
    }

    /// The latest pass end delivered: a pass that ended at or before it
    /// has had all its findings delivered too (0: none yet).
    pub fn delivered_pass_ms(&self) -> i64 {
        self.delivered_pass_ms.load(Ordering::Acquire)
    }

    /// Bad shards not yet delivered.
    pub fn pending(&self) -> usize {
        self.lock().bad.len()
    }

    /// Delivers everything queued, batch by batch, trying each meta-server
    /// once per batch. Err: the first batch no meta-server took (it and
    /// the rest stay queued).
    pub async fn flush(&self) -> Result<(), tonic::Status> {
        let _one = self.sending.lock().await;
        loop {
            let req = {
                let p = self.lock();
                if p.is_empty() {
                    return Ok(());
                }
                let n = p.bad.len().min(BATCH);
                pb::ReportScrubRequest {
                    id: self.link.node_id(),
                    bad: p.bad[..n].to_vec(),
                    // Only with the batch that empties the queue, so the
                    // meta tier never records a pass ahead of its findings.
                    pass_finished_ms: if n == p.bad.len() {
                        p.pass_finished_ms
                    } else {
                        0
                    },
                }
            };
            if self.link.is_empty() {
                tracing::warn!(
                    bad = req.bad.len(),
                    "no --meta: scrub findings cannot be reported, dropped"
                );
            } else {
                self.deliver(&req).await?;
            }
            let mut p = self.lock();
            // Only the sender removes entries, and it holds `sending`.
            p.bad.drain(..req.bad.len());
            if req.pass_finished_ms != 0 {
                if p.pass_finished_ms == req.pass_finished_ms {
                    p.pass_finished_ms = 0;
                }
                self.delivered_pass_ms
                    .fetch_max(req.pass_finished_ms, Ordering::AcqRel);
            }
        }
    }

    async fn deliver(&self, req: &pb::ReportScrubRequest) -> Result<(), tonic::Status> {
        let mut last = tonic::Status::unavailable("no meta-server to report to");
        for _ in 0..self.link.len() {
            if let Some(mut c) = self.link.registry() {
                match tokio::time::timeout(CALL_TIMEOUT, c.report_scrub(req.clone())).await {
                    Ok(Ok(_)) => {
                        if !req.bad.is_empty() {
                            tracing::info!(bad = req.bad.len(), "reported corrupt shards");
                        }
                        return Ok(());
                    }
                    Ok(Err(e)) => last = e,
                    Err(_) => last = tonic::Status::deadline_exceeded("ReportScrub timed out"),
                }
            }
            self.link.failed();
        }
        Err(last)
    }

    /// Flushes, retrying for up to `patience`; Err if still undelivered
    /// (the findings stay queued for the background sender).
    pub async fn flush_within(&self, patience: Duration) -> Result<(), tonic::Status> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.flush().await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() + backoff >= deadline => return Err(e),
                Err(_) => {}
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Runs forever: sends what is queued soon after it is queued, and
    /// retries failed deliveries with backoff.
    pub async fn run(self: Arc<Self>) {
        let mut backoff = Duration::from_secs(1);
        loop {
            if self.lock().is_empty() {
                self.wake.notified().await;
                tokio::time::sleep(GATHER).await;
            }
            match self.flush().await {
                Ok(()) => backoff = Duration::from_secs(1),
                // Removed from the cluster: nobody will take them, and the
                // registration has said so already; keep quiet.
                Err(e) if hamster_proto::revoke::refused_as_revoked(&e) => {
                    tokio::time::sleep(MAX_BACKOFF).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e.message(), pending = self.pending(), "scrub report not delivered; will retry");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
