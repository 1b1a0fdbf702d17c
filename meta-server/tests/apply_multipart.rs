//! The state machine's multipart uploads: parts, completion (S3's
//! multipart ETag, the minimum part size), abort, the uploads listing, and
//! every rejection (each checked to change nothing).

mod common;

use common::*;

#[tokio::test]
async fn multipart_complete() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;

    let u = upload("bkt", "big/file", "up-1");
    let r = db.run(Op::BeginMultipart { upload: u.clone() }).await;
    assert_eq!(r, Response::Upload(u.clone()));
    assert_eq!(db.upload("up-1").await, Some(u.clone()));

    // Part 1, then part 1 again: the replaced part's shards come back.
    let r = db
        .run(put_part(
            "bkt",
            "big/file",
            "up-1",
            part(1, MIN_PART_SIZE, "p1-old"),
        ))
        .await;
    assert_eq!(r, Response::PartStored { replaced: None });
    let p1 = part(1, MIN_PART_SIZE, "p1");
    let r = db
        .run(put_part("bkt", "big/file", "up-1", p1.clone()))
        .await;
    assert_eq!(
        r,
        Response::PartStored {
            replaced: Some(shards("p1-old"))
        }
    );
    let p2 = part(2, MIN_PART_SIZE + 1, "p2");
    let p3 = part(3, 1, "p3");
    let p5 = part(5, MIN_PART_SIZE, "p5");
    for p in [p2.clone(), p3.clone(), p5.clone()] {
        assert_eq!(
            db.run(put_part("bkt", "big/file", "up-1", p)).await,
            Response::PartStored { replaced: None }
        );
    }
    assert_eq!(
        db.parts("up-1").await,
        vec![p1.clone(), p2.clone(), p3.clone(), p5.clone()]
    );

    // Complete with 1 and 3 (1 is exactly the minimum; 3, the last, may be
    // tiny), one ETag quoted as clients send it. 2 and 5 are left out.
    let quoted = format!("\"{}\"", p3.etag);
    let r = db
        .run_at(
            NOW + 9,
            complete(
                "bkt",
                "big/file",
                "up-1",
                &[(1, &p1.etag), (3, &quoted)],
                "proposer-id",
            ),
        )
        .await;
    let Response::Completed { version, freed, .. } = r else {
        panic!("not completed: {r:?}")
    };
    let t = template("bkt", "big/file");
    let expected = Version {
        bucket: "bkt".into(),
        key: "big/file".into(),
        version_id: "null".into(),
        size: MIN_PART_SIZE + 1,
        etag: s3_multipart_etag(&[&md5_hex(b"p1"), &md5_hex(b"p3")]),
        content_type: t.content_type.clone(),
        user_metadata: t.user_metadata.clone(),
        stored_headers: t.stored_headers.clone(),
        created_at_ms: NOW + 9,
        delete_marker: false,
        shard_map: None,
        wrapped_dek: vec![],
        kek_fingerprint: String::new(),
        lock_mode: t.lock_mode,
        retain_until_ms: t.retain_until_ms,
        legal_hold: t.legal_hold,
        parts: vec![p1.clone(), p3.clone()],
        upload_id: "up-1".into(),
        ..Default::default()
    };
    assert!(version.etag.ends_with("-2"), "{}", version.etag);
    assert_eq!(version, expected);
    assert_eq!(sorted(freed), sorted(vec![shards("p2"), shards("p5")]));
    assert_eq!(db.latest("bkt", "big/file").await, Some(expected.clone()));

    // The upload and its parts are gone.
    assert_eq!(db.upload("up-1").await, None);
    assert!(db.parts("up-1").await.is_empty());
    assert!(rows_of(&db.dump().await, "parts").is_empty());
    assert!(rows_of(&db.dump().await, "uploads").is_empty());
    let (ups, _) = db.uploads("bkt", "", "", "", 1000).await;
    assert!(ups.is_empty());

    // Overwriting the multipart object frees every part's shards.
    let r = db.run(commit(ver("bkt", "big/file", "x", "small"))).await;
    let Response::Committed { freed, .. } = r else {
        panic!("not committed: {r:?}")
    };
    assert_eq!(sorted(freed), sorted(vec![shards("p1"), shards("p3")]));
}

