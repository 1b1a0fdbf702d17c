//! Carrying out one planned rebuild, the same way for repair and for the
//! mover (drain, rebalance):
//!
//! 1. new shard ids are minted (a shard id is written once);
//! 2. the first target's server runs `Blob.Rebuild` (a reconstruction,
//!    or a byte-for-byte copy of the source at the target's index), on
//!    a fresh connection;
//! 3. its answer is checked (every target under its new id, with the
//!    map's checksum) and a rebuild that outlived the write window is
//!    dropped;
//! 4. the compare-and-set is proposed (`SwapShards` for repair,
//!    `MoveShards` for a move): swapped, the old locations it answers
//!    are freed; refused (the map changed), the new shards are. An
//!    unknown outcome (the meta tier did not answer) deletes nothing: if
//!    the swap did not apply, the sweep frees the new shards later.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use hamster_proto::Role;
use hamster_proto::pb::{self, blob_client::BlobClient};
use hamster_proto::shard_id;
use hamster_proto::transport::{self, Pool};

use super::Repair;
use super::plan::Plan;
use crate::cluster::now_ms;
use crate::state::commands::{Op, Response as R};
use crate::state::model::{BlobServer, BlobState, ShardLocation, ShardMap, ShardSwap, Unit};

/// How long one rebuild may take. A busy blob-server refuses at once
/// (no queue); servers recycle connections after 300 s + 30 s, so a call
/// cannot outlive that anyway: this bounds a hung server (ADR 0023).
const REBUILD_TIMEOUT: Duration = Duration::from_secs(6 * 60);
/// Per delete of a freed or abandoned shard (best effort).
const DELETE_TIMEOUT: Duration = Duration::from_secs(10);
/// A target must have heartbeated this recently (blob-servers heartbeat
/// every 10 s by default), or within the down grace if that is shorter.
pub const TARGET_FRESH_MS: i64 = 30_000;
/// A duration in milliseconds, saturating.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Most entries a [`LogOnce`] keeps before it forgets them all.
const LOG_ONCE_MAX: usize = 10_000;

impl Repair {
    /// A server heard from since this may take (or copy out) a shard.
    pub(super) fn fresh_since(&self) -> i64 {
        now_ms() - millis(self.down_after).min(TARGET_FRESH_MS)
    }
}

/// Where freed shards are deleted: servers not down (a down one would
/// hold a round for a timeout; the sweep deletes them once it is back).
pub fn free_addresses(servers: &[BlobServer]) -> HashMap<String, String> {
    servers
        .iter()
        .filter(|s| s.state != BlobState::Down)
        .map(|s| (s.id.clone(), s.address.clone()))
        .collect()
}

/// Things already logged, so a planner that meets the same stuck unit
/// every round says so once (bounded: it forgets all past a limit).
pub struct LogOnce<T>(HashSet<T>);

impl<T> Default for LogOnce<T> {
    fn default() -> Self {
        Self(HashSet::new())
    }
}

impl<T: Eq + std::hash::Hash> LogOnce<T> {
    /// True the first time `item` is seen (since the last forgetting).
    pub fn first(&mut self, item: T) -> bool {
        if self.0.len() > LOG_ONCE_MAX {
            self.0.clear();
        }
        self.0.insert(item)
    }
}

/// One unit's rebuild, planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub unit: Unit,
    /// The map the plan was made from.
    pub map: ShardMap,
    pub plan: Plan,
    /// A move: one target, `plan.sources[0]` holds the target's own
    /// index and is copied; the other sources are the fallback.
    pub copy: bool,
}

/// Whose compare-and-set a job ends with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `SwapShards`: redundancy restored, counted as repaired.
    Repair,
    /// `MoveShards`: a drain's or rebalance's move, counted as moved;
    /// refused if the target no longer takes new shards.
    Move,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Repair => "repair",
            Kind::Move => "move",
        }
    }
}

