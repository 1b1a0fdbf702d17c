//! One data dir made the start of a cluster of given members: after a
//! restore (every new member's dir), and `--force-new-cluster` (the one
//! survivor of a lost majority). Offline: no Raft runs on the dir.
//!
//! A seeded dir is: `state.db` as it is, with `sm_meta` membership set to
//! the members at its last applied log id; `raft-log.db` empty, purged up
//! to that id, committed there, and a vote one term past it for this node
//! (uncommitted: it still has to win an election); no snapshot. openraft
//! starts from the state machine and builds its first snapshot itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{Membership, RaftLogReader, Vote};

use super::adjust;
use crate::raft::log_store::LogStore;
use crate::raft::state_machine::{
    INCOMING_DB, SNAPSHOT_META, STATE_DB, StateDb, StateMachine, is_temp_copy, read_sm_meta,
    write_sm_meta,
};
use crate::raft::{LogId, MetaNode, NodeId, StorageError, StoredMembership};
use crate::state::model::OrphanHold;

/// The Raft log's file in a data dir.
pub const RAFT_LOG_DB: &str = "raft-log.db";
/// Left in the data dir by `--force-new-cluster`: the index it forced at.
pub const FORCE_MARKER: &str = "force-new-cluster.done";
/// Left in a restored member's empty data dir: it waits for the restored
/// leader (the one node seeded with state) to replicate to it, rather
/// than founding a cluster of its own from `--initial-members`.
pub const AWAIT_MARKER: &str = "restore-await-leader";
/// Log entries applied per batch when a survivor applies its own log.
const APPLY_CHUNK: u64 = 64;

