//! An admin's grant, owner and limit commands at the state machine (ADR
//! 0027), the maximum retention they set as every retention meets it,
//! and the reads the gRPC services answer from (pages of buckets a key
//! reaches, a key's and a bucket's grants, a bucket's counts).

mod common;

use common::*;

fn set_owner(bucket: &str, owner: &str) -> Op {
    Op::SetBucket {
        bucket: bucket.into(),
        owner: Some(owner.into()),
        max_retention_days: None,
    }
}

fn set_limit(bucket: &str, days: u32) -> Op {
    Op::SetBucket {
        bucket: bucket.into(),
        owner: None,
        max_retention_days: Some(days),
    }
}

fn set_defaults(days: u32) -> Op {
    Op::SetBucketDefaults {
        max_retention_days: days,
    }
}

/// A version of "doc" on `bucket` retained (GOVERNANCE) for `days`.
fn retained(bucket: &str, id: &str, days: i64) -> Op {
    commit(Version {
        lock_mode: LockMode::Governance,
        retain_until_ms: NOW + days * DAY,
        ..ver(bucket, "doc", id, id)
    })
}

fn default_days(bucket: &str, days: u32, years: u32) -> Op {
    Op::PutLockConfiguration {
        bucket: bucket.into(),
        default_retention: Some(DefaultRetention {
            mode: LockMode::Compliance,
            days,
            years,
        }),
        enable: false,
    }
}

#[tokio::test]
async fn allow_adds_rights_and_deny_removes_them() {
    let mut db = access_world().await;
    db.reject_by(
        Some(admin()),
        allow("abc", "bob", false, false, false),
        invalid(),
    )
    .await;
    db.reject_by(
        Some(admin()),
        allow("nope", "bob", true, false, false),
        MetaError::NoSuchBucket("nope".into()),
    )
    .await;
    db.reject_by(
        Some(admin()),
        allow("abc", "nobody", true, false, false),
        MetaError::NoSuchAccessKey("nobody".into()),
    )
    .await;

    // A union: asking for write keeps read.
    db.ok_by(admin(), allow("abc", "bob", true, false, false))
        .await;
    let r = db
        .ok_by(admin(), allow("abc", "bob", false, true, false))
        .await;
    assert_eq!(r, Response::Grant(grant("abc", "bob", true, true, false)));
    // Owner says read and write too.
    let r = db
        .ok_by(admin(), allow("abc", "carol", false, false, true))
        .await;
    assert_eq!(r, Response::Grant(grant("abc", "carol", true, true, true)));
    assert_eq!(
        q::bucket_grants(db.c(), "abc").await.expect("grants"),
        vec![
            grant("abc", "bob", true, true, false),
            grant("abc", "carol", true, true, true)
        ]
    );

    // The owner cannot be denied; anyone else can, granted or not.
    db.reject_by(Some(admin()), deny("abc", "alice"), invalid_request())
        .await;
    db.reject_by(
        Some(admin()),
        deny("nope", "bob"),
        MetaError::NoSuchBucket("nope".into()),
    )
    .await;
    assert_eq!(db.ok_by(admin(), deny("abc", "bob")).await, Response::Ok);
    assert_eq!(db.ok_by(admin(), deny("abc", "bob")).await, Response::Ok);
    assert_eq!(
        q::bucket_grants(db.c(), "abc").await.expect("grants"),
        vec![grant("abc", "carol", true, true, true)]
    );
}

#[tokio::test]
async fn set_bucket_names_an_owner_or_none() {
    let mut db = access_world().await;
    let r = db.ok_by(admin(), set_owner("abc", "bob")).await;
    let Response::Bucket(b) = r else {
        panic!("{r:?}")
    };
    assert_eq!((b.name.as_str(), b.owner.as_str()), ("abc", "bob"));
    assert_eq!(db.bucket("abc").await.expect("abc").owner, "bob");
    // Now alice may be denied: she holds nothing on it.
    db.ok_by(admin(), deny("abc", "alice")).await;
    db.write_refused("alice", "abc").await;
    db.ok_by(key("bob"), commit(ver("abc", "k", "x", "x")))
        .await;

    db.ok_by(admin(), set_owner("abc", "")).await;
    assert_eq!(db.bucket("abc").await.expect("abc").owner, "");
    db.write_refused("bob", "abc").await;

    db.reject_by(
        Some(admin()),
        set_owner("abc", "nobody"),
        MetaError::NoSuchAccessKey("nobody".into()),
    )
    .await;
    db.reject_by(
        Some(admin()),
        set_owner("nope", "bob"),
        MetaError::NoSuchBucket("nope".into()),
    )
    .await;
    let nothing = Op::SetBucket {
        bucket: "abc".into(),
        owner: None,
        max_retention_days: None,
    };
    db.reject_by(Some(admin()), nothing, invalid()).await;
}

