//! Issue 21, meta-tier writes, through aws-sdk-s3 and hand-signed requests
//! against real processes, over one cluster in named steps:
//! DeleteBucket when only unfinished multipart uploads are left (204, the
//! uploads aborted and their parts' shards deleted from the
//! blob-servers; a bucket with an object stays BucketNotEmpty), and a
//! CompleteMultipartUpload repeated after it succeeded (200, the same
//! ETag; other parts are NoSuchUpload), and a multipart object's
//! composite checksum (a part checksum listed wrong is InvalidPart).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hamster_tests::Steps;
use hamster_tests::s3::{ClusterSpec, S3Cluster, assert_s3_error, pattern, read_body, strings};
use hamster_tests::sigv4::{EMPTY_SHA256, Signer};

type Client = aws_sdk_s3::Client;

/// Opens an upload of `key` and uploads `parts` (part n is `parts[n-1]`).
/// Answers the upload id and the parts' ETags.
async fn upload(c: &Client, bucket: &str, key: &str, parts: &[Vec<u8>]) -> (String, Vec<String>) {
    let u = c
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("create multipart upload");
    let id = u.upload_id().expect("an upload id").to_string();
    let mut etags = Vec::new();
    for (i, body) in parts.iter().enumerate() {
        let p = c
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&id)
            .part_number(i as i32 + 1)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("upload part");
        etags.push(p.e_tag().expect("a part ETag").to_string());
    }
    (id, etags)
}

fn listed(etags: &[String]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            etags
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    CompletedPart::builder()
                        .part_number(i as i32 + 1)
                        .e_tag(e)
                        .build()
                })
                .collect(),
        ))
        .build()
}

async fn complete(
    c: &Client,
    bucket: &str,
    key: &str,
    id: &str,
    etags: &[String],
) -> Result<String, String> {
    c.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(listed(etags))
        .send()
        .await
        .map(|o| o.e_tag().unwrap_or_default().to_string())
        .map_err(|e| format!("{e:?}"))
}

/// Only an open upload (with a part) is left: DeleteBucket answers 204,
/// the bucket and its upload are gone, and the part's shards are
/// deleted from the blob-servers.
async fn delete_bucket_with_uploads(s: &S3Cluster, c: &Client) {
    c.create_bucket()
        .bucket("only-uploads")
        .send()
        .await
        .expect("create bucket");
    let before = s.shard_file_count();
    upload(c, "only-uploads", "a", &[pattern(3000, 1)]).await;
    upload(c, "only-uploads", "b/c", &[]).await;
    let with_part = s.shard_file_count();
    assert!(with_part > before, "the part wrote no shard");

    let signer = Signer::new(s.s3_addr(), &s.access_key_id, &s.secret);
    let r = signer.sign("DELETE", "/only-uploads", "", &[], EMPTY_SHA256, vec![]);
    signer.expect(&r, 204, "").await;

    assert_s3_error(
        c.head_bucket().bucket("only-uploads").send().await,
        "NotFound",
        404,
    );
    assert_s3_error(
        c.list_multipart_uploads()
            .bucket("only-uploads")
            .send()
            .await,
        "NoSuchBucket",
        404,
    );
    s.wait_shards("the aborted part's shards were not deleted", |n| {
        n == before
    })
    .await;
    // The name is free again, and the new bucket has no upload.
    c.create_bucket()
        .bucket("only-uploads")
        .send()
        .await
        .expect("create the bucket again");
    let l = c
        .list_multipart_uploads()
        .bucket("only-uploads")
        .send()
        .await
        .expect("list uploads");
    assert!(l.uploads().is_empty(), "{l:?}");
}

/// An object and an upload: still BucketNotEmpty, the upload kept.
async fn delete_bucket_with_an_object(c: &Client) {
    c.create_bucket()
        .bucket("has-object")
        .send()
        .await
        .expect("create bucket");
    c.put_object()
        .bucket("has-object")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put");
    let (id, _) = upload(c, "has-object", "u", &[pattern(10, 2)]).await;
    assert_s3_error(
        c.delete_bucket().bucket("has-object").send().await,
        "BucketNotEmpty",
        409,
    );
    let l = c
        .list_multipart_uploads()
        .bucket("has-object")
        .send()
        .await
        .expect("list uploads");
    let ids: Vec<&str> = l.uploads().iter().filter_map(|u| u.upload_id()).collect();
    assert_eq!(ids, [id.as_str()]);
}

