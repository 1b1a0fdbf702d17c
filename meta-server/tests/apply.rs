//! Unit tests of the metadata state machine: every command applied to a
//! fresh, migrated SQLite DB and checked through the queries module; every
//! rejection, checked to change nothing; determinism; and listings compared
//! against a naive model built in the test.

mod common;

use common::*;

// ---------------------------------------------------------------------------
// 1. Every command, applied successfully
// ---------------------------------------------------------------------------

#[tokio::test]
async fn create_and_delete_bucket() {
    let mut db = Db::new().await;
    let r = db.run_at(NOW + 1, create("plain", false)).await;
    let plain = Bucket {
        name: "plain".into(),
        created_at_ms: NOW + 1,
        versioning: String::new(),
        object_lock_enabled: false,
        default_retention: None,
    };
    assert_eq!(r, Response::Bucket(plain.clone()));
    assert_eq!(
        q::bucket(db.c(), "plain").await.expect("bucket"),
        Some(plain.clone())
    );

    // Object lock needs versioning: such a bucket starts "Enabled".
    let r = db.run_at(NOW + 2, create("locked", true)).await;
    let locked = Bucket {
        name: "locked".into(),
        created_at_ms: NOW + 2,
        versioning: "Enabled".into(),
        object_lock_enabled: true,
        default_retention: None,
    };
    assert_eq!(r, Response::Bucket(locked.clone()));
    assert_eq!(
        q::bucket(db.c(), "locked").await.expect("bucket"),
        Some(locked.clone())
    );
    assert_eq!(
        q::buckets(db.c()).await.expect("buckets"),
        vec![locked.clone(), plain.clone()]
    );

    // Names at the edges of the rules are accepted.
    for name in ["abc", &"a".repeat(63), "a.b-c", "1-2.3", "x0y"] {
        db.ok(create(name, false)).await;
        assert!(
            q::bucket(db.c(), name).await.expect("bucket").is_some(),
            "{name}"
        );
    }

    assert_eq!(db.run(delete_bucket("plain")).await, Response::Ok);
    assert_eq!(q::bucket(db.c(), "plain").await.expect("bucket"), None);
    assert!(
        !q::buckets(db.c())
            .await
            .expect("buckets")
            .iter()
            .any(|b| b.name == "plain")
    );
    // The name is free again.
    db.ok(create("plain", true)).await;
    assert_eq!(
        q::bucket(db.c(), "plain")
            .await
            .expect("bucket")
            .map(|b| b.versioning),
        Some("Enabled".to_string())
    );
}

#[tokio::test]
async fn unversioned_commit_stores_the_null_version_and_replaces_it() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;

    let v1 = ver("bkt", "k", "proposer-id-1", "one");
    let r = db.run(commit(v1.clone())).await;
    let seq1 = db.seq as i64;
    let stored1 = Version {
        version_id: "null".into(),
        ..v1.clone()
    };
    assert_eq!(
        r,
        Response::Committed {
            version: stored1.clone(),
            freed: vec![],
            versioned: false,
        }
    );
    assert_eq!(
        q::version(db.c(), "bkt", "k", "null")
            .await
            .expect("version"),
        Some((stored1.clone(), seq1))
    );
    assert_eq!(
        q::version(db.c(), "bkt", "k", "proposer-id-1")
            .await
            .expect("version"),
        None
    );
    assert_eq!(
        q::latest(db.c(), "bkt", "k").await.expect("latest"),
        Some(stored1.clone())
    );
    assert_eq!(
        q::version_seq(db.c(), "bkt", "k", "null")
            .await
            .expect("seq"),
        Some(seq1)
    );

    // A second PUT replaces it and hands back the first one's shards.
    let v2 = ver("bkt", "k", "proposer-id-2", "two");
    let r = db.run(commit(v2.clone())).await;
    let seq2 = db.seq as i64;
    let stored2 = Version {
        version_id: "null".into(),
        ..v2.clone()
    };
    assert_eq!(
        r,
        Response::Committed {
            version: stored2.clone(),
            freed: vec![shards("one")],
            versioned: false,
        }
    );
    assert_eq!(
        q::latest(db.c(), "bkt", "k").await.expect("latest"),
        Some(stored2.clone())
    );
    assert_eq!(
        q::version(db.c(), "bkt", "k", "null")
            .await
            .expect("version"),
        Some((stored2, seq2))
    );
    assert_eq!(
        all_versions_of(db.c(), "bkt", "k").await,
        vec![("null".to_string(), false, true)]
    );

    // Other keys are independent.
    let r = db.run(commit(ver("bkt", "other", "x", "three"))).await;
    assert!(
        matches!(r, Response::Committed { ref freed, .. } if freed.is_empty()),
        "{r:?}"
    );
    assert_eq!(
        q::latest(db.c(), "bkt", "k")
            .await
            .expect("latest")
            .map(|v| v.etag),
        Some(md5_hex(b"two"))
    );
}

#[tokio::test]
async fn versioned_commits_accumulate_and_latest_is_the_highest_seq() {
    let mut db = Db::new().await;
    db.ok(create("vbk", true)).await;
    // Ids deliberately not in the order of their log index.
    let mut seqs = Vec::new();
    for (id, tag) in [("zz", "first"), ("aa", "second"), ("mm", "third")] {
        let v = ver("vbk", "k", id, tag);
        let r = db.run(commit(v.clone())).await;
        assert_eq!(
            r,
            Response::Committed {
                version: v,
                freed: vec![],
                versioned: true,
            }
        );
        seqs.push(db.seq as i64);
    }
    for ((id, tag), seq) in [("zz", "first"), ("aa", "second"), ("mm", "third")]
        .iter()
        .zip(&seqs)
    {
        assert_eq!(
            q::version(db.c(), "vbk", "k", id).await.expect("version"),
            Some((ver("vbk", "k", id, tag), *seq))
        );
    }
    assert_eq!(
        q::latest(db.c(), "vbk", "k").await.expect("latest"),
        Some(ver("vbk", "k", "mm", "third"))
    );
    // Newest first, only the newest is latest.
    assert_eq!(
        all_versions_of(db.c(), "vbk", "k").await,
        vec![
            ("mm".to_string(), false, true),
            ("aa".to_string(), false, false),
            ("zz".to_string(), false, false)
        ]
    );
}

#[tokio::test]
async fn identical_recommit_is_idempotent_and_a_reused_id_is_refused() {
    let mut db = Db::new().await;
    db.ok(create("vbk", true)).await;
    let v = ver("vbk", "k", "v1", "one");
    db.ok(commit(v.clone())).await;
    let seq = db.seq as i64;
    db.ok(commit(ver("vbk", "k", "v2", "two"))).await;

    // A retried proposal answers the same version and changes nothing.
    let before = db.dump().await;
    let r = db.run(commit(v.clone())).await;
    assert_eq!(
        r,
        Response::Committed {
            version: v.clone(),
            freed: vec![],
            versioned: true,
        }
    );
    assert_eq!(db.dump().await, before);
    assert_eq!(
        q::version(db.c(), "vbk", "k", "v1").await.expect("version"),
        Some((v.clone(), seq))
    );
    assert_eq!(
        q::latest(db.c(), "vbk", "k")
            .await
            .expect("latest")
            .map(|v| v.version_id),
        Some("v2".to_string())
    );

    // The same id with other content is refused.
    let other = Version {
        size: v.size + 1,
        ..v.clone()
    };
    db.reject(commit(other), invalid()).await;
    let other = ver("vbk", "k", "v1", "something else");
    db.reject(commit(other), invalid()).await;
}

#[tokio::test]
async fn retried_commit_on_an_unversioned_bucket_does_not_free_the_live_object() {
    // The cluster retries a write whose answer it lost, so the same
    // command can be applied twice. The shards it answers as freed get
    // deleted by the caller: they must never be the ones the object uses.
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    let v = ver("bkt", "k", "id-1", "one");
    let cmd = Command {
        id: String::new(),
        at_ms: NOW,
        op: commit(v.clone()),
    };
    let first = apply(db.c(), 1000, &cmd).await.expect("apply");
    let before = db.dump().await;
    let again = apply(db.c(), 1001, &cmd).await.expect("apply");
    assert_eq!(
        first, again,
        "a retried commit must answer as the first one did"
    );
    let Response::Committed { version, freed, .. } = again else {
        panic!("not committed: {again:?}")
    };
    assert_eq!(version.shard_map, Some(shards("one")));
    assert!(
        !freed.contains(&shards("one")),
        "the retry frees the shards of the object it keeps: {freed:?}"
    );
    assert_eq!(db.dump().await, before);

    // A retry through another meta-server is stamped anew: other command
    // id, time and created_at_ms. It is still the same write.
    let restamped = Command {
        id: "another-id".into(),
        at_ms: NOW + 5_000,
        op: commit(Version {
            created_at_ms: NOW + 4_000,
            ..v.clone()
        }),
    };
    let third = apply(db.c(), 1002, &restamped).await.expect("apply");
    let Response::Committed { version, freed, .. } = third else {
        panic!("not committed: {third:?}")
    };
    assert_eq!(version.created_at_ms, v.created_at_ms);
    assert_eq!(freed, vec![], "a restamped retry frees nothing");
    // Only its command id is recorded; the object is as it was.
    let now: Vec<String> = db
        .dump()
        .await
        .into_iter()
        .filter(|row| !row.starts_with("applied_commands("))
        .collect();
    assert_eq!(now, before);

    // A real overwrite frees the shards it replaces, and only those.
    let r = db.run(commit(ver("bkt", "k", "id-2", "two"))).await;
    let Response::Committed { freed, .. } = r else {
        panic!("not committed: {r:?}")
    };
    assert_eq!(freed, vec![shards("one")]);
}

