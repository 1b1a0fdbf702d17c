//! A verified backup DB checked against what the restoring node holds
//! now, and adjusted to it (ADR 0026), before any data dir is written.
//!
//! - Every master key something in it is wrapped under must be held
//!   (current or next). Not overridable.
//! - Older than the node, refused unless accepted: (a) a write key or a
//!   wrapping key other than the node's current, unless it is a rotation
//!   still open on both (a master-key rotation since): every key is
//!   rewrapped to the current one, no rotation left open; (b) other
//!   trusted CAs (a CA rotation since): the node's trust becomes the
//!   bundle; (c) blob-servers the node has revoked that the backup has
//!   not removed: removed now.
//! - Always: the trust generation jumps past anything a member loaded,
//!   and the orphan hold is set.
//!
//! Each change goes through the state machine's own code (`apply_entry`
//! of `Op::Rewrap`, `Op::RemoveBlob`; the rotation modules' setters), at
//! the restore's time, in one transaction.

use std::collections::BTreeSet;
use std::path::Path;

use hamster_proto::identity::{PeerIdentity, Role};
use hamster_proto::pki;
use sqlx::{Connection, SqliteConnection};

use super::format::BackupHeader;
use super::restore::{NodeFacts, RestoreError};
use super::take;
use crate::rewrapper;
use crate::state::apply::apply_entry;
use crate::state::commands::{Command, Op, Response};
use crate::state::model::{
    BlobServer, KeyRotation, ORPHAN_HOLD, OrphanHold, Rewrapped, TrustBundle,
};
use crate::state::{ca_rotation, key_rotation, reads, schema, writes};

/// Keys rewrapped per applied `Op::Rewrap`.
const REWRAP_BATCH: usize = 500;

/// What the adjustment did.
pub struct Adjusted {
    pub accepted_older: Vec<String>,
    pub rewrapped: u64,
}

fn db(e: impl std::fmt::Display) -> RestoreError {
    RestoreError::Db(e.to_string())
}

/// Checks the DB at `path` against `node` and adjusts it; refuses, with
/// the DB unchanged, if a key is missing or (without `accept_older`) the
/// backup is older than the node.
pub async fn adjust(
    path: &Path,
    header: &BackupHeader,
    node: &NodeFacts,
    accept_older: bool,
    now: i64,
) -> Result<Adjusted, RestoreError> {
    let mut conn =
        SqliteConnection::connect_with(&sqlx::sqlite::SqliteConnectOptions::new().filename(path))
            .await
            .map_err(db)?;
    let result = adjust_on(&mut conn, header, node, accept_older, now).await;
    let _ = conn.close().await;
    result
}

