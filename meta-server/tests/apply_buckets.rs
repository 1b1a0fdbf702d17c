//! The state machine's buckets: creating and deleting them, the naming
//! rules, and every rejection (each checked to change nothing).

mod common;

use common::*;

#[tokio::test]
async fn create_and_delete_bucket() {
    let mut db = Db::new().await;
    let r = db.run_at(NOW + 1, create("plain", false)).await;
    let plain = Bucket {
        name: "plain".into(),
        created_at_ms: NOW + 1,
        versioning: Versioning::Unversioned,
        object_lock_enabled: false,
        default_retention: None,
        owner: String::new(),
        max_retention_days: None,
        public_access_block: None,
    };
    assert_eq!(r, Response::Bucket(plain.clone()));
    assert_eq!(db.bucket("plain").await, Some(plain.clone()));

    // Object lock needs versioning: such a bucket starts "Enabled".
    let r = db.run_at(NOW + 2, create("locked", true)).await;
    let locked = Bucket {
        name: "locked".into(),
        created_at_ms: NOW + 2,
        versioning: Versioning::Enabled,
        object_lock_enabled: true,
        default_retention: None,
        owner: String::new(),
        max_retention_days: None,
        public_access_block: None,
    };
    assert_eq!(r, Response::Bucket(locked.clone()));
    assert_eq!(db.bucket("locked").await, Some(locked.clone()));
    assert_eq!(db.buckets().await, vec![locked.clone(), plain.clone()]);

    // Names at the edges of the rules are accepted.
    for name in ["abc", &"a".repeat(63), "a.b-c", "1-2.3", "x0y"] {
        db.ok(create(name, false)).await;
        assert!(db.bucket(name).await.is_some(), "{name}");
    }

    assert_eq!(db.run(delete_bucket("plain")).await, Response::Ok);
    assert_eq!(db.bucket("plain").await, None);
    assert!(!db.buckets().await.iter().any(|b| b.name == "plain"));
    // The name is free again.
    db.ok(create("plain", true)).await;
    assert_eq!(
        db.bucket("plain").await.map(|b| b.versioning),
        Some(Versioning::Enabled)
    );
}

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
