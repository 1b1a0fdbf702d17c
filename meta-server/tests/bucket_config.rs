//! Issue 21 at the state machine: object lock turned on for an existing
//! bucket (PutLockConfiguration with `enable`), the stored
//! PublicAccessBlock, and version-id-marker as a position in a versions
//! listing (a delete marker, "null", a version deleted since).

mod common;

use common::*;
use hamster_meta::state::model::PublicAccessBlock;

fn versioning(bucket: &str, status: &str) -> Op {
    Op::PutBucketVersioning {
        bucket: bucket.into(),
        status: status.parse().expect("a versioning state"),
    }
}

fn enable_lock(bucket: &str, default_retention: Option<DefaultRetention>) -> Op {
    Op::PutLockConfiguration {
        bucket: bucket.into(),
        default_retention,
        enable: true,
    }
}

fn governance_days(days: u32) -> DefaultRetention {
    DefaultRetention {
        mode: LockMode::Governance,
        days,
        years: 0,
    }
}

fn pab(bucket: &str, config: Option<PublicAccessBlock>) -> Op {
    Op::PutPublicAccessBlock {
        bucket: bucket.into(),
        config,
    }
}

#[tokio::test]
async fn object_lock_is_enabled_on_a_versioned_bucket_and_never_off() {
    let mut db = Db::new().await;
    db.ok(create("plain", false)).await;
    // Never versioned, then suspended: refused, nothing changes.
    let state = || MetaError::InvalidBucketState(String::new());
    db.reject(enable_lock("plain", None), state()).await;
    db.ok(versioning("plain", "Suspended")).await;
    db.reject(enable_lock("plain", None), state()).await;
    db.reject(
        enable_lock("nope", None),
        MetaError::NoSuchBucket("nope".into()),
    )
    .await;
    db.ok(versioning("plain", "Enabled")).await;
    // Without `enable` it is still a lock bucket's setting only.
    db.reject(
        Op::PutLockConfiguration {
            bucket: "plain".into(),
            default_retention: None,
            enable: false,
        },
        MetaError::InvalidRequest(String::new()),
    )
    .await;
    // A bad default refuses the whole command: lock stays off.
    db.reject(
        enable_lock("plain", Some(governance_days(0))),
        MetaError::InvalidArgument(String::new()),
    )
    .await;
    assert!(!db.bucket("plain").await.expect("plain").object_lock_enabled);

    db.ok(enable_lock("plain", Some(governance_days(3)))).await;
    let b = db.bucket("plain").await.expect("plain");
    assert!(b.object_lock_enabled);
    assert_eq!(b.default_retention, Some(governance_days(3)));
    // New versions take the default; the bucket can no longer suspend.
    db.ok(commit(ver("plain", "k", "v1", "x"))).await;
    let v = db.version("plain", "k", "v1").await.expect("v1").0;
    assert_eq!(v.lock_mode, LockMode::Governance);
    assert_eq!(v.retain_until_ms, NOW + 3 * DAY);
    db.reject(versioning("plain", "Suspended"), state()).await;
    // Enabling again (and with enable false) is a lock bucket's update.
    db.ok(enable_lock("plain", None)).await;
    db.ok(Op::PutLockConfiguration {
        bucket: "plain".into(),
        default_retention: Some(governance_days(1)),
        enable: false,
    })
    .await;
    let b = db.bucket("plain").await.expect("plain");
    assert!(b.object_lock_enabled);
    assert_eq!(b.default_retention, Some(governance_days(1)));
}

#[tokio::test]
async fn enabling_object_lock_is_an_owners_right() {
    let mut db = access_world().await;
    db.ok_by(key("alice"), versioning("abc", "Enabled")).await;
    db.ok_by(admin(), allow("abc", "bob", true, true, false))
        .await;
    db.reject_by(Some(key("bob")), enable_lock("abc", None), denied())
        .await;
    db.ok_by(key("alice"), enable_lock("abc", None)).await;
    assert!(db.bucket("abc").await.expect("abc").object_lock_enabled);
}