#[tokio::test]
async fn commit_version_takes_no_caller_parts() {
    // Parts come only from CompleteMultipartUpload, which picks them from
    // what was uploaded; named by a caller they could be anyone's shards.
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    let forged = Version {
        shard_map: None,
        parts: vec![part(1, 5, "someone-elses")],
        ..ver("bkt", "k", "v1", "x")
    };
    let before = db.dump().await;
    db.reject(commit(forged), invalid()).await;
    assert_eq!(db.dump().await, before);
}

#[tokio::test]
async fn delete_marker_then_deleting_versions_by_id() {
    let mut db = Db::new().await;
    db.ok(create("vbk", true)).await;
    let v1 = ver("vbk", "k", "v1", "one");
    db.ok(commit(v1.clone())).await;

    // No id on an Enabled bucket: a delete marker, nothing freed.
    let r = db.run_at(NOW + 50, del("vbk", "k", None, "dm1")).await;
    assert_eq!(
        r,
        Response::Deleted {
            version_id: "dm1".into(),
            delete_marker: true,
            freed: vec![]
        }
    );
    let marker_seq = db.seq as i64;
    let latest = q::latest(db.c(), "vbk", "k")
        .await
        .expect("latest")
        .expect("a latest version");
    assert!(latest.delete_marker);
    assert_eq!(latest.version_id, "dm1");
    assert_eq!((latest.bucket.as_str(), latest.key.as_str()), ("vbk", "k"));
    assert_eq!(latest.created_at_ms, NOW + 50);
    assert_eq!(latest.shard_map, None);
    assert_eq!(
        q::version_seq(db.c(), "vbk", "k", "dm1")
            .await
            .expect("seq"),
        Some(marker_seq)
    );
    // The version is still there, no longer the latest.
    assert_eq!(
        q::version(db.c(), "vbk", "k", "v1")
            .await
            .expect("version")
            .map(|(v, _)| v),
        Some(v1.clone())
    );
    assert_eq!(
        all_versions_of(db.c(), "vbk", "k").await,
        vec![
            ("dm1".to_string(), true, true),
            ("v1".to_string(), false, false)
        ]
    );

    // Deleting the marker by id brings the version back.
    let r = db.run(del("vbk", "k", Some("dm1"), "ignored")).await;
    assert_eq!(
        r,
        Response::Deleted {
            version_id: "dm1".into(),
            delete_marker: true,
            freed: vec![]
        }
    );
    assert_eq!(
        q::latest(db.c(), "vbk", "k").await.expect("latest"),
        Some(v1.clone())
    );

    // Deleting the version by id removes it and frees its shards.
    let r = db.run(del("vbk", "k", Some("v1"), "ignored")).await;
    assert_eq!(
        r,
        Response::Deleted {
            version_id: "v1".into(),
            delete_marker: false,
            freed: vec![shards("one")]
        }
    );
    assert_eq!(q::latest(db.c(), "vbk", "k").await.expect("latest"), None);
    assert_eq!(
        q::version(db.c(), "vbk", "k", "v1").await.expect("version"),
        None
    );
    // Now the bucket is empty and can go.
    assert_eq!(db.run(delete_bucket("vbk")).await, Response::Ok);
}

#[tokio::test]
async fn retried_delete_marker_is_answered_not_a_storage_error() {
    // A storage error stops the state machine on every replica; a retried
    // DeleteObject (same command, same marker id) must not cause one.
    let mut db = Db::new().await;
    db.ok(create("vbk", true)).await;
    db.ok(commit(ver("vbk", "k", "v1", "one"))).await;
    let cmd = Command {
        id: String::new(),
        at_ms: NOW,
        op: del("vbk", "k", None, "dm1"),
    };
    let first = apply(db.c(), 100, &cmd).await.expect("apply");
    let before = db.dump().await;
    let again = apply(db.c(), 101, &cmd).await;
    let again = again.expect("a retried DeleteObject must not be a storage error");
    assert_eq!(again, first);
    assert_eq!(db.dump().await, before);

    // A marker id that is already another version's is refused.
    db.reject(del("vbk", "k", None, "v1"), invalid()).await;
    assert_eq!(
        all_versions_of(db.c(), "vbk", "k").await,
        vec![
            ("dm1".to_string(), true, true),
            ("v1".to_string(), false, false)
        ]
    );
}

#[tokio::test]
async fn unversioned_delete() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    db.ok(commit(ver("bkt", "k", "x", "one"))).await;
    let r = db.run(del("bkt", "k", None, "ignored-marker")).await;
    assert_eq!(
        r,
        Response::Deleted {
            version_id: String::new(),
            delete_marker: false,
            freed: vec![shards("one")]
        }
    );
    assert_eq!(q::latest(db.c(), "bkt", "k").await.expect("latest"), None);
    // No delete marker on an unversioned bucket.
    assert!(rows_of(&db.dump().await, "versions").is_empty());

    // A missing key: success, nothing freed, nothing changed.
    let before = db.dump().await;
    let r = db.run(del("bkt", "never-was", None, "ignored")).await;
    assert_eq!(
        r,
        Response::Deleted {
            version_id: String::new(),
            delete_marker: false,
            freed: vec![]
        }
    );
    assert_eq!(db.dump().await, before);

    // The null version can also be deleted by its id.
    db.ok(commit(ver("bkt", "k2", "x", "two"))).await;
    let r = db.run(del("bkt", "k2", Some("null"), "")).await;
    assert_eq!(
        r,
        Response::Deleted {
            version_id: "null".into(),
            delete_marker: false,
            freed: vec![shards("two")]
        }
    );
    assert_eq!(q::latest(db.c(), "bkt", "k2").await.expect("latest"), None);
    assert_eq!(db.run(delete_bucket("bkt")).await, Response::Ok);
}

#[tokio::test]
async fn multipart_complete() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;

    let u = upload("bkt", "big/file", "up-1");
    let r = db.run(Op::BeginMultipart { upload: u.clone() }).await;
    assert_eq!(r, Response::Upload(u.clone()));
    assert_eq!(
        q::upload(db.c(), "up-1").await.expect("upload"),
        Some(u.clone())
    );

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
        q::parts(db.c(), "up-1").await.expect("parts"),
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
        lock_mode: t.lock_mode.clone(),
        retain_until_ms: t.retain_until_ms,
        legal_hold: t.legal_hold,
        parts: vec![p1.clone(), p3.clone()],
    };
    assert!(version.etag.ends_with("-2"), "{}", version.etag);
    assert_eq!(version, expected);
    assert_eq!(sorted(freed), sorted(vec![shards("p2"), shards("p5")]));
    assert_eq!(
        q::latest(db.c(), "bkt", "big/file").await.expect("latest"),
        Some(expected.clone())
    );

    // The upload and its parts are gone.
    assert_eq!(q::upload(db.c(), "up-1").await.expect("upload"), None);
    assert!(q::parts(db.c(), "up-1").await.expect("parts").is_empty());
    assert!(rows_of(&db.dump().await, "parts").is_empty());
    assert!(rows_of(&db.dump().await, "uploads").is_empty());
    let (ups, _) = q::uploads(db.c(), "bkt", "", "", "", 1000)
        .await
        .expect("uploads");
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
    assert_eq!(
        q::latest(db.c(), "vbk", "k").await.expect("latest"),
        Some(version.clone())
    );
    assert_eq!(
        all_versions_of(db.c(), "vbk", "k").await,
        vec![
            ("new".to_string(), false, true),
            ("old".to_string(), false, false)
        ]
    );
    // Deleting it by id frees every part.
    let r = db.run(del("vbk", "k", Some("new"), "")).await;
    assert_eq!(
        r,
        Response::Deleted {
            version_id: "new".into(),
            delete_marker: false,
            freed: vec![shards("a"), shards("b")]
        }
    );

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
    assert_eq!(q::upload(db.c(), "up").await.expect("upload"), None);
    assert!(q::parts(db.c(), "up").await.expect("parts").is_empty());
    // The other upload on the same key is untouched.
    assert!(
        q::upload(db.c(), "other-upload")
            .await
            .expect("upload")
            .is_some()
    );
    assert_eq!(
        q::parts(db.c(), "other-upload").await.expect("parts"),
        vec![part(1, 10, "other")]
    );
    // No version was made.
    assert_eq!(q::latest(db.c(), "bkt", "k").await.expect("latest"), None);

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
async fn access_keys_put_and_delete() {
    let mut db = Db::new().await;
    let k1 = access_key("AK1");
    let k2 = AccessKey {
        enabled: false,
        ..access_key("AK2")
    };
    assert_eq!(
        db.run(Op::PutAccessKey { key: k1.clone() }).await,
        Response::Ok
    );
    assert_eq!(
        db.run(Op::PutAccessKey { key: k2.clone() }).await,
        Response::Ok
    );
    assert_eq!(
        q::access_key(db.c(), "AK1").await.expect("key"),
        Some(k1.clone())
    );
    assert_eq!(
        q::access_key(db.c(), "AK2").await.expect("key"),
        Some(k2.clone())
    );
    assert_eq!(
        q::access_keys(db.c()).await.expect("keys"),
        vec![k1.clone(), k2.clone()]
    );

    assert_eq!(
        db.run(Op::DeleteAccessKey { id: "AK1".into() }).await,
        Response::Ok
    );
    assert_eq!(q::access_key(db.c(), "AK1").await.expect("key"), None);
    assert_eq!(q::access_keys(db.c()).await.expect("keys"), vec![k2]);
    // The id can be used again.
    assert_eq!(
        db.run(Op::PutAccessKey { key: k1.clone() }).await,
        Response::Ok
    );
}