#[derive(Debug, thiserror::Error)]
pub enum ReseedError {
    #[error("{} holds no metadata: nothing was ever applied there", .0.display())]
    Empty(PathBuf),
    #[error("the members must include this node (raft id {0})")]
    NotAMember(NodeId),
    #[error(
        "already forced into a new cluster at index {index}; drop --force-new-cluster, or delete {} to force again",
        file.display()
    )]
    AlreadyForced { index: u64, file: PathBuf },
    #[error("the old membership has no address for raft id {0}; give --advertise")]
    NoAddress(NodeId),
    #[error("{} already holds a meta-server's state (state.db or raft-log.db)", .0.display())]
    DataDirInUse(PathBuf),
    #[error("opening {what}: {why}")]
    Open { what: &'static str, why: String },
    #[error("Raft storage: {0}")]
    Storage(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn storage(e: StorageError) -> ReseedError {
    ReseedError::Storage(e.to_string())
}

async fn open_db(data_dir: &Path) -> Result<std::sync::Arc<StateDb>, ReseedError> {
    StateDb::open(data_dir)
        .await
        .map_err(|e| ReseedError::Open {
            what: "the metadata DB",
            why: e.to_string(),
        })
}

async fn open_log(data_dir: &Path) -> Result<LogStore, ReseedError> {
    LogStore::open(&data_dir.join(RAFT_LOG_DB))
        .await
        .map_err(|e| ReseedError::Open {
            what: "the Raft log",
            why: e.to_string(),
        })
}

/// Makes `data_dir` (which holds a state.db) the start of a cluster of
/// `members`, this node being `self_id`; answers the log id it starts at.
pub async fn seed(
    data_dir: &Path,
    self_id: NodeId,
    members: &BTreeMap<NodeId, MetaNode>,
) -> Result<LogId, ReseedError> {
    if !members.contains_key(&self_id) {
        return Err(ReseedError::NotAMember(self_id));
    }
    if !data_dir.join(STATE_DB).exists() {
        return Err(ReseedError::Empty(data_dir.to_path_buf()));
    }
    let db = open_db(data_dir).await?;
    let last = set_membership(&db, members).await;
    db.close().await;
    let last = last?.ok_or_else(|| ReseedError::Empty(data_dir.to_path_buf()))?;

    let log = open_log(data_dir).await?;
    let reset = reset_log(log.clone(), self_id, last).await;
    log.close().await;
    reset?;
    remove_snapshots(data_dir)?;
    Ok(last)
}

/// Membership = `members` (all voters) at the last applied log id.
async fn set_membership(
    db: &StateDb,
    members: &BTreeMap<NodeId, MetaNode>,
) -> Result<Option<LogId>, ReseedError> {
    let mut conn = db.acquire().await.map_err(|e| ReseedError::Open {
        what: "the metadata DB",
        why: e.to_string(),
    })?;
    let last: Option<LogId> = read_sm_meta::<Option<LogId>>(&mut conn, "last_applied")
        .await
        .map_err(storage)?
        .flatten();
    let Some(last) = last else {
        return Ok(None);
    };
    let voters: BTreeSet<NodeId> = members.keys().copied().collect();
    let m = StoredMembership::new(Some(last), Membership::new(vec![voters], members.clone()));
    write_sm_meta(&mut conn, "membership", &m)
        .await
        .map_err(storage)?;
    Ok(Some(last))
}

/// Empties the log up to `last` (purged there, committed there) and votes
/// for `self_id` one term past anything it saw.
async fn reset_log(mut log: LogStore, self_id: NodeId, last: LogId) -> Result<(), ReseedError> {
    let seen = log.read_vote().await.map_err(storage)?.unwrap_or_default();
    let after = LogId::new(last.leader_id, last.index + 1);
    log.truncate(after).await.map_err(storage)?;
    log.purge(last).await.map_err(storage)?;
    log.save_committed(Some(last)).await.map_err(storage)?;
    let term = seen.leader_id().term.max(last.leader_id.term) + 1;
    log.save_vote(&Vote::new(term, self_id))
        .await
        .map_err(storage)?;
    Ok(())
}

/// Removes every snapshot file (and leftover copies) from the dir: a
/// seeded dir starts from its state.db alone.
fn remove_snapshots(data_dir: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(data_dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale = name == SNAPSHOT_META
            || name == INCOMING_DB
            || name.ends_with(".writing")
            || (name.starts_with("snapshot-") && name.ends_with(".db"))
            || is_temp_copy(name);
        if stale {
            std::fs::remove_file(e.path())?;
        }
    }
    std::fs::File::open(data_dir)?.sync_all()
}

/// Readies an empty data dir for a member of a restored cluster that is
/// not the one seeded with state: with [`AWAIT_MARKER`] in it, the
/// meta-server does not initialize a cluster from `--initial-members`
/// but waits (as an uninitialized node, which still votes) for the
/// restored leader to send it a snapshot. Seeding each member from the
/// backup separately would give each a different state (restore time,
/// trust generation, rewrap nonces). Creates the dir if needed; refused
/// if it holds state, unless it already waits (the marker: done).
pub fn await_leader(data_dir: &Path) -> Result<(), ReseedError> {
    std::fs::create_dir_all(data_dir)?;
    let marker = data_dir.join(AWAIT_MARKER);
    if std::fs::symlink_metadata(&marker).is_ok() {
        return Ok(());
    }
    if [STATE_DB, RAFT_LOG_DB]
        .iter()
        .any(|f| data_dir.join(f).exists())
    {
        return Err(ReseedError::DataDirInUse(data_dir.to_path_buf()));
    }
    write_durably(
        &marker,
        "restored member: this node waits for the restored leader to replicate its state; \
         the meta-server removes this file once it is part of the cluster\n",
    )
}

/// Writes `text` to `path` durably (the state machine's temp file,
/// fsync, rename, fsync of the dir).
fn write_durably(path: &Path, text: &str) -> Result<(), ReseedError> {
    Ok(crate::raft::state_machine::write_durably(
        path,
        text.as_bytes(),
    )?)
}

/// Whether a previous force left its marker, and the index it names
/// (0 if unreadable). Existence decides: a marker that cannot be read
/// still refuses, and an error asking whether it exists is an error, not
/// a licence to force again.
fn forced_at(marker: &Path) -> Result<Option<u64>, ReseedError> {
    match std::fs::symlink_metadata(marker) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let index = std::fs::read_to_string(marker)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    Ok(Some(index))
}

/// `--force-new-cluster`: this node alone becomes the cluster {self},
/// with every entry of its log applied (a write the client may have seen
/// acknowledged is kept rather than lost), and the orphan hold set as a
/// restore sets it. An empty `me.addr` takes the address the old
/// membership has for this node. Refused if the dir was forced before
/// (the marker), so a flag left in a unit file cannot split a cluster
/// grown since.
pub async fn force_new_cluster(
    data_dir: &Path,
    self_id: NodeId,
    me: MetaNode,
) -> Result<LogId, ReseedError> {
    let marker = data_dir.join(FORCE_MARKER);
    if let Some(index) = forced_at(&marker)? {
        return Err(ReseedError::AlreadyForced {
            index,
            file: marker,
        });
    }
    if !data_dir.join(STATE_DB).exists() {
        return Err(ReseedError::Empty(data_dir.to_path_buf()));
    }
    let db = open_db(data_dir).await?;
    let log = open_log(data_dir).await?;
    let applied = apply_log(&db, log.clone()).await;
    log.close().await;
    let held = match &applied {
        Ok((_, last)) => hold_orphans(&db, *last).await,
        Err(_) => Ok(()),
    };
    let known = match &applied {
        Ok(_) if me.addr.is_empty() => known_addr(&db, self_id).await,
        _ => None,
    };
    db.close().await;
    let (applied, _) = applied?;
    held?;
    let mut me = me;
    if me.addr.is_empty() {
        me.addr = known.ok_or(ReseedError::NoAddress(self_id))?;
    }

    let last = seed(data_dir, self_id, &BTreeMap::from([(self_id, me.clone())])).await?;
    write_durably(&marker, &format!("{}\n", last.index))?;
    tracing::warn!(
        index = last.index,
        term = last.leader_id.term,
        applied_from_log = applied,
        node = %me,
        "FORCED A NEW CLUSTER: this node is now the only member, with the state it had; \
         any other old member must never start again with its old data. Add new members \
         with `hamster member add`, and remove --force-new-cluster from this node's command"
    );
    Ok(last)
}

/// Sets the orphan hold as a restore does: writes acknowledged only by
/// the lost members left shards this state does not name (maybe
/// COMPLIANCE data); the sweep must keep them until an operator says.
async fn hold_orphans(db: &StateDb, last: Option<LogId>) -> Result<(), ReseedError> {
    let now = crate::cluster::now_ms();
    let hold = OrphanHold {
        restored_at_ms: now,
        backup_index: last.map_or(0, |l| l.index),
        backup_created_ms: now,
    };
    let mut conn = db.acquire().await.map_err(|e| ReseedError::Open {
        what: "the metadata DB",
        why: e.to_string(),
    })?;
    adjust::put_orphan_hold(&mut conn, &hold)
        .await
        .map_err(|e| ReseedError::Storage(format!("setting the orphan hold: {e}")))
}

/// The address the applied membership has for `id`, if any.
async fn known_addr(db: &std::sync::Arc<StateDb>, id: NodeId) -> Option<String> {
    let mut sm = StateMachine::new(db.clone());
    let (_, m) = sm.applied_state().await.ok()?;
    m.membership()
        .nodes()
        .find(|(n, _)| **n == id)
        .map(|(_, node)| node.addr.clone())
        .filter(|a| !a.is_empty())
}

/// Applies every entry of the log past the last applied one; answers how
/// many it applied and the last applied log id then.
async fn apply_log(
    db: &std::sync::Arc<StateDb>,
    mut log: LogStore,
) -> Result<(u64, Option<LogId>), ReseedError> {
    let mut sm = StateMachine::new(db.clone());
    let (applied, _) = sm.applied_state().await.map_err(storage)?;
    let state = log.get_log_state().await.map_err(storage)?;
    let Some(last_log) = state.last_log_id else {
        return Ok((0, applied));
    };
    let next_index = |l: Option<LogId>| l.map_or(0, |l| l.index + 1);
    let mut next = next_index(applied);
    // Purged entries are gone from the log: the state must hold them.
    if next < next_index(state.last_purged_log_id) {
        return Err(ReseedError::Storage(format!(
            "the state (applied {applied:?}) is behind the purged log ({:?})",
            state.last_purged_log_id
        )));
    }
    let mut count = 0;
    while next <= last_log.index {
        let end = (next + APPLY_CHUNK).min(last_log.index + 1);
        let entries = log.try_get_log_entries(next..end).await.map_err(storage)?;
        let got = entries.len() as u64;
        if got != end - next {
            return Err(ReseedError::Storage(format!(
                "the log has a hole in [{next}, {end}): {got} entries"
            )));
        }
        sm.apply(entries).await.map_err(storage)?;
        count += got;
        next = end;
    }
    let (applied, _) = sm.applied_state().await.map_err(storage)?;
    Ok((count, applied))
}