async fn adjust_on(
    conn: &mut SqliteConnection,
    header: &BackupHeader,
    node: &NodeFacts,
    accept_older: bool,
    now: i64,
) -> Result<Adjusted, RestoreError> {
    // The checks and changes below read and write this binary's schema.
    schema::migrate(conn).await.map_err(db)?;
    let write_key = key_rotation::write_key(conn).await.map_err(db)?;
    let needed = check_keys(conn, header, node, &write_key).await?;
    let bundle = ca_rotation::bundle(conn).await.map_err(db)?;
    let removed: BTreeSet<String> = reads::removed_blob_servers(conn)
        .await
        .map_err(db)?
        .into_iter()
        .collect();

    let (current, next) = node.keyring.fingerprints();
    // Older if the nodes moved past the backup's keys: its write key, or
    // any key something in it is wrapped under, is not the node's current
    // key (a next key given only so the restore can open them does not
    // make them current). One case is not: the backup has a rotation open
    // to its write key and the node has that same rotation open (its
    // current key the old one, its next the new one, not promoted yet):
    // the restored rotation goes on, the rewrapper finishes it.
    let open_here = key_rotation::rotation(conn)
        .await
        .map_err(db)?
        .is_some_and(|r| {
            r.new == write_key && r.old == current && next.as_deref() == Some(&*write_key)
        });
    let stale_keys: Vec<String> = needed
        .iter()
        .chain(Some(&write_key).filter(|w| !w.is_empty()))
        .filter(|f| **f != current)
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let key_older = !stale_keys.is_empty() && !open_here;
    let node_cas = pki::split_pem(&node.trust_pem);
    let node_fps: BTreeSet<String> = node_cas
        .iter()
        .filter_map(|p| ca_rotation::ca_fingerprint(p))
        .collect();
    let trust_older = bundle.as_ref().is_some_and(|b| fingerprints(b) != node_fps);
    let revoked_since: Vec<String> = node
        .revoked
        .iter()
        .filter_map(|u| PeerIdentity::parse_uri(u).ok())
        .filter(|p| p.role == Role::Blob && !removed.contains(&p.node_id))
        .map(|p| p.node_id)
        .collect();

    let mut older = Vec::new();
    if key_older {
        older.push(format!(
            "its write key is master key {write_key} and it holds keys under {}, this node's \
             current key is {current}: it predates a master-key rotation (accepted: every key \
             is rewrapped to {current})",
            stale_keys.join(", ")
        ));
    }
    if let Some(b) = bundle.as_ref().filter(|_| trust_older) {
        older.push(format!(
            "it trusts CAs {}, this node's trust file holds {}: it predates a CA rotation \
             (or is another cluster's) (accepted: this node's trust replaces it)",
            list(&fingerprints(b)),
            list(&node_fps)
        ));
    }
    if !revoked_since.is_empty() {
        older.push(format!(
            "blob-servers {} were removed after it (this node revokes them) \
             (accepted: they are marked removed)",
            revoked_since.join(", ")
        ));
    }
    if !older.is_empty() && !accept_older {
        return Err(RestoreError::Older(older));
    }

    let mut tx = conn.begin().await.map_err(db)?;
    let at = Applier {
        index: header.raft_index,
        now,
    };
    let rewrapped = if key_older {
        rewrap_all(&mut tx, &at, node, &write_key).await?
    } else {
        0
    };
    if let Some(mut b) = bundle {
        if trust_older {
            let old_issuing = std::mem::replace(&mut b.issuing, node.own_cert_ca.clone());
            if old_issuing != b.issuing {
                // Who minted the node's CA is not known here: a hint only.
                b.issuer.clear();
            }
            b.cas = node_cas;
            let keep = ca_rotation::rotation(&mut tx)
                .await
                .map_err(db)?
                .is_none_or(|r| node_fps.contains(&r.old) && node_fps.contains(&r.new));
            if !keep {
                ca_rotation::set_rotation(&mut tx, None).await.map_err(db)?;
            }
        }
        // Past any generation a member loaded since the backup, so every
        // member reloads this bundle and later rotations count up from it.
        b.generation = (b.generation + 1).max(u64::try_from(now).unwrap_or(0));
        ca_rotation::set_bundle(&mut tx, &b).await.map_err(db)?;
    }
    for id in &revoked_since {
        remove_blob(&mut tx, &at, id).await?;
    }
    let hold = OrphanHold {
        restored_at_ms: now,
        backup_index: header.raft_index,
        backup_created_ms: header.created_ms,
    };
    put_orphan_hold(&mut tx, &hold).await.map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(Adjusted {
        accepted_older: if older.is_empty() { Vec::new() } else { older },
        rewrapped,
    })
}

/// Sets the orphan hold: the sweep keeps unnamed shards written before
/// `hold.restored_at_ms` until an operator releases them (restore, and
/// `--force-new-cluster`: both leave shards the metadata no longer names).
pub async fn put_orphan_hold(
    c: &mut SqliteConnection,
    hold: &OrphanHold,
) -> Result<(), sqlx::Error> {
    let hold = writes::json(hold)?;
    writes::put_setting(c, ORPHAN_HOLD, Some(&hold)).await
}

fn fingerprints(b: &TrustBundle) -> BTreeSet<String> {
    b.cas
        .iter()
        .filter_map(|p| ca_rotation::ca_fingerprint(p))
        .collect()
}