#[tokio::test]
async fn blob_servers_register_reregister_and_heartbeat() {
    let mut db = Db::new().await;
    let r = db
        .run_at(
            NOW + 10,
            Op::RegisterBlob {
                server: blob("b1", "10.0.0.1:7000"),
            },
        )
        .await;
    assert_eq!(r, Response::Ok);
    db.ok(Op::RegisterBlob {
        server: blob("b0", "10.0.0.0:7000"),
    })
    .await;
    let servers = q::blob_servers(db.c()).await.expect("servers");
    assert_eq!(
        servers.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec!["b0", "b1"]
    );
    let expected_b1 = BlobServer {
        state: "active".into(),
        last_heartbeat_ms: NOW + 10,
        ..blob("b1", "10.0.0.1:7000")
    };
    assert_eq!(servers[1], expected_b1);

    // Registering again updates the row: an upsert, still one row.
    let again = BlobServer {
        failure_domain: "rack-2".into(),
        capacity_bytes: 5000,
        free_bytes: 4000,
        ..blob("b1", "10.0.0.9:7001")
    };
    assert_eq!(
        db.run_at(
            NOW + 20,
            Op::RegisterBlob {
                server: again.clone()
            }
        )
        .await,
        Response::Ok
    );
    let servers = q::blob_servers(db.c()).await.expect("servers");
    assert_eq!(servers.len(), 2);
    assert_eq!(
        servers[1],
        BlobServer {
            state: "active".into(),
            last_heartbeat_ms: NOW + 20,
            ..again.clone()
        }
    );

    // A heartbeat updates space and time, nothing else.
    let r = db
        .run_at(
            NOW + 30,
            Op::BlobHeartbeat {
                id: "b1".into(),
                capacity_bytes: 7000,
                free_bytes: 123,
            },
        )
        .await;
    assert_eq!(r, Response::Ok);
    let servers = q::blob_servers(db.c()).await.expect("servers");
    assert_eq!(
        servers[1],
        BlobServer {
            id: "b1".into(),
            address: "10.0.0.9:7001".into(),
            failure_domain: "rack-2".into(),
            capacity_bytes: 7000,
            free_bytes: 123,
            state: "active".into(),
            last_heartbeat_ms: NOW + 30,
        }
    );
    // b0 untouched.
    assert_eq!(servers[0].last_heartbeat_ms, NOW);
    assert_eq!(servers[0].free_bytes, 600);
}

#[tokio::test]
async fn a_rejection_inside_a_batch_keeps_the_rest_of_the_batch() {
    // The state machine applies a batch in one transaction: a rejected
    // command must undo only itself.
    let mut db = Db::new().await;
    let out = db
        .batch(vec![
            (NOW, create("one", false)),
            (NOW, commit(ver("one", "k", "x", "a"))),
            (NOW, create("one", false)),
            (NOW, commit(ver("nope", "k", "x", "a"))),
            (NOW, begin("one", "k", "u")),
            (NOW, put_part("one", "k", "u", part(0, 1, "zero"))),
            (NOW, create("two", true)),
        ])
        .await;
    let errs: Vec<usize> = out
        .iter()
        .enumerate()
        .filter(|(_, (_, r))| matches!(r, Response::Err(_)))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(errs, vec![2, 3, 5], "{out:?}");
    assert!(q::bucket(db.c(), "one").await.expect("bucket").is_some());
    assert!(q::bucket(db.c(), "two").await.expect("bucket").is_some());
    assert!(
        q::latest(db.c(), "one", "k")
            .await
            .expect("latest")
            .is_some()
    );
    assert!(q::upload(db.c(), "u").await.expect("upload").is_some());
    assert!(q::parts(db.c(), "u").await.expect("parts").is_empty());
    assert_eq!(q::buckets(db.c()).await.expect("buckets").len(), 2);
}

// ---------------------------------------------------------------------------
// 2. Every rejection: the exact error, and nothing changed
// ---------------------------------------------------------------------------

#[tokio::test]
async fn bucket_rejections() {
    let mut db = Db::new().await;
    db.ok(create("exists", false)).await;
    db.ok(create("locked", true)).await;

    let long = "a".repeat(64);
    for name in [
        "",
        "ab",
        long.as_str(),
        "Upper",
        "-abc",
        "abc-",
        ".abc",
        "abc.",
        "a..b",
        "a_b",
        "a b",
        "ébc",
        "abc/",
    ] {
        db.reject(create(name, false), invalid()).await;
        db.reject(create(name, true), invalid()).await;
    }
    db.reject(
        create("exists", false),
        MetaError::BucketAlreadyExists("exists".into()),
    )
    .await;
    db.reject(
        create("exists", true),
        MetaError::BucketAlreadyExists("exists".into()),
    )
    .await;
    db.reject(
        create("locked", false),
        MetaError::BucketAlreadyExists("locked".into()),
    )
    .await;
    db.reject(
        delete_bucket("missing"),
        MetaError::NoSuchBucket("missing".into()),
    )
    .await;

    // Not empty: a version.
    db.ok(commit(ver("exists", "k", "x", "a"))).await;
    db.reject(
        delete_bucket("exists"),
        MetaError::BucketNotEmpty("exists".into()),
    )
    .await;
    db.ok(del("exists", "k", None, "")).await;
    assert_eq!(db.run(delete_bucket("exists")).await, Response::Ok);

    // Not empty: only a delete marker.
    db.ok(commit(ver("locked", "k", "v1", "a"))).await;
    db.ok(del("locked", "k", None, "dm")).await;
    db.ok(del("locked", "k", Some("v1"), "")).await;
    db.reject(
        delete_bucket("locked"),
        MetaError::BucketNotEmpty("locked".into()),
    )
    .await;
    db.ok(del("locked", "k", Some("dm"), "")).await;
    assert_eq!(db.run(delete_bucket("locked")).await, Response::Ok);

    // Not empty: only an open upload.
    db.ok(create("uploads", false)).await;
    db.ok(begin("uploads", "k", "u1")).await;
    db.reject(
        delete_bucket("uploads"),
        MetaError::BucketNotEmpty("uploads".into()),
    )
    .await;
    db.ok(abort("uploads", "k", "u1")).await;
    assert_eq!(db.run(delete_bucket("uploads")).await, Response::Ok);
}

#[tokio::test]
async fn missing_bucket_rejections() {
    let mut db = Db::new().await;
    db.ok(create("other", false)).await;
    db.ok(commit(ver("other", "k", "x", "a"))).await;
    let nsb = || MetaError::NoSuchBucket("missing".into());
    db.reject(commit(ver("missing", "k", "x", "a")), nsb())
        .await;
    db.reject(del("missing", "k", None, "m"), nsb()).await;
    db.reject(del("missing", "k", Some("null"), "m"), nsb())
        .await;
    db.reject(begin("missing", "k", "u"), nsb()).await;
    db.reject(delete_bucket("missing"), nsb()).await;
}

#[tokio::test]
async fn commit_rejections() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    db.ok(create("vbk", true)).await;
    db.ok(commit(ver("vbk", "k", "v1", "one"))).await;

    // Keys: 1 to 1024 bytes (bytes, not characters).
    let max_key = "k".repeat(1024);
    db.ok(commit(ver("bkt", &max_key, "x", "max"))).await;
    assert!(
        q::latest(db.c(), "bkt", &max_key)
            .await
            .expect("latest")
            .is_some()
    );
    let too_long = "k".repeat(1025);
    let too_long_chars = "é".repeat(513); // 513 characters, 1026 bytes
    for b in ["bkt", "vbk"] {
        db.reject(commit(ver(b, &too_long, "id", "x")), invalid())
            .await;
        db.reject(commit(ver(b, &too_long_chars, "id", "x")), invalid())
            .await;
        db.reject(commit(ver(b, "", "id", "x")), invalid()).await;
        db.reject(begin(b, &too_long, "long-up"), invalid()).await;
        db.reject(begin(b, "", "empty-up"), invalid()).await;
    }

    // A versioned commit needs an id of its own.
    db.reject(commit(ver("vbk", "k", "", "two")), invalid())
        .await;
    db.reject(commit(ver("vbk", "k", "null", "two")), invalid())
        .await;
    // A reused id with other content.
    db.reject(commit(ver("vbk", "k", "v1", "two")), invalid())
        .await;

    // Delete markers are DeleteObject's to make.
    for b in ["bkt", "vbk"] {
        let marker = Version {
            delete_marker: true,
            ..ver(b, "k", "m1", "x")
        };
        db.reject(commit(marker), invalid()).await;
    }
    let marker_on_missing = Version {
        delete_marker: true,
        ..ver("missing", "k", "m1", "x")
    };
    let got = db.run(commit(marker_on_missing)).await;
    assert!(
        matches!(
            got,
            Response::Err(MetaError::InvalidArgument(_) | MetaError::NoSuchBucket(_))
        ),
        "{got:?}"
    );

    // DeleteObject on an Enabled bucket needs a marker id.
    db.reject(del("vbk", "k", None, ""), invalid()).await;
    db.reject(del("vbk", "k", None, "null"), invalid()).await;
}

#[tokio::test]
async fn no_such_version() {
    let mut db = Db::new().await;
    db.ok(create("vbk", true)).await;
    db.ok(create("bkt", false)).await;
    db.ok(commit(ver("vbk", "k", "v1", "one"))).await;
    db.ok(commit(ver("vbk", "other", "v2", "two"))).await;
    db.ok(commit(ver("bkt", "k", "x", "three"))).await;
    db.reject(
        del("vbk", "k", Some("nope"), ""),
        MetaError::NoSuchVersion("nope".into()),
    )
    .await;
    // v2 exists, but on another key.
    db.reject(
        del("vbk", "k", Some("v2"), ""),
        MetaError::NoSuchVersion("v2".into()),
    )
    .await;
    db.reject(
        del("vbk", "missing-key", Some("v1"), ""),
        MetaError::NoSuchVersion("v1".into()),
    )
    .await;
    db.reject(
        del("bkt", "k", Some("x"), ""),
        MetaError::NoSuchVersion("x".into()),
    )
    .await;
    db.reject(
        del("bkt", "k", Some(""), ""),
        MetaError::NoSuchVersion(String::new()),
    )
    .await;
}