/// The same CompleteMultipartUpload twice (a client whose first answer
/// was lost): 200 with the same ETag; the object reads back; other
/// parts are NoSuchUpload.
async fn complete_twice(c: &Client) {
    c.create_bucket()
        .bucket("retry")
        .send()
        .await
        .expect("create bucket");
    let parts = [pattern(700, 3), pattern(300, 4)];
    let (id, etags) = upload(c, "retry", "obj", &parts).await;
    let first = complete(c, "retry", "obj", &id, &etags)
        .await
        .expect("first completion");
    assert!(first.ends_with("-2\""), "{first}");
    let again = complete(c, "retry", "obj", &id, &etags)
        .await
        .expect("the repeated completion");
    assert_eq!(again, first);

    let got = c
        .get_object()
        .bucket("retry")
        .key("obj")
        .send()
        .await
        .expect("get");
    assert_eq!(got.e_tag(), Some(first.as_str()));
    assert_eq!(read_body(got).await, parts.concat());

    // Not the parts it completed with: the upload is no more.
    let r = c
        .complete_multipart_upload()
        .bucket("retry")
        .key("obj")
        .upload_id(&id)
        .multipart_upload(listed(&etags[..1]))
        .send()
        .await;
    assert_s3_error(r, "NoSuchUpload", 404);
}

/// An upload asking for CRC32: the completed object carries the
/// composite checksum of its parts (CRC32 of their CRC32s, "-2"), and a
/// part checksum listed wrong is InvalidPart, leaving the upload.
async fn composite_checksum(c: &Client) {
    c.create_bucket()
        .bucket("sums")
        .send()
        .await
        .expect("create bucket");
    let u = c
        .create_multipart_upload()
        .bucket("sums")
        .key("obj")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .expect("create multipart upload");
    let id = u.upload_id().expect("an upload id").to_string();
    let bodies = [pattern(900, 5), pattern(100, 6)];
    let mut listed = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let sum = STANDARD.encode(crc32fast::hash(body).to_be_bytes());
        let p = c
            .upload_part()
            .bucket("sums")
            .key("obj")
            .upload_id(&id)
            .part_number(i as i32 + 1)
            .checksum_crc32(&sum)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("upload part");
        listed.push((p.e_tag().expect("ETag").to_string(), sum));
    }
    let parts = |wrong: bool| {
        let all = listed.iter().enumerate().map(|(i, (etag, sum))| {
            let sum = if wrong && i == 0 { "AAAAAA==" } else { sum };
            CompletedPart::builder()
                .part_number(i as i32 + 1)
                .e_tag(etag)
                .checksum_crc32(sum)
                .build()
        });
        CompletedMultipartUpload::builder()
            .set_parts(Some(all.collect()))
            .build()
    };
    let r = c
        .complete_multipart_upload()
        .bucket("sums")
        .key("obj")
        .upload_id(&id)
        .multipart_upload(parts(true))
        .send()
        .await;
    assert_s3_error(r, "InvalidPart", 400);
    let done = c
        .complete_multipart_upload()
        .bucket("sums")
        .key("obj")
        .upload_id(&id)
        .multipart_upload(parts(false))
        .send()
        .await
        .expect("complete");
    let joined: Vec<u8> = bodies
        .iter()
        .flat_map(|b| crc32fast::hash(b).to_be_bytes())
        .collect();
    let want = format!(
        "{}-2",
        STANDARD.encode(crc32fast::hash(&joined).to_be_bytes())
    );
    assert_eq!(done.checksum_crc32(), Some(want.as_str()), "{done:?}");
}

#[tokio::test]
async fn compat_writes_bucket_deletes_completions_and_checksums() {
    let mut steps = Steps::new("compat_writes_bucket_deletes_completions_and_checksums");
    // Small parts: the minimum part size is the meta tier's test hook.
    let spec = ClusterSpec {
        meta_args: strings(&["--test-min-part-size", "1"]),
        ..ClusterSpec::default()
    };
    let (s, c) = S3Cluster::start_step(&mut steps, &spec).await;
    let (s, c) = (&s, &c);
    steps
        .run(
            "DeleteBucket with only open uploads: 204, parts freed",
            delete_bucket_with_uploads(s, c),
        )
        .await;
    steps
        .run(
            "DeleteBucket with an object and an upload: BucketNotEmpty",
            delete_bucket_with_an_object(c),
        )
        .await;
    steps
        .run(
            "CompleteMultipartUpload repeated: 200, same ETag",
            complete_twice(c),
        )
        .await;
    steps
        .run(
            "a multipart object keeps its composite checksum",
            composite_checksum(c),
        )
        .await;
    steps.finish();
}