/// How one job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    Swapped {
        shards: usize,
        bytes: u64,
    },
    /// The swap was refused: the new shards were deleted.
    Lost,
    /// The rebuilder was running another rebuild: nothing was done.
    Busy,
    Failed,
}

impl Repair {
    /// Runs `job` to its end (see the module doc). `addresses`: where to
    /// free shards (servers not down). A move waits for its frees (the
    /// rebalancer weighs the sizes servers report next); a repair leaves
    /// them to run in the background.
    pub(super) async fn run_job(
        &self,
        pool: &Pool,
        job: Job,
        addresses: &HashMap<String, String>,
        kind: Kind,
    ) -> Done {
        let what = kind.name();
        let stem = shard_id::new_object(now_ms());
        let new_ids: Vec<String> = job
            .plan
            .targets
            .iter()
            .map(|t| shard_id::shard(&stem, t.index as usize))
            .collect();
        let written: Vec<(String, String)> = job
            .plan
            .targets
            .iter()
            .zip(&new_ids)
            .map(|(t, id)| (t.address.clone(), id.clone()))
            .collect();
        let rebuilt = match rebuild(pool, &job, &new_ids).await {
            Ok(r) => r,
            Err(why) => {
                // Some targets may hold a shard already: not named, so
                // deleting is safe (and the sweep would, later).
                delete_shards(pool, written, false).await;
                // A rebuilder busy with another unit: next round, quietly.
                if why.contains("busy:") {
                    tracing::debug!(unit = ?job.unit, error = %why, "{what}: rebuilder busy");
                    return Done::Busy;
                }
                tracing::warn!(unit = ?job.unit, error = %why, "{what}: rebuild failed");
                return Done::Failed;
            }
        };
        let bytes = rebuilt.bytes_written;
        let swaps = match swaps(&job.plan, &new_ids, &rebuilt) {
            Ok(s) => s,
            Err(why) => {
                tracing::warn!(unit = ?job.unit, error = %why, "{what}: rebuild answer refused");
                delete_shards(pool, written, false).await;
                return Done::Failed;
            }
        };
        let shards = swaps.len();
        // Shards older than the write window may already have been judged
        // orphans by the sweep (the same rule as a gateway's commit): a
        // rebuild that took that long is dropped, not swapped in.
        if new_ids.iter().any(|id| too_old(id, self.meta.write_window)) {
            tracing::warn!(unit = ?job.unit, "{what}: rebuild outlived the write window; dropped");
            delete_shards(pool, written, false).await;
            return Done::Failed;
        }
        let op = match kind {
            Kind::Repair => Op::SwapShards {
                unit: job.unit.clone(),
                swaps,
                // Proves the map is still the one rebuilt from (an
                // overwrite names none of these).
                sources: job
                    .plan
                    .sources
                    .iter()
                    .map(|s| s.shard_id.clone())
                    .collect(),
            },
            // The old shard at the index is the copy's source: the swap's
            // own check on it is the proof.
            Kind::Move => Op::MoveShards {
                unit: job.unit.clone(),
                swaps,
                sources: Vec::new(),
            },
        };
        match self.meta.write(op).await {
            Ok(R::Swapped { freed }) => {
                tracing::debug!(unit = ?job.unit, shards, "{what}: shards swapped in");
                delete_shards(pool, locations(&freed, addresses), kind == Kind::Move).await;
                Done::Swapped { shards, bytes }
            }
            Ok(R::Err(e)) => {
                tracing::info!(unit = ?job.unit, why = %e, "{what}: swap refused; new shards freed");
                delete_shards(pool, written, false).await;
                Done::Lost
            }
            Ok(other) => {
                tracing::error!(unit = ?job.unit, answer = ?other, "{what}: unexpected swap answer");
                Done::Failed
            }
            // Unknown outcome: the new shards may be in the map now.
            Err(e) => {
                tracing::warn!(unit = ?job.unit, error = %e, "{what}: swap not confirmed");
                Done::Failed
            }
        }
    }
}