#[tokio::test]
async fn object_lock_protects_versions_from_deletion() {
    let mut db = Db::new().await;
    db.ok(create("lock", true)).await;
    let until = NOW + 60_000;
    let held = Version {
        legal_hold: true,
        ..ver("lock", "held", "v", "held")
    };
    let compliance = Version {
        lock_mode: "COMPLIANCE".into(),
        retain_until_ms: until,
        ..ver("lock", "compliance", "v", "compliance")
    };
    let governance = Version {
        lock_mode: "GOVERNANCE".into(),
        retain_until_ms: until,
        ..ver("lock", "governance", "v", "governance")
    };
    let expired = Version {
        lock_mode: "COMPLIANCE".into(),
        retain_until_ms: NOW - 1,
        ..ver("lock", "expired", "v", "expired")
    };
    for v in [&held, &compliance, &governance] {
        db.ok(commit(v.clone())).await;
    }
    // A retain-until date must be in the future when it is set: this one
    // was set at a time before it.
    let r = db.run_at(NOW - 1_000, commit(expired.clone())).await;
    assert!(matches!(r, Response::Committed { .. }), "{r:?}");

    // Legal hold: denied, bypass or not, whatever the time.
    db.reject(del("lock", "held", Some("v"), ""), denied())
        .await;
    db.reject(del_bypass("lock", "held", "v"), denied()).await;
    db.reject_at(i64::MAX, del_bypass("lock", "held", "v"), denied())
        .await;

    // COMPLIANCE until the future: denied even with bypass. The command's
    // time is "now": the wall clock is long past `until`, the command not.
    db.reject(del("lock", "compliance", Some("v"), ""), denied())
        .await;
    db.reject(del_bypass("lock", "compliance", "v"), denied())
        .await;
    db.reject_at(until - 1, del_bypass("lock", "compliance", "v"), denied())
        .await;

    // GOVERNANCE until the future: denied without bypass, allowed with it.
    db.reject(del("lock", "governance", Some("v"), ""), denied())
        .await;
    db.reject_at(
        until - 1,
        del("lock", "governance", Some("v"), ""),
        denied(),
    )
    .await;
    let r = db.run(del_bypass("lock", "governance", "v")).await;
    assert_eq!(
        r,
        Response::Deleted {
            version_id: "v".into(),
            delete_marker: false,
            freed: vec![shards("governance")]
        }
    );
    assert_eq!(
        q::version(db.c(), "lock", "governance", "v")
            .await
            .expect("version"),
        None
    );

    // Retention in the past: the version can go.
    let r = db.run(del("lock", "expired", Some("v"), "")).await;
    assert!(
        matches!(r, Response::Deleted { ref freed, .. } if freed == &vec![shards("expired")]),
        "{r:?}"
    );

    // Once the command's time passes the retention date, COMPLIANCE lets go.
    let r = db
        .run_at(until + 1, del("lock", "compliance", Some("v"), ""))
        .await;
    assert!(
        matches!(r, Response::Deleted { ref version_id, .. } if version_id == "v"),
        "{r:?}"
    );

    // A delete without id only adds a marker: allowed on a held object,
    // which stays.
    let r = db.run(del("lock", "held", None, "dm")).await;
    assert!(
        matches!(
            r,
            Response::Deleted {
                delete_marker: true,
                ..
            }
        ),
        "{r:?}"
    );
    assert_eq!(
        q::version(db.c(), "lock", "held", "v")
            .await
            .expect("version")
            .map(|(v, _)| v),
        Some(held)
    );

    // A completed multipart object carries the upload's lock settings.
    let mut u = upload("lock", "mp", "up");
    u.template.legal_hold = true;
    db.ok(Op::BeginMultipart { upload: u }).await;
    let p = part(1, 1, "mp");
    db.ok(put_part("lock", "mp", "up", p.clone())).await;
    db.ok(complete("lock", "mp", "up", &[(1, &p.etag)], "mpv"))
        .await;
    db.reject(del_bypass("lock", "mp", "mpv"), denied()).await;
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
    assert!(q::upload(db.c(), "vup").await.expect("upload").is_some());

    // After all that, the upload still completes.
    let r = db
        .run(complete("bkt", "k", "up", &[(1, e1), (3, e3)], "v"))
        .await;
    assert!(matches!(r, Response::Completed { .. }), "{r:?}");
    // And is gone: a second completion or abort finds nothing.
    db.reject(
        complete("bkt", "k", "up", &[(1, e1), (3, e3)], "v"),
        nsu("up"),
    )
    .await;
    db.reject(abort("bkt", "k", "up"), nsu("up")).await;
    db.reject(put_part("bkt", "k", "up", part(1, 1, "late")), nsu("up"))
        .await;
}

#[tokio::test]
async fn access_key_and_blob_rejections() {
    let mut db = Db::new().await;
    db.ok(Op::PutAccessKey {
        key: access_key("AK1"),
    })
    .await;
    db.ok(Op::RegisterBlob {
        server: blob("b1", "h:1"),
    })
    .await;

    let other_ak1 = AccessKey {
        name: "someone else".into(),
        sealed_secret: vec![9],
        ..access_key("AK1")
    };
    db.reject(
        Op::PutAccessKey {
            key: access_key("AK1"),
        },
        invalid(),
    )
    .await;
    db.reject(Op::PutAccessKey { key: other_ak1 }, invalid())
        .await;
    db.reject(
        Op::PutAccessKey {
            key: access_key(""),
        },
        invalid(),
    )
    .await;
    let no_secret = AccessKey {
        sealed_secret: vec![],
        ..access_key("AK2")
    };
    db.reject(Op::PutAccessKey { key: no_secret }, invalid())
        .await;
    db.reject(
        Op::DeleteAccessKey { id: "AK9".into() },
        MetaError::NoSuchAccessKey("AK9".into()),
    )
    .await;
    db.reject(
        Op::DeleteAccessKey { id: String::new() },
        MetaError::NoSuchAccessKey(String::new()),
    )
    .await;

    db.reject(
        Op::BlobHeartbeat {
            id: "b9".into(),
            capacity_bytes: 1,
            free_bytes: 1,
        },
        MetaError::NoSuchBlobServer("b9".into()),
    )
    .await;
    db.reject(
        Op::RegisterBlob {
            server: blob("", "h:2"),
        },
        invalid(),
    )
    .await;
    db.reject(
        Op::RegisterBlob {
            server: blob("b2", ""),
        },
        invalid(),
    )
    .await;
    // Re-registering with an empty address must not wipe the known one.
    db.reject(
        Op::RegisterBlob {
            server: blob("b1", ""),
        },
        invalid(),
    )
    .await;
}

// ---------------------------------------------------------------------------
// 3. Determinism
// ---------------------------------------------------------------------------

/// A mixed history, rejections included, with ids and times in the
/// commands as the proposer makes them.
fn history() -> Vec<(i64, Op)> {
    let mut ops = vec![
        (NOW, create("plain", false)),
        (NOW + 1, create("vers", true)),
        (NOW + 2, create("plain", false)),
        (
            NOW + 3,
            Op::PutAccessKey {
                key: access_key("AK1"),
            },
        ),
        (
            NOW + 4,
            Op::RegisterBlob {
                server: blob("b1", "h:1"),
            },
        ),
        (
            NOW + 5,
            Op::RegisterBlob {
                server: blob("b2", "h:2"),
            },
        ),
    ];
    for i in 0..20 {
        let at = NOW + 10 + i;
        ops.push((
            at,
            commit(ver("plain", &format!("k{}", i % 4), "x", &format!("p{i}"))),
        ));
        ops.push((
            at,
            commit(ver(
                "vers",
                &format!("k{}", i % 3),
                &format!("v{i}"),
                &format!("v{i}"),
            )),
        ));
        if i % 5 == 0 {
            ops.push((
                at,
                del("vers", &format!("k{}", i % 3), None, &format!("dm{i}")),
            ));
            ops.push((at, del("plain", &format!("k{}", i % 4), None, "")));
        }
    }
    ops.extend([
        (NOW + 40, del("vers", "k0", Some("v3"), "")),
        (NOW + 41, del("vers", "k0", Some("nope"), "")),
        (NOW + 42, begin("plain", "mp", "u1")),
        (
            NOW + 43,
            put_part("plain", "mp", "u1", part(1, MIN_PART_SIZE, "m1")),
        ),
        (NOW + 44, put_part("plain", "mp", "u1", part(2, 3, "m2"))),
        (NOW + 45, put_part("plain", "mp", "u1", part(2, 4, "m2b"))),
        (NOW + 46, put_part("plain", "mp", "u1", part(3, 4, "m3"))),
        (
            NOW + 47,
            complete("plain", "mp", "u1", &[(2, &md5_hex(b"m2b")), (1, "x")], ""),
        ),
        (
            NOW + 48,
            complete(
                "plain",
                "mp",
                "u1",
                &[(1, &md5_hex(b"m1")), (2, &md5_hex(b"m2b"))],
                "",
            ),
        ),
        (NOW + 49, begin("vers", "mp", "u2")),
        (NOW + 50, put_part("vers", "mp", "u2", part(1, 1, "n1"))),
        (NOW + 51, begin("vers", "mp2", "u3")),
        (NOW + 52, abort("vers", "mp", "u2")),
        (
            NOW + 53,
            Op::BlobHeartbeat {
                id: "b1".into(),
                capacity_bytes: 9,
                free_bytes: 8,
            },
        ),
        (
            NOW + 54,
            Op::BlobHeartbeat {
                id: "zz".into(),
                capacity_bytes: 9,
                free_bytes: 8,
            },
        ),
        (NOW + 55, Op::DeleteAccessKey { id: "AK1".into() }),
        (
            NOW + 56,
            Op::PutAccessKey {
                key: access_key("AK2"),
            },
        ),
        (NOW + 57, delete_bucket("vers")),
        (NOW + 58, create("gone", false)),
        (NOW + 59, delete_bucket("gone")),
    ]);
    ops
}

