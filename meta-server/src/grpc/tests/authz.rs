//! Per-key authorization through the services (ADR 0027): who a call acts
//! for, what each service answers about owners, grants and limits, and
//! the Raft.Forward edge.

use hamster_proto::pb::admin_server::Admin;
use hamster_proto::pb::meta_server::Meta as _;
use hamster_proto::pb::raft_server::Raft as _;
use hamster_proto::{ErrorCode, pb};
use tonic::Request;

use super::{Node, admin, code, gateway};
use crate::cluster::{CallError, ForwardError, ForwardRequest, now_ms};
use crate::raft::codec::{decode, encode};
use crate::raft::service::RaftService;
use crate::state::commands::{Actor, Command, MetaError, Op, Response};
use crate::state::reads as q;

fn delete(key: &str, bucket: &str, bypass: bool) -> pb::DeleteObjectRequest {
    pb::DeleteObjectRequest {
        bucket: bucket.into(),
        key: "k".into(),
        bypass_governance: bypass,
        access_key_id: key.into(),
        ..Default::default()
    }
}

fn versioning(key: &str, bucket: &str) -> pb::PutBucketVersioningRequest {
    pb::PutBucketVersioningRequest {
        bucket: bucket.into(),
        status: "Enabled".into(),
        access_key_id: key.into(),
    }
}

#[tokio::test]
async fn a_gateway_call_naming_no_key_is_refused_and_changes_nothing() {
    let n = Node::start().await;
    assert_eq!(code(n.create("", "bkt1").await), ErrorCode::AccessDenied);
    assert_eq!(code(n.list("", "", 0).await), ErrorCode::AccessDenied);
    let r = n
        .gateway
        .delete_object(gateway(delete("", "bkt1", false)))
        .await;
    assert_eq!(code(r), ErrorCode::AccessDenied);
    let r = n
        .gateway
        .put_bucket_versioning(gateway(versioning("", "bkt1")))
        .await;
    assert_eq!(code(r), ErrorCode::AccessDenied);
    let head = pb::HeadBucketRequest {
        name: "bkt1".into(),
    };
    let r = n.gateway.head_bucket(gateway(head)).await;
    assert_eq!(code(r), ErrorCode::NoSuchBucket);
}

#[tokio::test]
async fn a_bucket_is_its_creators_and_answers_its_owners_name_and_limit() {
    let n = Node::start().await;
    let alice = n.key("alice", true).await;
    let bob = n.key("", true).await;
    let b = n.create(&alice, "bkt1").await.expect("created");
    assert_eq!(
        (
            b.owner.as_str(),
            b.owner_name.as_str(),
            b.max_retention_days
        ),
        (alice.as_str(), "alice", 36_500)
    );
    assert_eq!(
        code(n.create(&bob, "bkt1").await),
        ErrorCode::BucketAlreadyExists
    );
    assert_eq!(
        code(n.create(&alice, "bkt1").await),
        ErrorCode::BucketAlreadyOwnedByYou
    );
    // A key with no name is shown by its id.
    let b = n.create(&bob, "bkt2").await.expect("created");
    assert_eq!(b.owner_name, bob);
    let head = pb::HeadBucketRequest {
        name: "bkt1".into(),
    };
    let b = n.gateway.head_bucket(gateway(head)).await.expect("head");
    let b = b.into_inner().bucket.expect("bucket");
    assert_eq!((b.owner, b.owner_name), (alice, "alice".to_string()));
}

#[tokio::test]
async fn a_key_that_may_not_create_buckets_is_refused() {
    let n = Node::start().await;
    let reader = n.key("reader", false).await;
    assert_eq!(
        code(n.create(&reader, "bkt1").await),
        ErrorCode::AccessDenied
    );
    let keys = n
        .admin
        .list_access_keys(admin(pb::ListAccessKeysRequest {}))
        .await;
    let keys = keys.expect("keys").into_inner().keys;
    assert_eq!(keys.len(), 1);
    assert!(!keys[0].can_create_bucket, "{keys:?}");
    let r = pb::LookupAccessKeyRequest {
        access_key_id: reader.clone(),
    };
    let found = n
        .gateway
        .lookup_access_key(gateway(r))
        .await
        .expect("lookup");
    assert!(!found.into_inner().can_create_bucket);
}