#[tokio::test]
async fn no_retention_reaches_beyond_the_bucket_maximum() {
    let mut db = access_world().await;
    let c = db.c();
    assert_eq!(
        access::cluster_max_retention_days(c).await.expect("n"),
        36_500
    );
    // At the default limit, and one millisecond past it.
    db.ok_by(key("alice"), retained("vault", "at", 36_500))
        .await;
    let past = commit(Version {
        lock_mode: LockMode::Compliance,
        retain_until_ms: NOW + 36_500 * DAY + 1,
        ..ver("vault", "doc", "past", "past")
    });
    db.reject_by(Some(key("alice")), past.clone(), invalid_request())
        .await;
    // Admins meet it too (an old command does not: see
    // an_old_command_is_not_held_to_the_maximum_retention).
    db.reject_by(Some(admin()), past, invalid_request()).await;

    // The bucket's own limit.
    let r = db.ok_by(admin(), set_limit("vault", 10)).await;
    assert!(
        matches!(&r, Response::Bucket(b) if b.max_retention_days == Some(10)),
        "{r:?}"
    );
    db.reject_by(
        Some(key("alice")),
        retained("vault", "v11", 11),
        invalid_request(),
    )
    .await;
    db.ok_by(key("alice"), retained("vault", "v10", 10)).await;
    // An upload's retention, checked when it begins.
    let mut up = upload("vault", "doc", "u1");
    up.template.lock_mode = LockMode::Governance;
    up.template.retain_until_ms = NOW + 11 * DAY;
    let begin11 = Op::BeginMultipart { upload: up.clone() };
    db.reject_by(Some(key("alice")), begin11, invalid_request())
        .await;
    up.template.retain_until_ms = NOW + 10 * DAY;
    db.ok_by(key("alice"), Op::BeginMultipart { upload: up })
        .await;
    // PutRetention: lengthening within the limit, not past it.
    db.ok_by(key("alice"), retained("vault", "v5", 5)).await;
    let put = |days: i64| Op::PutRetention {
        bucket: "vault".into(),
        key: "doc".into(),
        version_id: "v5".into(),
        mode: LockMode::Compliance,
        retain_until_ms: NOW + days * DAY,
        bypass_governance: false,
    };
    db.reject_by(Some(key("alice")), put(11), invalid_request())
        .await;
    db.ok_by(key("alice"), put(10)).await;
    // A default retention: days, or years of 365 days.
    db.reject_by(
        Some(key("alice")),
        default_days("vault", 11, 0),
        invalid_request(),
    )
    .await;
    db.reject_by(
        Some(key("alice")),
        default_days("vault", 0, 1),
        invalid_request(),
    )
    .await;
    db.ok_by(key("alice"), default_days("vault", 10, 0)).await;

    // A limit below the default is refused, so a default never exceeds
    // the limit in force; so is one out of range.
    db.reject_by(Some(admin()), set_limit("vault", 9), invalid_request())
        .await;
    db.reject_by(Some(admin()), set_limit("vault", 365_001), invalid())
        .await;
    db.ok_by(admin(), set_limit("vault", 365_000)).await;
    // 0: back to the cluster's.
    let r = db.ok_by(admin(), set_limit("vault", 0)).await;
    assert!(
        matches!(&r, Response::Bucket(b) if b.max_retention_days.is_none()),
        "{r:?}"
    );
    assert_eq!(
        db.bucket("vault").await.expect("vault").max_retention_days,
        None
    );
}

#[tokio::test]
async fn the_cluster_default_bounds_buckets_without_their_own() {
    let mut db = access_world().await;
    for bad in [0, 365_001] {
        db.reject_by(Some(admin()), set_defaults(bad), invalid())
            .await;
    }
    let r = db.ok_by(admin(), set_defaults(100)).await;
    assert_eq!(
        r,
        Response::Defaults {
            max_retention_days: 100
        }
    );
    assert_eq!(
        access::cluster_max_retention_days(db.c()).await.expect("n"),
        100
    );
    db.reject_by(
        Some(key("alice")),
        retained("vault", "v", 101),
        invalid_request(),
    )
    .await;
    db.ok_by(key("alice"), retained("vault", "v", 100)).await;

    // A bucket's default beyond a new cluster default is refused...
    db.ok_by(key("alice"), default_days("vault", 30, 0)).await;
    db.reject_by(Some(admin()), set_defaults(29), invalid_request())
        .await;
    // ...unless the bucket has a limit of its own.
    db.ok_by(admin(), set_limit("vault", 30)).await;
    db.ok_by(admin(), set_defaults(29)).await;
    let b = db.bucket("vault").await.expect("vault");
    assert_eq!(access::max_retention_days(db.c(), &b).await.expect("n"), 30);
    let abc = db.bucket("abc").await.expect("abc");
    assert_eq!(
        access::max_retention_days(db.c(), &abc).await.expect("n"),
        29
    );
    // And its limit cannot go back to a cluster default below its default.
    db.reject_by(Some(admin()), set_limit("vault", 0), invalid_request())
        .await;
}