#[tokio::test]
async fn the_same_history_builds_the_same_state() {
    let ops = history();
    let mut a = Db::new().await;
    let mut ra = Vec::new();
    for (at, op) in ops.clone() {
        ra.push(a.run_at(at, op).await);
    }
    let mut b = Db::new().await;
    let mut rb = Vec::new();
    for (at, op) in ops.clone() {
        rb.push(b.run_at(at, op).await);
    }
    // The same history applied as one batch, as the state machine does.
    let mut c = Db::new().await;
    let rc: Vec<Response> = c
        .batch(ops.clone())
        .await
        .into_iter()
        .map(|(_, r)| r)
        .collect();

    assert_eq!(ra, rb);
    assert_eq!(ra, rc);
    let (da, db_, dc) = (a.dump().await, b.dump().await, c.dump().await);
    assert_eq!(da, db_);
    assert_eq!(da, dc);
    // The history did something of each kind, and rejected some.
    for t in [
        "buckets",
        "versions",
        "uploads",
        "access_keys",
        "blob_servers",
    ] {
        assert!(!rows_of(&da, t).is_empty(), "no {t} rows: {da:#?}");
    }
    let rejected = ra.iter().filter(|r| matches!(r, Response::Err(_))).count();
    assert!(rejected >= 5, "{rejected} rejections");
    assert!(ra.iter().any(|r| matches!(r, Response::Completed { .. })));
}

// ---------------------------------------------------------------------------
// 4. Listings
// ---------------------------------------------------------------------------

/// One listing entry, reduced to what the model knows.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    V {
        key: String,
        id: String,
        marker: bool,
        latest: bool,
    },
    P(String),
}

fn item(e: &Entry) -> Item {
    match e {
        Entry::Version { version, is_latest } => Item::V {
            key: version.key.clone(),
            id: version.version_id.clone(),
            marker: version.delete_marker,
            latest: *is_latest,
        },
        Entry::Prefix(p) => Item::P(p.clone()),
    }
}

fn v(key: &str, id: &str, marker: bool, latest: bool) -> Item {
    Item::V {
        key: key.into(),
        id: id.into(),
        marker,
        latest,
    }
}

fn p(prefix: &str) -> Item {
    Item::P(prefix.into())
}

/// A version as written: its key, id, log index and whether it is a marker.
#[derive(Clone, Debug)]
struct Written {
    key: String,
    id: String,
    seq: i64,
    marker: bool,
}

/// What a listing must answer, computed naively from what was written:
/// keys in byte order, versions newest (highest log index) first, keys with
/// the delimiter after the prefix folded into one common prefix.
fn model(written: &[Written], prefix: &str, delimiter: &str, walk: Walk) -> Vec<Item> {
    let mut by_key: BTreeMap<&str, Vec<&Written>> = BTreeMap::new();
    for w in written {
        by_key.entry(w.key.as_str()).or_default().push(w);
    }
    let mut out = Vec::new();
    let mut seen_prefixes = BTreeSet::new();
    for (key, mut versions) in by_key {
        if !key.as_bytes().starts_with(prefix.as_bytes()) {
            continue;
        }
        versions.sort_by_key(|w| std::cmp::Reverse(w.seq));
        let items: Vec<Item> = match walk {
            Walk::Latest if versions[0].marker => vec![],
            Walk::Latest => vec![v(key, &versions[0].id, false, true)],
            Walk::AllVersions => versions
                .iter()
                .enumerate()
                .map(|(i, w)| v(key, &w.id, w.marker, i == 0))
                .collect(),
        };
        if items.is_empty() {
            continue;
        }
        let rest = &key[prefix.len()..];
        match (!delimiter.is_empty())
            .then(|| rest.find(delimiter))
            .flatten()
        {
            Some(pos) => {
                let cp = key[..prefix.len() + pos + delimiter.len()].to_string();
                if seen_prefixes.insert(cp.clone()) {
                    out.push(Item::P(cp));
                }
            }
            None => out.extend(items),
        }
    }
    out
}

/// Lists everything page by page, each page resuming at the previous
/// page's `next`, and checks each page's shape on the way.
async fn list_paged(
    c: &mut SqliteConnection,
    bucket: &str,
    prefix: &str,
    delimiter: &str,
    walk: Walk,
    size: u32,
) -> Vec<Item> {
    let mut out = Vec::new();
    let mut cursor = Cursor::Start;
    for _ in 0..100_000 {
        let page = q::list(c, bucket, prefix, delimiter, cursor.clone(), size, walk)
            .await
            .expect("list");
        assert!(page.entries.len() <= size as usize);
        out.extend(page.entries.iter().map(item));
        if !page.is_truncated {
            return out;
        }
        assert_eq!(
            page.entries.len(),
            size as usize,
            "a truncated page is full ({prefix:?} {delimiter:?} {walk:?} {size})"
        );
        cursor = page
            .next
            .clone()
            .expect("a truncated page says where to resume");
    }
    panic!("listing {bucket} {prefix:?} {delimiter:?} {walk:?} by {size} never ended");
}

/// Checks a listing against the model: one big page, pages of every
/// size, and the truncation flag at the exact boundary.
async fn check_listing(
    c: &mut SqliteConnection,
    bucket: &str,
    written: &[Written],
    prefix: &str,
    delimiter: &str,
    walk: Walk,
    sizes: &[u32],
) {
    let want = model(written, prefix, delimiter, walk);
    let ctx = format!("{bucket} prefix={prefix:?} delimiter={delimiter:?} {walk:?}");
    if want.len() <= 1000 {
        let page = q::list(c, bucket, prefix, delimiter, Cursor::Start, 1000, walk)
            .await
            .expect("list");
        assert_eq!(
            page.entries.iter().map(item).collect::<Vec<_>>(),
            want,
            "{ctx}: one page"
        );
        assert!(!page.is_truncated, "{ctx}");
        if !want.is_empty() {
            let n = want.len() as u32;
            let exact = q::list(c, bucket, prefix, delimiter, Cursor::Start, n, walk)
                .await
                .expect("list");
            assert!(
                !exact.is_truncated,
                "{ctx}: max = number of entries is not truncated"
            );
            assert_eq!(exact.entries.len(), want.len(), "{ctx}");
            if n > 1 {
                let short = q::list(c, bucket, prefix, delimiter, Cursor::Start, n - 1, walk)
                    .await
                    .expect("list");
                assert!(short.is_truncated, "{ctx}: one entry short is truncated");
                assert_eq!(
                    short.entries.iter().map(item).collect::<Vec<_>>(),
                    want[..want.len() - 1],
                    "{ctx}"
                );
            }
        }
    }
    for &size in sizes {
        let got = list_paged(c, bucket, prefix, delimiter, walk, size).await;
        assert_eq!(got, want, "{ctx}: pages of {size}");
    }
    // Common prefixes appear once in a whole listing.
    let mut prefixes: Vec<&Item> = want.iter().filter(|i| matches!(i, Item::P(_))).collect();
    let n = prefixes.len();
    prefixes.dedup();
    assert_eq!(prefixes.len(), n, "{ctx}");
}

/// Writes `plan` (key, id or None for a delete marker) to `bucket`, in one
/// batch, and answers what was written for the model.
async fn write_plan(db: &mut Db, bucket: &str, plan: &[(String, Option<String>)]) -> Vec<Written> {
    let ops: Vec<(i64, Op)> = plan
        .iter()
        .enumerate()
        .map(|(i, (key, id))| {
            let op = match id {
                Some(id) => commit(ver(bucket, key, id, &format!("{key}#{id}"))),
                None => del(bucket, key, None, &format!("dm{i}")),
            };
            (NOW + i as i64, op)
        })
        .collect();
    let out = db.batch(ops).await;
    out.into_iter()
        .zip(plan)
        .map(|((seq, r), (key, id))| match r {
            Response::Committed { version, .. } => {
                assert_eq!(Some(&version.version_id), id.as_ref());
                Written {
                    key: key.clone(),
                    id: version.version_id,
                    seq: seq as i64,
                    marker: false,
                }
            }
            Response::Deleted {
                version_id,
                delete_marker: true,
                ..
            } => Written {
                key: key.clone(),
                id: version_id,
                seq: seq as i64,
                marker: true,
            },
            other => panic!("writing {key}: {other:?}"),
        })
        .collect()
}

fn plan_of(steps: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    steps
        .iter()
        .map(|(k, id)| (k.to_string(), id.map(str::to_string)))
        .collect()
}

/// The listing bucket: nested keys, unicode, keys whose latest version is
/// a delete marker, several versions per key.
async fn listing_fixture(db: &mut Db) -> Vec<Written> {
    db.ok(create("list", true)).await;
    let plan = plan_of(&[
        ("a", Some("a1")),
        ("b", Some("b1")),
        ("a", Some("a2")),
        ("a/b", Some("ab1")),
        ("a/c/d", Some("acd1")),
        ("a-", Some("dash1")),
        ("a/", Some("folder1")),
        ("a0", Some("zero1")),
        ("b", None),
        ("b/x", Some("bx1")),
        ("b/y", None),
        ("a/c/d", None),
        ("c", Some("c1")),
        ("del/1", Some("d1")),
        ("del/2", Some("d2")),
        ("del/1", None),
        ("del/2", None),
        ("é", Some("e1")),
        ("日本/語", Some("jp1")),
        ("日本", Some("jp0")),
        ("日本/語", Some("jp2")),
        ("\u{FFFD}x", Some("fffd1")),
        ("😀", Some("emoji1")),
        ("b", Some("b2")),
        ("a", Some("a3")),
        ("z", None),
    ]);
    write_plan(db, "list", &plan).await
}

