//! Metrics and the access log (issue 23) against real processes, one
//! cluster (1 meta, 4 blob-servers: profile 2+2, so every object has a
//! shard on every blob-server and survives two losses), in named steps:
//! every node serves hamster_* series; a PUT, a GET and a 404 are counted
//! by op and code; a SIGKILLed blob-server shows as a degraded write and
//! a stripe rebuilt from parity; the access log names a PUT, a GET, a
//! DELETE and a GOVERNANCE bypass with the key id, and holds no secret or
//! signature.

use std::time::{Duration, Instant};

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::ObjectLockMode;
use hamster_tests::durability::units_of;
use hamster_tests::lock::{DAY, create_lock_bucket, now_secs};
use hamster_tests::s3::{ClusterSpec, delete_version, get_bytes, pattern, strings};
use hamster_tests::scrape::{Observed, has_hamster_series, has_hex_run, raw_get, value};
use hamster_tests::{Node, Steps, path_str};
use serde_json::Value;

type Client = aws_sdk_s3::Client;

const REQUESTS: &str = "hamster_s3_requests_total";
const DEGRADED: &str = "hamster_s3_degraded_writes_total";
const BLOB_ERRORS: &str = "hamster_blob_call_errors_total";
/// The harness starts gateways with `--blob-down-after-secs=3` (and
/// blob-servers heartbeat every second): a killed blob-server drops out of
/// the gateway's view within seconds.
const DOWN_AFTER_SECS: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_and_access_log() {
    let mut steps = Steps::new("metrics_and_access_log");
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("access.jsonl");
    let spec = ClusterSpec {
        blobs: 4,
        gw_args: strings(&[&format!("--access-log={}", path_str(&log))]),
        ..ClusterSpec::default()
    };
    let mut o = steps
        .require("start", async {
            Ok::<_, String>(Observed::start(&spec).await)
        })
        .await;
    let c = o.s.client();
    c.create_bucket().bucket("obs").send().await.expect("mb");
    steps
        .run(
            "every node answers /metrics with hamster series",
            every_node(&o),
        )
        .await;
    steps
        .run(
            "a PUT, a GET and a 404 are counted by op and code",
            counted(&o, &c),
        )
        .await;
    steps
        .run(
            "a killed blob-server: degraded write, stripe rebuilt",
            blob_killed(&mut o, &c),
        )
        .await;
    let presigned = steps
        .run(
            "deletes, a GOVERNANCE bypass, a presigned GET",
            lock_and_presign(&o, &c),
        )
        .await;
    steps
        .run(
            "the access log names them all and holds no secret",
            access_log(&o, &log, presigned.unwrap_or_default()),
        )
        .await;
    steps.finish();
}

async fn every_node(o: &Observed) -> Result<(), String> {
    for (&node, addr) in &o.metrics {
        let text = o.scrape(node).await?;
        if !has_hamster_series(&text) || !text.contains("hamster_build_info") {
            return Err(format!("{node:?} at {addr}: no hamster series:\n{text}"));
        }
    }
    let gw = o.scrape(o.s.gw).await?;
    for series in [
        "hamster_s3_open_connections",
        "hamster_s3_degraded_writes_total",
    ] {
        if !gw.contains(series) {
            return Err(format!("the gateway has no {series}:\n{gw}"));
        }
    }
    Ok(())
}

async fn counted(o: &Observed, c: &Client) -> Result<(), String> {
    let before = o.scrape(o.s.gw).await?;
    c.put_object()
        .bucket("obs")
        .key("k1")
        .body(ByteStream::from(pattern(10_000, 1)))
        .send()
        .await
        .map_err(|e| format!("put: {e:?}"))?;
    get_bytes(c, "obs", "k1").await?;
    let missing = c.get_object().bucket("obs").key("missing").send().await;
    if missing.is_ok() {
        return Err("a missing key was found".into());
    }
    let after = o.scrape(o.s.gw).await?;
    let delta =
        |name, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);
    let want = [
        (REQUESTS, vec![("op", "PutObject"), ("code", "200")]),
        (REQUESTS, vec![("op", "GetObject"), ("code", "200")]),
        (REQUESTS, vec![("op", "GetObject"), ("code", "404")]),
        (
            "hamster_s3_errors_total",
            vec![("op", "GetObject"), ("error", "NoSuchKey")],
        ),
    ];
    for (name, labels) in want {
        let d = delta(name, &labels);
        if d != 1.0 {
            return Err(format!("{name}{labels:?} rose by {d}, not 1:\n{after}"));
        }
    }
    if delta("hamster_s3_bytes_in_total", &[]) < 10_000.0 {
        return Err(format!("bytes in rose by less than the body:\n{after}"));
    }
    if delta("hamster_s3_bytes_out_total", &[]) < 10_000.0 {
        return Err(format!("bytes out rose by less than the body:\n{after}"));
    }
    let hist = "hamster_s3_request_duration_seconds_count{op=\"PutObject\"}";
    if !after.contains(hist) {
        return Err(format!("no duration histogram for PutObject:\n{after}"));
    }
    Ok(())
}