#[tokio::test]
async fn a_key_lists_only_the_buckets_it_reaches_a_page_at_a_time() {
    let n = Node::start().await;
    let alice = n.key("alice", true).await;
    let bob = n.key("bob", true).await;
    for b in ["bkt1", "bkt2", "bkt3"] {
        n.create(&alice, b).await.expect("created");
    }
    assert_eq!(
        n.list(&bob, "", 0).await.expect("list"),
        (vec![], String::new())
    );
    n.allow("bkt2", &bob, "r").await.expect("allowed");
    assert_eq!(
        n.list(&bob, "", 0).await.expect("list"),
        (vec!["bkt2".to_string()], String::new())
    );
    let (page, next) = n.list(&alice, "", 2).await.expect("list");
    assert_eq!(
        (page, next.as_str()),
        (vec!["bkt1".into(), "bkt2".into()], "bkt2")
    );
    let (page, next) = n.list(&alice, &next, 2).await.expect("list");
    assert_eq!((page, next.as_str()), (vec!["bkt3".into()], ""));
    // The admin lists every bucket, or what one key reaches.
    let all = pb::ListBucketsRequest::default();
    let all = n.admin.list_buckets(admin(all)).await.expect("list");
    assert_eq!(all.into_inner().buckets.len(), 3);
    let bobs = pb::ListBucketsRequest {
        access_key_id: bob.clone(),
        ..Default::default()
    };
    let bobs = n.admin.list_buckets(admin(bobs)).await.expect("list");
    assert_eq!(bobs.into_inner().buckets.len(), 1);
}

#[tokio::test]
async fn lookup_carries_the_keys_name_and_its_rights_on_each_bucket() {
    let n = Node::start().await;
    let alice = n.key("alice", true).await;
    let bob = n.key("bob", false).await;
    n.create(&alice, "bkt1").await.expect("created");
    n.create(&alice, "bkt2").await.expect("created");
    n.allow("bkt1", &bob, "w").await.expect("allowed");
    let lookup = async |id: &str| {
        let r = pb::LookupAccessKeyRequest {
            access_key_id: id.into(),
        };
        n.gateway
            .lookup_access_key(gateway(r))
            .await
            .map(|r| r.into_inner())
    };
    let a = lookup(&alice).await.expect("lookup");
    assert_eq!((a.name.as_str(), a.can_create_bucket), ("alice", true));
    let rights: Vec<_> = a
        .grants
        .iter()
        .map(|g| (g.bucket.as_str(), g.read, g.write, g.owner))
        .collect();
    assert_eq!(
        rights,
        [("bkt1", true, true, true), ("bkt2", true, true, true)]
    );
    let b = lookup(&bob).await.expect("lookup");
    let rights: Vec<_> = b
        .grants
        .iter()
        .map(|g| (g.bucket.as_str(), g.read, g.write, g.owner))
        .collect();
    assert_eq!(rights, [("bkt1", false, true, false)]);
    assert_eq!(
        code(lookup("HKNOSUCHKEY").await),
        ErrorCode::NoSuchAccessKey
    );
}

#[tokio::test]
async fn the_key_a_call_names_is_the_one_apply_checks() {
    let n = Node::start().await;
    let alice = n.key("alice", true).await;
    let bob = n.key("bob", true).await;
    n.create(&alice, "bkt1").await.expect("created");
    let del = async |key: &str, bypass| {
        n.gateway
            .delete_object(gateway(delete(key, "bkt1", bypass)))
            .await
    };
    assert_eq!(code(del(&bob, false).await), ErrorCode::AccessDenied);
    n.allow("bkt1", &bob, "w").await.expect("allowed");
    del(&bob, false).await.expect("write opens DeleteObject");
    // Bypassing GOVERNANCE is the owner's, even where it would not matter.
    assert_eq!(code(del(&bob, true).await), ErrorCode::AccessDenied);
    let r = n
        .gateway
        .put_bucket_versioning(gateway(versioning(&bob, "bkt1")))
        .await;
    assert_eq!(code(r), ErrorCode::AccessDenied);
    n.allow("bkt1", &bob, "o").await.expect("allowed");
    del(&bob, true).await.expect("an owner may bypass");
    let r = n
        .gateway
        .put_bucket_versioning(gateway(versioning(&bob, "bkt1")))
        .await;
    r.expect("an owner sets versioning");
    // Denied: closed at apply at once.
    let deny = pb::DenyBucketRequest {
        bucket: "bkt1".into(),
        access_key_id: bob.clone(),
    };
    n.admin.deny_bucket(admin(deny)).await.expect("denied");
    assert_eq!(code(del(&bob, false).await), ErrorCode::AccessDenied);
    del(&alice, false).await.expect("the owner still writes");
}

