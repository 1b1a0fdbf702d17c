//! Placement skips a down server: with more usable servers than k+m, a
//! server down does not weaken new objects.

use crate::*;

/// Step 1: one of eight SIGKILLed and marked down; new PUTs get all six
/// shards, on six distinct servers among the seven others, not a
/// degraded k+1 write.
pub async fn one_down(w: &mut World) {
    settle(w, "before one down").await;
    let meta = w.s.metas[0];
    let down = w.s.blobs[7];
    let down_id = id_of(w, down);
    w.s.c.kill(down);
    w.s.c
        .wait_blob_state(meta, &down_id, "down", Duration::from_secs(30))
        .await;
    // The gateway reads the registry every 2 s (`cluster::REFRESH`): until
    // then a PUT may still pick the dead server and land degraded (k+1,
    // durable, repaired later), which is not what this step is about.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 0..8 {
        let key = format!("one-down-{i}");
        add(w, &key, pattern(200 * KIB + i, 30 + i as u8)).await;
        let map = map_of(w, &key).await;
        assert_eq!(
            (map.data_shards, map.parity_shards, map.shards.len()),
            (4, 2, 6),
            "{key} written with {down_id} down is not a full 4+2: {map:?}"
        );
        assert!(
            map.shards.iter().all(|l| l.blob_id != down_id),
            "{key} has a shard on the down server: {map:?}"
        );
    }
    w.s.c.restart(down);
    w.s.c.wait_healthy(down).await;
    w.s.c
        .wait_blob_state(meta, &down_id, "active", Duration::from_secs(30))
        .await;
    assert_whole(w, "after one down").await;
    read_all(w, "after one down").await;
}