#[tokio::test]
async fn listing_matches_the_model_for_every_prefix_delimiter_and_page_size() {
    let mut db = Db::new().await;
    let written = listing_fixture(&mut db).await;
    let combos: &[(&str, &str)] = &[
        ("", ""),
        ("", "/"),
        ("a", ""),
        ("a", "/"),
        ("a/", ""),
        ("a/", "/"),
        ("a/c", "/"),
        ("b", "/"),
        ("del/", "/"),
        ("del", "/"),
        ("日本", ""),
        ("日本", "/"),
        ("日", "/"),
        ("", "本"),
        ("", "a/"),
        ("", "/c/"),
        ("é", ""),
        ("z", ""),
        ("nothing", "/"),
    ];
    for (prefix, delimiter) in combos {
        for walk in [Walk::Latest, Walk::AllVersions] {
            check_listing(
                db.c(),
                "list",
                &written,
                prefix,
                delimiter,
                walk,
                &[1, 2, 3, 1000],
            )
            .await;
        }
    }
}

#[tokio::test]
async fn listing_by_hand() {
    // The model is code too: pin a few listings down by hand.
    let mut db = Db::new().await;
    let written = listing_fixture(&mut db).await;
    let c = db.c();
    let list =
        async |c: &mut SqliteConnection, prefix: &str, delimiter: &str, walk: Walk| -> Vec<Item> {
            let page = q::list(c, "list", prefix, delimiter, Cursor::Start, 1000, walk)
                .await
                .expect("list");
            assert!(!page.is_truncated);
            page.entries.iter().map(item).collect()
        };

    // Byte order: "a" < "a-" < "a/" < "a0" < ... < "é" < "日本" < U+FFFD < emoji.
    // Deleted keys ("a/c/d", "b/y", "del/*", "z") do not appear.
    let want = vec![
        v("a", "a3", false, true),
        v("a-", "dash1", false, true),
        v("a/", "folder1", false, true),
        v("a/b", "ab1", false, true),
        v("a0", "zero1", false, true),
        v("b", "b2", false, true),
        v("b/x", "bx1", false, true),
        v("c", "c1", false, true),
        v("é", "e1", false, true),
        v("日本", "jp0", false, true),
        v("日本/語", "jp2", false, true),
        v("\u{FFFD}x", "fffd1", false, true),
        v("😀", "emoji1", false, true),
    ];
    assert_eq!(list(c, "", "", Walk::Latest).await, want);
    assert_eq!(model(&written, "", "", Walk::Latest), want);

    // With "/": "del/" holds only deleted keys, so no common prefix for it.
    let want = vec![
        v("a", "a3", false, true),
        v("a-", "dash1", false, true),
        p("a/"),
        v("a0", "zero1", false, true),
        v("b", "b2", false, true),
        p("b/"),
        v("c", "c1", false, true),
        v("é", "e1", false, true),
        v("日本", "jp0", false, true),
        p("日本/"),
        v("\u{FFFD}x", "fffd1", false, true),
        v("😀", "emoji1", false, true),
    ];
    assert_eq!(list(c, "", "/", Walk::Latest).await, want);
    assert_eq!(
        list(c, "a/", "/", Walk::Latest).await,
        vec![
            v("a/", "folder1", false, true),
            v("a/b", "ab1", false, true)
        ]
    );
    assert_eq!(list(c, "del/", "", Walk::Latest).await, vec![]);

    // Every version: markers included, newest first, latest flagged.
    assert_eq!(
        list(c, "b", "", Walk::AllVersions).await,
        vec![
            v("b", "b2", false, true),
            v("b", "dm8", true, false),
            v("b", "b1", false, false),
            v("b/x", "bx1", false, true),
            v("b/y", "dm10", true, true),
        ]
    );
    assert_eq!(
        list(c, "a/", "/", Walk::AllVersions).await,
        vec![
            v("a/", "folder1", false, true),
            v("a/b", "ab1", false, true),
            p("a/c/")
        ]
    );
    assert_eq!(
        list(c, "a/c", "", Walk::AllVersions).await,
        vec![
            v("a/c/d", "dm11", true, true),
            v("a/c/d", "acd1", false, false)
        ]
    );
    assert_eq!(list(c, "del/", "/", Walk::AllVersions).await.len(), 4);
    assert_eq!(
        list(c, "", "/", Walk::AllVersions)
            .await
            .iter()
            .filter(|i| **i == p("del/"))
            .count(),
        1
    );
    assert_eq!(
        list(c, "z", "", Walk::AllVersions).await,
        vec![v("z", "dm25", true, true)]
    );

    // The listed versions are the stored ones, whole.
    let page = q::list(c, "list", "日本/", "", Cursor::Start, 1000, Walk::Latest)
        .await
        .expect("list");
    let Some(Entry::Version { version, .. }) = page.entries.first() else {
        panic!("{page:?}")
    };
    assert_eq!(version, &ver("list", "日本/語", "jp2", "日本/語#jp2"));
    assert_eq!(
        Some(version.clone()),
        q::latest(c, "list", "日本/語").await.expect("latest")
    );

    // max 0 answers nothing.
    let zero = q::list(c, "list", "", "", Cursor::Start, 0, Walk::Latest)
        .await
        .expect("list");
    assert!(zero.entries.is_empty());
}

#[tokio::test]
async fn cursors_after_and_from() {
    let mut db = Db::new().await;
    let written = listing_fixture(&mut db).await;
    let c = db.c();
    let keys = async |c: &mut SqliteConnection,
                      prefix: &str,
                      delimiter: &str,
                      cursor: Cursor,
                      walk: Walk|
           -> Vec<Item> {
        let page = q::list(c, "list", prefix, delimiter, cursor, 1000, walk)
            .await
            .expect("list");
        page.entries.iter().map(item).collect()
    };
    let latest_all = model(&written, "", "", Walk::Latest);
    let after = |k: &str| -> Vec<Item> {
        latest_all
            .iter()
            .filter(|i| matches!(i, Item::V { key, .. } if key.as_bytes() > k.as_bytes()))
            .cloned()
            .collect()
    };
    let from = |k: &str| -> Vec<Item> {
        latest_all
            .iter()
            .filter(|i| matches!(i, Item::V { key, .. } if key.as_bytes() >= k.as_bytes()))
            .cloned()
            .collect()
    };

    // After: strictly after; From: at or after. Existing and missing keys,
    // and keys whose latest is a marker.
    for k in [
        "a", "a/", "a/b", "a/bz", "b", "b/y", "del/1", "é", "日本", "😀", "zzz", "\u{FFFD}",
    ] {
        assert_eq!(
            keys(c, "", "", Cursor::After(k.into()), Walk::Latest).await,
            after(k),
            "After({k:?})"
        );
        assert_eq!(
            keys(c, "", "", Cursor::From(k.into()), Walk::Latest).await,
            from(k),
            "From({k:?})"
        );
    }
    assert_eq!(
        keys(c, "", "", Cursor::Start, Walk::Latest).await,
        latest_all
    );
    assert_eq!(
        keys(c, "", "", Cursor::From(String::new()), Walk::Latest).await,
        latest_all
    );
    assert_eq!(
        keys(c, "", "", Cursor::After(String::new()), Walk::Latest).await,
        latest_all
    );

    // From at a common prefix lists the prefix; From its successor skips it.
    let with_delim = keys(c, "", "/", Cursor::From("b/".into()), Walk::Latest).await;
    assert_eq!(with_delim.first(), Some(&p("b/")));
    let skipped = keys(
        c,
        "",
        "/",
        Cursor::From(q::prefix_successor("b/").expect("successor")),
        Walk::Latest,
    )
    .await;
    assert_eq!(skipped.first(), Some(&v("c", "c1", false, true)));
    // Within a prefix.
    assert_eq!(
        keys(c, "a/", "", Cursor::After("a/".into()), Walk::Latest).await,
        vec![v("a/b", "ab1", false, true)]
    );

    // Every version: After skips the key's versions, From includes them,
    // AfterVersion resumes in the middle of a key.
    let all = model(&written, "", "", Walk::AllVersions);
    let a3 = written.iter().find(|w| w.id == "a3").expect("a3").seq;
    let a2 = written.iter().find(|w| w.id == "a2").expect("a2").seq;
    let got = keys(c, "", "", Cursor::After("a".into()), Walk::AllVersions).await;
    assert_eq!(got.first(), Some(&v("a-", "dash1", false, true)));
    assert_eq!(got, all[3..]);
    assert_eq!(
        keys(c, "", "", Cursor::From("a".into()), Walk::AllVersions).await,
        all
    );
    let got = keys(
        c,
        "",
        "",
        Cursor::AfterVersion("a".into(), a3),
        Walk::AllVersions,
    )
    .await;
    assert_eq!(
        got[..2],
        [v("a", "a2", false, false), v("a", "a1", false, false)]
    );
    assert_eq!(got, all[1..]);
    let got = keys(
        c,
        "",
        "",
        Cursor::AfterVersion("a".into(), a2),
        Walk::AllVersions,
    )
    .await;
    assert_eq!(got, all[2..]);
}

