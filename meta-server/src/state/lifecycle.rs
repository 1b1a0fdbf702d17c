//! The blob-server lifecycle (ADR 0025): in service → draining → drained
//! → removed, apart from liveness (active/down). A draining server takes
//! no new shards and the leader's mover moves its shards away
//! (`MoveShards`); once no map names it the drain finishes and no new map
//! may name it (the write fence, [`check_new_map`]); a removed server is
//! refused for good, and its shards, if any were left (`--force`), count
//! as lost, since removal also marks it down.

use std::collections::BTreeSet;

use sqlx::SqliteConnection;

use super::commands::{MetaError, Response};
use super::durability::{self, SwapKind};
use super::model::{BlobServer, Lifecycle, ShardMap, ShardSwap, Unit};
use super::outcome::{ApplyError, Outcome, invalid, reject};
use super::{reads, writes};

/// The server `id`, refused if unknown or removed.
async fn known_not_removed(c: &mut SqliteConnection, id: &str) -> Result<BlobServer, ApplyError> {
    match reads::blob_server(c, id).await? {
        None => reject(MetaError::NoSuchBlobServer(id.into())),
        Some(s) if s.lifecycle == Lifecycle::Removed => {
            reject(MetaError::BlobServerRemoved(id.into()))
        }
        Some(s) => Ok(s),
    }
}

/// Refuses anything a removed server sends (registration, heartbeat,
/// scrub report, key or CA report); an unknown id passes, for the
/// command's own rule to judge.
pub async fn check_not_removed(c: &mut SqliteConnection, id: &str) -> Result<(), ApplyError> {
    if reads::blob_lifecycle(c, id).await? == Some(Lifecycle::Removed) {
        return reject(MetaError::BlobServerRemoved(id.into()));
    }
    Ok(())
}

/// The write fence: a new map (a committed version's, an uploaded
/// part's) may not name a drained or removed server, whose store is
/// being, or has been, emptied; nor, on a server undrained since, a shard
/// minted before it left "drained" (the cleanup may have deleted it after
/// judging it unnamed). A draining one is accepted: the writer's view of
/// the registry may be seconds old, and the mover moves what it wrote.
/// Unknown servers are not judged here.
pub async fn check_new_map(c: &mut SqliteConnection, map: &ShardMap) -> Result<(), ApplyError> {
    let blobs: BTreeSet<&str> = map.shards.iter().map(|l| l.blob_id.as_str()).collect();
    let ids: Vec<&str> = blobs.iter().copied().collect();
    let fences = reads::blob_fences(c, &ids).await?;
    // In id order, as one query per server did: the same first refusal.
    for id in blobs {
        match fences.get(id).copied() {
            Some((Lifecycle::Drained | Lifecycle::Removed, _)) => {
                return reject(MetaError::BlobServerRetired(id.into()));
            }
            Some((_, fence)) if fence > 0 => {
                let stale = map.shards.iter().filter(|l| l.blob_id == id).any(|l| {
                    hamster_proto::shard_id::created_ms(&l.shard_id).is_none_or(|t| t < fence)
                });
                if stale {
                    return reject(MetaError::BlobServerRetired(id.into()));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

pub async fn drain(c: &mut SqliteConnection, id: &str, to: &str) -> Outcome {
    let server = known_not_removed(c, id).await?;
    let servers = reads::blob_servers(c).await?;
    if !to.is_empty() {
        let why = if to == id {
            Some("the server being drained")
        } else {
            match servers.iter().find(|s| s.id == to) {
                None => Some("not a registered blob-server"),
                // Draining, drained, removed or down: it takes no shards.
                Some(t) if !t.usable() => Some(t.display_state()),
                Some(_) => None,
            }
        };
        if let Some(why) = why {
            return invalid(format!("cannot drain {id} onto {to}: {to} is {why}"));
        }
    }
    // A server down for a moment still counts: its outage is transient,
    // and placement waits for it rather than refuse the drain.
    let in_service = servers
        .iter()
        .filter(|s| s.id != id && s.lifecycle == Lifecycle::In)
        .count() as u64;
    let width = u64::from(reads::widest_width_on(c, id).await?);
    if in_service < width {
        return reject(MetaError::NotEnoughBlobServers(format!(
            "draining {id} leaves {in_service} servers in service; maps on it need {width} distinct servers"
        )));
    }
    // Drained already: nothing to move, and going back to draining would
    // lift the write fence under the cleanup (an operator re-running
    // `hamster blob drain` to watch it must change nothing).
    if server.lifecycle == Lifecycle::Drained {
        return Ok(Response::Ok);
    }
    if server.lifecycle != Lifecycle::Draining || server.drain_to != to {
        writes::set_lifecycle(c, id, Lifecycle::Draining, to).await?;
    }
    Ok(Response::Ok)
}

pub async fn undrain(c: &mut SqliteConnection, at: i64, id: &str) -> Outcome {
    let server = known_not_removed(c, id).await?;
    if server.lifecycle == Lifecycle::Drained {
        // The cleanup may be deleting what it listed: shards minted
        // before now may never be named (check_new_map).
        writes::set_fence(c, id, at).await?;
    }
    if server.lifecycle != Lifecycle::In {
        writes::set_lifecycle(c, id, Lifecycle::In, "").await?;
    }
    Ok(Response::Ok)
}

pub async fn finish_drain(c: &mut SqliteConnection, id: &str) -> Outcome {
    let Some(server) = reads::blob_server(c, id).await? else {
        return reject(MetaError::NoSuchBlobServer(id.into()));
    };
    match server.lifecycle {
        Lifecycle::Draining => {}
        Lifecycle::Drained => return Ok(Response::Ok),
        Lifecycle::In | Lifecycle::Removed => {
            return reject(MetaError::InvalidRequest(format!(
                "blob-server {id} is not draining"
            )));
        }
    }
    let named = reads::shards_named_on_count(c, id).await?;
    if named > 0 {
        return reject(MetaError::BlobServerInUse(id.into(), named));
    }
    writes::set_lifecycle(c, id, Lifecycle::Drained, &server.drain_to).await?;
    Ok(Response::Ok)
}

pub async fn remove(c: &mut SqliteConnection, at: i64, id: &str, force: bool) -> Outcome {
    let Some(server) = reads::blob_server(c, id).await? else {
        return reject(MetaError::NoSuchBlobServer(id.into()));
    };
    if server.lifecycle == Lifecycle::Removed {
        return Ok(Response::Ok);
    }
    let named = reads::shards_named_on_count(c, id).await?;
    if named > 0 && !force {
        return reject(MetaError::BlobServerInUse(id.into(), named));
    }
    writes::remove_blob(c, id, at).await?;
    Ok(Response::Ok)
}

/// A drain's or rebalance's compare-and-set: the repair's swap, counted
/// as moved.
pub async fn move_shards(
    c: &mut SqliteConnection,
    unit: &Unit,
    swaps: &[ShardSwap],
    sources: &[String],
) -> Outcome {
    durability::swap(c, SwapKind::Move, unit, swaps, sources).await
}
