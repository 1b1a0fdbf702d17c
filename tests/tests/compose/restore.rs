//! The README's compose procedure for losing the whole meta tier
//! ("Back up and restore the meta tier"): `hamster backup` in a one-shot
//! container to a mounted dir; every meta container stopped and removed,
//! its volume deleted; `hamster restore` once per meta volume, each in a
//! one-shot container of that meta service (whose environment names its
//! key files, trust, certificate and the member list), the same file
//! each time; then the three started together. The blob-servers and
//! gateways run throughout: what the backup held reads through them, a
//! write made after the backup is gone from the metadata (its shards are
//! held, not swept), and writes resume.

use std::time::{Duration, Instant};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use hamster_tests::s3::assert_s3_error;

use crate::{Compose, FIRST, Gateways, admin, assert_object, docker, json_in, object};

/// Objects written just before the backup: (key, n).
const BEFORE: [(&str, usize); 3] = [("pre-0", 20), ("pre-1", 21), ("pre-2", 22)];

pub async fn backup_wipe_restore(c: &Compose, gws: &Gateways) {
    for (key, n) in BEFORE {
        put(&gws.g1, key, object(n)).await;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let mount = format!("{}:/backups", dir.path().display());
    let b = json_in(&admin(
        c,
        &["-v", &mount],
        &["backup", "--out", "/backups/meta.hbk", "--json"],
    ));
    let index = b["raft_index"].as_u64().expect("raft_index");
    assert!(dir.path().join("meta.hbk").exists(), "no backup file: {b}");
    put(&gws.g1, "after-backup", object(30)).await;

    // The whole meta tier lost: containers and volumes.
    c.ok(&["stop", "-t", "5", "meta-1", "meta-2", "meta-3"]);
    c.ok(&["rm", "-f", "meta-1", "meta-2", "meta-3"]);
    for i in 1..=3 {
        let vol = format!("{}_meta-{i}", c.project);
        let out = docker(&["volume", "rm", &vol]);
        assert!(
            out.status.success(),
            "docker volume rm {vol}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Every volume restored before any meta-server starts.
    let ro = format!("{mount}:ro");
    for i in 1..=3 {
        let (svc, id) = (format!("meta-{i}"), i.to_string());
        let r = json_in(&c.ok(&[
            "run",
            "--rm",
            "--no-deps",
            "-v",
            &ro,
            &svc,
            "/hamster",
            "restore",
            "--from",
            "/backups/meta.hbk",
            "--data-dir",
            "/data",
            "--raft-id",
            &id,
            "--listen",
            "0.0.0.0:7400",
            "--json",
        ]));
        assert_eq!(r["raft_index"].as_u64(), Some(index), "{svc}: {r}");
    }
    c.ok(&["up", "-d", "--no-deps", "meta-1", "meta-2", "meta-3"]);

    // Writes resume through the gateways that ran throughout.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = gws
            .g2
            .put_object()
            .bucket("compose")
            .key("after-restore")
            .body(ByteStream::from(object(31)))
            .send()
            .await;
        if r.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes did not resume after the restore: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for (key, n) in FIRST.into_iter().chain(BEFORE) {
        assert_object(&gws.g1, key, n, "get after the restore").await;
    }
    // Written through g2, read through g1: g1 learns of blob-servers that
    // registered again after the restore at its next registry refresh
    // (2 s), and until then answers ServiceUnavailable for shards on them.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match gws
            .g1
            .get_object()
            .bucket("compose")
            .key("after-restore")
            .send()
            .await
        {
            Ok(_) => break,
            Err(e) if e.code() == Some("ServiceUnavailable") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("get after the restore: GET after-restore: {e:?}"),
        }
    }
    assert_object(&gws.g1, "after-restore", 31, "get after the restore").await;
    assert_s3_error(
        gws.g2
            .get_object()
            .bucket("compose")
            .key("after-backup")
            .send()
            .await,
        "NoSuchKey",
        404,
    );
    let held = json_in(&admin(c, &[], &["orphans", "list", "--json"]));
    assert_eq!(held["hold"]["backup_index"].as_u64(), Some(index), "{held}");
}

async fn put(client: &aws_sdk_s3::Client, key: &str, data: Vec<u8>) {
    client
        .put_object()
        .bucket("compose")
        .key(key)
        .body(ByteStream::from(data))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}
