//! `hamster status`: the meta tier as one node sees it — leader, term,
//! log/commit/applied indexes, each member's health — and the master key:
//! the write key, the rotation, what is left on the old key, and which
//! keys each key holder reports; the trust generation, the CA rotation,
//! and which CA signed each member's certificate; durability (what is
//! under-replicated or unrecoverable, the repair queue, the oldest full
//! scrub), each blob-server (state, shards named and stored, free space)
//! and how evenly they are filled; the cluster's id, and after a restore
//! the shards the sweep holds (ADR 0026). A summary line for the blob
//! tier and a GATEWAYS table ([`tiers`]) answer "is my cluster healthy"
//! at a glance.

mod tiers;

use anyhow::Context;
use hamster_proto::pb::{StatusRequest, admin_client::AdminClient};

use crate::conn::MetaConn;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn idx(i: i64) -> String {
    if i < 0 { "-".into() } else { i.to_string() }
}

/// "12 s ago" for a past time in ms; "never" for 0.
pub fn ago(now_ms: i64, ms: i64) -> String {
    if ms <= 0 {
        return "never".into();
    }
    let s = (now_ms - ms).max(0) / 1000;
    match s {
        0..120 => format!("{s} s ago"),
        120..7200 => format!("{} min ago", s / 60),
        7200..172_800 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub async fn run(a: &StatusArgs) -> anyhow::Result<()> {
    let mut client = AdminClient::new(a.meta.channel()?);
    let s = client
        .status(StatusRequest {})
        .await
        .with_context(|| format!("status from {}", a.meta.meta.join(",")))?
        .into_inner();
    if a.json {
        let raft_members: Vec<_> = s
            .members
            .iter()
            .map(|m| {
                serde_json::json!({
                    "raft_id": m.raft_id, "node_id": m.node_id, "address": m.address,
                    "voter": m.voter, "healthy": m.healthy, "health_error": m.health_error,
                    "matched_index": m.matched_index,
                })
            })
            .collect();
        let holders: Vec<_> = s
            .key_holders
            .iter()
            .map(|h| {
                serde_json::json!({
                    "id": h.id, "role": h.role, "current": h.current_kek_fingerprint,
                    "next": h.next_kek_fingerprint, "last_seen_ms": h.last_seen_ms, "live": h.live,
                })
            })
            .collect();
        let tls_members: Vec<_> = s
            .tls_members
            .iter()
            .map(|m| {
                serde_json::json!({
                    "id": m.id, "role": m.role, "trust_generation": m.trust_generation,
                    "cert_ca_fingerprint": m.cert_ca_fingerprint,
                    "last_seen_ms": m.last_seen_ms, "live": m.live,
                })
            })
            .collect();
        let blob_servers: Vec<_> = s
            .blob_servers
            .iter()
            .map(|b| {
                serde_json::json!({
                    "id": b.id, "address": b.address, "failure_domain": b.failure_domain,
                    "state": b.state, "capacity_bytes": b.capacity_bytes,
                    "free_bytes": b.free_bytes, "last_heartbeat_ms": b.last_heartbeat_ms,
                    "last_scrub_ms": b.last_scrub_ms,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "node_id": s.node_id, "raft_id": s.raft_id, "state": s.state, "term": s.term,
                "leader_raft_id": s.leader_raft_id, "last_log_index": s.last_log_index,
                "commit_index": s.commit_index, "applied_index": s.applied_index,
                "snapshot_index": s.snapshot_index, "raft_members": raft_members,
                "trust_generation": s.trust_generation,
                "ca_rotation": s.ca_rotation,
                "issuing_ca_fingerprint": s.issuing_ca_fingerprint,
                "ca_rotation_new_fingerprint": s.ca_rotation_new_fingerprint,
                "members_on_old_ca": s.members_on_old_ca,
                "members": tls_members,
                "master_key_fingerprint": s.master_key_fingerprint,
                "key_rotation": s.key_rotation,
                "rotation_old_fingerprint": s.rotation_old_fingerprint,
                "rotation_new_fingerprint": s.rotation_new_fingerprint,
                "versions_on_old_key": s.versions_on_old_key,
                "access_keys_on_old_key": s.access_keys_on_old_key,
                "key_holders": holders,
                "under_replicated": s.under_replicated,
                "unrecoverable": s.unrecoverable,
                "repair_queue": s.repair_queue,
                "last_scrub_ms": s.last_scrub_ms,
                "shards_repaired": s.shards_repaired,
                "blob_servers": blob_servers,
                "blobs": s.blob_servers.iter().map(crate::blob::blob_json).collect::<Vec<_>>(),
                "shards_moved": s.shards_moved,
                "balance": crate::blob::balance_json(s.balance.as_ref()),
                "cluster_id": s.cluster_id,
                "held_orphans": s.held_orphans,
                "held_orphan_bytes": s.held_orphan_bytes,
                "restored": crate::orphans::hold_json(s.restored.as_ref()),
                "blob_tier": tiers::blob_tier(&s.blob_servers, now_ms()).json(),
                "gateways": tiers::gateways_json(&tiers::gateways(&s.key_holders, &s.tls_members)),
            })
        );
        return Ok(());
    }
    println!(
        "answered by  {} (raft id {}, {}, version {})",
        s.node_id, s.raft_id, s.state, s.version
    );
    let leader = if s.leader_raft_id == 0 {
        "none".to_string()
    } else {
        s.leader_raft_id.to_string()
    };
    let cluster = if s.cluster_id.is_empty() {
        "unknown (no trust bundle yet)"
    } else {
        &s.cluster_id
    };
    println!("cluster      {cluster}");
    println!("leader       {leader}   term {}", s.term);
    println!(
        "log          last {}   commit {}   applied {}   snapshot {}",
        idx(s.last_log_index),
        idx(s.commit_index),
        idx(s.applied_index),
        idx(s.snapshot_index)
    );
    println!(
        "{:<8} {:<16} {:<22} {:<8} {:<8} {:>8}",
        "RAFT ID", "NODE", "ADDRESS", "ROLE", "HEALTH", "MATCHED"
    );
    for m in &s.members {
        let role = if m.voter { "voter" } else { "learner" };
        let health = if m.healthy {
            "ok".to_string()
        } else {
            format!("DOWN ({})", m.health_error)
        };
        println!(
            "{:<8} {:<16} {:<22} {:<8} {:<8} {:>8}",
            m.raft_id,
            m.node_id,
            m.address,
            role,
            health,
            idx(m.matched_index)
        );
    }
    println!("master key   {} (writes)", s.master_key_fingerprint);
    if s.key_rotation == "rewrapping" {
        println!(
            "rotation     rewrapping {} -> {}: {} keys left on the old key ({} of them S3 secrets)",
            s.rotation_old_fingerprint,
            s.rotation_new_fingerprint,
            s.versions_on_old_key,
            s.access_keys_on_old_key
        );
    } else {
        println!("rotation     none");
    }
    println!(
        "{:<20} {:<8} {:<34} {:<34} LIVE",
        "KEY HOLDER", "ROLE", "CURRENT", "NEXT"
    );
    for h in &s.key_holders {
        let next = if h.next_kek_fingerprint.is_empty() {
            "-"
        } else {
            &h.next_kek_fingerprint
        };
        let live = if h.live { "yes" } else { "no" };
        println!(
            "{:<20} {:<8} {:<34} {:<34} {live}",
            h.id, h.role, h.current_kek_fingerprint, next
        );
    }
    let ca_rotation = match s.ca_rotation.as_str() {
        "none" | "" => "none".to_string(),
        phase => format!("{phase} -> {}", s.ca_rotation_new_fingerprint),
    };
    println!(
        "trust        generation {}   issuing CA {}   rotation {ca_rotation}   {} live members on the old CA",
        s.trust_generation, s.issuing_ca_fingerprint, s.members_on_old_ca
    );
    println!(
        "{:<20} {:<8} {:<6} {:<66} LIVE",
        "MEMBER", "ROLE", "TRUST", "CERTIFICATE CA"
    );
    for m in &s.tls_members {
        let live = if m.live { "yes" } else { "no" };
        println!(
            "{:<20} {:<8} {:<6} {:<66} {live}",
            m.id, m.role, m.trust_generation, m.cert_ca_fingerprint
        );
    }
    let now = now_ms();
    println!(
        "durability   under-replicated {}   unrecoverable {}   repair queue {}   shards repaired {}   shards moved {}   oldest full scrub {}",
        s.under_replicated,
        s.unrecoverable,
        s.repair_queue,
        s.shards_repaired,
        s.shards_moved,
        ago(now, s.last_scrub_ms)
    );
    println!("{}", tiers::blob_tier(&s.blob_servers, now).line());
    for line in crate::blob::table(&s.blob_servers, now, true) {
        println!("{line}");
    }
    if let Some(b) = &s.balance {
        println!("{}", crate::blob::balance_line(b));
    }
    if let Some(line) = orphans_line(&s, now) {
        println!("{line}");
    }
    for line in tiers::gateway_table(&tiers::gateways(&s.key_holders, &s.tls_members)) {
        println!("{line}");
    }
    Ok(())
}

/// The orphan hold, when there is one: what is held and the restore it
/// came from.
fn orphans_line(s: &hamster_proto::pb::StatusResponse, now: i64) -> Option<String> {
    let hold = s.restored.as_ref()?;
    Some(format!(
        "orphans      {} shards held ({}) since the restore: {} (hamster orphans list)",
        s.held_orphans,
        crate::blob::human_bytes(s.held_orphan_bytes),
        crate::orphans::hold_text(hold, now)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_orphans_are_shown_only_after_a_restore() {
        let mut s = hamster_proto::pb::StatusResponse {
            held_orphans: 3,
            held_orphan_bytes: 2048,
            ..Default::default()
        };
        assert_eq!(orphans_line(&s, 0), None, "never restored");
        s.restored = Some(hamster_proto::pb::OrphanHold {
            restored_at_ms: 1_000,
            backup_index: 77,
            backup_created_ms: 500,
        });
        let line = orphans_line(&s, 61_000).expect("a line");
        assert!(line.contains("3 shards held (2.0 KiB)"), "{line}");
        assert!(line.contains("restored 60 s ago"), "{line}");
        assert!(line.contains("index 77"), "{line}");
    }

    #[test]
    fn ages_read_naturally() {
        let now = 1_000_000_000;
        assert_eq!(ago(now, 0), "never");
        assert_eq!(ago(now, now - 5_000), "5 s ago");
        assert_eq!(ago(now, now + 5_000), "0 s ago");
        assert_eq!(ago(now, now - 600_000), "10 min ago");
        assert_eq!(ago(now, now - 3 * 3_600_000), "3 h ago");
        assert_eq!(ago(now, now - 9 * 86_400_000), "9 days ago");
    }
}
