//! One round of the leader's repair planner:
//!
//! 1. blob-servers silent past the grace are marked down (a command that
//!    loses to any heartbeat applied after the judgement);
//! 2. the worst under-replicated units are read (a linearizable read);
//! 3. for each with k good shards, [`plan`](super::plan) picks sources
//!    and targets, new shard ids are minted, and one target server runs
//!    `Blob.Rebuild`, at most `parallel` at once;
//! 4. `SwapShards` (the compare-and-set) puts the rebuilt shards in the
//!    map: on success the old locations it answers are deleted; refused
//!    (the map changed), the rebuilt shards are. An unknown outcome
//!    (the meta tier did not answer) deletes nothing: if the swap did
//!    not apply, the sweep frees the rebuilt shards later.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use hamster_proto::Role;
use hamster_proto::pb::{self, blob_client::BlobClient};
use hamster_proto::shard_id;
use hamster_proto::transport::{self, Pool};

use super::Repair;
use super::plan::{self, NoPlan, Plan};
use crate::cluster::{CallError, now_ms};
use crate::state::commands::{Op, Response as R};
use crate::state::model::{BlobState, ShardLocation, ShardMap, ShardSwap, Unit};
use crate::state::reads::{self as q, DegradedUnit};

/// How long one rebuild may take. A busy blob-server refuses at once
/// (no queue); servers recycle connections after 300 s + 30 s, so a call
/// cannot outlive that anyway: this bounds a hung server (ADR 0023).
const REBUILD_TIMEOUT: Duration = Duration::from_secs(6 * 60);
/// Per delete of a freed or abandoned shard (best effort).
const DELETE_TIMEOUT: Duration = Duration::from_secs(10);
/// A target must have heartbeated this recently (blob-servers heartbeat
/// every 10 s by default), or within the down grace if that is shorter.
const TARGET_FRESH_MS: i64 = 30_000;

/// What the planner remembers between rounds.
#[derive(Default)]
pub struct Memory {
    /// Units already logged as waiting for a server (logged once).
    waiting_logged: HashSet<Unit>,
}

/// A round's counts, logged once per round.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub marked_down: usize,
    pub looked_at: usize,
    pub units_repaired: usize,
    pub shards_rebuilt: usize,
    pub bytes_written: u64,
    pub failures: usize,
    /// Swaps refused because the map changed (a delete, overwrite, or
    /// another repair won).
    pub lost_races: usize,
    /// Units with an index no eligible server could take.
    pub waiting_for_servers: usize,
    pub unrecoverable: usize,
}

impl Round {
    pub fn log(&self) {
        if self.marked_down + self.units_repaired + self.failures + self.lost_races > 0 {
            tracing::info!(
                repaired_units = self.units_repaired,
                shards = self.shards_rebuilt,
                bytes = self.bytes_written,
                failures = self.failures,
                lost_races = self.lost_races,
                waiting_for_servers = self.waiting_for_servers,
                unrecoverable = self.unrecoverable,
                marked_down = self.marked_down,
                "repair round"
            );
        } else {
            tracing::debug!(
                looked_at = self.looked_at,
                waiting_for_servers = self.waiting_for_servers,
                unrecoverable = self.unrecoverable,
                "repair round: nothing repaired"
            );
        }
    }
}