#[tokio::test]
async fn multipart_complete_on_a_versioned_bucket() {
    let mut db = Db::new().await;
    db.ok(create("vbk", true)).await;
    db.ok(commit(ver("vbk", "k", "old", "old"))).await;
    db.ok(begin("vbk", "k", "up")).await;
    let p1 = part(1, MIN_PART_SIZE * 2, "a");
    let p2 = part(2, 10, "b");
    db.ok(put_part("vbk", "k", "up", p1.clone())).await;
    db.ok(put_part("vbk", "k", "up", p2.clone())).await;
    let r = db
        .run(complete(
            "vbk",
            "k",
            "up",
            &[(1, &p1.etag), (2, &p2.etag)],
            "new",
        ))
        .await;
    let Response::Completed { version, freed, .. } = r else {
        panic!("not completed: {r:?}")
    };
    assert!(freed.is_empty(), "{freed:?}");
    assert_eq!(version.version_id, "new");
    assert_eq!(
        version.etag,
        s3_multipart_etag(&[&md5_hex(b"a"), &md5_hex(b"b")])
    );
    assert_eq!(version.size, MIN_PART_SIZE * 2 + 10);
    assert_eq!(db.latest("vbk", "k").await, Some(version.clone()));
    assert_eq!(
        db.all_versions_of("vbk", "k").await,
        vec![
            ("new".to_string(), false, true),
            ("old".to_string(), false, false)
        ]
    );
    // Deleting it by id frees every part.
    let r = db.run(del("vbk", "k", Some("new"), "")).await;
    assert_eq!(r, deleted("new", false, vec![shards("a"), shards("b")]));

    // One part only: its ETag is "-1" of the MD5 of its binary MD5.
    db.ok(begin("vbk", "one", "up1")).await;
    let p = part(1, 3, "solo");
    db.ok(put_part("vbk", "one", "up1", p.clone())).await;
    let r = db
        .run(complete("vbk", "one", "up1", &[(1, &p.etag)], "v-one"))
        .await;
    let Response::Completed { version, .. } = r else {
        panic!("not completed: {r:?}")
    };
    assert_eq!(version.etag, s3_multipart_etag(&[&md5_hex(b"solo")]));
    assert!(version.etag.ends_with("-1"));
}

#[tokio::test]
async fn multipart_abort_frees_every_part() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    db.ok(begin("bkt", "k", "up")).await;
    db.ok(begin("bkt", "k", "other-upload")).await;
    db.ok(put_part("bkt", "k", "up", part(1, 10, "one"))).await;
    db.ok(put_part("bkt", "k", "up", part(7, 10, "seven")))
        .await;
    db.ok(put_part("bkt", "k", "other-upload", part(1, 10, "other")))
        .await;

    let r = db.run(abort("bkt", "k", "up")).await;
    let Response::Aborted { freed } = r else {
        panic!("not aborted: {r:?}")
    };
    assert_eq!(sorted(freed), sorted(vec![shards("one"), shards("seven")]));
    assert_eq!(db.upload("up").await, None);
    assert!(db.parts("up").await.is_empty());
    // The other upload on the same key is untouched.
    assert!(db.upload("other-upload").await.is_some());
    assert_eq!(db.parts("other-upload").await, vec![part(1, 10, "other")]);
    // No version was made.
    assert_eq!(db.latest("bkt", "k").await, None);

    // An upload with no parts aborts with nothing to free.
    assert_eq!(
        db.run(abort("bkt", "k", "other-upload")).await,
        Response::Aborted {
            freed: vec![shards("other")]
        }
    );
    db.ok(begin("bkt", "k", "empty")).await;
    assert_eq!(
        db.run(abort("bkt", "k", "empty")).await,
        Response::Aborted { freed: vec![] }
    );
    assert_eq!(db.run(delete_bucket("bkt")).await, Response::Ok);
}

#[tokio::test]
async fn a_retried_part_commit_replaces_nothing() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    db.ok(begin("bkt", "big", "up-1")).await;
    let first = db
        .ok(put_part("bkt", "big", "up-1", part(1, 10, "p1")))
        .await;
    assert_eq!(first, Response::PartStored { replaced: None });
    // The same part again (a retry with a new command id): its own shards
    // must not come back as replaced, or the caller would delete them.
    let again = db
        .ok(put_part("bkt", "big", "up-1", part(1, 10, "p1")))
        .await;
    assert_eq!(again, Response::PartStored { replaced: None });
    // A different upload of part 1 does replace the first.
    let other = db
        .ok(put_part("bkt", "big", "up-1", part(1, 10, "p1-bis")))
        .await;
    assert_eq!(
        other,
        Response::PartStored {
            replaced: Some(shards("p1"))
        }
    );
}

