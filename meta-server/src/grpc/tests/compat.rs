//! Issue 21 review fixes through the Meta service: CompleteMultipart's
//! listed checksums are compared only with the parts of the request's own
//! upload, and DeleteBucket aborts uploads with a bounded answer.

use hamster_proto::pb::admin_server::Admin;
use hamster_proto::pb::meta_server::Meta as _;
use hamster_proto::{ErrorCode, pb};

use super::{Node, admin, code, gateway};
use crate::state::commands::{Actor, Op};
use crate::state::model::{Part, ShardLocation, ShardMap};
use crate::state::reads as q;

const ETAG: &str = "0123456789abcdef0123456789abcdef";
const SUM: &str = "AAAAAA==";

/// Key `key` begins an upload of `bucket`/"k" with one part stored with
/// checksum [`SUM`]; answers its id.
async fn upload_with_part(n: &Node, key: &str, bucket: &str) -> String {
    let r = pb::BeginMultipartRequest {
        upload: Some(pb::MultipartUpload {
            bucket: bucket.into(),
            key: "k".into(),
            ..Default::default()
        }),
        access_key_id: key.into(),
        ..Default::default()
    };
    let out = n.gateway.begin_multipart(gateway(r)).await.expect("begin");
    let id = out.into_inner().upload.expect("upload").upload_id;
    let part = Part {
        part_number: 1,
        size: 1,
        etag: ETAG.into(),
        shard_map: Some(ShardMap {
            data_shards: 1,
            parity_shards: 0,
            segment_size: 1 << 20,
            shards: vec![ShardLocation {
                index: 0,
                blob_id: "blob-1".into(),
                shard_id: format!("{id}-shard"),
                checksum: vec![1],
            }],
        }),
        checksum_value: SUM.into(),
        ..Default::default()
    };
    let op = Op::CommitPart {
        bucket: bucket.into(),
        key: "k".into(),
        upload_id: id.clone(),
        part,
    };
    let by = Actor::Key(key.into());
    n.meta.write_for(by, None, op).await.expect("part");
    id
}

fn complete(
    key: &str,
    bucket: &str,
    object: &str,
    id: &str,
    sum: &str,
) -> pb::CompleteMultipartRequest {
    pb::CompleteMultipartRequest {
        bucket: bucket.into(),
        key: object.into(),
        upload_id: id.into(),
        parts: vec![pb::Part {
            part_number: 1,
            etag: ETAG.into(),
            checksum_value: sum.into(),
            ..Default::default()
        }],
        access_key_id: key.into(),
        ..Default::default()
    }
}

/// Before the fix, another bucket's key learnt whether a checksum it
/// guessed was the part's: InvalidPart for a wrong one.
#[tokio::test]
async fn listed_checksums_are_compared_only_within_the_named_upload() {
    let n = Node::start().await;
    let (k1, k2) = (n.key("one", true).await, n.key("two", true).await);
    n.create(&k1, "bkt-a").await.expect("bkt-a");
    n.create(&k2, "bkt-b").await.expect("bkt-b");
    let id = upload_with_part(&n, &k1, "bkt-a").await;
    let call = |r| n.gateway.complete_multipart(gateway(r));

    // Another bucket, or another key of the same bucket: NoSuchUpload,
    // whatever checksum is listed.
    for sum in ["BBBBBB==", SUM] {
        let r = call(complete(&k2, "bkt-b", "k", &id, sum)).await;
        assert_eq!(code(r), ErrorCode::NoSuchUpload, "{sum}");
        let r = call(complete(&k1, "bkt-a", "other", &id, sum)).await;
        assert_eq!(code(r), ErrorCode::NoSuchUpload, "{sum}");
    }
    // The upload's own bucket and key: a wrong checksum is InvalidPart,
    // the part's completes.
    let r = call(complete(&k1, "bkt-a", "k", &id, "BBBBBB==")).await;
    assert_eq!(code(r), ErrorCode::InvalidPart);
    let r = call(complete(&k1, "bkt-a", "k", &id, SUM)).await;
    let v = r.expect("completes").into_inner().version.expect("version");
    assert_eq!(v.upload_id, id);
}

#[tokio::test]
async fn delete_bucket_aborts_uploads_for_its_owner_only() {
    let n = Node::start().await;
    let (k1, k2) = (n.key("one", true).await, n.key("two", true).await);
    n.create(&k1, "bkt-a").await.expect("bkt-a");
    n.create(&k1, "bkt-c").await.expect("bkt-c");
    let a = upload_with_part(&n, &k1, "bkt-a").await;
    let c = upload_with_part(&n, &k1, "bkt-c").await;
    let delete = |key: &str, name: &str| pb::DeleteBucketRequest {
        name: name.into(),
        access_key_id: key.into(),
    };
    // Another key may not: refused, the upload kept.
    let r = n.gateway.delete_bucket(gateway(delete(&k2, "bkt-a"))).await;
    assert_eq!(code(r), ErrorCode::AccessDenied);
    let upload = |id: String| n.meta.read(async move |c| q::upload(c, &id).await);
    assert!(upload(a.clone()).await.expect("read").is_some());
    // The owner through the gateway, the admin directly: both go, with
    // their uploads and parts.
    n.gateway
        .delete_bucket(gateway(delete(&k1, "bkt-a")))
        .await
        .expect("owner deletes");
    n.admin
        .delete_bucket(admin(delete("", "bkt-c")))
        .await
        .expect("admin deletes");
    for id in [a, c] {
        assert!(upload(id.clone()).await.expect("read").is_none());
        let parts = n.meta.read(async move |c| q::parts(c, &id).await);
        assert!(parts.await.expect("read").is_empty());
    }
}
