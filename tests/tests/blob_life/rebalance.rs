//! Rebalance: servers added to a loaded cluster get their share.

use crate::*;

/// Every usable server of `list` is within the band, by the listing's own
/// verdict and by the formula; the new servers hold shards.
fn balanced(list: &BlobList, new: &[String]) -> Result<(), String> {
    let mut bad = Vec::new();
    for b in &list.balance {
        if !b.within_band || !within_band(b, list.band_pct, list.slack_bytes) {
            bad.push(format!(
                "{} stores {} B, target {} B",
                b.id, b.bytes_stored, b.target_bytes
            ));
        }
    }
    for id in new {
        if list.get(id).is_none_or(|r| r.shards_named == 0) {
            bad.push(format!("{id} holds no shard"));
        }
        if !list.balance.iter().any(|b| &b.id == id) {
            bad.push(format!("{id} is not in the balance"));
        }
    }
    if list.within_band && bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "not within the band ({}% or {} B): {bad:?}; {}",
            list.band_pct,
            list.slack_bytes,
            list.summary()
        ))
    }
}

/// Step 6: 16 MiB more, then two empty servers join; `hamster blob
/// rebalance` returns within the band while 2 streams PUT and GET with no
/// failure; every server is within the band, nothing is lost.
pub async fn added(w: &mut World) {
    settle(w, "before the rebalance").await;
    let meta = w.s.metas[0];
    for i in 0..16 {
        add(w, &format!("rebal-{i}"), pattern(1024 * KIB, 90 + i as u8)).await;
    }
    let mut new = Vec::new();
    for name in ["blob-9", "blob-10"] {
        let b = w.s.c.start(Kind::Blob, name);
        w.s.c.wait_healthy(b).await;
        w.s.blobs.push(b);
        new.push(name.to_string());
    }
    for id in &new {
        w.s.c
            .wait_blob_row(id, "the new server active", Duration::from_secs(30), |r| {
                r.state == "active"
            })
            .await;
    }
    let before = blob_list(w);
    assert!(
        !before.within_band,
        "within the band before any move: nothing to prove: {}",
        before.summary()
    );

    let load = Load::start(&w.c, "data", "rebal-load/", 2, 2);
    let run =
        w.s.c
            .admin_cli_bg(&["blob", "rebalance", "--json", "--timeout-secs", CLI_TIMEOUT])
            .await
            .expect("the rebalance command's thread");
    let report = load.stop().await;
    assert!(run.ok(), "hamster blob rebalance: {run}");
    assert_eq!(report.failed, 0, "failed requests: {:#?}", report.errors);
    assert!(report.ok > 0, "the load did nothing");

    // The load's last writes are reported by the next heartbeats; the
    // mover keeps the band.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let list = blob_list(w);
        match balanced(&list, &new) {
            Ok(()) => break,
            Err(e) if std::time::Instant::now() > deadline => {
                let tail: Vec<&str> = run.stdout.lines().rev().take(4).collect();
                panic!("{e}\n(after `hamster blob rebalance` said: {tail:?})")
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    w.s.c.wait_durable(meta, "after the rebalance", HEAL).await;
    assert_whole(w, "after the rebalance").await;
    read_all(w, "after the rebalance").await;
}
