//! What `hamster restore` says: what was restored (or, with `--check`,
//! what would be), where the old dirs went, and what to do next.

use std::path::{Path, PathBuf};

use hamster_meta::backup::format::BackupHeader;
use hamster_meta::backup::restore::{Member, Report};

use super::RestoreArgs;
use super::aside::Moved;
use super::checks::Verdict;
use crate::backup::utc;

pub struct Done<'a> {
    pub report: &'a Report,
    pub seeded: &'a [PathBuf],
    pub moved: &'a Moved,
    pub members: &'a [Member],
    /// `--dir`: the dev dir.
    pub dev: Option<&'a Path>,
    pub every_member: bool,
}

fn paths<'p>(ps: impl IntoIterator<Item = &'p PathBuf>) -> Vec<String> {
    ps.into_iter().map(|p| p.display().to_string()).collect()
}

pub fn restored(a: &RestoreArgs, d: &Done) {
    let h = &d.report.header;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "raft_index": h.raft_index, "raft_term": h.raft_term,
                "backup_created_ms": h.created_ms, "restored_at_ms": d.report.restored_at_ms,
                "cluster_id": h.cluster_id, "seeded": paths(d.seeded), "role": "seeded",
                "moved_aside": paths(d.moved.iter().map(|(_, to)| to)),
                "accepted_older": d.report.accepted_older, "rewrapped": d.report.rewrapped,
            })
        );
        return;
    }
    println!(
        "restored raft index {} (term {}) from {}, a backup taken {}",
        h.raft_index,
        h.raft_term,
        a.from.display(),
        utc(h.created_ms)
    );
    println!(
        "  holds          {} versions, {} buckets, {} access keys",
        h.versions, h.buckets, h.access_keys
    );
    for why in &d.report.accepted_older {
        println!("  accepted older {why}");
    }
    if d.report.rewrapped > 0 {
        println!(
            "  rewrapped      {} keys to the current master key",
            d.report.rewrapped
        );
    }
    for (from, to) in d.moved {
        println!("  moved aside    {} -> {}", from.display(), to.display());
    }
    for dir in d.seeded {
        println!("  seeded         {}", dir.display());
    }
    if d.every_member {
        println!(
            "  role           seeded with the backup's state as the restored cluster's first \
             leader ({} members)",
            d.members.len()
        );
    }
    println!("Next steps:");
    match d.dev {
        Some(dir) => println!(
            "  1. Start the cluster: hamster dev --dir {}",
            dir.display()
        ),
        None if d.every_member => println!(
            "  1. Run this same command (same file, same --initial-members) on every other \
             member: each is left empty and receives the state from this one. Then start \
             them all. Never start a member whose data dir was not restored this way: it \
             would found a second, empty cluster."
        ),
        None => {
            let me = d.members.first();
            println!(
                "  1. Start this meta-server ({}) with its usual flags; it leads a one-node cluster.",
                me.map_or(String::new(), |m| format!(
                    "raft id {}, {}@{}",
                    m.raft_id, m.name, m.addr
                ))
            );
            println!(
                "  2. Start the others with EMPTY data dirs, NEW raft ids and no \
                 --initial-members, then add each: hamster member add --raft-id ID --node-id NAME \
                 --address HOST:PORT"
            );
        }
    }
    println!(
        "  Shards written after the backup are held, not swept: hamster orphans list; release \
         them (hamster orphans release --all) once you know they are not needed."
    );
    println!("  Take a new backup once the cluster runs: hamster backup --out FILE");
}

/// What a `--initial-members` restore left for a member that is not the
/// lowest raft id: an empty data dir awaiting `leader`.
pub struct Awaiting<'a> {
    pub header: &'a BackupHeader,
    pub data: &'a Path,
    pub self_id: u64,
    pub leader: &'a Member,
}

fn who(m: &Member) -> String {
    format!("{} (raft id {})", m.name, m.raft_id)
}