/// Asks the first target's server to rebuild (or copy) every target.
async fn rebuild(
    pool: &Pool,
    job: &Job,
    new_ids: &[String],
) -> Result<pb::RebuildResponse, String> {
    let runner = job.plan.targets.first().ok_or("no target")?;
    let req = pb::RebuildRequest {
        data_shards: job.map.data_shards,
        parity_shards: job.map.parity_shards,
        sources: job
            .plan
            .sources
            .iter()
            .map(|s| pb::RebuildSource {
                index: s.index,
                address: s.address.clone(),
                shard_id: s.shard_id.clone(),
            })
            .collect(),
        targets: job
            .plan
            .targets
            .iter()
            .zip(new_ids)
            .map(|(t, id)| pb::RebuildTarget {
                index: t.index,
                address: t.address.clone(),
                shard_id: id.clone(),
                checksum: t.expected_checksum.clone(),
            })
            .collect(),
        copy: job.copy,
    };
    // A fresh connection: a pooled one may be near its maximum age, and
    // the server closes it 30 s after that, in-flight calls included.
    let ch = transport::channel(&runner.address, pool.tls(), &[Role::Blob])
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(REBUILD_TIMEOUT, BlobClient::new(ch).rebuild(req)).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(format!("{}: {}", runner.blob_id, s.message())),
        Err(_) => Err(format!(
            "{}: no answer within {REBUILD_TIMEOUT:?}",
            runner.blob_id
        )),
    }
}

/// The swaps for a rebuild's answer: every target answered under its new
/// id, with a checksum (the map's, when the map had one).
fn swaps(p: &Plan, new_ids: &[String], r: &pb::RebuildResponse) -> Result<Vec<ShardSwap>, String> {
    p.targets
        .iter()
        .zip(new_ids)
        .map(|(t, id)| {
            let got = r
                .shards
                .iter()
                .find(|s| s.index == t.index && s.shard_id == *id)
                .ok_or_else(|| format!("index {} was not rebuilt", t.index))?;
            if got.checksum.is_empty() {
                return Err(format!("index {}: no checksum", t.index));
            }
            if !t.expected_checksum.is_empty() && got.checksum != t.expected_checksum {
                return Err(format!("index {}: checksum differs from the map", t.index));
            }
            Ok(ShardSwap {
                index: t.index,
                old_shard_id: t.old_shard_id.clone(),
                new: ShardLocation {
                    index: t.index,
                    blob_id: t.blob_id.clone(),
                    shard_id: id.clone(),
                    checksum: got.checksum.clone(),
                },
            })
        })
        .collect()
}

/// (address, shard id) of every location in `maps` whose server is known.
fn locations(maps: &[ShardMap], addresses: &HashMap<String, String>) -> Vec<(String, String)> {
    maps.iter()
        .flat_map(|m| &m.shards)
        .filter_map(|l| Some((addresses.get(&l.blob_id)?.clone(), l.shard_id.clone())))
        .collect()
}

/// Deletes shards, best effort: what fails (a server down) is left to
/// the sweep, which deletes any shard no metadata names. `wait`: done
/// before answering; otherwise in the background.
async fn delete_shards(pool: &Pool, shards: Vec<(String, String)>, wait: bool) {
    if shards.is_empty() {
        return;
    }
    let pool = pool.clone();
    let delete = async move {
        delete_now(&pool, shards).await;
    };
    if wait {
        delete.await;
    } else {
        tokio::spawn(delete);
    }
}

/// Deletes (address, shard id) pairs one by one, best effort; answers
/// how many are gone.
pub(super) async fn delete_now(pool: &Pool, shards: Vec<(String, String)>) -> usize {
    hamster_proto::free::delete_shards(pool, shards, DELETE_TIMEOUT).await
}

