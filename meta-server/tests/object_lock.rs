//! Versioning and object lock at the state machine: the commands a client
//! could never be allowed to express, fed straight to apply, each rejected
//! with the right error and with every table unchanged; and the allowed
//! ones, doing exactly what S3 says. Times are command times (`NOW` is far
//! in the wall clock's past), so only the command's timestamp can decide.

mod common;

use common::*;

fn versioning(bucket: &str, status: &str) -> Op {
    Op::PutBucketVersioning {
        bucket: bucket.into(),
        status: status.parse().expect("a versioning state"),
    }
}

fn default_retention(bucket: &str, mode: &str, days: u32, years: u32) -> Op {
    Op::PutLockConfiguration {
        bucket: bucket.into(),
        default_retention: Some(DefaultRetention {
            mode: mode.parse().expect("a lock mode"),
            days,
            years,
        }),
        enable: false,
    }
}

fn retention(bucket: &str, key: &str, id: &str, mode: &str, until: i64, bypass: bool) -> Op {
    Op::PutRetention {
        bucket: bucket.into(),
        key: key.into(),
        version_id: id.into(),
        mode: mode.parse().expect("a lock mode"),
        retain_until_ms: until,
        bypass_governance: bypass,
    }
}

fn legal_hold(bucket: &str, key: &str, id: &str, on: bool) -> Op {
    Op::PutLegalHold {
        bucket: bucket.into(),
        key: key.into(),
        version_id: id.into(),
        on,
    }
}

fn locked(mode: &str, until: i64, v: Version) -> Version {
    Version {
        lock_mode: mode.parse().expect("a lock mode"),
        retain_until_ms: until,
        ..v
    }
}

fn same_kind(got: &Response, want: &MetaError) -> bool {
    matches!(got, Response::Err(e)
        if std::mem::discriminant(e) == std::mem::discriminant(want))
}

async fn stored(db: &mut Db, bucket: &str, key: &str, id: &str) -> Version {
    q::version(db.c(), bucket, key, id)
        .await
        .expect("read version")
        .unwrap_or_else(|| panic!("{bucket}/{key}@{id} is gone"))
        .0
}

#[tokio::test]
async fn versioning_states_and_the_lock_bucket_that_cannot_be_suspended() {
    let mut db = Db::new().await;
    db.ok(create("plain", false)).await;
    db.ok(create("lock", true)).await;

    db.reject(
        versioning("nope", "Enabled"),
        MetaError::NoSuchBucket("nope".into()),
    )
    .await;
    // A state with no name cannot even be a command: the gRPC edge
    // refuses the text.
    assert!("On".parse::<Versioning>().is_err());
    db.reject(versioning("plain", ""), invalid()).await;
    let r = db.run(versioning("lock", "Suspended")).await;
    assert!(
        same_kind(&r, &MetaError::InvalidBucketState(String::new())),
        "{r:?}"
    );
    assert_eq!(
        q::bucket(db.c(), "lock")
            .await
            .expect("bucket")
            .map(|b| b.versioning),
        Some(Versioning::Enabled)
    );

    db.ok(versioning("plain", "Enabled")).await;
    db.ok(versioning("plain", "Suspended")).await;
    db.ok(versioning("lock", "Enabled")).await;
    assert_eq!(
        q::bucket(db.c(), "plain")
            .await
            .expect("bucket")
            .map(|b| b.versioning),
        Some(Versioning::Suspended)
    );
}

#[tokio::test]
async fn suspended_bucket_put_replaces_only_the_null_version() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    // Never versioned: the null version, answered as unversioned.
    let r = db.run(commit(ver("bkt", "k", "", "n0"))).await;
    assert!(
        matches!(&r, Response::Committed { versioned: false, version, .. } if version.version_id == "null"),
        "{r:?}"
    );
    db.ok(versioning("bkt", "Enabled")).await;
    db.ok(commit(ver("bkt", "k", "v1", "one"))).await;
    db.ok(versioning("bkt", "Suspended")).await;
    let r = db.run(commit(ver("bkt", "k", "ignored", "n1"))).await;
    let Response::Committed {
        version,
        freed,
        versioned,
    } = r
    else {
        panic!("{r:?}")
    };
    assert!(versioned);
    assert_eq!(version.version_id, "null");
    // Only the old null version's shards are freed; v1 stays.
    assert_eq!(freed, vec![shards("n0")]);
    assert_eq!(
        all_versions_of(db.c(), "bkt", "k").await,
        vec![
            ("null".to_string(), false, true),
            ("v1".to_string(), false, false)
        ]
    );
    db.ok(commit(ver("bkt", "k", "", "n2"))).await;
    assert_eq!(
        all_versions_of(db.c(), "bkt", "k").await,
        vec![
            ("null".to_string(), false, true),
            ("v1".to_string(), false, false)
        ]
    );
    assert_eq!(
        stored(&mut db, "bkt", "k", "null").await.etag,
        ver("bkt", "k", "", "n2").etag
    );
}

