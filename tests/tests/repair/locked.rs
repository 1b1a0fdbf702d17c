//! Step 5: repair of a COMPLIANCE-locked version, with every master key
//! file out of reach: it changes where the bytes live, never the lock or
//! the bytes.

use crate::*;

/// Step 5: a COMPLIANCE version loses a shard; repair runs with every
/// master key file unreadable and leaves lock, retention and bytes as
/// they were.
pub async fn compliance(w: &mut World) {
    settle(w, "before the COMPLIANCE repair").await;
    create_lock_bucket(&w.c, "locked").await;
    let until = now_secs() + 5 * DAY;
    let data = pattern(MIB + 100, 11);
    let out =
        w.c.put_object()
            .bucket("locked")
            .key("held")
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(DateTime::from_secs(until))
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .expect("put locked");
    let vid = out.version_id().expect("version id").to_string();
    let map = map_of(w, "locked", "held", &vid).await;
    let lost = map
        .shards
        .iter()
        .find(|l| l.index == 2)
        .expect("index 2")
        .clone();
    let blob = w.s.blob_by_id(&lost.blob_id);
    let file = w.s.shard_file(blob, &lost.shard_id).expect("shard file");
    std::fs::remove_file(file).expect("remove shard");

    // Every master key file out of reach, for every process.
    let pki = w.s.c.pki_dir();
    let keys: Vec<_> = hamster_tests::files_under(&pki)
        .into_iter()
        .filter(|p| file_name(p).contains("master"))
        .collect();
    assert!(!keys.is_empty(), "no master key file in {}", pki.display());
    let away = w.s.c.root().join("keys-away");
    std::fs::create_dir_all(&away).expect("dir");
    for k in &keys {
        std::fs::rename(k, away.join(file_name(k))).expect("move key away");
    }
    let checked = std::panic::AssertUnwindSafe(repair_locked(w, &vid, &lost, until, &data))
        .catch_unwind()
        .await;
    for k in &keys {
        std::fs::rename(away.join(file_name(k)), k).expect("put key back");
    }
    if let Err(p) = checked {
        std::panic::resume_unwind(p);
    }
}

pub async fn repair_locked(
    w: &World,
    vid: &str,
    lost: &pb::ShardLocation,
    until: i64,
    data: &[u8],
) {
    for &b in &w.s.blobs {
        let pid = w.s.c.node(b).pid().expect("running");
        for needle in ["master.key", "master-key", "master_key"] {
            let seen = proc_mentions(pid, needle);
            assert!(
                seen.is_empty(),
                "{} mentions {needle}: {seen:?}",
                w.s.c.node(b).id
            );
        }
    }
    let before = int(&w.s.c.status_json(), "shards_repaired").unwrap_or(0);
    let run =
        w.s.c
            .admin_cli(&["repair", "--json", "--timeout-secs", "120"]);
    assert!(run.ok(), "hamster repair: {run}");
    let st = w.s.c.status_json();
    assert_eq!(
        int(&st, "under_replicated"),
        Some(0),
        "{}",
        durability_summary(&st)
    );
    assert!(
        int(&st, "shards_repaired").unwrap_or(0) > before,
        "nothing repaired: {}",
        durability_summary(&st)
    );
    let v = w.s.c.version(w.s.metas[0], "locked", "held", vid).await;
    let map = v.shard_map.clone().expect("map");
    let now = map
        .shards
        .iter()
        .find(|l| l.index == lost.index)
        .expect("index back");
    assert_ne!(now.shard_id, lost.shard_id, "the lost shard is still named");
    w.s.assert_on_disk("held", &map);
    assert_eq!(
        (v.lock_mode.as_str(), v.retain_until_ms),
        ("COMPLIANCE", until * 1000)
    );

    let r = get_retention(&w.c, "locked", "held", Some(vid))
        .await
        .expect("retention");
    let r = r.retention().expect("retention");
    assert_eq!(r.mode().map(|m| m.as_str()), Some("COMPLIANCE"));
    assert_eq!(r.retain_until_date().map(DateTime::secs), Some(until));
    assert_s3_error(
        delete_version(&w.c, "locked", "held", Some(vid), true).await,
        "AccessDenied",
        403,
    );
    let got = get(&w.c, "locked", "held").await.expect("get held");
    assert!(got == data, "the locked version read back wrong");
}
