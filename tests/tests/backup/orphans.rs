//! Step 7: after the restore, the shards written after the backup (no
//! row names them) survive the sweep's passes, are listed by `hamster
//! orphans list`, counted by `hamster status` and listed by `hamster
//! repair --json`; `hamster orphans release --all` lets the next sweep
//! delete them, and nothing the metadata names goes with them.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::*;

/// `hamster orphans list --json`, parsed.
fn list(w: &World) -> Result<Value, String> {
    let run = w.s.c.admin_cli(&["orphans", "list", "--json"]);
    if !run.ok() {
        return Err(format!("orphans list: {run}"));
    }
    run.json()
}

/// The (blob id, shard id, bytes, released) rows of a listing.
fn rows(v: &Value) -> Vec<(String, String, u64, bool)> {
    let text = |o: &Value, f: &str| o[f].as_str().unwrap_or_default().to_string();
    v["orphans"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|o| {
            let bytes = o["bytes"].as_u64().unwrap_or(0);
            let released = o["released"].as_bool().unwrap_or(false);
            (text(o, "blob_id"), text(o, "shard_id"), bytes, released)
        })
        .collect()
}

/// The late shards a listing does not hold (unreleased).
fn missing(w: &World, v: &Value) -> Vec<String> {
    let held: BTreeSet<(String, String)> = rows(v)
        .into_iter()
        .filter(|r| !r.3)
        .map(|r| (r.0, r.1))
        .collect();
    w.late
        .shards
        .iter()
        .filter(|s| !held.contains(s))
        .map(|(b, s)| format!("{b}/{s}"))
        .collect()
}

/// The late shards no longer on their blob-server's disk.
fn gone_from_disk(w: &World) -> Vec<String> {
    w.late
        .shards
        .iter()
        .filter(|(b, s)| w.s.shard_file(w.s.blob_by_id(b), s).is_none())
        .map(|(b, s)| format!("{b}/{s}"))
        .collect()
}

pub async fn held_until_released(w: &mut World) {
    let n = w.late.shards.len();
    let index = w.backup.as_ref().expect("a backup").raft_index;
    // The sweep runs every second; the late shards are past the grace.
    let deadline = Instant::now() + SETTLE;
    let listed = loop {
        let v = list(w);
        if let Ok(v) = &v
            && missing(w, v).is_empty()
        {
            break v.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the late shards are never listed as held: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        listed["hold"]["backup_index"].as_u64(),
        Some(index),
        "{listed}"
    );
    assert!(listed["held"].as_u64() >= Some(n as u64), "{listed}");
    for (blob, shard, bytes, _) in rows(&listed) {
        let Some(file) = w.s.shard_file(w.s.blob_by_id(&blob), &shard) else {
            continue;
        };
        let on_disk = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert_eq!(bytes, on_disk, "{blob}/{shard}: listed bytes");
    }

    // Several sweep passes later they are all still there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let gone = gone_from_disk(w);
    assert!(gone.is_empty(), "held shards were swept: {gone:?}");
    let v = list(w).expect("orphans list");
    assert!(missing(w, &v).is_empty(), "{v}");

    let st = w.s.c.status_json();
    assert!(
        st["held_orphans"].as_u64() >= Some(n as u64),
        "status --json does not count the held orphans: {st}"
    );
    let text = w.s.c.admin_cli(&["status"]);
    assert!(
        text.ok() && text.stdout.to_lowercase().contains("orphan"),
        "status does not mention the held orphans: {text}"
    );
    let run =
        w.s.c
            .admin_cli_bg(&["repair", "--json", "--timeout-secs=60"])
            .await
            .expect("repair task");
    let rep = run.json().unwrap_or_else(|e| panic!("repair --json: {e}"));
    assert!(rep["held_orphans"].as_u64() >= Some(n as u64), "{rep}");
    let listed: BTreeSet<String> = rep["orphans"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|o| o["shard_id"].as_str().map(str::to_string))
        .collect();
    let absent: Vec<&String> = w
        .late
        .shards
        .iter()
        .map(|(_, s)| s)
        .filter(|s| !listed.contains(*s))
        .collect();
    assert!(
        absent.is_empty(),
        "repair --json does not list {absent:?}: {rep}"
    );

    let run = w.s.c.admin_cli(&["orphans", "release", "--all", "--json"]);
    assert!(run.ok(), "orphans release: {run}");
    let released = run.json().expect("release --json")["released"].as_u64();
    assert!(released >= Some(n as u64), "released {released:?}: {run}");

    let deadline = Instant::now() + SETTLE;
    while gone_from_disk(w).len() < n {
        assert!(
            Instant::now() < deadline,
            "released shards never swept: {:?} of {n} gone",
            gone_from_disk(w)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let deadline = Instant::now() + SETTLE;
    loop {
        let v = list(w).expect("orphans list");
        let late: BTreeSet<&String> = w.late.shards.iter().map(|(_, s)| s).collect();
        let left: Vec<String> = rows(&v)
            .into_iter()
            .filter(|r| late.contains(&r.1))
            .map(|r| r.1)
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still listed after the sweep: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    read_all(w, "after the released orphans were swept").await;
}