fn list(fps: &BTreeSet<String>) -> String {
    fps.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Refuses unless the node holds every key the DB (and its header) names;
/// answers those keys.
async fn check_keys(
    conn: &mut SqliteConnection,
    header: &BackupHeader,
    node: &NodeFacts,
    write_key: &str,
) -> Result<BTreeSet<String>, RestoreError> {
    let (current, next) = node.keyring.fingerprints();
    let held: Vec<String> = std::iter::once(current).chain(next).collect();
    let mut needed: BTreeSet<String> = take::key_fingerprints(conn, write_key)
        .await
        .map_err(db)?
        .into_iter()
        .collect();
    needed.extend(header.key_fingerprints.iter().cloned());
    let missing: Vec<String> = needed
        .iter()
        .filter(|f| !held.contains(f))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(RestoreError::MissingMasterKey {
            needed: missing.join(", "),
            held,
        });
    }
    Ok(needed)
}

/// Applies commands to the restored DB as the entry it was backed up at,
/// stamped with the restore's time.
struct Applier {
    index: u64,
    now: i64,
}

impl Applier {
    async fn apply(&self, c: &mut SqliteConnection, op: Op) -> Result<Response, RestoreError> {
        let name = op.name();
        match apply_entry(c, self.index, &Command::new("", self.now, op)).await {
            Ok(Response::Err(e)) => Err(RestoreError::Db(format!("{name} refused: {e}"))),
            Ok(r) => Ok(r),
            Err(e) => Err(db(e)),
        }
    }
}

/// Every key not on the node's current master key moved to it (unwrap
/// and wrap: object bytes are untouched), the write key set to it, and no
/// rotation left open.
async fn rewrap_all(
    c: &mut SqliteConnection,
    at: &Applier,
    node: &NodeFacts,
    write_key: &str,
) -> Result<u64, RestoreError> {
    let new = node.keyring.current();
    let new_fp = new.fingerprint();
    // Secrets sealed before rotations existed carry no fingerprint: they
    // are under the write key, and are marked so before they move.
    writes::mark_unmarked_secrets(c, write_key)
        .await
        .map_err(db)?;
    let mut moved_total = 0;
    for fp in take::key_fingerprints(c, write_key).await.map_err(db)? {
        if fp == new_fp {
            continue;
        }
        let Some(old) = node.keyring.get(&fp) else {
            // check_keys ran first: every key named is held.
            return Err(RestoreError::MissingMasterKey {
                needed: fp,
                held: vec![new_fp],
            });
        };
        let r = KeyRotation {
            old: fp.clone(),
            new: new_fp.clone(),
            started_at_ms: at.now,
        };
        key_rotation::set_rotation(c, Some(&r)).await.map_err(db)?;
        loop {
            let pending = reads::wrapped_by(c, &fp, REWRAP_BATCH).await.map_err(db)?;
            if pending.is_empty() {
                break;
            }
            let mut items = Vec::with_capacity(pending.len());
            for (target, wrapped) in pending {
                let rewrapped = rewrapper::rewrap(&old, &new, &target, &wrapped).map_err(|e| {
                    RestoreError::Db(format!("{target:?} cannot be opened with {fp}: {e}"))
                })?;
                items.push(Rewrapped {
                    target,
                    old: wrapped,
                    new: rewrapped,
                });
            }
            let op = Op::Rewrap {
                new: new_fp.clone(),
                items,
            };
            match at.apply(c, op).await? {
                Response::Rewrapped { moved } if moved > 0 => moved_total += moved,
                other => {
                    return Err(RestoreError::Db(format!(
                        "rewrapping keys on {fp} made no progress: {other:?}"
                    )));
                }
            }
        }
        // Refused by apply unless nothing is left on the old key.
        at.apply(c, Op::FinishKeyRotation).await?;
    }
    key_rotation::set_rotation(c, None).await.map_err(db)?;
    key_rotation::set_write_key(c, &new_fp).await.map_err(db)?;
    Ok(moved_total)
}

/// Marks a blob-server removed as `hamster blob remove --force` does; one
/// the backup never knew is registered first, so it stays revoked.
async fn remove_blob(c: &mut SqliteConnection, at: &Applier, id: &str) -> Result<(), RestoreError> {
    if reads::blob_server(c, id).await.map_err(db)?.is_none() {
        let server = BlobServer {
            id: id.into(),
            address: "removed-before-restore".into(),
            ..Default::default()
        };
        at.apply(c, Op::RegisterBlob { server }).await?;
    }
    at.apply(
        c,
        Op::RemoveBlob {
            id: id.into(),
            force: true,
        },
    )
    .await?;
    Ok(())
}
