//! Step 6: the commit-retry hole. A gateway that drops CommitVersion
//! answers after the meta tier applied them retries on another
//! meta-server; one S3 request still makes one version.

use crate::*;

/// Step 6: a second gateway drops CommitVersion answers after the meta
/// tier applied them, so it retries on another meta-server: exactly one
/// version, k+m shard files, all freed by one delete; an overwrite racing
/// a retry never leaves the current version on freed shards.
pub async fn lost_answer(w: &mut World) {
    const RACES: usize = 3;
    let drops = format!("--test-drop-commit-answers={}", 1 + RACES);
    let gw = w.s.c.prepare(Kind::Gateway, "gw-drop");
    w.s.c.add_args(gw, &[&drops]);
    w.s.c.spawn_prepared(gw);
    w.s.c.wait_healthy(gw).await;
    let c2 = w.s.c.s3_client(gw, &w.s.access_key_id, &w.s.secret);
    w.c.create_bucket()
        .bucket("ver")
        .send()
        .await
        .expect("mb ver");
    let cfg = hamster_tests::s3::versioning("Enabled");
    hamster_tests::s3::set_versioning(&w.c, "ver", cfg)
        .await
        .expect("versioning");

    let data = pattern(MIB + 7, 12);
    let vid = put(&c2, "ver", "once", &data).await.expect("a version id");
    let dropped = |w: &World| {
        w.s.c
            .log(gw)
            .matches("dropping a CommitVersion answer")
            .count()
    };
    assert!(
        dropped(w) >= 1,
        "the gateway dropped no answer: the test proves nothing"
    );
    let list =
        w.c.list_object_versions()
            .bucket("ver")
            .prefix("once")
            .send()
            .await
            .expect("list");
    let ids: Vec<&str> = list
        .versions()
        .iter()
        .filter_map(|v| v.version_id())
        .collect();
    assert_eq!(ids, [vid.as_str()], "one PUT, versions {ids:?}");
    let map = map_of(w, "ver", "once", &vid).await;
    let object = object_of(&map.shards[0].shard_id).to_string();
    assert_eq!(
        w.s.object_files(&object).len(),
        6,
        "shard files of the one version"
    );
    assert!(
        get(&w.c, "ver", "once").await.expect("get once") == data,
        "once read back wrong"
    );

    delete_version(&w.c, "ver", "once", Some(&vid), false)
        .await
        .expect("delete the version");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !w.s.object_files(&object).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "its shards were never freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    read_all(w, "after freeing the retried version").await;

    // An overwrite racing a retried commit, on an unversioned bucket.
    for r in 0..RACES {
        let key = format!("race-{r}");
        let (a, b) = (
            pattern(300_000, 20 + r as u8),
            pattern(200_000, 40 + r as u8),
        );
        let (ra, rb) = tokio::join!(
            c2.put_object()
                .bucket("data")
                .key(&key)
                .body(ByteStream::from(a.clone()))
                .send(),
            w.c.put_object()
                .bucket("data")
                .key(&key)
                .body(ByteStream::from(b.clone()))
                .send(),
        );
        ra.expect("PUT through the dropping gateway");
        rb.expect("the racing PUT");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let got = get(&w.c, "data", &key).await.expect("get the raced key");
        assert!(got == a || got == b, "{key}: neither PUT's bytes");
        let v = w.s.c.version(w.s.metas[0], "data", &key, "").await;
        w.s.assert_on_disk(&key, &v.shard_map.expect("map"));
        w.objects.push((key, got));
    }
    assert_eq!(dropped(w), 1 + RACES, "answers dropped");
    w.s.c.kill(gw);
}
