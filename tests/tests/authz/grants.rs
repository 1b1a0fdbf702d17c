//! Grants, step by step: bob on alice's bucket with no grant, with read,
//! with read and write, and after a deny.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::copy_object::CopyObjectError;
use aws_sdk_s3::operation::delete_object::DeleteObjectError;
use aws_sdk_s3::operation::put_object::PutObjectError;
use aws_sdk_s3::operation::upload_part::UploadPartError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use hamster_tests::authz::{Tenant, within_cache_window};
use hamster_tests::s3::{
    S3Result, assert_s3_error, delete_version, error_status, get_bytes, head_version,
};

use crate::{DOC, World};

type Client = aws_sdk_s3::Client;

/// 403 AccessDenied.
#[track_caller]
pub fn denied<T, E>(r: S3Result<T, E>)
where
    E: ProvideErrorMetadata + std::fmt::Debug,
{
    assert_s3_error(r, "AccessDenied", 403);
}

/// The HTTP status of a failed call (HEAD answers carry no error code).
pub fn status_of<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    error_status(e).1
}

/// Bucket names `t` sees in ListBuckets.
pub async fn bucket_names(t: &Tenant) -> Vec<String> {
    let out = t.s3.list_buckets().send().await.expect("list buckets");
    out.buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_string))
        .collect()
}

/// PUTs `body` to `bucket/key` as `c`.
pub async fn put(c: &Client, bucket: &str, key: &str, body: &[u8]) -> S3Result<(), PutObjectError> {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .map(drop)
}

/// CopyObject of `source` ("bucket/key") to `bucket/key` as `c`.
pub async fn copy(
    c: &Client,
    bucket: &str,
    key: &str,
    source: &str,
) -> S3Result<(), CopyObjectError> {
    c.copy_object()
        .bucket(bucket)
        .key(key)
        .copy_source(source)
        .send()
        .await
        .map(drop)
}

/// DeleteObject of `bucket/key` (no version id) as `c`.
pub async fn delete(c: &Client, bucket: &str, key: &str) -> S3Result<(), DeleteObjectError> {
    delete_version(c, bucket, key, None, false).await.map(drop)
}

/// Whether `bucket/key` exists, as its owner sees it.
pub async fn exists(owner: &Tenant, bucket: &str, key: &str) -> bool {
    match head_version(&owner.s3, bucket, key, None).await {
        Ok(_) => true,
        Err(e) if status_of(&e) == Some(404) => false,
        Err(e) => panic!("HEAD {bucket}/{key}: {e:?}"),
    }
}

/// HeadObject of `bucket/key` as `c` fails with `status` (a HEAD answer
/// carries no error code).
pub async fn head_object_fails(c: &Client, bucket: &str, key: &str, status: u16) {
    match head_version(c, bucket, key, None).await {
        Ok(_) => panic!("HEAD {bucket}/{key} answered, not {status}"),
        Err(e) => assert_eq!(status_of(&e), Some(status), "HEAD {bucket}/{key}: {e:?}"),
    }
}

/// HeadBucket of `bucket` as `c` fails with `status`.
pub async fn head_bucket_fails(c: &Client, bucket: &str, status: u16) {
    match c.head_bucket().bucket(bucket).send().await {
        Ok(_) => panic!("HEAD {bucket} answered, not {status}"),
        Err(e) => assert_eq!(status_of(&e), Some(status), "HEAD {bucket}: {e:?}"),
    }
}

/// alice's "doc" is intact.
pub async fn doc_intact(w: &World) {
    assert_eq!(
        get_bytes(&w.alice.s3, "alice-data", "doc").await.as_deref(),
        Ok(DOC)
    );
}

/// Part 1 (1 KiB of 7s) of `upload_id`: its ETag.
async fn upload_part(
    c: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> S3Result<String, UploadPartError> {
    c.upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from(vec![7u8; 1024]))
        .send()
        .await
        .map(|o| o.e_tag().unwrap_or_default().to_string())
}

fn parts(etag: &str) -> CompletedMultipartUpload {
    let part = CompletedPart::builder().part_number(1).e_tag(etag).build();
    CompletedMultipartUpload::builder().parts(part).build()
}

