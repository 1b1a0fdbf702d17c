//! Healing with no command: a degraded PUT once its server is back, a
//! rotted shard found by the background scrub, and a whole server lost
//! under an S3 load.

use crate::*;

/// Step 3: a PUT with one server down is k+m−1 wide; once the server is
/// back the planner rebuilds the missing shard with no command.
pub async fn degraded_put(w: &mut World) {
    settle(w, "before the degraded PUT").await;
    // 4+3 over 7 servers: one down leaves fewer than k+m.
    set_profile(w, 4, 3).await;
    let down = w.s.blobs[4];
    let down_id = w.s.c.node(down).id.clone();
    w.s.c.kill(down);
    let data = pattern(2 * MIB + 5, 10);
    put(&w.c, "data", "degraded", &data).await;
    let meta = w.s.metas[0];
    let map = map_of(w, "data", "degraded", "").await;
    assert_eq!((map.data_shards, map.parity_shards), (4, 3));
    assert!((5..=6).contains(&map.shards.len()), "not degraded: {map:?}");
    assert!(map.shards.iter().all(|l| l.blob_id != down_id));
    let st = w.s.c.status_json();
    assert!(
        int(&st, "under_replicated").unwrap_or(0) >= 1,
        "not seen: {}",
        durability_summary(&st)
    );

    w.s.c.restart(down);
    w.s.c.wait_healthy(down).await;
    w.s.c.wait_durable(meta, "the degraded PUT", HEAL).await;
    let map = map_of(w, "data", "degraded", "").await;
    assert_eq!(map.shards.len(), 7, "still degraded: {map:?}");
    w.s.assert_on_disk("degraded", &map);
    // m = 3 others down: only a repaired object still has k shards.
    let others: Vec<Node> = map
        .shards
        .iter()
        .map(|l| w.s.blob_by_id(&l.blob_id))
        .filter(|&b| b != down)
        .take(3)
        .collect();
    kill_all(w, &others);
    let got = get(&w.c, "data", "degraded").await;
    restart_all(w, &others).await;
    assert!(
        got.expect("read with three down") == data,
        "degraded read back wrong"
    );
    // Width-7 units cannot be repaired with a server gone for good (step 7).
    w.c.delete_object()
        .bucket("data")
        .key("degraded")
        .send()
        .await
        .expect("rm");
    set_profile(w, 4, 2).await;
}

/// Step 4: a byte flipped in one shard; the background scrub moves it aside
/// (never served again) and the planner rebuilds it, with no command.
pub async fn rot(w: &mut World) {
    settle(w, "before the rot").await;
    let meta = w.s.metas[0];
    let map = map_of(w, "data", "four-segments", "").await;
    let loc = map
        .shards
        .iter()
        .find(|l| l.index == 1)
        .expect("index 1")
        .clone();
    let blob = w.s.blob_by_id(&loc.blob_id);
    let file = w.s.shard_file(blob, &loc.shard_id).expect("the shard file");
    flip_payload_byte(&file);
    let deadline = std::time::Instant::now() + HEAL;
    let mut seen_aside = false;
    while w.s.shard_file(blob, &loc.shard_id).is_some() {
        seen_aside |= w.s.quarantined(blob).contains(&loc.shard_id);
        assert!(
            std::time::Instant::now() < deadline,
            "the scrub never moved it aside"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen_aside |= w.s.quarantined(blob).contains(&loc.shard_id);
    let log = w.s.c.log(blob);
    assert!(
        seen_aside || log.contains(&loc.shard_id),
        "{} vanished without a quarantine",
        loc.shard_id
    );
    // Never served: the blob-server answers not-found for it.
    let gw = w.s.c.gateway_identity("gw-probe");
    let mut bc = pb::blob_client::BlobClient::new(w.s.c.channel(blob, &gw));
    let req = pb::GetShardRequest {
        shard_id: loc.shard_id.clone(),
        offset: 0,
        length: 0,
    };
    let answer = match bc.get_shard(req).await {
        Err(e) => Err(e),
        Ok(r) => r
            .into_inner()
            .message()
            .await
            .map(|m| m.map(|c| c.data.len())),
    };
    match answer {
        Err(e) => assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}"),
        Ok(got) => panic!("a rotted shard was served: {got:?} bytes"),
    }
    // Rebuilt: the map names a new shard at that index (the fault report
    // follows the move aside, so wait for the map, then for the view).
    let deadline = std::time::Instant::now() + HEAL;
    let map = loop {
        let v = w.s.c.version(meta, "data", "four-segments", "").await;
        let map = v.shard_map.expect("map");
        if map.shards.iter().all(|l| l.shard_id != loc.shard_id) {
            break map;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} still named after {HEAL:?}",
            loc.shard_id
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    w.s.c.wait_durable(meta, "the rotted shard", HEAL).await;
    assert_eq!(map.shards.len(), 6);
    w.s.assert_on_disk("four-segments", &map);
    read_all(w, "after the rot").await;
}

/// Step 7: under a PUT/GET load, one server dies for good; it is marked
/// down and everything it held is rebuilt on the spare, with no request
/// failing.
pub async fn under_load(w: &mut World) {
    settle(w, "before the load").await;
    let victim = w.s.blobs[6];
    let victim_id = w.s.c.node(victim).id.clone();
    let meta = w.s.metas[0];
    let before = int(&w.s.c.status_json(), "shards_repaired").unwrap_or(0);
    let load = Load::start(&w.c, "data", "load/", 3, 3);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !w.s.shard_files(victim).is_empty(),
        "the victim holds no shard"
    );
    w.s.c.kill(victim);
    w.s.c
        .wait_blob_state(meta, &victim_id, "down", Duration::from_secs(30))
        .await;
    let healed = std::panic::AssertUnwindSafe(w.s.c.wait_durable(meta, "the lost server", HEAL))
        .catch_unwind()
        .await;
    let report = load.stop().await;
    if let Err(p) = healed {
        std::panic::resume_unwind(p);
    }
    assert_eq!(report.failed, 0, "failed requests: {:#?}", report.errors);
    assert!(report.ok > 0, "the load did nothing");
    let st = w.s.c.status_json();
    assert!(
        int(&st, "shards_repaired").unwrap_or(0) > before,
        "nothing repaired: {}",
        durability_summary(&st)
    );
    eprintln!(
        "load during the repair: {} requests, {:.1}/s",
        report.ok,
        report.ops_per_sec()
    );
    read_all(w, "with the lost server repaired").await;
}