/// How one unit's repair ended.
enum Done {
    Repaired {
        shards: usize,
        bytes: u64,
    },
    /// The swap was refused: the rebuilt shards were deleted.
    Lost,
    Failed,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Repair {
    pub(super) async fn round(
        &self,
        pool: &Pool,
        memory: &mut Memory,
        judge_silence: bool,
    ) -> Result<Round, CallError> {
        let mut round = Round::default();
        let down_ms = millis(self.down_after);
        if judge_silence {
            round.marked_down = self.mark_silent_down(down_ms).await?;
        }
        let (servers, units) = self
            .meta
            .read(async |c| {
                Ok((
                    q::blob_servers(c).await?,
                    q::degraded_units(c, self.batch).await?,
                ))
            })
            .await?;
        round.looked_at = units.len();
        let fresh_since = now_ms() - down_ms.min(TARGET_FRESH_MS);
        let mut jobs: Vec<(DegradedUnit, Plan)> = Vec::new();
        for u in units {
            let (plan, unplaced) =
                match plan::plan(&u.map, &u.good, u.total_shards, &servers, fresh_since) {
                    Ok(p) => {
                        let unplaced = p.unplaced.clone();
                        (Some(p), unplaced)
                    }
                    Err(NoPlan::Complete) => continue,
                    Err(NoPlan::Unrecoverable) => {
                        round.unrecoverable += 1;
                        continue;
                    }
                    Err(NoPlan::NoServers(unplaced)) => (None, unplaced),
                };
            if !unplaced.is_empty() {
                round.waiting_for_servers += 1;
                if memory.waiting_logged.len() > 10_000 {
                    memory.waiting_logged.clear();
                }
                if memory.waiting_logged.insert(u.unit.clone()) {
                    tracing::debug!(unit = ?u.unit, indexes = ?unplaced,
                        "repair: no eligible blob-server for these indexes yet");
                }
            }
            if let Some(p) = plan {
                jobs.push((u, p));
            }
        }
        // Frees go only to servers not down (a down one would hold the
        // round for a timeout; the sweep deletes them when it is back).
        let addresses: HashMap<String, String> = servers
            .iter()
            .filter(|s| s.state != BlobState::Down)
            .map(|s| (s.id.clone(), s.address.clone()))
            .collect();
        let done: Vec<Done> = futures::stream::iter(jobs)
            .map(|(u, p)| self.repair_unit(pool, u, p, &addresses))
            .buffer_unordered(self.parallel.max(1))
            .collect()
            .await;
        for d in done {
            match d {
                Done::Repaired { shards, bytes } => {
                    round.units_repaired += 1;
                    round.shards_rebuilt += shards;
                    round.bytes_written += bytes;
                }
                Done::Lost => round.lost_races += 1,
                Done::Failed => round.failures += 1,
            }
        }
        Ok(round)
    }

    /// Proposes MarkBlobDown for every server silent past the grace;
    /// answers how many it marked.
    async fn mark_silent_down(&self, down_ms: i64) -> Result<usize, CallError> {
        let servers = self.meta.read(async |c| q::blob_servers(c).await).await?;
        let silent_since_ms = now_ms() - down_ms;
        let mut marked = 0;
        for s in servers
            .into_iter()
            .filter(|s| s.state != BlobState::Down && s.last_heartbeat_ms < silent_since_ms)
        {
            let op = Op::MarkBlobDown {
                id: s.id.clone(),
                silent_since_ms,
            };
            match self.meta.write(op).await {
                Ok(R::Ok) => {
                    tracing::warn!(blob = %s.id, last_heartbeat_ms = s.last_heartbeat_ms,
                        "blob-server silent past the grace: marked down");
                    marked += 1;
                }
                Ok(other) => tracing::debug!(blob = %s.id, answer = ?other, "mark down refused"),
                Err(e) => tracing::warn!(blob = %s.id, error = %e, "mark down failed"),
            }
        }
        Ok(marked)
    }

    async fn repair_unit(
        &self,
        pool: &Pool,
        u: DegradedUnit,
        p: Plan,
        addresses: &HashMap<String, String>,
    ) -> Done {
        let stem = shard_id::new_object(now_ms());
        let new_ids: Vec<String> = p
            .targets
            .iter()
            .map(|t| shard_id::shard(&stem, t.index as usize))
            .collect();
        let written: Vec<(String, String)> = p
            .targets
            .iter()
            .zip(&new_ids)
            .map(|(t, id)| (t.address.clone(), id.clone()))
            .collect();
        let rebuilt = match rebuild(pool, &u.map, &p, &new_ids).await {
            Ok(r) => r,
            Err(why) => {
                // A rebuilder busy with another unit: next round, quietly.
                if why.contains("busy:") {
                    tracing::debug!(unit = ?u.unit, error = %why, "repair: rebuilder busy");
                } else {
                    tracing::warn!(unit = ?u.unit, error = %why, "repair: rebuild failed");
                }
                // Some targets may hold a shard already: not named, so
                // deleting is safe (and the sweep would, later).
                delete_shards(pool, written);
                return Done::Failed;
            }
        };
        let bytes = rebuilt.bytes_written;
        let swaps = match swaps(&p, &new_ids, &rebuilt) {
            Ok(s) => s,
            Err(why) => {
                tracing::warn!(unit = ?u.unit, error = %why, "repair: rebuild answer refused");
                delete_shards(pool, written);
                return Done::Failed;
            }
        };
        let shards = swaps.len();
        // Shards older than the write window may already have been judged
        // orphans by the sweep (the same rule as a gateway's commit): a
        // rebuild that took that long is dropped, not swapped in.
        if new_ids.iter().any(|id| too_old(id, self.meta.write_window)) {
            tracing::warn!(unit = ?u.unit, "repair: rebuild outlived the write window; dropped");
            delete_shards(pool, written);
            return Done::Failed;
        }
        let op = Op::SwapShards {
            unit: u.unit.clone(),
            swaps,
            // Proves the map is still the one rebuilt from (an overwrite
            // names none of these).
            sources: p.sources.iter().map(|s| s.shard_id.clone()).collect(),
        };
        match self.meta.write(op).await {
            Ok(R::Swapped { freed }) => {
                tracing::debug!(unit = ?u.unit, shards, "repair: shards swapped in");
                delete_shards(pool, locations(&freed, addresses));
                Done::Repaired { shards, bytes }
            }
            Ok(R::Err(e)) => {
                tracing::info!(unit = ?u.unit, why = %e, "repair: swap refused; rebuilt shards freed");
                delete_shards(pool, written);
                Done::Lost
            }
            Ok(other) => {
                tracing::error!(unit = ?u.unit, answer = ?other, "repair: unexpected swap answer");
                Done::Failed
            }
            // Unknown outcome: the new shards may be in the map now.
            Err(e) => {
                tracing::warn!(unit = ?u.unit, error = %e, "repair: swap not confirmed");
                Done::Failed
            }
        }
    }
}

/// Asks the first target's server to rebuild every target of the plan.
async fn rebuild(
    pool: &Pool,
    map: &ShardMap,
    p: &Plan,
    new_ids: &[String],
) -> Result<pb::RebuildResponse, String> {
    let runner = p.targets.first().ok_or("no target")?;
    let req = pb::RebuildRequest {
        data_shards: map.data_shards,
        parity_shards: map.parity_shards,
        sources: p
            .sources
            .iter()
            .map(|s| pb::RebuildSource {
                index: s.index,
                address: s.address.clone(),
                shard_id: s.shard_id.clone(),
            })
            .collect(),
        targets: p
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

/// Deletes shards in the background, best effort: what fails (a server
/// down) is left to the sweep, which deletes any shard no metadata names.
fn delete_shards(pool: &Pool, shards: Vec<(String, String)>) {
    if shards.is_empty() {
        return;
    }
    let pool = pool.clone();
    tokio::spawn(async move {
        hamster_proto::free::delete_shards(&pool, shards, DELETE_TIMEOUT).await;
    });
}

/// Whether shard `id` was minted longer ago than `window` (an id without a
/// time counts as old: it cannot be judged safe).
fn too_old(id: &str, window: Duration) -> bool {
    let window = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
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