#[tokio::test]
async fn the_admin_manages_owners_grants_and_limits() {
    let n = Node::start().await;
    let alice = n.key("alice", true).await;
    let bob = n.key("bob", true).await;
    let create = async |name: &str, owner: &str| {
        let r = pb::AdminCreateBucketRequest {
            name: name.into(),
            object_lock_enabled: false,
            owner: owner.into(),
        };
        n.admin
            .create_bucket(admin(r))
            .await
            .map(|r| r.into_inner().bucket.expect("bucket"))
    };
    let b = create("owned", &alice).await.expect("created");
    assert_eq!(
        (b.owner.as_str(), b.owner_name.as_str()),
        (alice.as_str(), "alice")
    );
    let b = create("nobodys", "").await.expect("created");
    assert_eq!((b.owner.as_str(), b.owner_name.as_str()), ("", ""));
    assert_eq!(
        code(create("owned", "").await),
        ErrorCode::BucketAlreadyExists
    );
    assert_eq!(
        code(create("other", "HKNOSUCHKEY").await),
        ErrorCode::NoSuchAccessKey
    );
    assert_eq!(
        code(create("Bad_Name", "").await),
        ErrorCode::InvalidArgument
    );

    assert_eq!(
        code(n.allow("owned", &bob, "").await),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(n.allow("missing", &bob, "r").await),
        ErrorCode::NoSuchBucket
    );
    let g = n.allow("owned", &bob, "r").await.expect("allowed");
    assert_eq!((g.read, g.write, g.owner), (true, false, false));
    let g = n.allow("owned", &bob, "w").await.expect("allowed");
    assert_eq!(
        (g.read, g.write, g.owner),
        (true, true, false),
        "rights add up"
    );

    let info = async |name: &str| {
        let r = pb::BucketInfoRequest { name: name.into() };
        n.admin.bucket_info(admin(r)).await.map(|r| r.into_inner())
    };
    let i = info("owned").await.expect("info");
    let grants: Vec<_> = i.grants.iter().map(|g| g.access_key_id.as_str()).collect();
    assert_eq!(grants, [bob.as_str()], "the owner's own is Bucket.owner");
    assert_eq!((i.objects, i.versions, i.uploads), (0, 0, 0));
    assert_eq!(
        (i.own_max_retention_days, i.cluster_max_retention_days),
        (0, 36_500)
    );
    assert_eq!(code(info("missing").await), ErrorCode::NoSuchBucket);
    let acl = pb::BucketGrantsRequest {
        bucket: "owned".into(),
    };
    let acl = n
        .gateway
        .bucket_grants(gateway(acl))
        .await
        .expect("grants")
        .into_inner();
    assert_eq!(acl.grants.len(), 1);
    assert_eq!(acl.bucket.expect("bucket").owner, alice);
    let acl = pb::BucketGrantsRequest {
        bucket: "missing".into(),
    };
    assert_eq!(
        code(n.gateway.bucket_grants(gateway(acl)).await),
        ErrorCode::NoSuchBucket
    );

    let deny = |key: &str| pb::DenyBucketRequest {
        bucket: "owned".into(),
        access_key_id: key.into(),
    };
    assert_eq!(
        code(n.admin.deny_bucket(admin(deny(&alice))).await),
        ErrorCode::InvalidRequest
    );
    n.admin
        .deny_bucket(admin(deny(&bob)))
        .await
        .expect("denied");
    assert!(info("owned").await.expect("info").grants.is_empty());

    let set = async |owner: Option<&str>, days: Option<u32>| {
        let r = pb::SetBucketRequest {
            name: "owned".into(),
            owner: owner.map(Into::into),
            max_retention_days: days,
        };
        n.admin
            .set_bucket(admin(r))
            .await
            .map(|r| r.into_inner().bucket.expect("bucket"))
    };
    assert_eq!(
        set(None, Some(30)).await.expect("set").max_retention_days,
        30
    );
    assert_eq!(
        info("owned").await.expect("info").own_max_retention_days,
        30
    );
    assert_eq!(
        code(set(None, Some(365_001)).await),
        ErrorCode::InvalidArgument
    );
    let b = set(Some(&bob), None).await.expect("set");
    assert_eq!((b.owner.as_str(), b.max_retention_days), (bob.as_str(), 30));
    let b = set(None, None)
        .await
        .expect("nothing to change answers the bucket");
    assert_eq!(b.owner, bob);
    assert_eq!(
        set(None, Some(0)).await.expect("set").max_retention_days,
        36_500
    );
    assert_eq!(set(Some(""), None).await.expect("set").owner, "");

    let defaults = async |days: Option<u32>| {
        let r = pb::SetBucketDefaultsRequest {
            max_retention_days: days,
        };
        n.admin
            .set_bucket_defaults(admin(r))
            .await
            .map(|r| r.into_inner().max_retention_days)
    };
    assert_eq!(defaults(None).await.expect("defaults"), 36_500);
    assert_eq!(defaults(Some(100)).await.expect("defaults"), 100);
    assert_eq!(defaults(None).await.expect("defaults"), 100);
    assert_eq!(code(defaults(Some(0)).await), ErrorCode::InvalidArgument);
    assert_eq!(
        info("owned")
            .await
            .expect("info")
            .cluster_max_retention_days,
        100
    );
    let head = pb::HeadBucketRequest {
        name: "owned".into(),
    };
    let b = n.gateway.head_bucket(gateway(head)).await.expect("head");
    assert_eq!(
        b.into_inner().bucket.expect("bucket").max_retention_days,
        100
    );

    let del = pb::DeleteBucketRequest {
        name: "owned".into(),
        ..Default::default()
    };
    n.admin
        .delete_bucket(admin(del))
        .await
        .expect("the admin deletes an empty bucket");
}

