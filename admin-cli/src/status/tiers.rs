//! The blob tier and the gateways at a glance, for `hamster status`:
//! one line says whether the blob tier is whole (servers, down, silent,
//! draining, bytes, free); one row per gateway says whether it reports
//! and which master keys and trust generation it holds. Both come from
//! what StatusResponse already carries (blob_servers, key_holders and
//! tls_members with role "gateway").

use std::collections::BTreeMap;

use hamster_proto::pb::{BlobServer, KeyHolder, TlsMember};

use crate::blob::human_bytes;

/// A server not heard from for this long is silent: three heartbeats at
/// the blob-server's default `--heartbeat-secs` (10), so one late
/// heartbeat is not an alarm. The meta tier marks it down only after
/// `--blob-down-after-secs` (300 s by default); until then status would
/// otherwise call a dead server's tier healthy.
pub const SILENT_AFTER_MS: i64 = 30_000;

/// The blob tier, summed. A removed server is retired: it counts only
/// as removed. Silent counts the servers not (yet) down whose last
/// heartbeat is older than [`SILENT_AFTER_MS`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BlobTier {
    pub servers: usize,
    pub active: usize,
    pub down: usize,
    pub silent: usize,
    pub draining: usize,
    pub removed: usize,
    pub bytes_stored: u64,
    pub free_bytes: u64,
    pub capacity_bytes: u64,
}

/// `now_ms` is this machine's clock while heartbeats carry the meta
/// leader's: skew well under [`SILENT_AFTER_MS`] does not matter.
pub fn blob_tier(servers: &[BlobServer], now_ms: i64) -> BlobTier {
    let mut t = BlobTier::default();
    for b in servers {
        if b.state == "removed" || b.lifecycle == "removed" {
            t.removed += 1;
            continue;
        }
        t.servers += 1;
        match b.state.as_str() {
            "active" => t.active += 1,
            "down" => t.down += 1,
            _ => {}
        }
        if b.state != "down" && now_ms.saturating_sub(b.last_heartbeat_ms) > SILENT_AFTER_MS {
            t.silent += 1;
        }
        // A down server may be draining too: the lifecycle says so.
        if matches!(b.lifecycle.as_str(), "draining" | "drained")
            || matches!(b.state.as_str(), "draining" | "drained")
        {
            t.draining += 1;
        }
        t.bytes_stored += b.bytes_stored;
        t.free_bytes += b.free_bytes;
        t.capacity_bytes += b.capacity_bytes;
    }
    t
}

impl BlobTier {
    pub fn line(&self) -> String {
        let mut s = format!(
            "blob tier    {} servers: {} active, {} down, {} silent, {} draining",
            self.servers, self.active, self.down, self.silent, self.draining
        );
        if self.removed > 0 {
            s += &format!(" ({} removed)", self.removed);
        }
        s += &format!(
            "   stored {}   free {} of {}",
            human_bytes(self.bytes_stored),
            human_bytes(self.free_bytes),
            human_bytes(self.capacity_bytes)
        );
        if !self.healthy() {
            s += "   DEGRADED";
        }
        s
    }

    /// Every server not removed is up and heard from.
    pub fn healthy(&self) -> bool {
        self.down == 0 && self.silent == 0
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "servers": self.servers, "active": self.active, "down": self.down,
            "silent": self.silent, "draining": self.draining, "removed": self.removed,
            "bytes_stored": self.bytes_stored, "free_bytes": self.free_bytes,
            "capacity_bytes": self.capacity_bytes, "healthy": self.healthy(),
        })
    }
}

/// One gateway: what it reports as a key holder and as a TLS member
/// (either may be missing, e.g. right after a restore).
#[derive(Debug, Default)]
pub struct Gateway<'a> {
    pub id: &'a str,
    pub key: Option<&'a KeyHolder>,
    pub tls: Option<&'a TlsMember>,
}

