//! The state machine's objects: committing versions on unversioned and
//! versioned buckets, retried commits, delete markers, deleting versions,
//! object lock on deletion, and every rejection (each checked to change
//! nothing).

mod common;

use common::*;

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
        db.version("bkt", "k", "null").await,
        Some((stored1.clone(), seq1))
    );
    assert_eq!(db.version("bkt", "k", "proposer-id-1").await, None);
    assert_eq!(db.latest("bkt", "k").await, Some(stored1.clone()));
    assert_eq!(db.version_seq("bkt", "k", "null").await, Some(seq1));

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
    assert_eq!(db.latest("bkt", "k").await, Some(stored2.clone()));
    assert_eq!(db.version("bkt", "k", "null").await, Some((stored2, seq2)));
    assert_eq!(
        db.all_versions_of("bkt", "k").await,
        vec![("null".to_string(), false, true)]
    );

    // Other keys are independent.
    let r = db.run(commit(ver("bkt", "other", "x", "three"))).await;
    assert!(
        matches!(r, Response::Committed { ref freed, .. } if freed.is_empty()),
        "{r:?}"
    );
    assert_eq!(
        db.latest("bkt", "k").await.map(|v| v.etag),
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
            db.version("vbk", "k", id).await,
            Some((ver("vbk", "k", id, tag), *seq))
        );
    }
    assert_eq!(
        db.latest("vbk", "k").await,
        Some(ver("vbk", "k", "mm", "third"))
    );
    // Newest first, only the newest is latest.
    assert_eq!(
        db.all_versions_of("vbk", "k").await,
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
    assert_eq!(db.version("vbk", "k", "v1").await, Some((v.clone(), seq)));
    assert_eq!(
        db.latest("vbk", "k").await.map(|v| v.version_id),
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
    let cmd = Command::new("", NOW, commit(v.clone()));
    let first = db.apply_cmd(1000, &cmd).await;
    let before = db.dump().await;
    let again = db.apply_cmd(1001, &cmd).await;
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
    let restamped = Command::new(
        "another-id",
        NOW + 5_000,
        commit(Version {
            created_at_ms: NOW + 4_000,
            ..v.clone()
        }),
    );
    let third = db.apply_cmd(1002, &restamped).await;
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
async fn a_commit_stores_the_time_its_command_carries() {
    // The leader writes its time into the command (batch::stamp); apply
    // stores what the command carries, so replaying an old log (versions
    // stamped by whichever node took the request) rebuilds the same times.
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    let proposed = Version {
        created_at_ms: NOW - 60_000,
        ..ver("bkt", "k", "v1", "one")
    };
    let r = db.run_at(NOW + 5, commit(proposed)).await;
    let Response::Committed { version, .. } = r else {
        panic!("not committed: {r:?}")
    };
    assert_eq!(version.created_at_ms, NOW - 60_000);
    let stored = q::latest(db.c(), "bkt", "k")
        .await
        .expect("latest")
        .expect("a version");
    assert_eq!(stored.created_at_ms, NOW - 60_000);
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
    assert_eq!(r, deleted("dm1", true, vec![]));
    let marker_seq = db.seq as i64;
    let latest = db.latest("vbk", "k").await.expect("a latest version");
    assert!(latest.delete_marker);
    assert_eq!(latest.version_id, "dm1");
    assert_eq!((latest.bucket.as_str(), latest.key.as_str()), ("vbk", "k"));
    assert_eq!(latest.created_at_ms, NOW + 50);
    assert_eq!(latest.shard_map, None);
    assert_eq!(db.version_seq("vbk", "k", "dm1").await, Some(marker_seq));
    // The version is still there, no longer the latest.
    assert_eq!(
        db.version("vbk", "k", "v1").await.map(|(v, _)| v),
        Some(v1.clone())
    );
    assert_eq!(
        db.all_versions_of("vbk", "k").await,
        vec![
            ("dm1".to_string(), true, true),
            ("v1".to_string(), false, false)
        ]
    );

    // Deleting the marker by id brings the version back.
    let r = db.run(del("vbk", "k", Some("dm1"), "ignored")).await;
    assert_eq!(r, deleted("dm1", true, vec![]));
    assert_eq!(db.latest("vbk", "k").await, Some(v1.clone()));

    // Deleting the version by id removes it and frees its shards.
    let r = db.run(del("vbk", "k", Some("v1"), "ignored")).await;
    assert_eq!(r, deleted("v1", false, vec![shards("one")]));
    assert_eq!(db.latest("vbk", "k").await, None);
    assert_eq!(db.version("vbk", "k", "v1").await, None);
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
    let cmd = Command::new("", NOW, del("vbk", "k", None, "dm1"));
    let first = db.apply_cmd(100, &cmd).await;
    let before = db.dump().await;
    let again = apply(db.c(), 101, &cmd).await;
    let again = again.expect("a retried DeleteObject must not be a storage error");
    assert_eq!(again, first);
    assert_eq!(db.dump().await, before);

    // A marker id that is already another version's is refused.
    db.reject(del("vbk", "k", None, "v1"), invalid()).await;
    assert_eq!(
        db.all_versions_of("vbk", "k").await,
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
    assert_eq!(r, deleted("", false, vec![shards("one")]));
    assert_eq!(db.latest("bkt", "k").await, None);
    // No delete marker on an unversioned bucket.
    assert!(rows_of(&db.dump().await, "versions").is_empty());

    // A missing key: success, nothing freed, nothing changed.
    let before = db.dump().await;
    let r = db.run(del("bkt", "never-was", None, "ignored")).await;
    assert_eq!(r, deleted("", false, vec![]));
    assert_eq!(db.dump().await, before);

    // The null version can also be deleted by its id.
    db.ok(commit(ver("bkt", "k2", "x", "two"))).await;
    let r = db.run(del("bkt", "k2", Some("null"), "")).await;
    assert_eq!(r, deleted("null", false, vec![shards("two")]));
    assert_eq!(db.latest("bkt", "k2").await, None);
    assert_eq!(db.run(delete_bucket("bkt")).await, Response::Ok);
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
    assert!(db.latest("bkt", &max_key).await.is_some());
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
        lock_mode: LockMode::Compliance,
        retain_until_ms: until,
        ..ver("lock", "compliance", "v", "compliance")
    };
    let governance = Version {
        lock_mode: LockMode::Governance,
        retain_until_ms: until,
        ..ver("lock", "governance", "v", "governance")
    };
    let expired = Version {
        lock_mode: LockMode::Compliance,
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
    assert_eq!(r, deleted("v", false, vec![shards("governance")]));
    assert_eq!(db.version("lock", "governance", "v").await, None);

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
        db.version("lock", "held", "v").await.map(|(v, _)| v),
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
