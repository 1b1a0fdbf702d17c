//! Multipart uploads through aws-sdk-s3 against real processes, in named
//! steps over one cluster: parts out of order and replaced (each part its
//! own erasure-coded unit), completion and its refusals, S3's multipart
//! ETag, ranges across parts, the minimum part size, abort and replaced
//! parts freeing their shards, and UploadPartCopy.

use std::collections::HashMap;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::operation::complete_multipart_upload::{
    CompleteMultipartUploadError, CompleteMultipartUploadOutput,
};
use aws_sdk_s3::operation::upload_part::{UploadPartError, UploadPartOutput};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use hamster_tests::Steps;
use hamster_tests::s3::{S3Cluster, S3Result, assert_s3_error, pattern, read_body as body};
use md5::{Digest, Md5};

type Client = aws_sdk_s3::Client;

const MIB: usize = 1 << 20;

fn parts(list: &[(i32, &str)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            list.iter()
                .map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(*e).build())
                .collect(),
        ))
        .build()
}

/// CreateMultipartUpload of `key` in "mpu": the upload id.
async fn create_upload(c: &Client, key: &str, content_type: Option<&str>) -> String {
    c.create_multipart_upload()
        .bucket("mpu")
        .key(key)
        .set_content_type(content_type.map(str::to_string))
        .send()
        .await
        .expect("create")
        .upload_id()
        .expect("upload id")
        .to_string()
}

/// UploadPart `n` of upload `id` of `key`.
async fn upload_part(
    c: &Client,
    key: &str,
    id: &str,
    n: i32,
    data: Vec<u8>,
) -> S3Result<UploadPartOutput, UploadPartError> {
    c.upload_part()
        .bucket("mpu")
        .key(key)
        .upload_id(id)
        .part_number(n)
        .body(ByteStream::from(data))
        .send()
        .await
}

/// CompleteMultipartUpload of upload `id` of `key` with `list`.
async fn complete_upload(
    c: &Client,
    key: &str,
    id: &str,
    list: CompletedMultipartUpload,
) -> S3Result<CompleteMultipartUploadOutput, CompleteMultipartUploadError> {
    c.complete_multipart_upload()
        .bucket("mpu")
        .key(key)
        .upload_id(id)
        .multipart_upload(list)
        .send()
        .await
}

async fn abort_upload(c: &Client, key: &str, id: &str) {
    c.abort_multipart_upload()
        .bucket("mpu")
        .key(key)
        .upload_id(id)
        .send()
        .await
        .expect("abort");
}

/// The ids of the uploads in progress in "mpu".
async fn upload_ids(c: &Client) -> Vec<String> {
    let listed = c
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .expect("uploads");
    listed
        .uploads()
        .iter()
        .map(|u| {
            u.upload_id()
                .expect("a listed upload has an id")
                .to_string()
        })
        .collect()
}