#[tokio::test]
async fn lock_settings_need_a_lock_bucket() {
    let mut db = Db::new().await;
    db.ok(create("plain", false)).await;
    db.ok(commit(ver("plain", "k", "", "x"))).await;
    let until = NOW + DAY;
    db.reject(
        commit(locked("GOVERNANCE", until, ver("plain", "k2", "", "y"))),
        invalid_request(),
    )
    .await;
    db.reject(
        commit(Version {
            legal_hold: true,
            ..ver("plain", "k2", "", "y")
        }),
        invalid_request(),
    )
    .await;
    db.reject(
        default_retention("plain", "GOVERNANCE", 1, 0),
        invalid_request(),
    )
    .await;
    db.reject(
        retention("plain", "k", "null", "GOVERNANCE", until, false),
        invalid_request(),
    )
    .await;
    db.reject(legal_hold("plain", "k", "null", true), invalid_request())
        .await;
    let mut u = upload("plain", "mp", "u1");
    u.template.lock_mode = LockMode::Compliance;
    u.template.retain_until_ms = until;
    db.reject(Op::BeginMultipart { upload: u }, invalid_request())
        .await;
}

#[tokio::test]
async fn retention_settings_are_validated() {
    let mut db = Db::new().await;
    db.ok(create("lock", true)).await;
    let v = |until| locked("COMPLIANCE", until, ver("lock", "k", "v", "x"));
    // In the past, at, missing a date, missing a mode, unknown mode.
    db.reject(commit(v(NOW - 1)), invalid()).await;
    db.reject(commit(v(NOW)), invalid()).await;
    db.reject(commit(v(0)), invalid()).await;
    db.reject(
        commit(locked("", NOW + DAY, ver("lock", "k", "v", "x"))),
        invalid(),
    )
    .await;
    // An unknown mode cannot be a command: the gRPC edge refuses it.
    assert!("FOREVER".parse::<LockMode>().is_err());
    // Default retention: a mode and Days or Years, not both, not neither.
    db.reject(default_retention("lock", "GOVERNANCE", 1, 1), invalid())
        .await;
    db.reject(default_retention("lock", "GOVERNANCE", 0, 0), invalid())
        .await;
    assert!("STRICT".parse::<LockMode>().is_err());
    db.reject(
        default_retention("lock", "COMPLIANCE", 36_501, 0),
        invalid(),
    )
    .await;
    db.reject(default_retention("lock", "COMPLIANCE", 0, 101), invalid())
        .await;
}

#[tokio::test]
async fn default_retention_applies_to_new_versions_that_carry_none() {
    let mut db = Db::new().await;
    db.ok(create("lock", true)).await;
    db.ok(commit(ver("lock", "before", "v0", "a"))).await;
    db.ok(default_retention("lock", "GOVERNANCE", 3, 0)).await;
    assert_eq!(
        q::bucket(db.c(), "lock")
            .await
            .expect("bucket")
            .and_then(|b| b.default_retention),
        Some(DefaultRetention {
            mode: LockMode::Governance,
            days: 3,
            years: 0
        })
    );
    // Versions written earlier keep what they had.
    assert_eq!(
        stored(&mut db, "lock", "before", "v0").await.lock_mode,
        LockMode::None
    );

    db.run_at(NOW + 5, commit(ver("lock", "k", "v1", "bkt")))
        .await;
    let v1 = stored(&mut db, "lock", "k", "v1").await;
    assert_eq!(
        (v1.lock_mode.as_str(), v1.retain_until_ms),
        ("GOVERNANCE", NOW + 5 + 3 * DAY)
    );

    // An explicit retention wins over the default.
    db.ok(commit(locked(
        "COMPLIANCE",
        NOW + 7,
        ver("lock", "k", "v2", "c"),
    )))
    .await;
    let v2 = stored(&mut db, "lock", "k", "v2").await;
    assert_eq!(
        (v2.lock_mode.as_str(), v2.retain_until_ms),
        ("COMPLIANCE", NOW + 7)
    );

    // Years are 365 days; the default is taken when a multipart completes.
    db.ok(default_retention("lock", "COMPLIANCE", 0, 2)).await;
    db.ok(begin("lock", "mp", "u1")).await;
    db.ok(put_part("lock", "mp", "u1", part(1, 10, "p1"))).await;
    let etag = md5_hex(b"p1");
    let r = db
        .run_at(NOW + 50, complete("lock", "mp", "u1", &[(1, &etag)], "mv"))
        .await;
    assert!(matches!(r, Response::Completed { .. }), "{r:?}");
    let mv = stored(&mut db, "lock", "mp", "mv").await;
    assert_eq!(
        (mv.lock_mode.as_str(), mv.retain_until_ms),
        ("COMPLIANCE", NOW + 50 + 730 * DAY)
    );

    // Removing the default changes no existing version.
    db.ok(Op::PutLockConfiguration {
        bucket: "lock".into(),
        default_retention: None,
        enable: false,
    })
    .await;
    assert_eq!(stored(&mut db, "lock", "mp", "mv").await, mv);
    db.ok(commit(ver("lock", "k", "v3", "d"))).await;
    assert_eq!(
        stored(&mut db, "lock", "k", "v3").await.lock_mode,
        LockMode::None
    );
}

