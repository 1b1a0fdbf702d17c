//! Durability: a blob-server judged down, a scrub's report, a repair's
//! (or a move's) swap of shards in a map (the compare-and-set), and the
//! rule every freeing command follows: a shard some row still names is
//! never freed (`unnamed`).

use std::collections::BTreeSet;

use sqlx::SqliteConnection;

use super::commands::{MetaError, Response};
use super::model::{BadShard, ShardMap, ShardSwap, Unit};
use super::outcome::{ApplyError, Outcome, invalid, reject};
use super::writes::MapSite;
use super::{lifecycle, reads, writes};

/// Longest reason kept for a fault (a peer's text, stored as sent).
const MAX_REASON: usize = 256;

/// `maps` without the shards some version, part or upload still names,
/// and without the maps left empty: what a command may answer as freed.
/// Called after the command's own writes. A shard is named twice when a
/// retried commit stored two versions on one shard set (before request
/// ids) or a repair is racing: freeing it would lose the other's data.
pub(super) async fn unnamed(
    c: &mut SqliteConnection,
    maps: Vec<ShardMap>,
) -> Result<Vec<ShardMap>, sqlx::Error> {
    let mut out = Vec::with_capacity(maps.len());
    for mut m in maps {
        let mut free = Vec::with_capacity(m.shards.len());
        for s in m.shards {
            if !reads::shard_is_named(c, &s.shard_id).await? {
                free.push(s);
            }
        }
        if !free.is_empty() {
            m.shards = free;
            out.push(m);
        }
    }
    Ok(out)
}

pub async fn mark_blob_down(c: &mut SqliteConnection, id: &str, silent_since_ms: i64) -> Outcome {
    if reads::blob_state(c, id).await?.is_none() {
        return reject(MetaError::NoSuchBlobServer(id.into()));
    }
    // Already down, or heard from since: nothing to do, not an error.
    writes::mark_blob_down(c, id, silent_since_ms).await?;
    Ok(Response::Ok)
}

pub async fn record_scrub(
    c: &mut SqliteConnection,
    at: i64,
    blob_id: &str,
    bad: &[BadShard],
    pass_finished_ms: i64,
) -> Outcome {
    if reads::blob_state(c, blob_id).await?.is_none() {
        return reject(MetaError::NoSuchBlobServer(blob_id.into()));
    }
    lifecycle::check_not_removed(c, blob_id).await?;
    for b in bad.iter().filter(|b| !b.shard_id.is_empty()) {
        let reason = match b.reason.char_indices().nth(MAX_REASON) {
            Some((cut, _)) => &b.reason[..cut],
            None => &b.reason,
        };
        writes::record_fault(c, blob_id, &b.shard_id, reason, at).await?;
    }
    if pass_finished_ms > 0 {
        writes::set_last_scrub(c, blob_id, pass_finished_ms).await?;
    }
    Ok(Response::Ok)
}

/// Refuses a swap whose map moved on.
fn changed<T>(why: String) -> Result<T, ApplyError> {
    reject(MetaError::ShardMapChanged(why))
}

/// Checks the swaps' own consistency (nothing read yet).
fn check_request(unit: &Unit, swaps: &[ShardSwap], sources: &[String]) -> Result<(), ApplyError> {
    if unit.version_id.is_empty() == unit.upload_id.is_empty() {
        return invalid("a unit names a version or an upload, exactly one");
    }
    if !unit.upload_id.is_empty() && unit.part_number == 0 {
        return invalid("an upload's part number is 1 or more");
    }
    if swaps.is_empty() {
        return invalid("a swap of no shard");
    }
    let mut indexes = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for s in swaps {
        if s.new.index != s.index {
            return invalid(format!(
                "swap at index {} carries a shard for index {}",
                s.index, s.new.index
            ));
        }
        if s.new.shard_id.is_empty() || s.new.blob_id.is_empty() {
            return invalid("a rebuilt shard needs a shard id and a blob-server");
        }
        if !indexes.insert(s.index) || !ids.insert(&s.new.shard_id) {
            return invalid("an index or a new shard id appears twice");
        }
    }
    if sources.is_empty() && swaps.iter().any(|s| s.old_shard_id.is_empty()) {
        return invalid("a swap into a missing index must name the shards it was rebuilt from");
    }
    Ok(())
}

/// Who swaps shards in a map: the counter, and the checks on the new home.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapKind {
    /// A repair's rebuilt shards (`Op::SwapShards`): shards_repaired.
    Repair,
    /// A drain's or rebalance's copies (`Op::MoveShards`): shards_moved.
    Move,
}