/// Buckets from before owners (or whose owner key was deleted) are
/// ownerless: AdoptBuckets gives them the only key, or the one named.
#[tokio::test]
async fn the_admin_adopts_ownerless_buckets() {
    let n = Node::start().await;
    let adopt = async |owner: &str| {
        let r = pb::AdoptBucketsRequest {
            owner: owner.into(),
        };
        n.admin
            .adopt_buckets(admin(r))
            .await
            .map(|r| r.into_inner())
    };
    let create = async |name: &str| {
        let r = pb::AdminCreateBucketRequest {
            name: name.into(),
            ..Default::default()
        };
        n.admin.create_bucket(admin(r)).await.expect("created");
    };
    create("legacy2").await;
    create("legacy1").await;
    assert_eq!(code(adopt("").await), ErrorCode::InvalidRequest, "no key");
    let alice = n.key("alice", true).await;
    assert_eq!(n.list(&alice, "", 0).await.expect("list").0.len(), 0);
    let out = adopt("").await.expect("the only key");
    assert_eq!(out.owner, alice);
    assert_eq!(out.buckets, ["legacy1", "legacy2"]);
    let (names, _) = n.list(&alice, "", 0).await.expect("list");
    assert_eq!(names, ["legacy1", "legacy2"]);

    let bob = n.key("bob", true).await;
    create("legacy3").await;
    assert_eq!(code(adopt("").await), ErrorCode::InvalidRequest, "several");
    assert_eq!(code(adopt("HKNOSUCHKEY").await), ErrorCode::NoSuchAccessKey);
    assert_eq!(code(adopt("not a key").await), ErrorCode::InvalidArgument);
    let out = adopt(&bob).await.expect("named");
    assert_eq!(
        (out.owner.as_str(), &out.buckets[..]),
        (bob.as_str(), &["legacy3".to_string()][..])
    );
    assert_eq!(n.list(&bob, "", 0).await.expect("list").0, ["legacy3"]);
    assert_eq!(n.list(&alice, "", 0).await.expect("list").0.len(), 2);

    let r = pb::AdoptBucketsRequest { owner: bob };
    let r = n.admin.adopt_buckets(gateway(r)).await;
    assert_eq!(code(r), ErrorCode::RoleNotAdmitted);
}