/// Whether shard `id` was minted longer ago than `window` (an id without a
/// time counts as old: it cannot be judged safe).
fn too_old(id: &str, window: Duration) -> bool {
    let window = millis(window);
    shard_id::created_ms(id).is_none_or(|t| t < now_ms().saturating_sub(window))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repair::plan::{Source, Target};

    #[test]
    fn a_rebuild_older_than_the_write_window_is_too_old() {
        let window = Duration::from_secs(60);
        let fresh = shard_id::shard(&shard_id::new_object(now_ms()), 0);
        let stale = shard_id::shard(&shard_id::new_object(now_ms() - 61_000), 0);
        assert!(!too_old(&fresh, window));
        assert!(too_old(&stale, window));
        assert!(too_old("no-time-in-it", window));
    }

    fn target(index: u32, old: &str, sum: &[u8]) -> Target {
        Target {
            index,
            blob_id: format!("b{index}"),
            address: format!("b{index}:1"),
            old_shard_id: old.into(),
            expected_checksum: sum.to_vec(),
        }
    }

    fn answer(shards: &[(u32, &str, &[u8])]) -> pb::RebuildResponse {
        pb::RebuildResponse {
            shards: shards
                .iter()
                .map(|(i, id, sum)| pb::RebuiltShard {
                    index: *i,
                    shard_id: (*id).into(),
                    length: 10,
                    checksum: sum.to_vec(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_rebuild_answer_becomes_swaps_only_if_every_target_matches() {
        let p = Plan {
            sources: vec![Source {
                index: 0,
                address: "b0:1".into(),
                shard_id: "s0".into(),
            }],
            targets: vec![target(1, "old1", b"ck1"), target(2, "", b"")],
            unplaced: vec![],
        };
        let ids = vec!["n-1".to_string(), "n-2".to_string()];
        let s = swaps(
            &p,
            &ids,
            &answer(&[(2, "n-2", b"fresh"), (1, "n-1", b"ck1")]),
        )
        .expect("swaps");
        assert_eq!(s.len(), 2);
        assert_eq!(
            (
                s[0].index,
                s[0].old_shard_id.as_str(),
                s[0].new.shard_id.as_str()
            ),
            (1, "old1", "n-1")
        );
        assert_eq!(s[0].new.checksum, b"ck1");
        assert_eq!(s[0].new.blob_id, "b1");
        // The absent index takes the rebuilt shard's own checksum.
        assert_eq!(
            (s[1].old_shard_id.as_str(), s[1].new.checksum.as_slice()),
            ("", &b"fresh"[..])
        );
        // A checksum that differs from the map's, a target not answered,
        // an answer under another id, or no checksum: refused.
        assert!(swaps(&p, &ids, &answer(&[(1, "n-1", b"bad"), (2, "n-2", b"x")])).is_err());
        assert!(swaps(&p, &ids, &answer(&[(1, "n-1", b"ck1")])).is_err());
        assert!(swaps(&p, &ids, &answer(&[(1, "n-1", b"ck1"), (2, "other", b"x")])).is_err());
        assert!(swaps(&p, &ids, &answer(&[(1, "n-1", b"ck1"), (2, "n-2", b"")])).is_err());
    }

    #[test]
    fn freed_locations_on_unknown_servers_are_left_to_the_sweep() {
        let map = ShardMap {
            data_shards: 1,
            parity_shards: 1,
            segment_size: 1,
            shards: vec![
                ShardLocation {
                    index: 0,
                    blob_id: "b0".into(),
                    shard_id: "s0".into(),
                    checksum: vec![],
                },
                ShardLocation {
                    index: 1,
                    blob_id: "gone".into(),
                    shard_id: "s1".into(),
                    checksum: vec![],
                },
            ],
        };
        let addresses = HashMap::from([("b0".to_string(), "b0:1".to_string())]);
        assert_eq!(
            locations(&[map], &addresses),
            vec![("b0:1".to_string(), "s0".to_string())]
        );
    }
}