#[tokio::test]
async fn a_key_lists_the_buckets_it_reaches_a_page_at_a_time() {
    let mut db = access_world().await;
    db.ok_by(
        admin(),
        Op::CreateBucket {
            name: "zeta".into(),
            object_lock_enabled: false,
            owner: Some("bob".into()),
        },
    )
    .await;
    db.ok_by(admin(), create("beta", false)).await;
    db.ok_by(admin(), allow("vault", "carol", true, false, false))
        .await;

    let names = |bs: Vec<Bucket>| bs.into_iter().map(|b| b.name).collect::<Vec<_>>();
    let mut list = async |key: Option<&str>, prefix: &str, after: &str, limit: u32| {
        let (bs, more) = q::buckets_page(db.c(), key, prefix, after, limit)
            .await
            .expect("page");
        (names(bs), more)
    };
    let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        list(Some("alice"), "", "", 0).await,
        (v(&["abc", "vault"]), false)
    );
    assert_eq!(list(Some("bob"), "", "", 0).await, (v(&["zeta"]), false));
    assert_eq!(list(Some("carol"), "", "", 0).await, (v(&["vault"]), false));
    assert_eq!(list(Some("mallory"), "", "", 0).await, (v(&[]), false));
    assert_eq!(list(Some(""), "", "", 0).await, (v(&[]), false));
    assert_eq!(
        list(None, "", "", 0).await,
        (v(&["abc", "beta", "vault", "zeta"]), false)
    );
    assert_eq!(list(None, "", "", 2).await, (v(&["abc", "beta"]), true));
    assert_eq!(
        list(None, "", "beta", 2).await,
        (v(&["vault", "zeta"]), false)
    );
    assert_eq!(list(None, "", "vault", 1).await, (v(&["zeta"]), false));
    assert_eq!(list(None, "v", "", 0).await, (v(&["vault"]), false));
    assert_eq!(
        list(Some("alice"), "", "abc", 1).await,
        (v(&["vault"]), false)
    );
    assert_eq!(list(Some("alice"), "a", "", 1).await, (v(&["abc"]), false));
}

#[tokio::test]
async fn grants_read_back_for_a_key_and_for_a_bucket() {
    let mut db = access_world().await;
    db.ok_by(admin(), allow("vault", "carol", true, false, false))
        .await;
    db.ok_by(admin(), allow("abc", "carol", false, true, false))
        .await;
    // A grant to the owner is not stored: not in the bucket's list (the
    // owner is Bucket.owner), and the owner's own says owned.
    db.ok_by(admin(), allow("vault", "alice", true, false, false))
        .await;
    assert_eq!(
        q::key_grants(db.c(), "alice").await.expect("grants"),
        vec![
            grant("abc", "alice", true, true, true),
            grant("vault", "alice", true, true, true)
        ]
    );
    assert_eq!(
        q::key_grants(db.c(), "carol").await.expect("grants"),
        vec![
            grant("abc", "carol", false, true, false),
            grant("vault", "carol", true, false, false)
        ]
    );
    assert_eq!(q::key_grants(db.c(), "bob").await.expect("grants"), vec![]);
    assert_eq!(q::key_grants(db.c(), "").await.expect("grants"), vec![]);
    assert_eq!(
        q::bucket_grants(db.c(), "vault").await.expect("grants"),
        vec![grant("vault", "carol", true, false, false)]
    );
    // Ownership moved to carol: her grant row goes (she owns it now);
    // bob's grant stays; alice's grant as owner stored nothing, so she
    // keeps nothing on vault.
    db.ok_by(admin(), allow("vault", "bob", false, true, false))
        .await;
    db.ok_by(admin(), set_owner("vault", "carol")).await;
    assert_eq!(
        q::bucket_grants(db.c(), "vault").await.expect("grants"),
        vec![grant("vault", "bob", false, true, false)]
    );
    assert_eq!(q::grant(db.c(), "vault", "carol").await.expect("g"), None);
    assert_eq!(
        q::key_grants(db.c(), "alice").await.expect("grants"),
        vec![grant("abc", "alice", true, true, true)]
    );
}

