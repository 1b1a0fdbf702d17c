//! The Meta service's S3-facing semantics on a real meta-server: listing
//! markers, version paging, error codes (hamster_proto::ErrorCode),
//! and the split-key guard on commits.

use hamster_proto::ErrorCode;
use hamster_proto::pb::{self, ListObjectsRequest, ListVersionsRequest};
use hamster_tests::meta::commit;
use hamster_tests::{Cluster, Kind};

#[tokio::test]
async fn start_after_and_markers_behave_as_s3() {
    let mut c = Cluster::new();
    let m = c.start(Kind::Meta, "meta-1");
    c.wait_healthy(m).await;
    let gw = c.gateway_identity("gw-test");
    let mut client = c.meta_client(m, &gw);
    client
        .create_bucket(pb::CreateBucketRequest {
            name: "bkt".into(),
            object_lock_enabled: true,
        })
        .await
        .expect("bucket");
    for key in ["a/b/c", "a/b/d", "dir/a", "dir/b", "dir/sub/x", "e"] {
        commit(&mut client, &c.kek_fingerprint(), "bkt", key, 1)
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

    // A version-id-marker that names no version is refused.
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
    // Rejections carry a stable code for the gateway.
    let e = client
        .create_bucket(pb::CreateBucketRequest {
            name: "bkt".into(),
            object_lock_enabled: false,
        })
        .await
        .expect_err("exists");
    assert_eq!(e.code(), tonic::Code::AlreadyExists);
    assert_eq!(ErrorCode::of(&e), Some(ErrorCode::BucketAlreadyExists));
    // Split-key guard: a data key wrapped by any master key but the
    // cluster's write key is refused, whoever sends it.
    let e = commit(&mut client, &"0".repeat(32), "bkt", "stranger", 1)
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
            })
            .await
            .map(drop),
        client
            .put_object_retention(pb::PutObjectRetentionRequest {
                bucket: "bkt".into(),
                key: "e".into(),
                mode: "FOREVER".into(),
                retain_until_ms: i64::MAX,
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