pub fn awaiting(a: &RestoreArgs, w: &Awaiting) {
    let h = w.header;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "role": "awaits-leader",
                "leader": {"raft_id": w.leader.raft_id, "name": w.leader.name, "addr": w.leader.addr},
                "raft_index": h.raft_index, "raft_term": h.raft_term,
                "backup_created_ms": h.created_ms, "restored_at_ms": null,
                "cluster_id": h.cluster_id, "seeded": [], "awaiting": [w.data.display().to_string()],
                "moved_aside": [], "accepted_older": [], "rewrapped": 0,
            })
        );
        return;
    }
    println!(
        "verified {}: a backup of raft index {} (term {}), taken {}",
        a.from.display(),
        h.raft_index,
        h.raft_term,
        utc(h.created_ms)
    );
    println!(
        "  role           left empty: it will receive the state from {}",
        who(w.leader)
    );
    println!(
        "  awaits         {} (raft id {})",
        w.data.display(),
        w.self_id
    );
    println!("Next steps:");
    println!(
        "  1. Run this same command (same file, same --initial-members) on {} — it is seeded \
         with the backup's state — and on every other member.",
        who(w.leader)
    );
    println!(
        "  2. Start them all with the same --initial-members; this one waits for {}'s \
         snapshot. If that restore was refused, fix it and run it again there.",
        w.leader.name
    );
}

pub fn checked(a: &RestoreArgs, v: &Verdict, in_use: &[(&Path, String)], awaits: Option<&Member>) {
    let h = &v.header;
    let dirs: Vec<String> = in_use
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    let role = if awaits.is_some() {
        "awaits-leader"
    } else {
        "seeded"
    };
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "file": a.from.display().to_string(), "header": h, "older": v.older,
                "rewrapped": v.rewrapped, "data_dirs_in_use": dirs, "role": role,
                "restorable": v.refusal.is_none() && in_use.is_empty(), "refusal": v.refusal,
            })
        );
        return;
    }
    println!(
        "{}: a whole backup (checksum, database and index verified)",
        a.from.display()
    );
    println!(
        "  raft index     {} (term {}), taken {} from raft id {}",
        h.raft_index,
        h.raft_term,
        utc(h.created_ms),
        h.source_raft_id
    );
    println!("  cluster        {}", or_none(&h.cluster_id));
    println!(
        "  holds          {} versions, {} buckets, {} access keys ({} state DB, schema {})",
        h.versions,
        h.buckets,
        h.access_keys,
        crate::blob::human_bytes(h.db_bytes),
        h.schema_version
    );
    println!(
        "  master keys    {} (write key {}); this node holds {}",
        or_none(&h.key_fingerprints.join(", ")),
        or_none(&h.write_key),
        v.held.join(", ")
    );
    println!(
        "  trust          generation {}, CAs {}; issuing {}",
        h.trust_generation,
        or_none(&h.trust_cas.join(", ")),
        or_none(&h.issuing_ca)
    );
    if !h.removed_blob_servers.is_empty() {
        println!("  removed blobs  {}", h.removed_blob_servers.join(", "));
    }
    let verb = if a.accept_older {
        "accepted older"
    } else {
        "older"
    };
    for why in &v.older {
        println!("  {verb:<14} {why}");
    }
    if a.accept_older && v.rewrapped > 0 {
        println!(
            "  rewrap         {} keys to the current master key",
            v.rewrapped
        );
    }
    if let Some(l) = awaits {
        println!(
            "  role           this node would be left empty to receive the state from {}",
            who(l)
        );
    }
    for (_, why) in in_use {
        println!("  refused        {why}");
    }
    match &v.refusal {
        Some(_) => println!("a restore would be REFUSED"),
        None if in_use.is_empty() => println!("a restore would go ahead; nothing was written"),
        None => {}
    }
}

/// An empty field as "none" rather than a blank.
pub fn or_none(s: &str) -> &str {
    if s.is_empty() { "none" } else { s }
}