/// The upload of "mpu/big": its id, its parts and their ETags.
struct Big {
    id: String,
    etags: HashMap<i32, String>,
    p1: Vec<u8>,
    p2: Vec<u8>,
    p3: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multipart_uploads_complete_copy_and_abort() {
    let s = S3Cluster::start(1, 3).await;
    let c = s.client();
    let (s, c) = (&s, &c);
    let mut steps = Steps::new("multipart_uploads_complete_copy_and_abort");
    let big = steps
        .require(
            "parts upload out of order, a replaced part counts once",
            upload_parts(c),
        )
        .await;
    steps
        .run(
            "completion refuses bad part lists, and nothing exists yet",
            refused(c, &big),
        )
        .await;
    let whole = steps
        .require(
            "completion makes the object: S3's ETag, bytes, ranges",
            complete(c, &big),
        )
        .await;
    steps
        .run(
            "a small part before the last is refused; abort frees the parts",
            async { too_small_then_abort(s, c).await },
        )
        .await;
    steps
        .run(
            "a replaced part frees the shards of the part it replaces",
            async { replaced_part(s, c).await },
        )
        .await;
    steps
        .run(
            "UploadPartCopy takes a source range or a whole source",
            copy(c, &whole),
        )
        .await;
    steps.finish();
}

async fn upload_parts(c: &Client) -> anyhow::Result<Big> {
    c.create_bucket().bucket("mpu").send().await.expect("mb");
    let id = create_upload(c, "big", Some("video/x-test")).await;
    let p1 = pattern(5 * MIB, 1);
    let p2 = pattern(5 * MIB + 1, 2);
    let p3_old = pattern(999, 3);
    let p3 = pattern(1234, 4);
    let mut etags = HashMap::new();
    // Out of order, and part 3 replaced.
    for (n, data) in [(2, &p2), (3, &p3_old), (1, &p1), (3, &p3)] {
        let r = upload_part(c, "big", &id, n, data.clone())
            .await
            .expect("upload part");
        let e = r.e_tag().expect("etag").to_string();
        assert_eq!(e, format!("\"{}\"", hex::encode(Md5::digest(data))));
        etags.insert(n, e);
    }
    let listed = c
        .list_parts()
        .bucket("mpu")
        .key("big")
        .upload_id(&id)
        .send()
        .await
        .expect("parts");
    let sizes: Vec<(i32, i64)> = listed
        .parts()
        .iter()
        .map(|p| (p.part_number().unwrap_or(0), p.size().unwrap_or(0)))
        .collect();
    assert_eq!(
        sizes,
        vec![
            (1, p1.len() as i64),
            (2, p2.len() as i64),
            (3, p3.len() as i64)
        ]
    );
    assert!(upload_ids(c).await.contains(&id));
    Ok(Big {
        id,
        etags,
        p1,
        p2,
        p3,
    })
}

/// CompleteMultipartUpload of "big" with `list`.
async fn complete_big(
    c: &Client,
    big: &Big,
    list: CompletedMultipartUpload,
) -> S3Result<CompleteMultipartUploadOutput, CompleteMultipartUploadError> {
    complete_upload(c, "big", &big.id, list).await
}

async fn refused(c: &Client, big: &Big) {
    let etags = &big.etags;
    let r = complete_big(
        c,
        big,
        parts(&[(2, &etags[&2]), (1, &etags[&1]), (3, &etags[&3])]),
    )
    .await;
    assert_s3_error(r, "InvalidPartOrder", 400);
    let r = complete_big(c, big, parts(&[(1, &etags[&1]), (4, &etags[&2])])).await;
    assert_s3_error(r, "InvalidPart", 400);
    let r = complete_big(c, big, parts(&[(1, &etags[&2]), (2, &etags[&2])])).await;
    assert_s3_error(r, "InvalidPart", 400);
    let e = c
        .get_object()
        .bucket("mpu")
        .key("big")
        .send()
        .await
        .expect_err("not yet");
    assert_eq!(e.code(), Some("NoSuchKey"));
}

/// Completes "big"; answers its whole body.
async fn complete(c: &Client, big: &Big) -> anyhow::Result<Vec<u8>> {
    let etags = &big.etags;
    let (p1, p2, p3) = (&big.p1, &big.p2, &big.p3);
    let done = complete_big(
        c,
        big,
        parts(&[(1, &etags[&1]), (2, &etags[&2]), (3, &etags[&3])]),
    )
    .await
    .expect("complete");
    let mut md5s = Vec::new();
    for d in [p1, p2, p3] {
        md5s.extend_from_slice(&Md5::digest(d));
    }
    let want_etag = format!("\"{}-3\"", hex::encode(Md5::digest(&md5s)));
    assert_eq!(done.e_tag(), Some(want_etag.as_str()));
    let whole: Vec<u8> = [p1.clone(), p2.clone(), p3.clone()].concat();
    let got = c
        .get_object()
        .bucket("mpu")
        .key("big")
        .send()
        .await
        .expect("get");
    assert_eq!(got.e_tag(), Some(want_etag.as_str()));
    assert_eq!(got.content_type(), Some("video/x-test"));
    assert!(body(got).await == whole);
    // Ranges across part boundaries (and within the last part).
    for (a, b) in [
        (5 * MIB - 10, 5 * MIB + 10),
        (MIB, 10 * MIB + 2),
        (10 * MIB + 1, whole.len() - 1),
    ] {
        let got = c
            .get_object()
            .bucket("mpu")
            .key("big")
            .range(format!("bytes={a}-{b}"))
            .send()
            .await
            .expect("range");
        assert!(body(got).await == whole[a..=b], "range {a}-{b}");
    }
    assert!(
        upload_ids(c).await.is_empty(),
        "a completed upload is still listed"
    );
    Ok(whole)
}

/// Too small a part before the last: EntityTooSmall. Abort frees the
/// parts' shards.
async fn too_small_then_abort(s: &S3Cluster, c: &Client) {
    let sid = create_upload(c, "small", None).await;
    let mut small_etags = Vec::new();
    for n in 1..=2 {
        let r = upload_part(c, "small", &sid, n, pattern(MIB, n as u8))
            .await
            .expect("part");
        small_etags.push(r.e_tag().expect("etag").to_string());
    }
    let both = parts(&[(1, &small_etags[0]), (2, &small_etags[1])]);
    let r = complete_upload(c, "small", &sid, both).await;
    assert_s3_error(r, "EntityTooSmall", 400);

    let before_abort = s.shard_file_count();
    abort_upload(c, "small", &sid).await;
    s.wait_shards("aborted parts' shards were not freed", |n| {
        n <= before_abort - 2 * 3
    })
    .await;
    let r = upload_part(c, "small", &sid, 3, b"x".to_vec()).await;
    assert_s3_error(r, "NoSuchUpload", 404);
}

async fn replaced_part(s: &S3Cluster, c: &Client) {
    let rid = create_upload(c, "replaced", None).await;
    upload_part(c, "replaced", &rid, 1, pattern(4096, 1))
        .await
        .expect("part");
    let with_one = s.shard_file_count();
    upload_part(c, "replaced", &rid, 1, pattern(4096, 2))
        .await
        .expect("replacing part");
    s.wait_shards("a replaced part's shards were not freed", |n| n == with_one)
        .await;
    abort_upload(c, "replaced", &rid).await;
}

/// UploadPartCopy with a source range of "big", and a whole small source.
async fn copy(c: &Client, whole: &[u8]) {
    c.put_object()
        .bucket("mpu")
        .key("tail")
        .body(ByteStream::from_static(b"-the-tail"))
        .send()
        .await
        .expect("put");
    let cid = create_upload(c, "copied", None).await;
    let mut etags = Vec::new();
    for (n, source, range) in [
        (1, "mpu/big", Some(format!("bytes={}-{}", MIB, 6 * MIB))),
        (2, "mpu/tail", None),
    ] {
        let r = c
            .upload_part_copy()
            .bucket("mpu")
            .key("copied")
            .upload_id(&cid)
            .part_number(n)
            .copy_source(source)
            .set_copy_source_range(range)
            .send()
            .await
            .unwrap_or_else(|e| panic!("copy part {n}: {e:?}"));
        let etag = r.copy_part_result().and_then(|r| r.e_tag()).expect("etag");
        etags.push(etag.to_string());
    }
    complete_upload(c, "copied", &cid, parts(&[(1, &etags[0]), (2, &etags[1])]))
        .await
        .expect("complete copy");
    let got = body(
        c.get_object()
            .bucket("mpu")
            .key("copied")
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert!(got == [&whole[MIB..=6 * MIB], b"-the-tail".as_slice()].concat());
}