/// Writes an object, kills the blob-server holding its first data shard,
/// then PUTs (degraded: 3 of 4 shards) and GETs it (rebuilt from parity).
async fn blob_killed(o: &mut Observed, c: &Client) -> Result<(), String> {
    let data = pattern(300_000, 7);
    c.put_object()
        .bucket("obs")
        .key("victim")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .map_err(|e| format!("put victim: {e:?}"))?;
    let v = o.s.c.version(o.s.metas[0], "obs", "victim", "").await;
    let map = units_of(&v).into_iter().next().ok_or("no shard map")?;
    let first = map
        .shards
        .iter()
        .find(|l| l.index == 0)
        .ok_or("no shard 0")?;
    let holder: Node =
        *o.s.blobs
            .iter()
            .find(|&&b| o.s.c.node(b).id == first.blob_id)
            .ok_or("shard 0 on no blob-server of ours")?;
    let before = o.scrape(o.s.gw).await?;
    o.s.c.kill(holder);
    c.put_object()
        .bucket("obs")
        .key("after-kill")
        .body(ByteStream::from(pattern(50_000, 9)))
        .send()
        .await
        .map_err(|e| format!("put with a blob-server down: {e:?}"))?;
    let got = get_bytes(c, "obs", "victim").await?;
    if got != data {
        return Err("the victim read back different bytes".into());
    }
    let after = o.scrape(o.s.gw).await?;
    let delta = |name| value(&after, name, &[]) - value(&before, name, &[]);
    for name in [DEGRADED, "hamster_s3_stripes_rebuilt_total", BLOB_ERRORS] {
        if delta(name) < 1.0 {
            return Err(format!("{name} did not rise:\n{after}"));
        }
    }
    let dead = o.s.c.node(holder).id.clone();
    known_down(o, c, &dead).await
}

/// Once the gateway's view drops the killed server, a PUT asks only the
/// three left: no failed shard write (the blob error counter stays put)
/// and three shards in its map. It is still a degraded write, counted
/// against the profile's width k+m, not the servers asked. (The shard map
/// names only shards that landed, so it alone cannot tell "asked 3" from
/// "asked 4, one failed".)
async fn known_down(o: &Observed, c: &Client, dead: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(DOWN_AFTER_SECS * 10);
    let mut i = 0;
    loop {
        i += 1;
        let before = o.scrape(o.s.gw).await?;
        let key = format!("known-down-{i}");
        c.put_object()
            .bucket("obs")
            .key(&key)
            .body(ByteStream::from(pattern(20_000, 3)))
            .send()
            .await
            .map_err(|e| format!("put {key} with a blob-server known down: {e:?}"))?;
        let after = o.scrape(o.s.gw).await?;
        let v = o.s.c.version(o.s.metas[0], "obs", &key, "").await;
        let map = units_of(&v).into_iter().next().ok_or("no shard map")?;
        let delta = |name| value(&after, name, &[]) - value(&before, name, &[]);
        let on_dead = map.shards.iter().any(|l| l.blob_id == dead);
        let asked_dead = delta(BLOB_ERRORS) > 0.0;
        if !on_dead && !asked_dead && map.shards.len() < 4 {
            let d = delta(DEGRADED);
            if d < 1.0 {
                return Err(format!(
                    "a PUT on {} servers (k+m = 4) was not counted degraded:\n{after}",
                    map.shards.len()
                ));
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the gateway still places shards on the killed server {dead}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A plain DELETE, a DELETE of a GOVERNANCE-locked version with the
/// bypass, and a presigned GET; answers the presigned URL's signature and
/// the GET's request id.
async fn lock_and_presign(o: &Observed, c: &Client) -> Result<(String, String), String> {
    c.delete_object()
        .bucket("obs")
        .key("k1")
        .send()
        .await
        .map_err(|e| format!("delete: {e:?}"))?;
    create_lock_bucket(c, "locked").await;
    let put = c
        .put_object()
        .bucket("locked")
        .key("held")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(DateTime::from_secs(now_secs() + DAY))
        .body(ByteStream::from_static(b"held"))
        .send()
        .await
        .map_err(|e| format!("locked put: {e:?}"))?;
    let id = put.version_id().ok_or("no version id")?.to_string();
    if delete_version(c, "locked", "held", Some(&id), false)
        .await
        .is_ok()
    {
        return Err("a GOVERNANCE version was deleted without the bypass".into());
    }
    delete_version(c, "locked", "held", Some(&id), true)
        .await
        .map_err(|e| format!("delete with bypass: {e:?}"))?;
    let url = c
        .get_object()
        .bucket("obs")
        .key("victim")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).expect("config"))
        .await
        .map_err(|e| format!("presign: {e:?}"))?;
    let uri = url.uri().to_string();
    let sig = uri
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("X-Amz-Signature="))
        .ok_or("no signature in the URL")?
        .to_string();
    let path = uri
        .split_once("//")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
        .ok_or("no path")?;
    let (status, head) = raw_get(o.s.s3_addr(), &path).await?;
    if status != 200 {
        return Err(format!("presigned GET answered {status}"));
    }
    let id = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-amz-request-id")
                .then(|| value.trim().to_string())
        })
        .ok_or(format!("no x-amz-request-id in the answer:\n{head}"))?;
    Ok((sig, id))
}