impl Gateway<'_> {
    /// Live when either report is recent: it runs.
    pub fn live(&self) -> bool {
        self.key.is_some_and(|k| k.live) || self.tls.is_some_and(|t| t.live)
    }
}

/// The gateways, by id.
pub fn gateways<'a>(holders: &'a [KeyHolder], members: &'a [TlsMember]) -> Vec<Gateway<'a>> {
    let mut by: BTreeMap<&str, Gateway<'a>> = BTreeMap::new();
    for h in holders.iter().filter(|h| h.role == "gateway") {
        by.entry(&h.id)
            .or_insert_with(|| Gateway {
                id: &h.id,
                ..Default::default()
            })
            .key = Some(h);
    }
    for m in members.iter().filter(|m| m.role == "gateway") {
        by.entry(&m.id)
            .or_insert_with(|| Gateway {
                id: &m.id,
                ..Default::default()
            })
            .tls = Some(m);
    }
    by.into_values().collect()
}

fn or_dash(s: Option<&str>) -> &str {
    s.filter(|s| !s.is_empty()).unwrap_or("-")
}

/// The GATEWAYS table, header first.
pub fn gateway_table(gws: &[Gateway<'_>]) -> Vec<String> {
    let row = |id: &str, live: &str, cur: &str, next: &str, trust: &str| {
        format!("{id:<20} {live:<5} {cur:<34} {next:<34} {trust}")
    };
    let mut out = vec![row("GATEWAY", "LIVE", "CURRENT KEY", "NEXT KEY", "TRUST")];
    if gws.is_empty() {
        out.push("(no gateway has reported)".into());
    }
    for g in gws {
        let trust = g
            .tls
            .map_or("-".to_string(), |t| t.trust_generation.to_string());
        out.push(row(
            g.id,
            if g.live() { "yes" } else { "no" },
            or_dash(g.key.map(|k| k.current_kek_fingerprint.as_str())),
            or_dash(g.key.map(|k| k.next_kek_fingerprint.as_str())),
            &trust,
        ));
    }
    out
}

pub fn gateways_json(gws: &[Gateway<'_>]) -> serde_json::Value {
    gws.iter()
        .map(|g| {
            serde_json::json!({
                "id": g.id, "live": g.live(),
                "current_key": g.key.map(|k| k.current_kek_fingerprint.as_str()),
                "next_key": g.key.map(|k| k.next_kek_fingerprint.as_str()),
                "key_live": g.key.map(|k| k.live),
                "trust_generation": g.tls.map(|t| t.trust_generation),
                "trust_live": g.tls.map(|t| t.live),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn blob(id: &str, state: &str, lifecycle: &str, stored: u64, free: u64) -> BlobServer {
        BlobServer {
            id: id.into(),
            last_heartbeat_ms: NOW - 5_000,
            state: state.into(),
            lifecycle: lifecycle.into(),
            bytes_stored: stored,
            free_bytes: free,
            capacity_bytes: stored + free,
            ..Default::default()
        }
    }

    #[test]
    fn the_blob_tier_line_counts_down_draining_and_removed_apart() {
        let servers = [
            blob("b1", "active", "in", 1024, 1024 * 1024),
            blob("b2", "down", "draining", 1024, 1024 * 1024),
            blob("b3", "draining", "draining", 0, 2048),
            blob("b4", "removed", "removed", 0, 0),
        ];
        let t = blob_tier(&servers, NOW);
        assert_eq!(
            (t.servers, t.active, t.down, t.silent, t.draining, t.removed),
            (3, 1, 1, 0, 2, 1)
        );
        assert_eq!(t.bytes_stored, 2048);
        assert_eq!(
            t.line(),
            "blob tier    3 servers: 1 active, 1 down, 0 silent, 2 draining (1 removed)   \
             stored 2.0 KiB   free 2.0 MiB of 2.0 MiB   DEGRADED"
        );
        assert_eq!(t.json()["healthy"], false);
        assert_eq!(t.json()["down"], 1);
        let whole = blob_tier(&servers[..1], NOW);
        assert!(!whole.line().contains("DEGRADED"), "{}", whole.line());
        assert!(!whole.line().contains("removed"), "{}", whole.line());
        assert_eq!(whole.json()["healthy"], true);
    }

    #[test]
    fn a_server_not_heard_from_for_three_heartbeats_is_silent_before_the_meta_tier_marks_it_down() {
        let mut dead = blob("b2", "active", "in", 0, 1024);
        let mut down = blob("b3", "down", "in", 0, 1024);
        let mut gone = blob("b4", "removed", "removed", 0, 0);
        for b in [&mut dead, &mut down, &mut gone] {
            b.last_heartbeat_ms = NOW - 60_000;
        }
        let up = blob("b1", "active", "in", 0, 1024);
        let t = blob_tier(&[up.clone(), dead.clone(), down, gone], NOW);
        // A down server counts once, as down; a removed one not at all.
        assert_eq!((t.servers, t.active, t.down, t.silent), (3, 2, 1, 1));
        assert!(
            t.line()
                .contains(": 2 active, 1 down, 1 silent, 0 draining"),
            "{}",
            t.line()
        );

        let t = blob_tier(&[up.clone(), dead.clone()], NOW);
        assert_eq!((t.active, t.down, t.silent), (2, 0, 1));
        assert!(t.line().ends_with("   DEGRADED"), "{}", t.line());
        assert_eq!(t.json()["healthy"], false);
        assert_eq!(t.json()["silent"], 1);

        // Exactly at the limit is not yet silent; a heartbeat revives it.
        dead.last_heartbeat_ms = NOW - SILENT_AFTER_MS;
        let t = blob_tier(&[up.clone(), dead.clone()], NOW);
        assert_eq!(t.silent, 0);
        assert!(!t.line().contains("DEGRADED"), "{}", t.line());
        assert_eq!(t.json()["healthy"], true);
        dead.last_heartbeat_ms = NOW - SILENT_AFTER_MS - 1;
        assert_eq!(blob_tier(&[up, dead], NOW).silent, 1);
    }

    #[test]
    fn gateways_join_their_key_and_trust_reports_and_skip_other_roles() {
        let holders = [
            KeyHolder {
                id: "gateway-1".into(),
                role: "gateway".into(),
                current_kek_fingerprint: "aaaa".into(),
                next_kek_fingerprint: String::new(),
                live: true,
                ..Default::default()
            },
            KeyHolder {
                id: "meta-1".into(),
                role: "meta".into(),
                live: true,
                ..Default::default()
            },
        ];
        let members = [
            TlsMember {
                id: "gateway-1".into(),
                role: "gateway".into(),
                trust_generation: 4,
                live: true,
                ..Default::default()
            },
            TlsMember {
                id: "gateway-2".into(),
                role: "gateway".into(),
                trust_generation: 3,
                live: false,
                ..Default::default()
            },
        ];
        let gws = gateways(&holders, &members);
        let t = gateway_table(&gws);
        assert_eq!(t.len(), 3, "{t:#?}");
        assert!(t[0].starts_with("GATEWAY"), "{}", t[0]);
        let one: Vec<&str> = t[1].split_whitespace().collect();
        assert_eq!(one, ["gateway-1", "yes", "aaaa", "-", "4"]);
        let two: Vec<&str> = t[2].split_whitespace().collect();
        assert_eq!(two, ["gateway-2", "no", "-", "-", "3"]);
        let j = gateways_json(&gws);
        assert_eq!(j[0]["id"], "gateway-1");
        assert_eq!(j[0]["current_key"], "aaaa");
        assert_eq!(j[0]["trust_generation"], 4);
        assert_eq!(j[1]["live"], false);
        assert_eq!(j[1]["current_key"], serde_json::Value::Null);
        assert_eq!(gateway_table(&[])[1], "(no gateway has reported)");
    }
}
