//! The Meta service's S3-facing semantics on a real meta-server: listing
//! markers, version paging, error codes (hamster_proto::ErrorCode),
//! the split-key guard on commits, and the access key every gateway
//! write must name (ADR 0027).

use hamster_proto::ErrorCode;
use hamster_proto::pb::meta_client::MetaClient;
use hamster_proto::pb::{self, ListObjectsRequest, ListVersionsRequest};
use hamster_tests::meta::commit;
use hamster_tests::{Cluster, Kind};
use tonic::transport::Channel;

#[tokio::test]
async fn start_after_and_markers_behave_as_s3() {
    let mut c = Cluster::new();
    let m = c.start(Kind::Meta, "meta-1");
    c.wait_healthy(m).await;
    let gw = c.gateway_identity("gw-test");
    let mut client = c.meta_client(m, &gw);
    let owner = c.meta_key(m).await;
    client
        .create_bucket(pb::CreateBucketRequest {
            name: "bkt".into(),
            object_lock_enabled: true,
            access_key_id: owner.clone(),
        })
        .await
        .expect("bucket");
    for key in ["a/b/c", "a/b/d", "dir/a", "dir/b", "dir/sub/x", "e"] {
        commit(&mut client, &c.kek_fingerprint(), &owner, "bkt", key, 1)
            .await
            .expect("commit");
    }
    let list = async |client: &mut hamster_proto::pb::meta_client::MetaClient<_>,
                      prefix: &str,
                      start_after: &str| {
        let r = client
            .list_objects(ListObjectsRequest {
                bucket: "bkt".into(),
                prefix: prefix.into(),
                delimiter: "/".into(),
                start_after: start_after.into(),
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        (
            r.objects.into_iter().map(|o| o.key).collect::<Vec<_>>(),
            r.common_prefixes,
        )
    };
    // start-after equal to the prefix lists everything under the prefix.
    assert_eq!(
        list(&mut client, "dir/", "dir/").await,
        (
            vec!["dir/a".to_string(), "dir/b".to_string()],
            vec!["dir/sub/".to_string()]
        )
    );
    // A marker that is a common prefix of this listing resumes after it.
    assert_eq!(
        list(&mut client, "", "a/").await,
        (vec!["e".to_string()], vec!["dir/".to_string()])
    );
    // A marker that is not one of this listing's prefixes is just a key:
    // "a/b/c" sorts after it and still rolls up into "a/".
    assert_eq!(
        list(&mut client, "", "a/b/").await,
        (
            vec!["e".to_string()],
            vec!["a/".to_string(), "dir/".to_string()]
        )
    );

    // A malformed version-id-marker that names no version is refused (a
    // well-formed one is a position, even once its version is deleted).
    let e = client
        .list_versions(ListVersionsRequest {
            bucket: "bkt".into(),
            key_marker: "e".into(),
            version_id_marker: "no-such-version".into(),
            ..Default::default()
        })
        .await
        .expect_err("bad marker");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    // Rejections carry a stable code for the gateway: the bucket is the
    // owner's own, or another key's.
    let other = c.admin_create_key(m, "other", None).await;
    for (who, code) in [
        (&owner, ErrorCode::BucketAlreadyOwnedByYou),
        (&other, ErrorCode::BucketAlreadyExists),
    ] {
        let e = client
            .create_bucket(pb::CreateBucketRequest {
                name: "bkt".into(),
                object_lock_enabled: false,
                access_key_id: who.clone(),
            })
            .await
            .expect_err("exists");
        assert_eq!(e.code(), tonic::Code::AlreadyExists);
        assert_eq!(ErrorCode::of(&e), Some(code), "{e:?}");
    }
    // Split-key guard: a data key wrapped by any master key but the
    // cluster's write key is refused, whoever sends it.
    let e = commit(&mut client, &"0".repeat(32), &owner, "bkt", "stranger", 1)
        .await
        .expect_err("foreign master key");
    assert_eq!(ErrorCode::of(&e), Some(ErrorCode::WrongMasterKey), "{e:?}");
    assert!(e.message().contains(&c.kek_fingerprint()), "{e:?}");

    // A versioning state or lock mode outside its kind is refused as
    // InvalidArgument and changes nothing (apply refused these before
    // they were kinds; the edge refuses them now, before any proposal).
    let before = client
        .head_bucket(pb::HeadBucketRequest { name: "bkt".into() })
        .await
        .expect("head")
        .into_inner()
        .bucket;
    let refusals = [
        client
            .put_bucket_versioning(pb::PutBucketVersioningRequest {
                bucket: "bkt".into(),
                status: "On".into(),
                access_key_id: owner.clone(),
            })
            .await
            .map(drop),
        client
            .put_object_retention(pb::PutObjectRetentionRequest {
                bucket: "bkt".into(),
                key: "e".into(),
                mode: "FOREVER".into(),
                retain_until_ms: i64::MAX,
                access_key_id: owner.clone(),
                ..Default::default()
            })
            .await
            .map(drop),
        client
            .put_object_lock_configuration(pb::PutObjectLockConfigurationRequest {
                bucket: "bkt".into(),
                default_mode: "STRICT".into(),
                default_days: 1,
                default_years: 0,
                access_key_id: owner.clone(),
                enable: false,
            })
            .await
            .map(drop),
    ];
    for (what, r) in ["On", "FOREVER", "STRICT"].iter().zip(refusals) {
        let e = r.expect_err(what);
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{what}: {e:?}");
        assert_eq!(
            ErrorCode::of(&e),
            Some(ErrorCode::InvalidArgument),
            "{what}"
        );
    }
    let after = client
        .head_bucket(pb::HeadBucketRequest { name: "bkt".into() })
        .await
        .expect("head")
        .into_inner()
        .bucket;
    assert_eq!(after, before);
    let e_version = client
        .get_version(pb::GetVersionRequest {
            bucket: "bkt".into(),
            key: "e".into(),
            version_id: String::new(),
        })
        .await
        .expect("get")
        .into_inner()
        .version
        .expect("a version");
    assert_eq!(e_version.lock_mode, "");
}

/// ADR 0027 on the Meta service: a gateway's write names an access key
/// with the right for it, or is refused as AccessDenied; ListBuckets shows
/// a key its own buckets only, in pages; LookupAccessKey carries the key's
/// rights for the gateway's cache.
#[tokio::test]
async fn gateway_writes_act_for_a_key_with_the_right() {
    let mut c = Cluster::new();
    let m = c.start(Kind::Meta, "meta-1");
    c.wait_healthy(m).await;
    let gw = c.gateway_identity("gw-test");
    let mut client = c.meta_client(m, &gw);
    let kek = c.kek_fingerprint();
    let owner = c.meta_key(m).await;
    let other = c.admin_create_key(m, "other", None).await;
    let no_create = c.admin_create_key(m, "no-create", Some(false)).await;
    let create = |name: &str, key: &str| pb::CreateBucketRequest {
        name: name.into(),
        object_lock_enabled: false,
        access_key_id: key.into(),
    };
    for name in ["own-a", "own-b", "own-c"] {
        client
            .create_bucket(create(name, &owner))
            .await
            .expect(name);
    }

    // No key: a gateway older than the meta tier; told to upgrade.
    let e = commit(&mut client, &kek, "", "own-a", "k", 1)
        .await
        .expect_err("no key");
    assert_eq!(ErrorCode::of(&e), Some(ErrorCode::AccessDenied), "{e:?}");
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(e.message().contains("upgrade"), "{e:?}");
    let e = client
        .list_buckets(pb::ListBucketsRequest::default())
        .await
        .expect_err("no key");
    assert_eq!(ErrorCode::of(&e), Some(ErrorCode::AccessDenied), "{e:?}");
    // A key with no grant, an unknown key, a key that may not create.
    for key in [other.as_str(), "HKNOSUCHKEY000000000"] {
        let e = commit(&mut client, &kek, key, "own-a", "k", 1)
            .await
            .expect_err("no grant");
        assert_eq!(
            ErrorCode::of(&e),
            Some(ErrorCode::AccessDenied),
            "{key}: {e:?}"
        );
    }
    let e = client
        .create_bucket(create("mine", &no_create))
        .await
        .expect_err("may not create");
    assert_eq!(ErrorCode::of(&e), Some(ErrorCode::AccessDenied), "{e:?}");
    let listed = list_objects(&mut client, "own-a").await;
    assert!(listed.is_empty(), "a refused commit left {listed:?}");
    commit(&mut client, &kek, &owner, "own-a", "k", 1)
        .await
        .expect("the owner writes");

    // ListBuckets: a key's own, paged by name; none for the others.
    let page = async |client: &mut MetaClient<Channel>, key: &str, token: &str| {
        client
            .list_buckets(pb::ListBucketsRequest {
                access_key_id: key.into(),
                continuation_token: token.into(),
                max_buckets: 2,
                ..Default::default()
            })
            .await
            .expect("list buckets")
            .into_inner()
    };
    let first = page(&mut client, &owner, "").await;
    let names: Vec<&str> = first.buckets.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["own-a", "own-b"]);
    assert_eq!(first.buckets[0].owner, owner);
    assert_eq!(first.buckets[0].owner_name, "meta-tests");
    assert_eq!(first.buckets[0].max_retention_days, 36_500);
    let second = page(&mut client, &owner, &first.next_continuation_token).await;
    let names: Vec<&str> = second.buckets.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["own-c"]);
    assert_eq!(second.next_continuation_token, "");
    assert!(page(&mut client, &other, "").await.buckets.is_empty());

    // What a gateway caches with the secret.
    let look = client
        .lookup_access_key(pb::LookupAccessKeyRequest {
            access_key_id: owner.clone(),
        })
        .await
        .expect("lookup")
        .into_inner();
    assert!(look.can_create_bucket);
    assert_eq!(look.name, "meta-tests");
    let mut granted: Vec<(&str, bool, bool, bool)> = look
        .grants
        .iter()
        .map(|g| (g.bucket.as_str(), g.read, g.write, g.owner))
        .collect();
    granted.sort();
    assert_eq!(
        granted,
        [
            ("own-a", true, true, true),
            ("own-b", true, true, true),
            ("own-c", true, true, true)
        ]
    );
    let grants = client
        .bucket_grants(pb::BucketGrantsRequest {
            bucket: "own-a".into(),
        })
        .await
        .expect("grants")
        .into_inner();
    assert_eq!(grants.bucket.map(|b| b.owner), Some(owner.clone()));
    assert!(grants.grants.is_empty(), "{:?}", grants.grants);
}

/// The keys of `bucket`'s first page.
async fn list_objects(client: &mut MetaClient<Channel>, bucket: &str) -> Vec<String> {
    client
        .list_objects(ListObjectsRequest {
            bucket: bucket.into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .objects
        .into_iter()
        .map(|o| o.key)
        .collect()
}
