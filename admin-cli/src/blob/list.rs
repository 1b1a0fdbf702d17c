//! `hamster blob list [--json]`: every registered blob-server, removed
//! ones included (their ids stay refused), and the balance. The objects
//! and the balance line are shared with `hamster status`.

use hamster_proto::pb::{Balance, BlobBalance, BlobServer};

use crate::status::{ago, now_ms};

pub use crate::conn::ListArgs;

pub async fn run(a: &ListArgs) -> anyhow::Result<()> {
    let r = super::call(&a.meta, async |mut c| {
        c.list_blob_servers(hamster_proto::pb::ListBlobServersRequest {})
            .await
            .map(tonic::Response::into_inner)
    })
    .await?
    .map_err(|s| super::refused("list blob-servers", &s))?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&list_json(&r.servers, r.balance.as_ref()))?
        );
        return Ok(());
    }
    for line in table(&r.servers, now_ms(), false) {
        println!("{line}");
    }
    if let Some(b) = &r.balance {
        println!("{}", balance_line(b));
    }
    Ok(())
}

/// `{"blobs": [...], "balance": {...}}`.
fn list_json(servers: &[BlobServer], balance: Option<&Balance>) -> serde_json::Value {
    serde_json::json!({
        "blobs": servers.iter().map(blob_json).collect::<Vec<_>>(),
        "balance": balance_json(balance),
    })
}

/// One blob-server as `blob list --json` and `status --json` show it.
pub fn blob_json(b: &BlobServer) -> serde_json::Value {
    serde_json::json!({
        "id": b.id, "address": b.address, "failure_domain": b.failure_domain,
        "state": b.state, "lifecycle": b.lifecycle, "shards_named": b.shards_named,
        "shards_stored": b.shards_stored, "bytes_stored": b.bytes_stored,
        "free_bytes": b.free_bytes, "capacity_bytes": b.capacity_bytes,
        "last_heartbeat_ms": b.last_heartbeat_ms, "last_scrub_ms": b.last_scrub_ms,
        "drain_to": b.drain_to,
    })
}

/// The balance as JSON; null when the meta tier sent none.
pub fn balance_json(b: Option<&Balance>) -> serde_json::Value {
    let Some(b) = b else {
        return serde_json::Value::Null;
    };
    serde_json::json!({
        "band_pct": b.band_pct, "slack_bytes": b.slack_bytes,
        "within_band": b.within_band, "moving": b.moving,
        "servers": b.servers.iter().map(|s| serde_json::json!({
            "id": s.id, "bytes_stored": s.bytes_stored,
            "target_bytes": s.target_bytes, "within_band": s.within_band,
        })).collect::<Vec<_>>(),
    })
}

/// "812 B", "1.5 KiB", "3.2 GiB".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The state word, with what the word hides: a drain's target, or that
/// a down server is also draining.
fn state_word(b: &BlobServer) -> String {
    let mut s = b.state.clone();
    if b.state == "down" && matches!(b.lifecycle.as_str(), "draining" | "drained") {
        s.push_str(&format!(" ({})", b.lifecycle));
    }
    if !b.drain_to.is_empty() && b.lifecycle != "removed" {
        s.push_str(&format!(" -> {}", b.drain_to));
    }
    s
}

/// The table, header first, columns as wide as their widest cell;
/// `hamster status` adds each server's last full scrub.
pub fn table(servers: &[BlobServer], now_ms: i64, with_scrub: bool) -> Vec<String> {
    let mut header = [
        "ID",
        "ADDRESS",
        "DOMAIN",
        "STATE",
        "SHARDS",
        "STORED",
        "FREE",
        "LAST HEARTBEAT",
    ]
    .map(String::from)
    .to_vec();
    if with_scrub {
        header[0] = "BLOB SERVER".into();
        header.push("LAST SCRUB".into());
    }
    let mut rows = vec![header];
    for b in servers {
        let mut row = vec![
            b.id.clone(),
            b.address.clone(),
            b.failure_domain.clone(),
            state_word(b),
            b.shards_named.to_string(),
            format!("{} ({})", b.shards_stored, human_bytes(b.bytes_stored)),
            human_bytes(b.free_bytes),
            ago(now_ms, b.last_heartbeat_ms),
        ];
        if with_scrub {
            row.push(ago(now_ms, b.last_scrub_ms));
        }
        rows.push(row);
    }
    // Counts and sizes right-aligned.
    render(&rows, &[false, false, false, false, true, true, true])
}

fn render(rows: &[Vec<String>], right: &[bool]) -> Vec<String> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(c, s)| {
                    if right.get(c).copied().unwrap_or(false) {
                        format!("{s:>w$}", w = width[c])
                    } else {
                        format!("{s:<w$}", w = width[c])
                    }
                })
                .collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect()
}

/// The server farthest from its target, among those outside the band
/// (among all, if every one is within it).
pub fn worst(b: &Balance) -> Option<&BlobBalance> {
    let off = |s: &&BlobBalance| s.bytes_stored.abs_diff(s.target_bytes);
    b.servers
        .iter()
        .filter(|s| !s.within_band)
        .max_by_key(off)
        .or_else(|| b.servers.iter().max_by_key(off))
}

