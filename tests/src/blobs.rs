//! Helpers for the blob-server lifecycle tests (issue 17): `hamster blob
//! list --json` as a test reads it, waits on a server's state, and what
//! the shard maps of a bucket name.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use hamster_proto::pb;
use serde_json::Value;

use crate::durability::units_of;
use crate::meta::list_all;
use crate::{Cluster, Node};

/// One blob-server as `hamster blob list --json` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRow {
    pub id: String,
    /// active, draining, drained, down or removed.
    pub state: String,
    /// in, draining, drained or removed.
    pub lifecycle: String,
    /// Shards the maps name on it.
    pub shards_named: u64,
    /// Its store, as its last heartbeat reported it.
    pub shards_stored: u64,
    pub bytes_stored: u64,
    pub last_heartbeat_ms: i64,
}

/// One usable server's place in the balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalanceRow {
    pub id: String,
    pub bytes_stored: u64,
    pub target_bytes: u64,
    pub within_band: bool,
}

/// `hamster blob list --json`, parsed.
#[derive(Clone, Debug)]
pub struct BlobList {
    pub blobs: Vec<BlobRow>,
    pub band_pct: u64,
    pub slack_bytes: u64,
    pub within_band: bool,
    pub balance: Vec<BalanceRow>,
    /// The whole answer, for failure messages.
    pub raw: Value,
}

/// An unsigned JSON field, written as a number or as a decimal string
/// (protobuf's JSON mapping writes 64-bit integers as strings).
fn num(v: &Value, field: &str) -> Result<u64, String> {
    match &v[field] {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| format!("{field}: {n} is not a u64")),
        Value::String(s) => s.parse().map_err(|_| format!("{field}: {s:?}")),
        // Absent: a zero the serializer skipped.
        Value::Null => Ok(0),
        other => Err(format!("{field}: {other}")),
    }
}

fn text(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_default().to_string()
}