#[tokio::test]
async fn compliance_can_only_be_lengthened_until_it_expires() {
    let mut db = Db::new().await;
    db.ok(create("lock", true)).await;
    let until = NOW + DAY;
    db.ok(commit(locked(
        "COMPLIANCE",
        until,
        ver("lock", "k", "v", "x"),
    )))
    .await;

    for bypass in [false, true] {
        // Shorten, remove, downgrade: denied, with the bypass or without.
        db.reject(
            retention("lock", "k", "v", "COMPLIANCE", until - 1, bypass),
            denied(),
        )
        .await;
        db.reject(retention("lock", "k", "v", "", 0, bypass), denied())
            .await;
        db.reject(
            retention("lock", "k", "v", "GOVERNANCE", until, bypass),
            denied(),
        )
        .await;
        db.reject(
            retention("lock", "k", "v", "GOVERNANCE", until + DAY, bypass),
            denied(),
        )
        .await;
        // One millisecond before expiry it still holds.
        db.reject_at(
            until - 1,
            retention("lock", "k", "v", "", 0, bypass),
            denied(),
        )
        .await;
    }

    // Lengthening is allowed, and then the new date holds.
    db.ok(retention(
        "lock",
        "k",
        "v",
        "COMPLIANCE",
        until + DAY,
        false,
    ))
    .await;
    assert_eq!(
        stored(&mut db, "lock", "k", "v").await.retain_until_ms,
        until + DAY
    );
    db.reject_at(until + 1, del_bypass("lock", "k", "v"), denied())
        .await;

    // Once expired (by command time), it may be removed and deleted.
    let later = until + DAY + 1;
    let r = db
        .run_at(later, retention("lock", "k", "v", "", 0, false))
        .await;
    assert!(matches!(r, Response::Locked { .. }), "{r:?}");
    let r = db.run_at(later, del("lock", "k", Some("v"), "")).await;
    assert!(matches!(r, Response::Deleted { .. }), "{r:?}");
}

#[tokio::test]
async fn governance_yields_only_to_the_bypass() {
    let mut db = Db::new().await;
    db.ok(create("lock", true)).await;
    let until = NOW + DAY;
    for id in ["a", "bkt", "c"] {
        db.ok(commit(locked(
            "GOVERNANCE",
            until,
            ver("lock", "k", id, id),
        )))
        .await;
    }
    // Without the bypass: no shortening, no removal.
    db.reject(
        retention("lock", "k", "a", "GOVERNANCE", until - 1, false),
        denied(),
    )
    .await;
    db.reject(retention("lock", "k", "a", "", 0, false), denied())
        .await;
    // Lengthening, and hardening to COMPLIANCE, need no bypass.
    db.ok(retention("lock", "k", "a", "GOVERNANCE", until + 1, false))
        .await;
    db.ok(retention("lock", "k", "bkt", "COMPLIANCE", until, false))
        .await;
    db.reject(del_bypass("lock", "k", "bkt"), denied()).await;
    // With the bypass: shorten, remove, delete.
    db.ok(retention("lock", "k", "a", "GOVERNANCE", until - 5, true))
        .await;
    db.ok(retention("lock", "k", "a", "", 0, true)).await;
    assert_eq!(
        stored(&mut db, "lock", "k", "a").await.lock_mode,
        LockMode::None
    );
    let r = db.run(del_bypass("lock", "k", "c")).await;
    assert!(
        matches!(r, Response::Deleted { ref freed, .. } if freed == &vec![shards("c")]),
        "{r:?}"
    );
}