/// "+12 %" / "-65 %" from the target; "" when the target is 0.
pub fn distance(s: &BlobBalance) -> String {
    if s.target_bytes == 0 {
        return String::new();
    }
    let pct = (s.bytes_stored as f64 - s.target_bytes as f64) * 100.0 / s.target_bytes as f64;
    format!("{pct:+.0} %")
}

/// One line: within the band or not, the worst server, the mover.
pub fn balance_line(b: &Balance) -> String {
    let mover = if b.moving {
        "the mover is moving shards"
    } else {
        "the mover is idle"
    };
    let band = format!(
        "{} % band (slack {})",
        b.band_pct,
        human_bytes(b.slack_bytes)
    );
    if b.servers.is_empty() {
        return format!("balance: no server in service to weigh; {mover}");
    }
    if b.within_band {
        return format!(
            "balance: all {} servers in service are within the {band}; {mover}",
            b.servers.len()
        );
    }
    let out = b.servers.iter().filter(|s| !s.within_band).count();
    let worst = worst(b).map_or(String::new(), |w| {
        format!(
            " (farthest: {} holds {}, target {}, {})",
            w.id,
            human_bytes(w.bytes_stored),
            human_bytes(w.target_bytes),
            distance(w)
        )
    });
    format!(
        "balance: {out} of {} servers outside the {band}{worst}; {mover}",
        b.servers.len()
    )
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn server(id: &str, state: &str, lifecycle: &str) -> BlobServer {
        BlobServer {
            id: id.into(),
            address: "127.0.0.1:7501".into(),
            failure_domain: "rack-a".into(),
            state: state.into(),
            lifecycle: lifecycle.into(),
            shards_named: 1204,
            shards_stored: 1210,
            bytes_stored: 3 << 30,
            free_bytes: 500 << 30,
            capacity_bytes: 1 << 40,
            ..Default::default()
        }
    }

    /// A balance row (shared with the rebalance tests).
    pub(in crate::blob) fn bal(id: &str, stored: u64, target: u64, within: bool) -> BlobBalance {
        BlobBalance {
            id: id.into(),
            bytes_stored: stored,
            target_bytes: target,
            within_band: within,
        }
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16384.0 PiB");
    }

    #[test]
    fn the_table_aligns_columns_and_shows_what_the_state_word_hides() {
        let mut replaced = server("blob-1", "draining", "draining");
        replaced.drain_to = "blob-9".into();
        let dead = server("blob-22", "down", "draining");
        let lines = table(&[replaced, dead, server("b3", "active", "in")], 0, false);
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("ID       ADDRESS"), "{}", lines[0]);
        assert!(lines[1].contains("draining -> blob-9"), "{}", lines[1]);
        assert!(lines[2].contains("down (draining)"), "{}", lines[2]);
        assert!(lines[3].contains(" active "), "{}", lines[3]);
        assert!(lines[1].contains("1210 (3.0 GiB)"), "{}", lines[1]);
        assert!(lines[1].ends_with("never"), "{}", lines[1]);
        // Every row's STATE column starts where the header's does.
        let at = lines[0].find("STATE").expect("STATE");
        assert!(
            lines
                .iter()
                .skip(1)
                .all(|l| l[at..].starts_with(|c: char| c.is_alphabetic()))
        );
    }

    #[test]
    fn json_carries_every_field_scripts_rely_on() {
        let b = Balance {
            band_pct: 10,
            slack_bytes: 64 << 20,
            within_band: false,
            moving: true,
            servers: vec![bal("b3", 10, 20, false)],
        };
        let v = list_json(&[server("b3", "active", "in")], Some(&b));
        let blob = &v["blobs"][0];
        for field in [
            "id",
            "address",
            "failure_domain",
            "state",
            "lifecycle",
            "shards_named",
            "shards_stored",
            "bytes_stored",
            "free_bytes",
            "capacity_bytes",
            "last_heartbeat_ms",
            "drain_to",
        ] {
            assert!(blob.get(field).is_some(), "blobs[0] lacks {field}: {blob}");
        }
        assert_eq!(blob["shards_named"], 1204);
        assert_eq!(v["balance"]["within_band"], false);
        assert_eq!(v["balance"]["servers"][0]["target_bytes"], 20);
        assert!(list_json(&[], None)["balance"].is_null());
    }

    #[test]
    fn the_balance_line_names_the_farthest_server_outside_the_band() {
        let mut b = Balance {
            band_pct: 10,
            slack_bytes: 64 << 20,
            within_band: false,
            moving: true,
            servers: vec![
                bal("full", 14 << 30, 10 << 30, false),
                bal("ok", 10 << 30, 10 << 30, true),
                bal("new", 1 << 30, 10 << 30, false),
            ],
        };
        assert_eq!(worst(&b).map(|w| w.id.as_str()), Some("new"));
        assert_eq!(
            balance_line(&b),
            "balance: 2 of 3 servers outside the 10 % band (slack 64.0 MiB) (farthest: new holds \
             1.0 GiB, target 10.0 GiB, -90 %); the mover is moving shards"
        );
        b.within_band = true;
        b.moving = false;
        assert_eq!(
            balance_line(&b),
            "balance: all 3 servers in service are within the 10 % band (slack 64.0 MiB); \
             the mover is idle"
        );
        assert_eq!(distance(&bal("x", 5, 0, true)), "");
        assert_eq!(distance(&bal("x", 11, 10, true)), "+10 %");
    }
}
