//! `hamster bucket …` and `hamster key …` as an operator runs them: the
//! real binary against a scripted meta-server over real mTLS. These pin
//! what each command sends (flags → request fields), what it prints
//! (text and the JSON shape), and what clap refuses before any call; the
//! meta tier's own rules are tested with real processes in tests/.

mod adopt;
#[path = "../common/mod.rs"]
mod common;
mod fake;

use fake::{Asked, Meta, Script, assert_clap_refuses, bucket, list_request, page};
use hamster_proto::pb::{
    AccessKey, AdminCreateBucketRequest, AllowBucketRequest, BucketGrant, BucketInfoRequest,
    BucketInfoResponse, CreateAccessKeyRequest, DeleteBucketRequest, DenyBucketRequest,
    SetBucketDefaultsRequest, SetBucketRequest,
};
#[test]
fn list_pages_through_every_bucket_with_owner_and_limit() {
    let mut ownerless = page(&["c"], "");
    ownerless.buckets[0] = bucket("c", "");
    ownerless.buckets[0].max_retention_days = 90;
    let meta = Meta::start(Script {
        pages: [page(&["a", "b"], "b"), ownerless].into(),
        ..Script::default()
    });
    let out = meta.ok(&["bucket", "list", "--json"]);
    assert_eq!(meta.asked(), [list_request(""), list_request("b")]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let rows = v.as_array().expect("an array");
    let names: Vec<_> = rows.iter().map(|b| b["name"].as_str()).collect();
    assert_eq!(names, [Some("a"), Some("b"), Some("c")]);
    assert_eq!(rows[0]["owner"], "AK1");
    assert_eq!(rows[0]["owner_name"], "alice");
    assert_eq!(rows[0]["max_retention_days"], 36500);
    assert!(rows[2]["owner"].is_null(), "{v}");
    assert_eq!(rows[2]["max_retention_days"], 90);
    // The fields issue 16's scripts read are still there.
    assert_eq!(rows[0]["object_lock"], false);
    assert!(rows[0]["default_retention"].is_null());
}

#[test]
fn list_as_a_table_has_owner_and_max_retention_columns() {
    let meta = Meta::start(Script {
        pages: [page(&["photos"], "")].into(),
        ..Script::default()
    });
    let out = meta.ok(&["bucket", "list", "--prefix", "ph"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("OWNER"), "{out}");
    assert!(lines[0].contains("MAX RETENTION"), "{out}");
    assert!(lines[1].starts_with("photos"), "{out}");
    assert!(lines[1].contains("AK1 (alice)"), "{out}");
    assert!(lines[1].contains("36500d"), "{out}");
    match meta.asked().as_slice() {
        [Asked::List(r)] => assert_eq!(r.prefix, "ph"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_continuation_token_that_does_not_advance_ends_the_list_with_an_error() {
    let meta = Meta::start(Script {
        pages: [page(&["a"], "a")].into(),
        ..Script::default()
    });
    meta.refused(&["bucket", "list"], "continuation token");
    assert_eq!(meta.asked(), [list_request(""), list_request("a")]);
}

#[test]
fn create_sends_the_owner_and_object_lock_and_says_who_owns_it() {
    let meta = Meta::start(Script::default());
    let out = meta.ok(&["bucket", "create", "b1", "--owner", "AK1", "--object-lock"]);
    assert!(out.contains("owned by AK1 (alice)"), "{out}");
    let out = meta.ok(&["bucket", "create", "b2"]);
    assert!(out.contains("no owner yet"), "{out}");
    assert!(out.contains("hamster bucket set b2 --owner KEY"), "{out}");
    let create = |name: &str, lock, owner: &str| {
        Asked::Create(AdminCreateBucketRequest {
            name: name.into(),
            object_lock_enabled: lock,
            owner: owner.into(),
        })
    };
    assert_eq!(
        meta.asked(),
        [create("b1", true, "AK1"), create("b2", false, "")]
    );
}

#[test]
fn a_refusal_prints_the_meta_tiers_words_not_a_status_dump() {
    let meta = Meta::start(Script::default());
    let err = meta.refused(
        &["bucket", "create", "taken"],
        "bucket create taken: bucket taken already exists",
    );
    assert!(!err.contains("metadata"), "a Debug dump: {err}");
    meta.refused(&["bucket", "info", "nope"], "no bucket named nope");
}

#[test]
fn allow_sends_exactly_the_rights_named_and_prints_the_grant() {
    let meta = Meta::start(Script::default());
    let out = meta.ok(&["bucket", "allow", "b1", "--key", "AK2", "--read", "--write"]);
    assert_eq!(out.trim(), "key AK2 on bucket b1: read, write");
    let out = meta.ok(&["bucket", "allow", "b1", "--key", "AK3", "--owner"]);
    assert_eq!(out.trim(), "key AK3 on bucket b1: owner");
    let allow = |key: &str, read, write, owner| {
        Asked::Allow(AllowBucketRequest {
            bucket: "b1".into(),
            access_key_id: key.into(),
            read,
            write,
            owner,
        })
    };
    assert_eq!(
        meta.asked(),
        [
            allow("AK2", true, true, false),
            allow("AK3", false, false, true)
        ]
    );
}

#[test]
fn clap_refuses_allow_without_a_right_and_set_without_a_change() {
    let meta = Meta::start(Script::default());
    assert_clap_refuses(
        &meta,
        &["bucket", "allow", "b1", "--key", "AK2"],
        "required",
    );
    assert_clap_refuses(&meta, &["bucket", "allow", "b1", "--read"], "--key");
    assert_clap_refuses(&meta, &["bucket", "set", "b1"], "required");
    assert_clap_refuses(
        &meta,
        &["bucket", "set", "b1", "--owner", "AK2", "--no-owner"],
        "cannot be used with",
    );
    assert_clap_refuses(
        &meta,
        &["bucket", "set", "b1", "--max-retention-days=-1"],
        "invalid value",
    );
}

#[test]
fn deny_sends_the_key_and_a_refused_deny_names_the_way_out() {
    let meta = Meta::start(Script::default());
    let out = meta.ok(&["bucket", "deny", "b1", "--key", "AK2"]);
    assert!(out.contains("key AK2 has no rights on bucket b1"), "{out}");
    meta.refused(
        &["bucket", "deny", "b1", "--key", "AK1"],
        "give the bucket another owner first",
    );
    let deny = |key: &str| {
        Asked::Deny(DenyBucketRequest {
            bucket: "b1".into(),
            access_key_id: key.into(),
        })
    };
    assert_eq!(meta.asked(), [deny("AK2"), deny("AK1")]);
}

#[test]
fn set_sends_only_what_was_named_and_no_owner_as_empty() {
    let meta = Meta::start(Script::default());
    let out = meta.ok(&["bucket", "set", "b1", "--no-owner"]);
    assert_eq!(out.trim(), "bucket b1: owner -, max retention 36500 days");
    let out = meta.ok(&[
        "bucket",
        "set",
        "b1",
        "--owner",
        "AK1",
        "--max-retention-days",
        "0",
    ]);
    assert_eq!(
        out.trim(),
        "bucket b1: owner AK1 (alice), max retention 36500 days"
    );
    let out = meta.ok(&["bucket", "set", "b1", "--max-retention-days", "30"]);
    assert_eq!(
        out.trim(),
        "bucket b1: owner AK1 (alice), max retention 30 days"
    );
    let set = |owner: Option<&str>, days: Option<u32>| {
        Asked::Set(SetBucketRequest {
            name: "b1".into(),
            owner: owner.map(str::to_string),
            max_retention_days: days,
        })
    };
    assert_eq!(
        meta.asked(),
        [
            set(Some(""), None),
            set(Some("AK1"), Some(0)),
            set(None, Some(30)),
        ]
    );
}

#[test]
fn defaults_shows_without_a_flag_and_sets_with_one() {
    let meta = Meta::start(Script::default());
    let out = meta.ok(&["bucket", "defaults"]);
    assert!(out.contains("max retention 36500 days"), "{out}");
    let out = meta.ok(&[
        "bucket",
        "defaults",
        "--max-retention-days",
        "3650",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v, serde_json::json!({ "max_retention_days": 3650 }));
    let defaults = |days| {
        Asked::Defaults(SetBucketDefaultsRequest {
            max_retention_days: days,
        })
    };
    assert_eq!(meta.asked(), [defaults(None), defaults(Some(3650))]);
}

fn info() -> BucketInfoResponse {
    let mut b = bucket("vault", "AK1");
    b.versioning = "Enabled".into();
    b.object_lock_enabled = true;
    b.default_lock_mode = "GOVERNANCE".into();
    b.default_lock_days = 30;
    b.max_retention_days = 3650;
    let grant = |key: &str, read, write| BucketGrant {
        bucket: "vault".into(),
        access_key_id: key.into(),
        read,
        write,
        owner: false,
    };
    BucketInfoResponse {
        bucket: Some(b),
        grants: vec![grant("AK2", true, false), grant("AK3", false, true)],
        objects: 3,
        bytes: 3 << 20,
        versions: 5,
        version_bytes: 4 << 20,
        own_max_retention_days: 3650,
        cluster_max_retention_days: 36500,
        uploads: 1,
    }
}

#[test]
fn info_json_has_a_stable_shape() {
    let meta = Meta::start(Script {
        info: Some(info()),
        ..Script::default()
    });
    let out = meta.ok(&["bucket", "info", "vault", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let expected = serde_json::json!({
        "name": "vault",
        "versioning": "Enabled",
        "object_lock": true,
        "default_retention": { "mode": "GOVERNANCE", "days": 30, "years": 0 },
        "owner": "AK1",
        "owner_name": "alice",
        "max_retention_days": 3650,
        "own_max_retention_days": 3650,
        "cluster_max_retention_days": 36500,
        "grants": [
            { "access_key_id": "AK2", "read": true, "write": false, "owner": false },
            { "access_key_id": "AK3", "read": false, "write": true, "owner": false },
        ],
        "objects": 3,
        "bytes": 3u64 << 20,
        "versions": 5,
        "version_bytes": 4u64 << 20,
        "uploads": 1,
    });
    assert_eq!(v, expected);
    assert_eq!(
        meta.asked(),
        [Asked::Info(BucketInfoRequest {
            name: "vault".into()
        })]
    );
}

#[test]
fn info_as_text_names_owner_grants_limit_and_counts() {
    let mut i = info();
    i.own_max_retention_days = 0;
    let meta = Meta::start(Script {
        info: Some(i),
        ..Script::default()
    });
    let out = meta.ok(&["bucket", "info", "vault"]);
    let line = |k: &str| {
        out.lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_else(|| panic!("no {k} line: {out}"))
            .to_string()
    };
    assert!(line("owner").ends_with("AK1 (alice)"), "{out}");
    assert!(line("object lock").ends_with("GOVERNANCE 30d"), "{out}");
    assert!(
        line("max retention").ends_with("cluster default 36500 days"),
        "{out}"
    );
    assert!(line("objects").ends_with("3 (3.0 MiB)"), "{out}");
    assert!(line("versions").ends_with("5 (4.0 MiB)"), "{out}");
    assert!(line("uploads").ends_with('1'), "{out}");
    assert!(line("  AK2").ends_with("read"), "{out}");
    assert!(line("  AK3").ends_with("write"), "{out}");
}

#[test]
fn delete_is_sent_as_the_admin() {
    let meta = Meta::start(Script::default());
    let out = meta.ok(&["bucket", "delete", "old"]);
    assert_eq!(out.trim(), "bucket old deleted");
    assert_eq!(
        meta.asked(),
        [Asked::Delete(DeleteBucketRequest {
            name: "old".into(),
            access_key_id: String::new(),
        })]
    );
}

#[test]
fn key_create_sends_can_create_bucket_and_list_shows_it() {
    let meta = Meta::start(Script {
        keys: vec![
            AccessKey {
                access_key_id: "AK1".into(),
                name: "alice".into(),
                created_at_ms: 1,
                enabled: true,
                can_create_bucket: true,
            },
            AccessKey {
                access_key_id: "AK2".into(),
                name: "backup".into(),
                created_at_ms: 2,
                enabled: true,
                can_create_bucket: false,
            },
        ],
        ..Script::default()
    });
    meta.ok(&["key", "create", "backup", "--can-create-bucket", "false"]);
    meta.ok(&["key", "create", "--name", "alice"]);
    // The bare flag is true, as is `true` and `=true`; `=false` too.
    meta.ok(&["key", "create", "bare", "--can-create-bucket"]);
    meta.ok(&["key", "create", "--can-create-bucket", "--name", "bare2"]);
    meta.ok(&["key", "create", "t", "--can-create-bucket", "true"]);
    meta.ok(&["key", "create", "f", "--can-create-bucket=false"]);
    let create = |name: &str, can| {
        Asked::CreateKey(CreateAccessKeyRequest {
            name: name.into(),
            can_create_bucket: Some(can),
        })
    };
    assert_eq!(
        meta.asked(),
        [
            create("backup", false),
            create("alice", true),
            create("bare", true),
            create("bare2", true),
            create("t", true),
            create("f", false),
        ]
    );
    assert_clap_refuses(
        &meta,
        &["key", "create", "x", "--can-create-bucket", "maybe"],
        "invalid value",
    );
    // A word right after the bare flag is its value: refused, not a
    // key named otherwise or made with the wrong right.
    assert_clap_refuses(
        &meta,
        &["key", "create", "--can-create-bucket", "backup"],
        "invalid value",
    );
    assert_clap_refuses(
        &meta,
        &["key", "create", "x", "--name", "y"],
        "cannot be used with",
    );

    let out = meta.ok(&["key", "list"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("CREATE BUCKETS"), "{out}");
    let cols = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(cols(lines[1]), ["AK1", "yes", "yes", "alice"]);
    assert_eq!(cols(lines[2]), ["AK2", "yes", "no", "backup"]);
    let out = meta.ok(&["key", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[0]["can_create_bucket"], true, "{v}");
    assert_eq!(v[1]["can_create_bucket"], false, "{v}");
}