#[tokio::test]
async fn legal_hold_blocks_deletion_with_no_expiry() {
    let mut db = Db::new().await;
    db.ok(create("lock", true)).await;
    db.ok(commit(ver("lock", "k", "v", "x"))).await;
    db.ok(legal_hold("lock", "k", "", true)).await;
    assert!(stored(&mut db, "lock", "k", "v").await.legal_hold);
    db.reject_at(i64::MAX - 1, del_bypass("lock", "k", "v"), denied())
        .await;
    db.ok(legal_hold("lock", "k", "v", false)).await;
    let r = db.run(del("lock", "k", Some("v"), "")).await;
    assert!(matches!(r, Response::Deleted { .. }), "{r:?}");
}

#[tokio::test]
async fn delete_markers_and_missing_versions_take_no_lock() {
    let mut db = Db::new().await;
    db.ok(create("lock", true)).await;
    db.ok(commit(ver("lock", "k", "v", "x"))).await;
    db.ok(del("lock", "k", None, "dm")).await;
    let not_allowed = MetaError::MethodNotAllowed(String::new());
    for op in [
        retention("lock", "k", "dm", "GOVERNANCE", NOW + DAY, false),
        legal_hold("lock", "k", "dm", true),
        // No id: the current version, which is the marker.
        legal_hold("lock", "k", "", true),
    ] {
        let r = db.run(op).await;
        assert!(same_kind(&r, &not_allowed), "{r:?}");
    }
    db.reject(
        legal_hold("lock", "k", "nope", true),
        MetaError::NoSuchVersion("nope".into()),
    )
    .await;
    db.reject(
        legal_hold("lock", "none", "", true),
        MetaError::NoSuchKey("none".into()),
    )
    .await;
}

/// Every command that could destroy or weaken a COMPLIANCE-locked version,
/// as any route would propose it: each refused, nothing changed.
#[tokio::test]
async fn no_command_can_remove_a_compliance_locked_version() {
    let mut db = Db::new().await;
    db.ok(create("vault", true)).await;
    let until = NOW + 365 * DAY;
    let v = Version {
        legal_hold: false,
        ..locked("COMPLIANCE", until, ver("vault", "doc", "v1", "secret"))
    };
    db.ok(commit(v.clone())).await;
    let kept = stored(&mut db, "vault", "doc", "v1").await;

    db.reject(del("vault", "doc", Some("v1"), ""), denied())
        .await;
    db.reject(del_bypass("vault", "doc", "v1"), denied()).await;
    db.reject(
        retention("vault", "doc", "v1", "COMPLIANCE", NOW + 1, true),
        denied(),
    )
    .await;
    db.reject(
        retention("vault", "doc", "v1", "GOVERNANCE", until, true),
        denied(),
    )
    .await;
    db.reject(retention("vault", "doc", "", "", 0, true), denied())
        .await;
    db.reject(
        delete_bucket("vault"),
        MetaError::BucketNotEmpty("vault".into()),
    )
    .await;
    let r = db.run(versioning("vault", "Suspended")).await;
    assert!(
        same_kind(&r, &MetaError::InvalidBucketState(String::new())),
        "{r:?}"
    );
    // Reusing its id for other bytes.
    db.reject(commit(ver("vault", "doc", "v1", "other")), invalid())
        .await;
    // The same deletes inside a batch (group commit) fare no better.
    let out = db
        .batch(vec![
            (NOW, del_bypass("vault", "doc", "v1")),
            (NOW, retention("vault", "doc", "v1", "", 0, true)),
        ])
        .await;
    for (_, r) in &out {
        assert!(same_kind(r, &denied()), "{r:?}");
    }
    // Removing the bucket's default retention does not touch the version.
    db.ok(Op::PutLockConfiguration {
        bucket: "vault".into(),
        default_retention: None,
        enable: false,
    })
    .await;
    // A delete marker hides it but does not destroy it.
    db.ok(del("vault", "doc", None, "dm")).await;
    assert_eq!(stored(&mut db, "vault", "doc", "v1").await, kept);

    // A replayed command id answers what it answered, and changes nothing.
    let cmd = Command {
        id: "replayed".into(),
        at_ms: NOW,
        by: None,
        op: del_bypass("vault", "doc", "v1"),
    };
    for seq in [1_000, 1_001] {
        let r = apply(&mut db.conn, seq, &cmd).await.expect("apply");
        assert!(same_kind(&r, &denied()), "{r:?}");
    }
    assert_eq!(stored(&mut db, "vault", "doc", "v1").await, kept);

    // Only the passing of command time releases it.
    let r = db
        .run_at(until + 1, del("vault", "doc", Some("v1"), ""))
        .await;
    assert!(matches!(r, Response::Deleted { .. }), "{r:?}");
}