#[tokio::test]
async fn the_admin_service_refuses_a_caller_without_an_admin_identity() {
    let n = Node::start().await;
    let r = pb::SetBucketDefaultsRequest {
        max_retention_days: Some(10),
    };
    let r = n.admin.set_bucket_defaults(gateway(r)).await;
    assert_eq!(code(r), ErrorCode::RoleNotAdmitted);
    let r = pb::SetBucketDefaultsRequest {
        max_retention_days: Some(10),
    };
    let r = n.admin.set_bucket_defaults(Request::new(r)).await;
    assert_eq!(code(r), ErrorCode::Unauthenticated);
}

/// What Raft.Forward answers `fwd` with, on the leader.
async fn forward(n: &Node, fwd: &ForwardRequest) -> Response {
    let svc = RaftService::new(n.meta.clone());
    let out = svc
        .forward(Request::new(encode(fwd).expect("encode")))
        .await
        .expect("forwarded");
    let answer: Result<Response, ForwardError> = decode(out.get_ref()).expect("decode");
    answer.expect("answered")
}

#[tokio::test]
async fn a_forwarded_bucket_command_must_name_its_actor() {
    let n = Node::start().await;
    let alice = n.key("alice", true).await;
    let create = |name: &str| Op::CreateBucket {
        name: name.into(),
        object_lock_enabled: false,
        owner: None,
    };
    // "Legacy" (no actor) is for old log entries, never for a forwarder.
    let forged = Command::new("f1", now_ms(), create("bkt1"));
    let r = forward(&n, &ForwardRequest::Write(Box::new(forged.clone()))).await;
    assert!(
        matches!(r, Response::Err(MetaError::AccessDenied(_))),
        "{r:?}"
    );
    let batch = Command::new("f2", now_ms(), Op::Batch(vec![forged]));
    let r = forward(&n, &ForwardRequest::Write(Box::new(batch))).await;
    assert!(
        matches!(r, Response::Err(MetaError::AccessDenied(_))),
        "{r:?}"
    );
    let exists = async |name: &str| {
        let name = name.to_string();
        n.meta
            .read(async |c| q::bucket(c, &name).await)
            .await
            .expect("read")
            .is_some()
    };
    assert!(!exists("bkt1").await, "nothing was applied");
    // A key the apply does not know is refused there; a real one works.
    let by = |k: &str| Actor::Key(k.into());
    let cmd = Command::new("f3", now_ms(), create("bkt1")).by(by("HKNOSUCHKEY"));
    let r = forward(&n, &ForwardRequest::Write(Box::new(cmd))).await;
    assert!(
        matches!(r, Response::Err(MetaError::AccessDenied(_))),
        "{r:?}"
    );
    let cmd = Command::new("f4", now_ms(), create("bkt1")).by(by(&alice));
    let r = forward(&n, &ForwardRequest::Write(Box::new(cmd))).await;
    assert!(
        matches!(&r, Response::Bucket(b) if b.owner == alice),
        "{r:?}"
    );
    // The new admin ops refuse a key as their actor.
    let op = Op::SetBucketDefaults {
        max_retention_days: 10,
    };
    let cmd = Command::new("f5", now_ms(), op).by(by(&alice));
    let r = forward(&n, &ForwardRequest::Write(Box::new(cmd))).await;
    assert!(
        matches!(r, Response::Err(MetaError::AccessDenied(_))),
        "{r:?}"
    );
}

#[tokio::test]
async fn this_node_never_proposes_a_bucket_command_without_an_actor() {
    let n = Node::start().await;
    let op = Op::DeleteBucket {
        name: "bkt1".into(),
        abort_uploads: false,
    };
    let r = n.meta.write(op).await;
    assert!(
        matches!(&r, Err(CallError::Failed(m)) if m.contains("DeleteBucket")),
        "{r:?}"
    );
}