#[tokio::test]
async fn public_access_block_is_stored_replaced_and_deleted_by_the_owner() {
    let mut db = access_world().await;
    let set = PublicAccessBlock {
        block_public_acls: true,
        ignore_public_acls: false,
        block_public_policy: true,
        restrict_public_buckets: true,
    };
    assert_eq!(
        db.bucket("abc").await.expect("abc").public_access_block,
        None
    );
    // Only the owner: a write grant is not enough.
    db.ok_by(admin(), allow("abc", "bob", true, true, false))
        .await;
    db.reject_by(Some(key("bob")), pab("abc", Some(set)), denied())
        .await;
    db.reject_by(
        Some(key("alice")),
        pab("nope", Some(set)),
        MetaError::NoSuchBucket("nope".into()),
    )
    .await;

    db.ok_by(key("alice"), pab("abc", Some(set))).await;
    assert_eq!(
        db.bucket("abc").await.expect("abc").public_access_block,
        Some(set)
    );
    // Only this bucket carries it.
    assert_eq!(
        db.bucket("vault").await.expect("vault").public_access_block,
        None
    );
    let all_off = PublicAccessBlock::default();
    db.ok_by(key("alice"), pab("abc", Some(all_off))).await;
    assert_eq!(
        db.bucket("abc").await.expect("abc").public_access_block,
        Some(all_off)
    );
    db.ok_by(key("alice"), pab("abc", None)).await;
    assert_eq!(
        db.bucket("abc").await.expect("abc").public_access_block,
        None
    );
    // Deleting what is not set succeeds, as S3's delete does.
    db.ok_by(key("alice"), pab("abc", None)).await;
}

/// Version ids of the shape gateways mint, time-ordered by `n`.
fn vid(n: u8) -> String {
    format!("{:012x}{:020x}", 1_000 + u64::from(n), u64::from(n))
}

async fn cursor(db: &mut Db, key: &str, id: &str) -> Option<Cursor> {
    q::after_version(db.c(), "vbk", key, id)
        .await
        .expect("after_version")
}

async fn listed(db: &mut Db, from: Cursor) -> Vec<(String, String)> {
    let page = q::list(db.c(), "vbk", "", "", from, 1000, Walk::AllVersions)
        .await
        .expect("list");
    page.entries
        .into_iter()
        .filter_map(|e| match e {
            Entry::Version { version, .. } => Some((version.key, version.version_id)),
            Entry::Prefix(_) => None,
        })
        .collect()
}

#[tokio::test]
async fn a_version_id_marker_is_a_position_even_once_deleted() {
    let mut db = Db::new().await;
    db.ok(create("vbk", false)).await;
    // "a": null (before versioning), v1, a marker m2, v3; "b": v4.
    db.ok(commit(ver("vbk", "a", "", "n"))).await;
    db.ok(versioning("vbk", "Enabled")).await;
    db.ok(commit(ver("vbk", "a", &vid(1), "1"))).await;
    db.ok(del("vbk", "a", None, &vid(2))).await;
    db.ok(commit(ver("vbk", "a", &vid(3), "3"))).await;
    db.ok(commit(ver("vbk", "b", &vid(4), "4"))).await;
    let e = |k: &str, id: String| (k.to_string(), id);
    let all = vec![
        e("a", vid(3)),
        e("a", vid(2)),
        e("a", vid(1)),
        e("a", "null".into()),
        e("b", vid(4)),
    ];
    assert_eq!(listed(&mut db, Cursor::Start).await, all);
    // Existing markers, a delete marker and "null" included: right after.
    for (i, (k, id)) in all.iter().enumerate() {
        let c = cursor(&mut db, k, id).await.expect("a position");
        assert_eq!(listed(&mut db, c).await, all[i + 1..], "after {k}@{id}");
    }
    // The emptying loop: a page of two listed and deleted, then the next
    // page from its last entry, which is gone: nothing skipped or repeated.
    db.ok(del("vbk", "a", Some(&vid(3)), "unused")).await;
    db.ok(del("vbk", "a", Some(&vid(2)), "unused")).await;
    let c = cursor(&mut db, "a", &vid(2)).await.expect("a position");
    assert_eq!(listed(&mut db, c).await, all[2..]);
    db.ok(del("vbk", "a", Some(&vid(1)), "unused")).await;
    db.ok(del("vbk", "a", Some("null"), "unused")).await;
    let c = cursor(&mut db, "a", "null").await.expect("a position");
    assert_eq!(listed(&mut db, c).await, all[4..]);
    // A malformed id that names nothing has no position (S3's 400).
    assert_eq!(cursor(&mut db, "a", "not-an-id").await, None);
    assert_eq!(cursor(&mut db, "zzz", "not-an-id").await, None);
}