#[tokio::test]
async fn multipart_rejections() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    db.ok(create("bk2", false)).await;
    db.ok(create("vbk", true)).await;
    db.ok(begin("bkt", "k", "up")).await;
    db.ok(begin("bkt", "k2", "up2")).await;
    db.ok(begin("vbk", "k", "vup")).await;

    // Upload ids: not empty, not reused (anywhere).
    db.reject(begin("bkt", "k", ""), invalid()).await;
    db.reject(begin("bkt", "k", "up"), invalid()).await;
    db.reject(begin("bk2", "other", "up"), invalid()).await;

    // Wrong upload id; right id with the wrong key or bucket.
    let nsu = |id: &str| MetaError::NoSuchUpload(id.into());
    for (b, k, id) in [
        ("bkt", "k", "nope"),
        ("bkt", "k2", "up"),
        ("bkt", "x", "up"),
        ("bk2", "k", "up"),
    ] {
        db.reject(put_part(b, k, id, part(1, 10, "p")), nsu(id))
            .await;
        db.reject(complete(b, k, id, &[(1, &md5_hex(b"p"))], "v"), nsu(id))
            .await;
        db.reject(abort(b, k, id), nsu(id)).await;
    }

    // Part numbers: 1 to 10000.
    db.reject(put_part("bkt", "k", "up", part(0, 10, "zero")), invalid())
        .await;
    db.reject(
        put_part("bkt", "k", "up", part(10_001, 10, "big")),
        invalid(),
    )
    .await;
    db.reject(
        put_part("bkt", "k", "up", part(u32::MAX, 10, "max")),
        invalid(),
    )
    .await;
    db.ok(put_part("bkt", "k", "up", part(10_000, 10, "last")))
        .await;

    let p1 = part(1, MIN_PART_SIZE, "p1");
    let p2 = part(2, MIN_PART_SIZE - 1, "p2");
    let p3 = part(3, 5, "p3");
    for p in [&p1, &p2, &p3] {
        db.ok(put_part("bkt", "k", "up", p.clone())).await;
    }
    let (e1, e2, e3) = (p1.etag.as_str(), p2.etag.as_str(), p3.etag.as_str());

    db.reject(complete("bkt", "k", "up", &[], "v"), invalid())
        .await;
    db.reject(
        complete("bkt", "k", "up", &[(2, e2), (1, e1)], "v"),
        MetaError::InvalidPartOrder,
    )
    .await;
    db.reject(
        complete("bkt", "k", "up", &[(1, e1), (3, e3), (2, e2)], "v"),
        MetaError::InvalidPartOrder,
    )
    .await;
    db.reject(
        complete("bkt", "k", "up", &[(1, e1), (1, e1)], "v"),
        MetaError::InvalidPartOrder,
    )
    .await;
    // Not uploaded.
    db.reject(
        complete("bkt", "k", "up", &[(1, e1), (4, e3)], "v"),
        invalid_part(),
    )
    .await;
    db.reject(complete("bkt", "k", "up", &[(9, e1)], "v"), invalid_part())
        .await;
    // Another ETag.
    db.reject(complete("bkt", "k", "up", &[(1, e2)], "v"), invalid_part())
        .await;
    db.reject(
        complete("bkt", "k", "up", &[(1, e1), (3, "0123")], "v"),
        invalid_part(),
    )
    .await;
    // A part that is not the last must be at least 5 MiB.
    db.reject(
        complete("bkt", "k", "up", &[(2, e2), (3, e3)], "v"),
        MetaError::EntityTooSmall(2),
    )
    .await;
    db.reject(
        complete("bkt", "k", "up", &[(1, e1), (2, e2), (3, e3)], "v"),
        MetaError::EntityTooSmall(2),
    )
    .await;

    // A versioned completion needs a version id; the upload stays.
    db.ok(put_part("vbk", "k", "vup", p3.clone())).await;
    db.reject(complete("vbk", "k", "vup", &[(3, e3)], ""), invalid())
        .await;
    db.reject(complete("vbk", "k", "vup", &[(3, e3)], "null"), invalid())
        .await;
    assert!(db.upload("vup").await.is_some());

    // After all that, the upload still completes.
    let r = db
        .run(complete("bkt", "k", "up", &[(1, e1), (3, e3)], "v"))
        .await;
    assert!(matches!(r, Response::Completed { .. }), "{r:?}");
    // And is gone: a second completion with other parts, or an abort,
    // finds nothing (the same parts are answered as the first completion
    // was: apply_compat_writes.rs).
    db.reject(complete("bkt", "k", "up", &[(1, e1)], "v"), nsu("up"))
        .await;
    db.reject(abort("bkt", "k", "up"), nsu("up")).await;
    db.reject(put_part("bkt", "k", "up", part(1, 1, "late")), nsu("up"))
        .await;
}

