//! The admin CLI above the keys: it creates a bucket for an owner, shows
//! a bucket's owner, grants and counts, hands a bucket over (the runbook's
//! `hamster bucket set NAME --owner KEY`, `hamster bucket adopt`), and
//! still cannot delete locked data.

use hamster_tests::authz::{Tenant, within_cache_window};
use hamster_tests::s3::head_version;

use crate::World;
use crate::grants::{denied, put};

/// `hamster bucket info BUCKET --json`.
fn info(w: &World, bucket: &str) -> serde_json::Value {
    w.s.admin_json(&["bucket", "info", bucket])
}

/// Answers frank, the key the admin made a bucket for.
pub async fn create_and_info(w: &World) -> anyhow::Result<Tenant> {
    let frank = w.s.tenant("frank", &[]);
    w.s.admin(&["bucket", "create", "frank-bucket", "--owner", &frank.id]);
    let f = &frank.s3;
    within_cache_window("frank writes to the bucket made for him", || async {
        put(f, "frank-bucket", "a", &[1u8; 100]).await.is_ok()
    })
    .await;
    put(f, "frank-bucket", "b", &[2u8; 250]).await.expect("put");
    denied(put(&w.bob.s3, "frank-bucket", "c", b"bob's").await);

    let i = info(w, "frank-bucket");
    assert_eq!(i["owner"].as_str(), Some(frank.id.as_str()), "{i}");
    assert_eq!(i["owner_name"].as_str(), Some("frank"), "{i}");
    assert_eq!(
        (i["objects"].as_u64(), i["bytes"].as_u64()),
        (Some(2), Some(350)),
        "{i}"
    );
    assert_eq!(i["grants"], serde_json::json!([]), "{i}");

    w.allow("frank-bucket", &w.bob, &["--read"]);
    let i = info(w, "frank-bucket");
    assert_eq!(
        i["grants"],
        serde_json::json!([{
            "access_key_id": w.bob.id,
            "read": true,
            "write": false,
            "owner": false,
        }]),
        "{i}"
    );
    let listed = w.s.admin_json(&["bucket", "list"]);
    let b = listed
        .as_array()
        .and_then(|a| a.iter().find(|b| b["name"] == "frank-bucket"))
        .expect("listed");
    assert_eq!(b["owner"].as_str(), Some(frank.id.as_str()), "{b}");
    // An owner must be a key that exists.
    w.s.admin_refused(&[
        "bucket",
        "create",
        "nobodys",
        "--owner",
        "HKNOSUCHKEY000000000",
    ]);
    Ok(frank)
}

/// frank's bucket goes to bob, then to no one.
pub async fn hand_over(w: &World, frank: &Tenant) {
    w.s.admin(&["bucket", "set", "frank-bucket", "--owner", &w.bob.id]);
    // frank has no grant of his own: his writes end at once (apply).
    denied(put(&frank.s3, "frank-bucket", "mine?", b"no longer").await);
    let b = &w.bob.s3;
    within_cache_window("bob writes to the bucket handed to him", || async {
        put(b, "frank-bucket", "from-bob", b"now mine")
            .await
            .is_ok()
    })
    .await;
    let i = info(w, "frank-bucket");
    assert_eq!(i["owner"].as_str(), Some(w.bob.id.as_str()), "{i}");
    // The owner cannot be denied; give the bucket another owner first.
    w.s.admin_refused(&["bucket", "deny", "frank-bucket", "--key", &w.bob.id]);
    // No owner at all: a write is refused at apply at once.
    w.s.admin(&["bucket", "set", "frank-bucket", "--no-owner"]);
    assert!(info(w, "frank-bucket")["owner"].is_null());
    denied(put(b, "frank-bucket", "too-late", b"no").await);

    // The upgrade runbook's `hamster bucket adopt`: with several keys it
    // must be told whose; then every ownerless bucket is that key's.
    let run = w.s.admin_refused(&["bucket", "adopt"]);
    assert!(run.to_string().contains("name the owner"), "{run}");
    let adopted = w.s.admin_json(&["bucket", "adopt", "--owner", &frank.id]);
    assert_eq!(
        adopted["owner"].as_str(),
        Some(frank.id.as_str()),
        "{adopted}"
    );
    let names = adopted["buckets"].as_array().expect("buckets");
    assert!(names.iter().any(|n| n == "frank-bucket"), "{adopted}");
    assert!(!names.iter().any(|n| n == "alice-data"), "{adopted}");
    let f = &frank.s3;
    within_cache_window("frank writes to the bucket he adopted", || async {
        put(f, "frank-bucket", "adopted", b"mine again")
            .await
            .is_ok()
    })
    .await;
}

/// alice-lock holds a COMPLIANCE version: the admin's delete is refused.
pub async fn locked_bucket(w: &World) {
    let run = w.s.admin_refused(&["bucket", "delete", "alice-lock"]);
    assert!(run.to_string().contains("not empty"), "{run}");
    head_version(&w.alice.s3, "alice-lock", "comp", None)
        .await
        .expect("the locked version is still there");
}