async fn access_log(
    o: &Observed,
    path: &std::path::Path,
    (sig, presigned_id): (String, String),
) -> Result<(), String> {
    let key = o.s.access_key_id.clone();
    let find = |lines: &[Value], op: &str, bucket: &str, k: &str, status: u64| {
        lines.iter().any(|l| {
            l["op"] == op
                && l["bucket"] == bucket
                && l["key"] == k
                && l["status"] == status
                && l["access_key_id"] == key.as_str()
                && l["request_id"].as_str().is_some_and(|r| r.len() == 16)
        })
    };
    // Records reach the file within a second; wait for the last one (the
    // presigned GET's).
    let deadline = Instant::now() + Duration::from_secs(10);
    let (bytes, lines) = loop {
        let bytes = std::fs::read(path).unwrap_or_default();
        let lines: Vec<Value> = String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let done = lines
            .iter()
            .any(|l| l["request_id"] == presigned_id.as_str());
        if done || Instant::now() > deadline {
            break (bytes, lines);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    // The presigned GET is logged, under the key that presigned it: the
    // checks for its signature below look at a line that exists.
    let logged = lines.iter().any(|l| {
        l["request_id"] == presigned_id.as_str()
            && l["op"] == "GetObject"
            && l["key"] == "victim"
            && l["status"] == 200
            && l["access_key_id"] == key.as_str()
    });
    if presigned_id.is_empty() || !logged {
        return Err(format!(
            "no line for the presigned GET {presigned_id:?}:\n{text}"
        ));
    }
    let checks = [
        ("PutObject", "obs", "k1", 200),
        ("GetObject", "obs", "k1", 200),
        ("GetObject", "obs", "missing", 404),
        ("DeleteObject", "obs", "k1", 204),
        ("GetObject", "obs", "victim", 200),
    ];
    for (op, bucket, k, status) in checks {
        if !find(&lines, op, bucket, k, status) {
            return Err(format!("no {op} {bucket}/{k} {status} by {key}:\n{text}"));
        }
    }
    let bypass = lines.iter().find(|l| {
        l["op"] == "DeleteObject" && l["bucket"] == "locked" && l["bypass_governance"] == true
    });
    match bypass {
        Some(l) if l["access_key_id"] == key.as_str() && l["status"] == 204 => {}
        _ => return Err(format!("no GOVERNANCE bypass by {key}:\n{text}")),
    }
    let refused = lines.iter().any(|l| {
        l["op"] == "DeleteObject"
            && l["bucket"] == "locked"
            && l["status"] == 403
            && l.get("bypass_governance").is_none()
    });
    if !refused {
        return Err(format!("no refused delete without bypass:\n{text}"));
    }
    let locked = lines.iter().any(|l| {
        l["op"] == "PutObject" && l["bucket"] == "locked" && l["lock_mode"] == "GOVERNANCE"
    });
    if !locked {
        return Err(format!("no lock fields on the locked PUT:\n{text}"));
    }
    let forbidden = [
        o.s.secret.as_str(),
        "Signature=",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "Authorization",
        sig.as_str(),
    ];
    for bad in forbidden {
        if bad.is_empty() || text.contains(bad) {
            return Err(format!(
                "the access log holds {bad:?} (or no signature was kept)"
            ));
        }
    }
    if has_hex_run(&text, 64) {
        return Err(format!(
            "a 64-hex-digit run (a signature?) in the log:\n{text}"
        ));
    }
    Ok(())
}