/// A new key sees no bucket; bob meets 403 on everything of alice's, by
/// any route; a missing bucket is still 404; nothing changed.
pub async fn strangers(w: &World) {
    let dave = w.s.tenant("dave", &[]);
    let out = dave.s3.list_buckets().send().await.expect("list buckets");
    assert!(out.buckets().is_empty(), "{:?}", out.buckets());
    assert_eq!(out.owner().and_then(|o| o.id()), Some(dave.id.as_str()));
    assert_eq!(bucket_names(&w.bob).await, ["bob-data"]);

    let b = &w.bob.s3;
    denied(b.get_object().bucket("alice-data").key("doc").send().await);
    head_object_fails(b, "alice-data", "doc", 403).await;
    head_bucket_fails(b, "alice-data", 403).await;
    denied(put(b, "alice-data", "doc", b"bob was here").await);
    denied(delete(b, "alice-data", "doc").await);
    let id = ObjectIdentifier::builder().key("doc").build().expect("id");
    let del = Delete::builder().objects(id).build().expect("delete");
    denied(
        b.delete_objects()
            .bucket("alice-data")
            .delete(del)
            .send()
            .await,
    );
    denied(b.list_objects_v2().bucket("alice-data").send().await);
    denied(b.list_objects().bucket("alice-data").send().await);
    denied(b.list_object_versions().bucket("alice-data").send().await);
    denied(b.list_multipart_uploads().bucket("alice-data").send().await);
    denied(copy(b, "bob-data", "stolen", "alice-data/doc").await);
    multipart_refused(w, "no grant").await;
    // bob's own upload cannot copy a part from alice's bucket either.
    let up = b
        .create_multipart_upload()
        .bucket("bob-data")
        .key("stolen-mp")
        .send()
        .await
        .expect("bob's own upload");
    let up_id = up.upload_id().expect("upload id");
    denied(
        b.upload_part_copy()
            .bucket("bob-data")
            .key("stolen-mp")
            .upload_id(up_id)
            .part_number(1)
            .copy_source("alice-data/doc")
            .send()
            .await,
    );
    // What does not exist is still 404 (no more hidden than AWS hides it).
    let r = b
        .get_object()
        .bucket("no-such-bucket")
        .key("k")
        .send()
        .await;
    assert_s3_error(r, "NoSuchBucket", 404);

    doc_intact(w).await;
    assert!(!exists(&w.bob, "bob-data", "stolen").await);
    let parts = w
        .alice
        .s3
        .list_parts()
        .bucket("alice-data")
        .key("mp-alice")
        .upload_id(&w.alice_upload)
        .send()
        .await
        .expect("alice's upload is still there");
    assert!(parts.parts().is_empty(), "{:?}", parts.parts());
}

/// Multipart into alice's bucket as bob: begin, a part of alice's
/// upload, its completion and abort, its parts: all 403.
async fn multipart_refused(w: &World, when: &str) {
    let b = &w.bob.s3;
    let up = &w.alice_upload;
    eprintln!("multipart into alice-data as bob: {when}");
    denied(
        b.create_multipart_upload()
            .bucket("alice-data")
            .key("bob-mp")
            .send()
            .await,
    );
    denied(upload_part(b, "alice-data", "mp-alice", up).await);
    denied(
        b.complete_multipart_upload()
            .bucket("alice-data")
            .key("mp-alice")
            .upload_id(up)
            .multipart_upload(parts("\"00000000000000000000000000000000\""))
            .send()
            .await,
    );
    denied(
        b.abort_multipart_upload()
            .bucket("alice-data")
            .key("mp-alice")
            .upload_id(up)
            .send()
            .await,
    );
}