/// Ownership includes every right: a grant to the owner is not stored,
/// and the one a key had goes when it becomes the owner, so giving the
/// bucket to someone else later leaves it nothing.
#[tokio::test]
async fn ownership_includes_the_owners_grant_and_leaves_with_it() {
    let mut db = access_world().await;
    // To the current owner: the full grant answered, nothing stored.
    let r = db
        .ok_by(admin(), allow("abc", "alice", true, false, false))
        .await;
    assert_eq!(r, Response::Grant(grant("abc", "alice", true, true, true)));
    assert_eq!(q::grant(db.c(), "abc", "alice").await.expect("g"), None);

    // bob: an owner grant, then the bucket, then it goes to carol.
    db.ok_by(admin(), allow("abc", "bob", false, false, true))
        .await;
    assert_eq!(
        q::bucket_grants(db.c(), "abc").await.expect("grants"),
        vec![grant("abc", "bob", true, true, true)]
    );
    db.ok_by(admin(), set_owner("abc", "bob")).await;
    assert_eq!(q::grant(db.c(), "abc", "bob").await.expect("g"), None);
    assert_eq!(db.rights("bob", "abc").await, Rights::ALL);
    db.ok_by(admin(), set_owner("abc", "carol")).await;
    assert_eq!(db.rights("bob", "abc").await, Rights::NONE);
    assert_eq!(
        q::bucket_grants(db.c(), "abc").await.expect("grants"),
        vec![]
    );
    db.write_refused("bob", "abc").await;
}

/// An old log's command was accepted with no maximum retention; replaying
/// it must build the same state, so only a command naming its actor
/// (a key or an admin) meets the limit: a version's, an upload's,
/// PutRetention's and a default retention.
#[tokio::test]
async fn an_old_command_is_not_held_to_the_maximum_retention() {
    let mut db = access_world().await;
    db.ok_by(admin(), set_limit("vault", 10)).await;
    db.ok_by(key("alice"), retained("vault", "v5", 5)).await;
    let mut up = upload("vault", "doc", "u1");
    up.template.lock_mode = LockMode::Governance;
    up.template.retain_until_ms = NOW + 11 * DAY;
    let ops = [
        retained("vault", "old", 11),
        Op::BeginMultipart { upload: up },
        Op::PutRetention {
            bucket: "vault".into(),
            key: "doc".into(),
            version_id: "v5".into(),
            mode: LockMode::Governance,
            retain_until_ms: NOW + 11 * DAY,
            bypass_governance: false,
        },
        default_days("vault", 11, 0),
    ];
    for op in ops {
        for by in [key("alice"), admin()] {
            db.reject_by(Some(by), op.clone(), invalid_request()).await;
        }
        db.ok(op).await;
    }
    let until = |v: Option<(Version, i64)>| v.expect("stored").0.retain_until_ms;
    assert_eq!(
        until(db.version("vault", "doc", "old").await),
        NOW + 11 * DAY
    );
    assert_eq!(
        until(db.version("vault", "doc", "v5").await),
        NOW + 11 * DAY
    );
    let u = db.upload("u1").await.expect("begun");
    assert_eq!(u.template.retain_until_ms, NOW + 11 * DAY);
    let b = db.bucket("vault").await.expect("vault");
    assert_eq!(b.default_retention.map(|d| d.days), Some(11));
}

#[tokio::test]
async fn bucket_stats_count_current_objects_versions_and_uploads() {
    let mut db = access_world().await;
    db.ok_by(
        key("alice"),
        Op::PutBucketVersioning {
            bucket: "abc".into(),
            status: Versioning::Enabled,
        },
    )
    .await;
    let v1 = ver("abc", "k1", "v1", "a");
    let v2 = ver("abc", "k1", "v2", "bbbb");
    let w1 = ver("abc", "k2", "w1", "cc");
    let sizes = [v1.size, v2.size, w1.size];
    for v in [v1, v2.clone(), w1] {
        db.ok_by(key("alice"), commit(v)).await;
    }
    db.ok_by(key("alice"), del("abc", "k2", None, "dm")).await;
    db.ok_by(key("alice"), begin("abc", "k3", "u1")).await;
    let stats = q::bucket_stats(db.c(), "abc").await.expect("stats");
    assert_eq!(
        stats,
        q::BucketStats {
            objects: 1,
            bytes: v2.size,
            versions: 4,
            version_bytes: sizes.iter().sum(),
            uploads: 1,
        }
    );
    assert_eq!(
        q::bucket_stats(db.c(), "vault").await.expect("stats"),
        q::BucketStats::default()
    );
}