#[tokio::test]
async fn listing_many_versions_and_many_keys() {
    let mut db = Db::new().await;
    db.ok(create("many", true)).await;
    let mut plan: Vec<(String, Option<String>)> = vec![("j".into(), Some("j1".into()))];
    // One key with more versions than a batch of the listing query.
    for i in 0..600 {
        plan.push(("k".into(), Some(format!("k{i:04}"))));
    }
    plan.push(("l".into(), Some("l1".into())));
    // More deleted keys than a batch, under one prefix.
    for i in 0..300 {
        plan.push((format!("m/{i:03}"), Some(format!("m{i}"))));
        plan.push((format!("m/{i:03}"), None));
    }
    // More live keys than a batch, under one prefix.
    for i in 0..300 {
        plan.push((format!("p/{i:03}"), Some(format!("p{i}"))));
    }
    plan.push(("q".into(), Some("q1".into())));
    let written = write_plan(&mut db, "many", &plan).await;
    let c = db.c();

    check_listing(c, "many", &written, "", "/", Walk::Latest, &[1, 2, 1000]).await;
    check_listing(
        c,
        "many",
        &written,
        "",
        "",
        Walk::Latest,
        &[3, 255, 256, 257, 1000],
    )
    .await;
    check_listing(
        c,
        "many",
        &written,
        "",
        "/",
        Walk::AllVersions,
        &[1, 256, 1000],
    )
    .await;
    check_listing(
        c,
        "many",
        &written,
        "",
        "",
        Walk::AllVersions,
        &[7, 256, 1000],
    )
    .await;
    check_listing(c, "many", &written, "k", "", Walk::AllVersions, &[1, 1000]).await;
    check_listing(c, "many", &written, "m/", "", Walk::Latest, &[1]).await;
    check_listing(c, "many", &written, "m/", "/", Walk::AllVersions, &[1, 5]).await;

    // Latest with "/": the all-deleted "m/" is not a common prefix.
    let page = q::list(c, "many", "", "/", Cursor::Start, 1000, Walk::Latest)
        .await
        .expect("list");
    assert_eq!(
        page.entries.iter().map(item).collect::<Vec<_>>(),
        vec![
            v("j", "j1", false, true),
            v("k", "k0599", false, true),
            v("l", "l1", false, true),
            p("p/"),
            v("q", "q1", false, true)
        ]
    );

    // Versions of "k": newest first, and resuming after any of them,
    // including around the batch size, neither repeats nor skips.
    let k_versions: Vec<&Written> = {
        let mut k: Vec<&Written> = written.iter().filter(|w| w.key == "k").collect();
        k.sort_by_key(|w| std::cmp::Reverse(w.seq));
        k
    };
    assert_eq!(k_versions.len(), 600);
    for i in [0usize, 1, 254, 255, 256, 257, 511, 512, 598, 599] {
        let cursor = Cursor::AfterVersion("k".into(), k_versions[i].seq);
        let page = q::list(c, "many", "", "", cursor, 1000, Walk::AllVersions)
            .await
            .expect("list");
        let got: Vec<Item> = page.entries.iter().map(item).collect();
        let mut want: Vec<Item> = k_versions[i + 1..]
            .iter()
            .map(|w| v("k", &w.id, false, false))
            .collect();
        want.push(v("l", "l1", false, true));
        assert_eq!(got[..want.len()], want[..], "after version #{i} of k");
        // And with small pages from there.
        let mut cursor = Cursor::AfterVersion("k".into(), k_versions[i].seq);
        let mut paged = Vec::new();
        while paged.len() < want.len() {
            let page = q::list(c, "many", "k", "", cursor, 100, Walk::AllVersions)
                .await
                .expect("list");
            paged.extend(page.entries.iter().map(item));
            if !page.is_truncated {
                break;
            }
            cursor = page.next.expect("next");
        }
        assert_eq!(
            paged,
            want[..want.len() - 1],
            "paging after version #{i} of k"
        );
    }

    // A page never holds more than 1000 entries.
    let page = q::list(c, "many", "", "", Cursor::Start, 5000, Walk::AllVersions)
        .await
        .expect("list");
    assert_eq!(page.entries.len(), 1000);
    assert!(page.is_truncated);
    assert_eq!(q::MAX_PAGE, 1000);
}

