//! `hamster bucket adopt` and how `bucket info` and `bucket list` show a
//! bucket with no owner (what an upgrade from before owners leaves).

use hamster_proto::pb::{AccessKey, AdoptBucketsRequest, BucketInfoResponse};

use crate::fake::{Asked, Meta, Script, bucket, page};

fn key(id: &str) -> AccessKey {
    AccessKey {
        access_key_id: id.into(),
        enabled: true,
        can_create_bucket: true,
        ..AccessKey::default()
    }
}

fn adopt(owner: &str) -> Asked {
    Asked::Adopt(AdoptBucketsRequest {
        owner: owner.into(),
    })
}

#[test]
fn adopt_without_an_owner_gives_the_only_key_every_ownerless_bucket() {
    let meta = Meta::start(Script {
        keys: vec![key("AK1")],
        ownerless: vec!["logs".into(), "photos".into()],
        ..Script::default()
    });
    let out = meta.ok(&["bucket", "adopt"]);
    assert_eq!(out, "bucket logs: owner AK1\nbucket photos: owner AK1\n");
    // Nothing left to adopt the second time.
    let out = meta.ok(&["bucket", "adopt"]);
    assert_eq!(out, "no bucket without an owner\n");
    assert_eq!(meta.asked(), [adopt(""), adopt("")]);
}

#[test]
fn adopt_sends_the_owner_named_and_prints_json() {
    let meta = Meta::start(Script {
        keys: vec![key("AK1"), key("AK2")],
        ownerless: vec!["a".into()],
        ..Script::default()
    });
    let out = meta.ok(&["bucket", "adopt", "--owner", "AK2", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v, serde_json::json!({ "owner": "AK2", "buckets": ["a"] }));
    let out = meta.ok(&["bucket", "adopt", "--owner", "AK2", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["buckets"], serde_json::json!([]), "{v}");
    assert_eq!(meta.asked(), [adopt("AK2"), adopt("AK2")]);
}

#[test]
fn adopt_refused_with_several_keys_prints_the_meta_tiers_words() {
    let meta = Meta::start(Script {
        keys: vec![key("AK1"), key("AK2")],
        ownerless: vec!["a".into()],
        ..Script::default()
    });
    meta.refused(
        &["bucket", "adopt"],
        "bucket adopt: the cluster has several access keys: name the owner",
    );
    meta.refused(&["bucket", "adopt", "--owner", "AK9"], "no access key AK9");
    assert_eq!(meta.asked(), [adopt(""), adopt("AK9")]);
}

fn ownerless_info() -> BucketInfoResponse {
    BucketInfoResponse {
        bucket: Some(bucket("old", "")),
        cluster_max_retention_days: 36500,
        ..BucketInfoResponse::default()
    }
}

#[test]
fn info_of_an_ownerless_bucket_says_how_to_give_it_one() {
    let meta = Meta::start(Script {
        info: Some(ownerless_info()),
        ..Script::default()
    });
    let out = meta.ok(&["bucket", "info", "old"]);
    let owner = out.lines().find(|l| l.starts_with("owner")).unwrap_or("");
    assert!(owner.ends_with("none"), "{out}");
    assert!(
        out.lines().any(|l| l
            == "no owner: only admins reach it (hamster bucket set old --owner KEY, or hamster bucket adopt)"),
        "{out}"
    );
    // JSON: a null owner, no prose.
    let out = meta.ok(&["bucket", "info", "old", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(v["owner"].is_null(), "{v}");
}

#[test]
fn info_of_an_ownerless_bucket_with_grants_names_them_too() {
    let mut i = ownerless_info();
    i.grants = vec![hamster_proto::pb::BucketGrant {
        bucket: "old".into(),
        access_key_id: "AK2".into(),
        read: true,
        ..Default::default()
    }];
    let meta = Meta::start(Script {
        info: Some(i),
        ..Script::default()
    });
    let out = meta.ok(&["bucket", "info", "old"]);
    assert!(
        out.contains("no owner: only admins and the keys granted above reach it (hamster bucket set old --owner KEY, or hamster bucket adopt)"),
        "{out}"
    );
}

#[test]
fn info_of_an_owned_bucket_has_no_hint() {
    let mut i = ownerless_info();
    i.bucket = Some(bucket("old", "AK1"));
    let meta = Meta::start(Script {
        info: Some(i),
        ..Script::default()
    });
    let out = meta.ok(&["bucket", "info", "old"]);
    assert!(!out.contains("no owner"), "{out}");
    assert!(!out.contains("bucket adopt"), "{out}");
}

#[test]
fn list_shows_a_dash_for_an_ownerless_bucket() {
    let mut p = page(&["old"], "");
    p.buckets[0] = bucket("old", "");
    let meta = Meta::start(Script {
        pages: [p].into(),
        ..Script::default()
    });
    let out = meta.ok(&["bucket", "list"]);
    let header = out.lines().next().unwrap_or("");
    let row = out.lines().nth(1).unwrap_or("");
    let col = header.find("OWNER").expect("an OWNER column");
    assert_eq!(row.get(col..col + 2), Some("- "), "{out}");
}
