//! Lock and configuration powers are the owner's: bob, with read and
//! write on alice's lock bucket, can neither bypass GOVERNANCE, change a
//! retention or a legal hold, change versioning or the lock
//! configuration, nor delete the bucket; alice can bypass GOVERNANCE and
//! lift a hold, and COMPLIANCE refuses her like anyone.

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetentionMode};
use hamster_tests::authz::within_cache_window;
use hamster_tests::lock::{
    DAY, create_lock_bucket, legal_hold_status, lock_config, now_secs, put_legal_hold,
    put_lock_config, put_retention, retention,
};
use hamster_tests::s3::{
    assert_s3_error, delete_version, delete_versions, head_version, set_versioning, versioning,
    versioning_status,
};

use crate::World;
use crate::grants::{denied, put, status_of};

type Client = aws_sdk_s3::Client;

const BUCKET: &str = "alice-lock";

/// The latest version id of `key` in the lock bucket.
async fn latest(c: &Client, key: &str) -> String {
    head_version(c, BUCKET, key, None)
        .await
        .unwrap_or_else(|e| panic!("HEAD {key}: {e:?}"))
        .version_id()
        .expect("a version id")
        .to_string()
}

/// alice's lock bucket: "gov" (GOVERNANCE, a day), "comp" (COMPLIANCE, a
/// day), "held" (a legal hold), "plain" (no lock).
async fn lock_bucket(c: &Client) {
    create_lock_bucket(c, BUCKET).await;
    let until = DateTime::from_secs(now_secs() + DAY);
    for (key, mode) in [
        ("gov", ObjectLockMode::Governance),
        ("comp", ObjectLockMode::Compliance),
    ] {
        c.put_object()
            .bucket(BUCKET)
            .key(key)
            .object_lock_mode(mode)
            .object_lock_retain_until_date(until)
            .body(ByteStream::from_static(b"locked"))
            .send()
            .await
            .expect("put locked");
    }
    c.put_object()
        .bucket(BUCKET)
        .key("held")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(ByteStream::from_static(b"held"))
        .send()
        .await
        .expect("put held");
    put(c, BUCKET, "plain", b"plain").await.expect("put plain");
}

pub async fn write_only(w: &World) {
    let a = &w.alice.s3;
    lock_bucket(a).await;
    let (gov, plain) = (latest(a, "gov").await, latest(a, "plain").await);
    w.allow(BUCKET, &w.bob, &["--read", "--write"]);
    let b = &w.bob.s3;
    within_cache_window("bob's read and write on the lock bucket", || async {
        head_version(b, BUCKET, "plain", None).await.is_ok()
    })
    .await;

    // The bypass is the owner's, needed or not, one by one or in a batch.
    denied(delete_version(b, BUCKET, "gov", Some(&gov), true).await);
    denied(delete_version(b, BUCKET, "plain", Some(&plain), true).await);
    denied(delete_versions(b, BUCKET, &[("gov", &gov)], Some(true)).await);
    // Retention and legal hold: even a longer retention, even placing a hold.
    let until = now_secs() + 2 * DAY;
    let longer = retention(ObjectLockRetentionMode::Governance, until);
    denied(put_retention(b, BUCKET, "gov", Some(&gov), longer, None).await);
    let weaker = retention(ObjectLockRetentionMode::Governance, now_secs() + 60);
    denied(put_retention(b, BUCKET, "gov", Some(&gov), weaker, Some(true)).await);
    denied(put_legal_hold(b, BUCKET, "held", false).await);
    denied(put_legal_hold(b, BUCKET, "plain", true).await);
    // The bucket's configuration and the bucket itself.
    denied(set_versioning(b, BUCKET, versioning("Suspended")).await);
    denied(set_versioning(b, BUCKET, versioning("Enabled")).await);
    denied(put_lock_config(b, BUCKET, lock_config(None)).await);
    denied(b.delete_bucket().bucket(BUCKET).send().await);
    // GOVERNANCE without the bypass: the lock refuses (as it refuses anyone).
    denied(delete_version(b, BUCKET, "gov", Some(&gov), false).await);

    // What write does give: new versions, deleting unlocked ones.
    put(b, BUCKET, "bob-put", b"bob's")
        .await
        .expect("bob writes");
    delete_version(b, BUCKET, "plain", Some(&plain), false)
        .await
        .expect("bob deletes an unlocked version");
    let e = head_version(a, BUCKET, "plain", Some(&plain))
        .await
        .expect_err("deleted");
    assert_eq!(status_of(&e), Some(404), "{e:?}");

    // Nothing of alice's changed.
    head_version(a, BUCKET, "gov", Some(&gov))
        .await
        .expect("gov is still there");
    assert_eq!(
        legal_hold_status(a, BUCKET, "held", None).await,
        Some(ObjectLockLegalHoldStatus::On)
    );
    assert_eq!(
        versioning_status(a, BUCKET)
            .await
            .map(|s| s.as_str().to_string()),
        Some("Enabled".to_string())
    );
}

pub async fn owner(w: &World) {
    let a = &w.alice.s3;
    let (gov, comp, held) = (
        latest(a, "gov").await,
        latest(a, "comp").await,
        latest(a, "held").await,
    );
    delete_version(a, BUCKET, "gov", Some(&gov), true)
        .await
        .expect("the owner bypasses GOVERNANCE");
    denied(delete_version(a, BUCKET, "comp", Some(&comp), true).await);
    let shorter = retention(ObjectLockRetentionMode::Compliance, now_secs() + 60);
    denied(put_retention(a, BUCKET, "comp", Some(&comp), shorter, Some(true)).await);
    put_legal_hold(a, BUCKET, "held", false)
        .await
        .expect("the owner lifts a hold");
    delete_version(a, BUCKET, "held", Some(&held), false)
        .await
        .expect("then deletes it");
    // The owner passes the rights check; the lock's own rules still hold.
    let r = set_versioning(a, BUCKET, versioning("Suspended")).await;
    assert_s3_error(r, "InvalidBucketState", 409);
    head_version(a, BUCKET, "comp", Some(&comp))
        .await
        .expect("COMPLIANCE stays");
}