#[test]
fn prefix_successor_edges() {
    assert_eq!(q::prefix_successor("a/").as_deref(), Some("a0"));
    assert_eq!(q::prefix_successor("a").as_deref(), Some("b"));
    assert_eq!(q::prefix_successor("abc").as_deref(), Some("abd"));
    assert_eq!(q::prefix_successor("日本").as_deref(), Some("日札"));
    assert_eq!(q::prefix_successor(""), None);
    // The last character cannot grow: the one before it does.
    assert_eq!(q::prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
    assert_eq!(q::prefix_successor("\u{10FFFF}\u{10FFFF}"), None);
    // Surrogates are not characters: U+D7FF is followed by U+E000.
    assert_eq!(
        q::prefix_successor("x\u{D7FF}").as_deref(),
        Some("x\u{E000}")
    );
    // Crossing UTF-8 length boundaries keeps byte order.
    assert_eq!(q::prefix_successor("\u{7F}").as_deref(), Some("\u{80}"));
    assert_eq!(
        q::prefix_successor("\u{FFFF}").as_deref(),
        Some("\u{10000}")
    );

    // The successor bounds exactly the strings with the prefix, in byte order.
    let samples = [
        "",
        "a",
        "a/",
        "a/b",
        "a0",
        "a.",
        "a/\u{10FFFF}",
        "b",
        "日本",
        "日本/語",
        "日札",
        "\u{D7FF}",
        "\u{E000}",
        "😀",
        "\u{FFFF}",
        "\u{10000}",
        "a\u{10FFFF}",
        "a\u{10FFFF}z",
        "b\u{0}",
    ];
    for prefix in ["a", "a/", "日本", "\u{D7FF}", "a\u{10FFFF}", "\u{FFFF}"] {
        let succ = q::prefix_successor(prefix).expect("successor");
        assert!(succ.as_bytes() > prefix.as_bytes());
        for s in samples {
            let in_range = s.as_bytes() >= prefix.as_bytes() && s.as_bytes() < succ.as_bytes();
            assert_eq!(
                in_range,
                s.starts_with(prefix),
                "prefix {prefix:?} successor {succ:?} sample {s:?}"
            );
        }
    }
}

#[test]
fn continuation_tokens_round_trip_and_garbage_is_refused() {
    let cursors = [
        Cursor::Start,
        Cursor::After("a/b".into()),
        Cursor::After(String::new()),
        Cursor::From("日本/語".into()),
        Cursor::From("with.dots and spaces".into()),
        Cursor::AfterVersion("k".into(), 42),
        Cursor::AfterVersion("a.b.c".into(), 0),
        Cursor::AfterVersion("😀".into(), i64::MAX),
        Cursor::AfterVersion("neg".into(), -5),
    ];
    for c in cursors {
        let t = q::encode_token(&c);
        assert_eq!(q::decode_token(&t), Some(c.clone()), "token {t:?}");
    }
    assert_eq!(q::encode_token(&Cursor::Start), "");
    assert_ne!(
        q::encode_token(&Cursor::After("x".into())),
        q::encode_token(&Cursor::From("x".into()))
    );

    for garbage in [
        "x",
        "zzz",
        "A6162",
        "agg",
        "a6",
        "f616",
        "aff",
        "fc328",
        "v",
        "v1",
        "v.61",
        "vx.61",
        "v1.zz",
        "v1.6",
        "v99999999999999999999.61",
        "é",
        "\u{0}",
        "🙂a61",
    ] {
        assert_eq!(q::decode_token(garbage), None, "{garbage:?} was accepted");
    }
}

// ---------------------------------------------------------------------------
// 5. Uploads listing and versions per master key
// ---------------------------------------------------------------------------

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
    let c = db.c();
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

    let (list, truncated) = q::uploads(c, "upl", "", "", "", 1000)
        .await
        .expect("uploads");
    assert_eq!(ids(&list), all);
    assert!(!truncated);
    assert_eq!(list[0], upload("upl", "k1", "u1"));
    let (_, truncated) = q::uploads(c, "upl", "", "", "", 6).await.expect("uploads");
    assert!(!truncated, "exactly max uploads is not truncated");
    let (list, truncated) = q::uploads(c, "upl", "", "", "", 5).await.expect("uploads");
    assert!(truncated);
    assert_eq!(ids(&list), all[..5]);

    // Paging with the last upload as the markers.
    for size in [1u32, 2, 4] {
        let (mut km, mut um) = (String::new(), String::new());
        let mut got = Vec::new();
        loop {
            let (list, truncated) = q::uploads(c, "upl", "", &km, &um, size)
                .await
                .expect("uploads");
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
    let (list, _) = q::uploads(c, "upl", "", "k1", "u1", 1000)
        .await
        .expect("uploads");
    assert_eq!(ids(&list), all[1..]);
    let (list, _) = q::uploads(c, "upl", "", "k1", "u3", 1000)
        .await
        .expect("uploads");
    assert_eq!(ids(&list), all[3..]);
    let (list, _) = q::uploads(c, "upl", "", "k0", "zzz", 1000)
        .await
        .expect("uploads");
    assert_eq!(ids(&list), all);
    // S3: a key marker without an upload-id marker lists only keys after it.
    let (list, _) = q::uploads(c, "upl", "", "k1", "", 1000)
        .await
        .expect("uploads");
    assert_eq!(
        ids(&list),
        all[3..],
        "key-marker alone must skip the marker key's uploads"
    );
    let (list, _) = q::uploads(c, "upl", "", "k2", "", 1000)
        .await
        .expect("uploads");
    assert_eq!(ids(&list), all[4..]);

    // Prefixes.
    let (list, truncated) = q::uploads(c, "upl", "k", "", "", 1000)
        .await
        .expect("uploads");
    assert_eq!(ids(&list), all[..4]);
    assert!(!truncated);
    let (list, truncated) = q::uploads(c, "upl", "k", "", "", 3).await.expect("uploads");
    assert_eq!(ids(&list), all[..3]);
    assert!(truncated);
    let (list, truncated) = q::uploads(c, "upl", "k", "k1", "u3", 1)
        .await
        .expect("uploads");
    assert_eq!(ids(&list), all[3..4]);
    assert!(!truncated, "nothing with the prefix remains");
    let (list, _) = q::uploads(c, "upl", "x/", "", "", 1000)
        .await
        .expect("uploads");
    assert_eq!(ids(&list), all[4..5]);
    let (list, _) = q::uploads(c, "upl", "é", "", "", 1000)
        .await
        .expect("uploads");
    assert_eq!(ids(&list), all[5..]);
    let (list, _) = q::uploads(c, "upl", "k1x", "", "", 1000)
        .await
        .expect("uploads");
    assert!(list.is_empty());
    let (list, _) = q::uploads(c, "missing", "", "", "", 1000)
        .await
        .expect("uploads");
    assert!(list.is_empty());

    // Completed and aborted uploads leave the listing.
    let p = part(1, 1, "x");
    db.ok(put_part("upl", "k1", "u2", p.clone())).await;
    db.ok(complete("upl", "k1", "u2", &[(1, &p.etag)], ""))
        .await;
    db.ok(abort("upl", "k2", "u0")).await;
    let (list, _) = q::uploads(db.c(), "upl", "", "", "", 1000)
        .await
        .expect("uploads");
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

#[tokio::test]
async fn data_keys_counted_per_master_key() {
    let mut db = Db::new().await;
    db.ok(create("plain", false)).await;
    db.ok(create("vers", true)).await;
    let on = |v: Version, kek: &str| Version {
        kek_fingerprint: kek.into(),
        ..v
    };
    db.ok(commit(on(ver("plain", "a", "x", "1"), "A"))).await;
    db.ok(commit(on(ver("plain", "b", "x", "2"), "A"))).await;
    db.ok(commit(on(ver("vers", "a", "v1", "3"), "A"))).await;
    db.ok(commit(on(ver("vers", "a", "v2", "4"), "A"))).await;
    db.ok(commit(on(ver("vers", "b", "v1", "5"), "B"))).await;
    let count =
        async |db: &mut Db, kek: &str| q::count_keys_wrapped_by(db.c(), kek).await.expect("count");
    assert_eq!(count(&mut db, "A").await, 4);
    assert_eq!(count(&mut db, "B").await, 1);
    assert_eq!(count(&mut db, "C").await, 0);

    // Delete markers hold no data key.
    db.ok(del("vers", "a", None, "dm")).await;
    db.ok(del("vers", "b", None, "dm")).await;
    assert_eq!(count(&mut db, "A").await, 4);
    assert_eq!(count(&mut db, "").await, 0);
    // Replacing a null version moves it to the new key.
    db.ok(commit(on(ver("plain", "a", "x", "6"), "B"))).await;
    assert_eq!(count(&mut db, "A").await, 3);
    assert_eq!(count(&mut db, "B").await, 2);
    // Deleting versions takes them off the count.
    db.ok(del("vers", "a", Some("v1"), "")).await;
    db.ok(del("plain", "b", None, "")).await;
    assert_eq!(count(&mut db, "A").await, 1);
    assert_eq!(count(&mut db, "B").await, 2);

    // Multipart: each part has its own data key, counted while the upload
    // is open and after it completes.
    let big = 5 * 1024 * 1024;
    db.ok(begin("plain", "mp", "up-1")).await;
    db.ok(put_part("plain", "mp", "up-1", part(1, big, "m1")))
        .await;
    db.ok(put_part("plain", "mp", "up-1", part(2, 10, "m2")))
        .await;
    assert_eq!(count(&mut db, "kek-a").await, 2, "parts of an open upload");
    let (e1, e2) = (md5_hex(b"m1"), md5_hex(b"m2"));
    db.ok(complete(
        "plain",
        "mp",
        "up-1",
        &[(1, e1.as_str()), (2, e2.as_str())],
        "x",
    ))
    .await;
    assert_eq!(
        count(&mut db, "kek-a").await,
        2,
        "parts of a completed object"
    );
    db.ok(del("plain", "mp", None, "")).await;
    assert_eq!(count(&mut db, "kek-a").await, 0);
}

/// Applies `op` under command id `id` at log index `seq`.
async fn apply_with_id(db: &mut Db, id: &str, seq: u64, at: i64, op: Op) -> Response {
    let cmd = Command {
        id: id.into(),
        at_ms: at,
        op,
    };
    apply(db.c(), seq, &cmd).await.expect("apply")
}

#[tokio::test]
async fn a_retried_command_id_is_applied_once_even_after_an_overwrite() {
    // A proposal whose answer was lost is re-proposed (same id). If another
    // writer overwrote the object in between, re-applying the first commit
    // would bring back a version whose shards were already freed.
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    let first = apply_with_id(
        &mut db,
        "cmd-a",
        100,
        NOW,
        commit(ver("bkt", "k", "", "one")),
    )
    .await;
    let second = apply_with_id(
        &mut db,
        "cmd-b",
        101,
        NOW + 1,
        commit(ver("bkt", "k", "", "two")),
    )
    .await;
    match &second {
        Response::Committed { freed, .. } => assert_eq!(freed, &vec![shards("one")]),
        other => panic!("{other:?}"),
    }
    let before = db.dump().await;
    let retried = apply_with_id(
        &mut db,
        "cmd-a",
        102,
        NOW,
        commit(ver("bkt", "k", "", "one")),
    )
    .await;
    assert_eq!(
        retried, first,
        "the retry answers what the first apply answered"
    );
    assert_eq!(db.dump().await, before, "and changes nothing");
}

#[tokio::test]
async fn a_retried_complete_multipart_answers_completed() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    db.ok(begin("bkt", "big", "up-1")).await;
    db.ok(put_part("bkt", "big", "up-1", part(1, 10, "p1")))
        .await;
    let etag = md5_hex(b"p1");
    let op = complete("bkt", "big", "up-1", &[(1, etag.as_str())], "v1");
    let first = apply_with_id(&mut db, "cmd-c", 200, NOW, op.clone()).await;
    assert!(matches!(first, Response::Completed { .. }), "{first:?}");
    let before = db.dump().await;
    let retried = apply_with_id(&mut db, "cmd-c", 201, NOW, op).await;
    assert_eq!(retried, first);
    assert_eq!(db.dump().await, before);
}

#[tokio::test]
async fn command_ids_are_forgotten_after_the_window_by_command_time() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    apply_with_id(&mut db, "old", 10, NOW, commit(ver("bkt", "a", "", "a"))).await;
    let count = async |db: &mut Db| -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM applied_commands")
            .fetch_one(db.c())
            .await
            .expect("count")
    };
    assert_eq!(count(&mut db).await, 1);
    let later = NOW + hamster_meta::state::apply::DEDUP_WINDOW_MS + 1;
    apply_with_id(&mut db, "new", 11, later, commit(ver("bkt", "b", "", "b"))).await;
    assert_eq!(
        count(&mut db).await,
        1,
        "the old id was pruned, the new one kept"
    );
}

fn cmd_with_id(id: &str, op: Op) -> Command {
    Command {
        id: id.into(),
        at_ms: NOW,
        op,
    }
}

#[tokio::test]
async fn a_batch_entry_applies_each_command_in_order_and_alone() {
    let mut db = Db::new().await;
    db.ok(create("vbk", true)).await;
    let batch = Command {
        id: String::new(),
        at_ms: NOW,
        op: Op::Batch(vec![
            cmd_with_id("b1", commit(ver("vbk", "k", "v1", "one"))),
            cmd_with_id("b2", create("BAD NAME", false)),
            cmd_with_id("b3", commit(ver("vbk", "k", "v2", "two"))),
            cmd_with_id("b4", Op::Batch(vec![])),
        ]),
    };
    let r = hamster_meta::state::apply::apply_entry(db.c(), 500, &batch)
        .await
        .expect("apply");
    let Response::Batch(answers) = r else {
        panic!("{r:?}")
    };
    assert_eq!(answers.len(), 4);
    assert!(
        matches!(answers[0], Response::Committed { .. }),
        "{:?}",
        answers[0]
    );
    assert!(
        matches!(answers[1], Response::Err(MetaError::InvalidArgument(_))),
        "{:?}",
        answers[1]
    );
    assert!(
        matches!(answers[2], Response::Committed { .. }),
        "{:?}",
        answers[2]
    );
    assert!(
        matches!(answers[3], Response::Err(MetaError::InvalidArgument(_))),
        "nested batch: {:?}",
        answers[3]
    );
    // Both versions exist, in batch order, with distinct seqs in this entry.
    let latest = q::latest(db.c(), "vbk", "k")
        .await
        .expect("q")
        .expect("latest");
    assert_eq!(latest.version_id, "v2");
    let s1 = q::version_seq(db.c(), "vbk", "k", "v1")
        .await
        .expect("q")
        .expect("v1");
    let s2 = q::version_seq(db.c(), "vbk", "k", "v2")
        .await
        .expect("q")
        .expect("v2");
    use hamster_meta::state::apply::seq_of;
    assert_eq!((s1 as u64, s2 as u64), (seq_of(500, 0), seq_of(500, 2)));
    assert!(s2 > s1 && (s1 as u64) > seq_of(499, 65535));
    // The rejected bucket was not created; the batch's commands were recorded once.
    assert!(q::bucket(db.c(), "BAD NAME").await.expect("q").is_none());
    let before = db.dump().await;
    let again = hamster_meta::state::apply::apply_entry(db.c(), 501, &batch)
        .await
        .expect("apply");
    assert_eq!(
        again,
        Response::Batch(answers),
        "a re-proposed batch answers the same"
    );
    assert_eq!(db.dump().await, before, "and changes nothing");
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