#[tokio::test]
async fn uploads_listing_and_paging() {
    let mut db = Db::new().await;
    db.ok(create("upl", false)).await;
    db.ok(create("other", false)).await;
    for (key, id) in [
        ("k1", "u3"),
        ("k1", "u1"),
        ("x/k", "u9"),
        ("k2", "u0"),
        ("é", "u5"),
        ("k1", "u2"),
    ] {
        db.ok(begin("upl", key, id)).await;
    }
    db.ok(begin("other", "k1", "elsewhere")).await;
    let ids = |l: &[Upload]| {
        l.iter()
            .map(|u| (u.key.clone(), u.upload_id.clone()))
            .collect::<Vec<_>>()
    };
    let all: Vec<(String, String)> = [
        ("k1", "u1"),
        ("k1", "u2"),
        ("k1", "u3"),
        ("k2", "u0"),
        ("x/k", "u9"),
        ("é", "u5"),
    ]
    .iter()
    .map(|(k, u)| (k.to_string(), u.to_string()))
    .collect();

    let (list, truncated) = db.uploads("upl", "", "", "", 1000).await;
    assert_eq!(ids(&list), all);
    assert!(!truncated);
    assert_eq!(list[0], upload("upl", "k1", "u1"));
    let (_, truncated) = db.uploads("upl", "", "", "", 6).await;
    assert!(!truncated, "exactly max uploads is not truncated");
    let (list, truncated) = db.uploads("upl", "", "", "", 5).await;
    assert!(truncated);
    assert_eq!(ids(&list), all[..5]);

    // Paging with the last upload as the markers.
    for size in [1u32, 2, 4] {
        let (mut km, mut um) = (String::new(), String::new());
        let mut got = Vec::new();
        loop {
            let (list, truncated) = db.uploads("upl", "", &km, &um, size).await;
            assert!(list.len() <= size as usize);
            got.extend(ids(&list));
            if !truncated {
                break;
            }
            assert_eq!(list.len(), size as usize);
            let last = list.last().expect("a truncated page is not empty");
            (km, um) = (last.key.clone(), last.upload_id.clone());
        }
        assert_eq!(got, all, "pages of {size}");
    }

    // Markers in the middle of a key's uploads.
    let (list, _) = db.uploads("upl", "", "k1", "u1", 1000).await;
    assert_eq!(ids(&list), all[1..]);
    let (list, _) = db.uploads("upl", "", "k1", "u3", 1000).await;
    assert_eq!(ids(&list), all[3..]);
    let (list, _) = db.uploads("upl", "", "k0", "zzz", 1000).await;
    assert_eq!(ids(&list), all);
    // S3: a key marker without an upload-id marker lists only keys after it.
    let (list, _) = db.uploads("upl", "", "k1", "", 1000).await;
    assert_eq!(
        ids(&list),
        all[3..],
        "key-marker alone must skip the marker key's uploads"
    );
    let (list, _) = db.uploads("upl", "", "k2", "", 1000).await;
    assert_eq!(ids(&list), all[4..]);

    // Prefixes.
    let (list, truncated) = db.uploads("upl", "k", "", "", 1000).await;
    assert_eq!(ids(&list), all[..4]);
    assert!(!truncated);
    let (list, truncated) = db.uploads("upl", "k", "", "", 3).await;
    assert_eq!(ids(&list), all[..3]);
    assert!(truncated);
    let (list, truncated) = db.uploads("upl", "k", "k1", "u3", 1).await;
    assert_eq!(ids(&list), all[3..4]);
    assert!(!truncated, "nothing with the prefix remains");
    let (list, _) = db.uploads("upl", "x/", "", "", 1000).await;
    assert_eq!(ids(&list), all[4..5]);
    let (list, _) = db.uploads("upl", "é", "", "", 1000).await;
    assert_eq!(ids(&list), all[5..]);
    let (list, _) = db.uploads("upl", "k1x", "", "", 1000).await;
    assert!(list.is_empty());
    let (list, _) = db.uploads("missing", "", "", "", 1000).await;
    assert!(list.is_empty());

    // Completed and aborted uploads leave the listing.
    let p = part(1, 1, "x");
    db.ok(put_part("upl", "k1", "u2", p.clone())).await;
    db.ok(complete("upl", "k1", "u2", &[(1, &p.etag)], ""))
        .await;
    db.ok(abort("upl", "k2", "u0")).await;
    let (list, _) = db.uploads("upl", "", "", "", 1000).await;
    assert_eq!(
        ids(&list),
        vec![
            all[0].clone(),
            all[2].clone(),
            all[4].clone(),
            all[5].clone()
        ]
    );
}
