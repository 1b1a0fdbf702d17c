//! What the store holds: live shard files and their bytes (not `tmp/`,
//! not `quarantine/`), reported in every heartbeat — what rebalancing
//! weighs and a drain waits to see reach zero, so it must be exact.
//!
//! Counted by a walk when the store opens, kept by every commit, delete
//! and quarantine, and counted again by a walk after each scrub pass (a
//! file changed behind the store's back is then accounted for). The
//! count is kept per stripe — the shards whose path starts with one
//! `shards/AB` directory — and a walk recounts a stripe while holding it
//! exclusively, whereas operations hold it shared while they change a file
//! and its count: an operation is either wholly before the walk of its
//! stripe or wholly after, never half-counted, and writes wait only for
//! the walk of their own 1/256th of the store.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::{RwLock, RwLockReadGuard};

use super::{Store, StoreError, io, valid_id};

/// Stripes: one per first byte of the path hash (the `shards/AB` level).
const STRIPES: usize = 256;

/// Shard files and their total size on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreCounts {
    pub shards: u64,
    pub bytes: u64,
}

#[derive(Default)]
struct Stripe {
    gate: RwLock<()>,
    shards: AtomicU64,
    bytes: AtomicU64,
}

pub(crate) struct Counts {
    stripes: Vec<Stripe>,
    /// Whether the totals go to the `hamster_blob_shards` and
    /// `hamster_blob_bytes_stored` gauges (the server's one store, not
    /// each store of an in-process test).
    published: AtomicBool,
    /// Held while the totals are summed and set: the last set after a
    /// change sums every change before it, so the gauges never keep a
    /// stale total.
    publishing: Mutex<()>,
}

impl std::fmt::Debug for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.totals())
    }
}

fn sub(a: &AtomicU64, n: u64) {
    // Never below zero, even if a file vanished uncounted (a walk mends it).
    let _ = a.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
        Some(v.saturating_sub(n))
    });
}

impl Counts {
    pub(crate) fn new() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            published: AtomicBool::new(false),
            publishing: Mutex::new(()),
        }
    }

    /// Sets the gauges to the totals, if published.
    fn publish(&self) {
        if !self.published.load(Ordering::Acquire) {
            return;
        }
        let _one = self.publishing.lock().unwrap_or_else(|p| p.into_inner());
        let t = self.totals();
        metrics::gauge!("hamster_blob_shards").set(t.shards as f64);
        metrics::gauge!("hamster_blob_bytes_stored").set(t.bytes as f64);
    }

    /// Held (shared) while a file of `stripe` changes along with its count.
    pub(crate) async fn enter(&self, stripe: usize) -> RwLockReadGuard<'_, ()> {
        self.stripes[stripe % STRIPES].gate.read().await
    }

    pub(crate) fn added(&self, stripe: usize, bytes: u64) {
        let s = &self.stripes[stripe % STRIPES];
        s.shards.fetch_add(1, Ordering::AcqRel);
        s.bytes.fetch_add(bytes, Ordering::AcqRel);
        self.publish();
    }

    pub(crate) fn removed(&self, stripe: usize, bytes: u64) {
        let s = &self.stripes[stripe % STRIPES];
        sub(&s.shards, 1);
        sub(&s.bytes, bytes);
        self.publish();
    }

    pub(crate) fn totals(&self) -> StoreCounts {
        self.stripes
            .iter()
            .fold(StoreCounts::default(), |acc, s| StoreCounts {
                shards: acc.shards + s.shards.load(Ordering::Acquire),
                bytes: acc.bytes + s.bytes.load(Ordering::Acquire),
            })
    }
}

/// The stripe of a shard whose path hash starts with `first_byte`.
pub(crate) fn stripe_of(first_byte: u8) -> usize {
    usize::from(first_byte)
}

/// Counts the shard files under `shards/AB` (every `CD/ID` in it).
fn walk_stripe(dir: &Path) -> Result<StoreCounts, StoreError> {
    let mut c = StoreCounts::default();
    let subdirs = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        // Fan-out directories are made on first use.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(c),
        Err(e) => return Err(io(format!("listing {}", dir.display()))(e)),
    };
    for sub in subdirs {
        let sub = sub
            .map_err(io(format!("listing {}", dir.display())))?
            .path();
        let files = std::fs::read_dir(&sub).map_err(io(format!("listing {}", sub.display())))?;
        for f in files {
            let f = f.map_err(io(format!("listing {}", sub.display())))?;
            if !f.file_name().to_str().is_some_and(valid_id) {
                continue;
            }
            match f.path().symlink_metadata() {
                Ok(m) if m.is_file() => {
                    c.shards += 1;
                    c.bytes += m.len();
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(format!("stat {}", f.path().display()))(e)),
            }
        }
    }
    Ok(c)
}

impl Store {
    /// Live shard files and their bytes, as of now.
    pub fn counts(&self) -> StoreCounts {
        self.counts.totals()
    }

    /// From now on, keeps `hamster_blob_shards` and
    /// `hamster_blob_bytes_stored` equal to [`Store::counts`].
    pub fn publish_metrics(&self) {
        self.counts.published.store(true, Ordering::Release);
        self.counts.publish();
    }

    /// Counts the store again from disk, stripe by stripe; answers the
    /// new totals. A stripe that cannot be read keeps its count (and the
    /// walk goes on), and the first such error is answered.
    pub async fn recount(&self) -> Result<StoreCounts, StoreError> {
        let shards = self.root.join("shards");
        let mut first_error = None;
        for (i, stripe) in self.counts.stripes.iter().enumerate() {
            let dir: PathBuf = shards.join(format!("{i:02x}"));
            let _alone = stripe.gate.write().await;
            let walked = tokio::task::spawn_blocking(move || walk_stripe(&dir))
                .await
                .unwrap_or_else(|e| {
                    Err(StoreError::Io {
                        what: "counting shards".into(),
                        source: std::io::Error::other(e.to_string()),
                    })
                });
            match walked {
                Ok(c) => {
                    stripe.shards.store(c.shards, Ordering::Release);
                    stripe.bytes.store(c.bytes, Ordering::Release);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        self.counts.publish();
        match first_error {
            None => Ok(self.counts()),
            Some(e) => Err(e),
        }
    }
}