impl BlobList {
    pub fn parse(v: Value) -> Result<Self, String> {
        let rows = v["blobs"]
            .as_array()
            .ok_or_else(|| format!("no \"blobs\" array in {v}"))?;
        let blobs = rows
            .iter()
            .map(|b| {
                Ok(BlobRow {
                    id: text(b, "id"),
                    state: text(b, "state"),
                    lifecycle: text(b, "lifecycle"),
                    shards_named: num(b, "shards_named")?,
                    shards_stored: num(b, "shards_stored")?,
                    bytes_stored: num(b, "bytes_stored")?,
                    last_heartbeat_ms: i64::try_from(num(b, "last_heartbeat_ms")?)
                        .unwrap_or(i64::MAX),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let bal = &v["balance"];
        let balance = bal["servers"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|s| {
                Ok(BalanceRow {
                    id: text(s, "id"),
                    bytes_stored: num(s, "bytes_stored")?,
                    target_bytes: num(s, "target_bytes")?,
                    within_band: s["within_band"].as_bool().unwrap_or(false),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            blobs,
            band_pct: num(bal, "band_pct")?,
            slack_bytes: num(bal, "slack_bytes")?,
            within_band: bal["within_band"].as_bool().unwrap_or(false),
            balance,
            raw: v,
        })
    }

    /// The row of server `id`, if listed.
    pub fn get(&self, id: &str) -> Option<&BlobRow> {
        self.blobs.iter().find(|b| b.id == id)
    }

    /// The row of server `id`; panics if it is not listed.
    pub fn row(&self, id: &str) -> &BlobRow {
        self.get(id)
            .unwrap_or_else(|| panic!("{id} not in `blob list`: {}", self.raw))
    }

    /// One line per server (id state lifecycle named/stored), for
    /// failure messages.
    pub fn summary(&self) -> String {
        let rows: Vec<String> = self
            .blobs
            .iter()
            .map(|b| {
                format!(
                    "{} {}/{} named {} stored {} ({} B)",
                    b.id, b.state, b.lifecycle, b.shards_named, b.shards_stored, b.bytes_stored
                )
            })
            .collect();
        rows.join("; ")
    }
}

/// Whether `server` is within the band as the balance defines it:
/// |stored − target| ≤ max(band × target, slack).
pub fn within_band(row: &BalanceRow, band_pct: u64, slack_bytes: u64) -> bool {
    let allowed = (row.target_bytes.saturating_mul(band_pct) / 100).max(slack_bytes);
    row.bytes_stored.abs_diff(row.target_bytes) <= allowed
}

/// Whether `text` names the number `n` as a whole number (not as a piece
/// of a longer one).
pub fn names_number(text: &str, n: u64) -> bool {
    text.split(|c: char| !c.is_ascii_digit())
        .any(|w| w.parse::<u64>().ok() == Some(n))
}

impl Cluster {
    /// `hamster blob list --json`, parsed.
    pub fn blob_list(&self) -> Result<BlobList, String> {
        let run = self.admin_cli(&["blob", "list", "--json"]);
        if !run.ok() {
            return Err(format!("hamster blob list --json failed: {run}"));
        }
        BlobList::parse(run.json()?)
    }

    /// Waits until `hamster blob list` shows server `id` as `ok` wants;
    /// answers that row, or panics after `limit` with what it showed.
    pub async fn wait_blob_row(
        &self,
        id: &str,
        what: &str,
        limit: Duration,
        ok: impl Fn(&BlobRow) -> bool,
    ) -> BlobRow {
        let deadline = Instant::now() + limit;
        loop {
            let seen = self.blob_list();
            if let Ok(list) = &seen
                && let Some(row) = list.get(id)
                && ok(row)
            {
                return row.clone();
            }
            if Instant::now() > deadline {
                let seen = seen.map(|l| l.summary());
                panic!("{what}: not seen after {limit:?}; blob list: {seen:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until `Admin.Status` of `meta` shows blob-server `id` in
    /// `state` ("down", "active", ...); panics after `limit`.
    pub async fn wait_blob_state(&self, meta: Node, id: &str, state: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(st) = self.status(meta).await
                && st
                    .blob_servers
                    .iter()
                    .any(|b| b.id == id && b.state == state)
            {
                return;
            }
            assert!(Instant::now() < deadline, "{id} never {state}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every unit (a version's map, or each part's) of every current
    /// object in `bucket`, as `meta` holds them: (key, map).
    pub async fn bucket_units(&self, meta: Node, bucket: &str) -> Vec<(String, pb::ShardMap)> {
        let gw = self.gateway_identity("gw-probe");
        let keys = list_all(&mut self.meta_client(meta, &gw), bucket)
            .await
            .unwrap_or_else(|e| panic!("list {bucket}: {e}"));
        let mut out = Vec::new();
        for key in keys {
            let v = self.version(meta, bucket, &key, "").await;
            out.extend(units_of(&v).into_iter().map(|m| (key.clone(), m)));
        }
        out
    }
}

/// The shard ids the maps in `units` name, on any server.
pub fn named_ids(units: &[(String, pb::ShardMap)]) -> HashSet<String> {
    units
        .iter()
        .flat_map(|(_, m)| m.shards.iter().map(|l| l.shard_id.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_listing_parses_with_numbers_or_strings_and_skipped_zeros() {
        let v = json!({
            "blobs": [
                {"id": "blob-1", "state": "draining", "lifecycle": "draining",
                 "shards_named": 12, "shards_stored": "14", "bytes_stored": 9000,
                 "last_heartbeat_ms": 1_700_000_000_000_i64},
                {"id": "blob-2", "state": "removed", "lifecycle": "removed"}
            ],
            "balance": {"band_pct": 10, "slack_bytes": "1048576", "within_band": false,
                        "servers": [{"id": "blob-1", "bytes_stored": 9000,
                                     "target_bytes": 4000, "within_band": false}]}
        });
        let l = BlobList::parse(v).expect("parse");
        let b1 = l.row("blob-1");
        assert_eq!(
            (b1.shards_named, b1.shards_stored, b1.bytes_stored),
            (12, 14, 9000)
        );
        assert_eq!(l.row("blob-2").shards_named, 0);
        assert_eq!(
            (l.band_pct, l.slack_bytes, l.within_band),
            (10, 1 << 20, false)
        );
        assert_eq!(l.balance[0].target_bytes, 4000);
        assert!(BlobList::parse(json!({"servers": []})).is_err());
    }

    #[test]
    fn the_band_is_the_larger_of_the_share_and_the_slack() {
        let row = |stored, target| BalanceRow {
            id: "b".into(),
            bytes_stored: stored,
            target_bytes: target,
            within_band: false,
        };
        // 10 % of 10 MB is 1 MB; the slack of 0.5 MB is smaller.
        assert!(within_band(&row(11_000_000, 10_000_000), 10, 500_000));
        assert!(!within_band(&row(11_000_001, 10_000_000), 10, 500_000));
        assert!(!within_band(&row(8_999_999, 10_000_000), 10, 500_000));
        // An empty server far below a small target: the slack decides.
        assert!(within_band(&row(0, 900_000), 10, 1_000_000));
        assert!(!within_band(&row(0, 1_000_001), 10, 1_000_000));
    }

    #[test]
    fn numbers_are_found_whole() {
        let msg = "blob-server blob-3 still has 17 shards named; drain it first";
        assert!(names_number(msg, 17));
        assert!(names_number(msg, 3));
        assert!(!names_number(msg, 1));
        assert!(!names_number(msg, 7));
    }
}