/// `allow --read`: GET, HEAD, the listings and copy-from open; PUT,
/// DELETE, multipart and copy-into stay closed.
pub async fn read(w: &World) {
    w.allow("alice-data", &w.bob, &["--read"]);
    let b = &w.bob.s3;
    within_cache_window("bob's read opens", || async {
        b.get_object()
            .bucket("alice-data")
            .key("doc")
            .send()
            .await
            .is_ok()
    })
    .await;
    assert_eq!(get_bytes(b, "alice-data", "doc").await.as_deref(), Ok(DOC));
    b.head_object()
        .bucket("alice-data")
        .key("doc")
        .send()
        .await
        .expect("HEAD");
    b.head_bucket()
        .bucket("alice-data")
        .send()
        .await
        .expect("HEAD bucket");
    let l = b
        .list_objects_v2()
        .bucket("alice-data")
        .send()
        .await
        .expect("list");
    let keys: Vec<&str> = l.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["doc"]);
    b.list_object_versions()
        .bucket("alice-data")
        .send()
        .await
        .expect("versions");
    let ups = b
        .list_multipart_uploads()
        .bucket("alice-data")
        .send()
        .await
        .expect("uploads");
    assert_eq!(ups.uploads().len(), 1, "{ups:?}");
    b.list_parts()
        .bucket("alice-data")
        .key("mp-alice")
        .upload_id(&w.alice_upload)
        .send()
        .await
        .expect("parts");
    let mut names = bucket_names(&w.bob).await;
    names.sort();
    assert_eq!(names, ["alice-data", "bob-data"]);
    // Copy from alice's bucket into bob's own: read on the source is enough.
    copy(b, "bob-data", "copied", "alice-data/doc")
        .await
        .expect("copy from");
    assert_eq!(get_bytes(b, "bob-data", "copied").await.as_deref(), Ok(DOC));

    // Writes stay closed.
    denied(put(b, "alice-data", "doc", b"bob was here").await);
    denied(delete(b, "alice-data", "doc").await);
    denied(copy(b, "alice-data", "from-bob", "bob-data/bob-doc").await);
    multipart_refused(w, "read only").await;
    doc_intact(w).await;
    assert!(!exists(&w.alice, "alice-data", "from-bob").await);
}

/// `allow --write` (on top of read): PUT, DELETE, multipart and copy-into
/// open.
pub async fn write(w: &World) {
    w.allow("alice-data", &w.bob, &["--write"]);
    let b = &w.bob.s3;
    within_cache_window("bob's write opens", || async {
        put(b, "alice-data", "from-bob", b"bob's contribution")
            .await
            .is_ok()
    })
    .await;
    assert!(exists(&w.alice, "alice-data", "from-bob").await);
    delete(b, "alice-data", "from-bob").await.expect("delete");
    assert!(!exists(&w.alice, "alice-data", "from-bob").await);
    copy(b, "alice-data", "copied-in", "bob-data/bob-doc")
        .await
        .expect("copy into");
    assert_eq!(
        get_bytes(&w.alice.s3, "alice-data", "copied-in")
            .await
            .as_deref(),
        Ok(b"bob's own".as_slice())
    );
    // A whole multipart upload of bob's own in alice's bucket.
    let up = b
        .create_multipart_upload()
        .bucket("alice-data")
        .key("bob-mp")
        .send()
        .await
        .expect("begin");
    let up = up.upload_id().expect("upload id").to_string();
    let etag = upload_part(b, "alice-data", "bob-mp", &up)
        .await
        .expect("part");
    b.complete_multipart_upload()
        .bucket("alice-data")
        .key("bob-mp")
        .upload_id(&up)
        .multipart_upload(parts(&etag))
        .send()
        .await
        .expect("complete");
    assert_eq!(
        get_bytes(&w.alice.s3, "alice-data", "bob-mp").await,
        Ok(vec![7u8; 1024])
    );
    // The grant is not ownership.
    let r = b
        .put_bucket_versioning()
        .bucket("alice-data")
        .versioning_configuration(hamster_tests::s3::versioning("Enabled"))
        .send()
        .await;
    denied(r);
    doc_intact(w).await;
}

/// `deny`: a write is refused at once (apply decides, whatever the
/// gateway's cache still says); reads close within the cache window
/// (`authz::CACHE_WINDOW`); the bucket leaves bob's ListBuckets.
pub async fn deny(w: &World) {
    w.deny("alice-data", &w.bob);
    let b = &w.bob.s3;
    denied(put(b, "alice-data", "after-deny", b"too late").await);
    denied(delete(b, "alice-data", "doc").await);
    denied(
        b.create_multipart_upload()
            .bucket("alice-data")
            .key("after-deny-mp")
            .send()
            .await,
    );
    within_cache_window("bob's read closes", || async {
        match b.get_object().bucket("alice-data").key("doc").send().await {
            Ok(_) => false,
            Err(e) => {
                assert_eq!(
                    (e.code(), status_of(&e)),
                    (Some("AccessDenied"), Some(403)),
                    "{e:?}"
                );
                true
            }
        }
    })
    .await;
    denied(b.list_objects_v2().bucket("alice-data").send().await);
    assert_eq!(bucket_names(&w.bob).await, ["bob-data"]);
    assert!(!exists(&w.alice, "alice-data", "after-deny").await);
    doc_intact(w).await;
}