/// The repair's compare-and-set (see `Op::SwapShards`).
pub async fn swap_shards(
    c: &mut SqliteConnection,
    unit: &Unit,
    swaps: &[ShardSwap],
    sources: &[String],
) -> Outcome {
    swap(c, SwapKind::Repair, unit, swaps, sources).await
}

/// The one compare-and-set of a unit's map, for repairs and moves. Only
/// the unit's map changes: its version's lock, data key, size, ETag and
/// seq stay as they are, so a COMPLIANCE-locked version is repaired (or
/// moved) like any other.
///
/// A move's new shard must also be on a server that takes new shards (in
/// service, not down: a drain or removal since the plan refuses it) and
/// that holds no other index of the map (the planner chose it so, but a
/// deposed leader's mover may still be proposing beside the new one's).
/// A repair's swap keeps the checks it had when `SwapShards` was written:
/// the server need only be registered (ADR 0020: an existing command
/// means what it meant, so a mixed-version cluster applies it alike).
pub async fn swap(
    c: &mut SqliteConnection,
    kind: SwapKind,
    unit: &Unit,
    swaps: &[ShardSwap],
    sources: &[String],
) -> Outcome {
    check_request(unit, swaps, sources)?;
    let Some(mut map) = reads::unit_map(c, unit).await? else {
        return changed("the unit no longer exists".into());
    };
    if let Some(src) = sources
        .iter()
        .find(|id| !map.shards.iter().any(|l| l.shard_id == **id))
    {
        return changed(format!("source shard {src} is no longer in the map"));
    }
    let width = map.data_shards.saturating_add(map.parity_shards);
    for s in swaps {
        if s.index >= width {
            return invalid(format!("index {} is outside the map's {width}", s.index));
        }
        let now = map.shards.iter().find(|l| l.index == s.index);
        match (now, s.old_shard_id.as_str()) {
            (None, "") => {}
            (Some(l), old) if l.shard_id == old => {}
            (Some(l), _) => {
                return changed(format!("index {} holds shard {}", s.index, l.shard_id));
            }
            (None, _) => return changed(format!("index {} is missing", s.index)),
        }
        if reads::shard_is_named(c, &s.new.shard_id).await? {
            return changed(format!("shard {} is already named", s.new.shard_id));
        }
        match reads::blob_server(c, &s.new.blob_id).await? {
            None => return reject(MetaError::NoSuchBlobServer(s.new.blob_id.clone())),
            Some(b) if kind == SwapKind::Move && !b.usable() => {
                return reject(MetaError::BlobServerRetired(s.new.blob_id.clone()));
            }
            Some(_) => {}
        }
        if kind == SwapKind::Move
            && map
                .shards
                .iter()
                .any(|l| l.blob_id == s.new.blob_id && l.index != s.index)
        {
            return changed(format!(
                "blob-server {} already holds another shard of the unit",
                s.new.blob_id
            ));
        }
    }
    let mut old = Vec::new();
    for s in swaps {
        let (gone, kept) = std::mem::take(&mut map.shards)
            .into_iter()
            .partition(|l| l.index == s.index);
        map.shards = kept;
        old.extend::<Vec<_>>(gone);
        map.shards.push(s.new.clone());
    }
    map.shards.sort_by_key(|l| l.index);
    let stored = if unit.upload_id.is_empty() && unit.part_number > 0 {
        let mut parts = reads::version_parts(c, &unit.bucket, &unit.key, &unit.version_id)
            .await?
            .unwrap_or_default();
        for p in parts
            .iter_mut()
            .filter(|p| p.part_number == unit.part_number)
        {
            p.shard_map = Some(map.clone());
        }
        writes::set_unit_map(c, unit, MapSite::VersionPart(&parts), &map).await?
    } else if unit.upload_id.is_empty() {
        writes::set_unit_map(c, unit, MapSite::Version, &map).await?
    } else {
        writes::set_unit_map(c, unit, MapSite::UploadPart, &map).await?
    };
    if !stored {
        // unit_map found it a moment ago: a bug, refused without change.
        return changed("the unit no longer exists".into());
    }
    match kind {
        SwapKind::Repair => writes::add_shards_repaired(c, swaps.len() as u64).await?,
        SwapKind::Move => writes::add_shards_moved(c, swaps.len() as u64).await?,
    }
    let freed = if old.is_empty() {
        Vec::new()
    } else {
        let replaced = ShardMap { shards: old, ..map };
        unnamed(c, vec![replaced]).await?
    };
    Ok(Response::Swapped { freed })
}
