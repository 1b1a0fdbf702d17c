//! The wider S3 surface through aws-sdk-s3 against real processes:
//! multipart uploads (each part its own erasure-coded unit), server-side
//! copy, conditional reads and stored headers, listings V1/V2 with
//! delimiters, paging and url encoding, and DeleteObjects.

use std::time::{Duration, Instant};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use hamster_tests::s3::{S3Cluster, error_status as status, read_body as body};
use md5::{Digest, Md5};

const MIB: usize = 1 << 20;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i * 7) as u8) ^ seed).collect()
}

fn parts(list: &[(i32, &str)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            list.iter()
                .map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(*e).build())
                .collect(),
        ))
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multipart_uploads_complete_copy_and_abort() {
    let s = S3Cluster::start(1, 3).await;
    let c = s.client();
    c.create_bucket().bucket("mpu").send().await.expect("mb");
    let up = c
        .create_multipart_upload()
        .bucket("mpu")
        .key("big")
        .content_type("video/x-test")
        .send()
        .await
        .expect("create");
    let id = up.upload_id().expect("upload id").to_string();
    let p1 = pattern(5 * MIB, 1);
    let p2 = pattern(5 * MIB + 1, 2);
    let p3_old = pattern(999, 3);
    let p3 = pattern(1234, 4);
    let mut etags = std::collections::HashMap::new();
    // Out of order, and part 3 replaced.
    for (n, data) in [(2, &p2), (3, &p3_old), (1, &p1), (3, &p3)] {
        let r = c
            .upload_part()
            .bucket("mpu")
            .key("big")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(data.clone()))
            .send()
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
    let uploads = c
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .expect("uploads");
    assert!(
        uploads
            .uploads()
            .iter()
            .any(|u| u.upload_id() == Some(id.as_str()))
    );

    let complete = |list: CompletedMultipartUpload| {
        c.complete_multipart_upload()
            .bucket("mpu")
            .key("big")
            .upload_id(&id)
            .multipart_upload(list)
            .send()
    };
    let e = complete(parts(&[(2, &etags[&2]), (1, &etags[&1]), (3, &etags[&3])]))
        .await
        .expect_err("order");
    assert_eq!(status(&e), (Some("InvalidPartOrder".into()), Some(400)));
    let e = complete(parts(&[(1, &etags[&1]), (4, &etags[&2])]))
        .await
        .expect_err("missing");
    assert_eq!(status(&e), (Some("InvalidPart".into()), Some(400)));
    let e = complete(parts(&[(1, &etags[&2]), (2, &etags[&2])]))
        .await
        .expect_err("wrong etag");
    assert_eq!(status(&e), (Some("InvalidPart".into()), Some(400)));
    let e = c
        .get_object()
        .bucket("mpu")
        .key("big")
        .send()
        .await
        .expect_err("not yet");
    assert_eq!(e.code(), Some("NoSuchKey"));

    let done = complete(parts(&[(1, &etags[&1]), (2, &etags[&2]), (3, &etags[&3])]))
        .await
        .expect("complete");
    let mut md5s = Vec::new();
    for d in [&p1, &p2, &p3] {
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
    let uploads = c
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .expect("uploads");
    assert!(
        uploads.uploads().is_empty(),
        "a completed upload is still listed"
    );

    // Too small a part before the last: EntityTooSmall.
    let small = c
        .create_multipart_upload()
        .bucket("mpu")
        .key("small")
        .send()
        .await
        .expect("create");
    let sid = small.upload_id().expect("id").to_string();
    let mut small_etags = Vec::new();
    for n in 1..=2 {
        let r = c
            .upload_part()
            .bucket("mpu")
            .key("small")
            .upload_id(&sid)
            .part_number(n)
            .body(ByteStream::from(pattern(MIB, n as u8)))
            .send()
            .await
            .expect("part");
        small_etags.push(r.e_tag().expect("etag").to_string());
    }
    let e = c
        .complete_multipart_upload()
        .bucket("mpu")
        .key("small")
        .upload_id(&sid)
        .multipart_upload(parts(&[(1, &small_etags[0]), (2, &small_etags[1])]))
        .send()
        .await
        .expect_err("small");
    assert_eq!(status(&e), (Some("EntityTooSmall".into()), Some(400)));

    // Abort frees the parts' shards.
    let before_abort = s.shard_file_count();
    c.abort_multipart_upload()
        .bucket("mpu")
        .key("small")
        .upload_id(&sid)
        .send()
        .await
        .expect("abort");
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.shard_file_count() > before_abort - 2 * 3 {
        assert!(
            Instant::now() < deadline,
            "aborted parts' shards were not freed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let e = c
        .upload_part()
        .bucket("mpu")
        .key("small")
        .upload_id(&sid)
        .part_number(3)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("aborted");
    assert_eq!(status(&e), (Some("NoSuchUpload".into()), Some(404)));

    // A replaced part frees the shards of the part it replaces.
    let rp = c
        .create_multipart_upload()
        .bucket("mpu")
        .key("replaced")
        .send()
        .await
        .expect("create");
    let rid = rp.upload_id().expect("id").to_string();
    let upload = |seed: u8| {
        c.upload_part()
            .bucket("mpu")
            .key("replaced")
            .upload_id(&rid)
            .part_number(1)
            .body(ByteStream::from(pattern(4096, seed)))
            .send()
    };
    upload(1).await.expect("part");
    let with_one = s.shard_file_count();
    upload(2).await.expect("replacing part");
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.shard_file_count() != with_one {
        assert!(
            Instant::now() < deadline,
            "a replaced part's shards were not freed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.abort_multipart_upload()
        .bucket("mpu")
        .key("replaced")
        .upload_id(&rid)
        .send()
        .await
        .expect("abort");

    // UploadPartCopy with a source range, and a whole small source.
    c.put_object()
        .bucket("mpu")
        .key("tail")
        .body(ByteStream::from_static(b"-the-tail"))
        .send()
        .await
        .expect("put");
    let cp = c
        .create_multipart_upload()
        .bucket("mpu")
        .key("copied")
        .send()
        .await
        .expect("create");
    let cid = cp.upload_id().expect("id").to_string();
    let r1 = c
        .upload_part_copy()
        .bucket("mpu")
        .key("copied")
        .upload_id(&cid)
        .part_number(1)
        .copy_source("mpu/big")
        .copy_source_range(format!("bytes={}-{}", MIB, 6 * MIB))
        .send()
        .await
        .expect("copy part 1");
    let r2 = c
        .upload_part_copy()
        .bucket("mpu")
        .key("copied")
        .upload_id(&cid)
        .part_number(2)
        .copy_source("mpu/tail")
        .send()
        .await
        .expect("copy part 2");
    let e1 = r1
        .copy_part_result()
        .and_then(|r| r.e_tag())
        .expect("etag")
        .to_string();
    let e2 = r2
        .copy_part_result()
        .and_then(|r| r.e_tag())
        .expect("etag")
        .to_string();
    c.complete_multipart_upload()
        .bucket("mpu")
        .key("copied")
        .upload_id(&cid)
        .multipart_upload(parts(&[(1, &e1), (2, &e2)]))
        .send()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copies_conditionals_stored_headers_and_unsupported_calls() {
    let s = S3Cluster::start(1, 3).await;
    let c = s.client();
    c.create_bucket().bucket("cpy").send().await.expect("mb");
    let data = pattern(3 * MIB + 5, 9);
    let expires = DateTime::from_secs(2_000_000_000);
    let put = c
        .put_object()
        .bucket("cpy")
        .key("src")
        .content_type("text/x-src")
        .metadata("color", "red")
        .cache_control("max-age=60")
        .content_disposition("attachment; filename=\"a.bin\"")
        .content_encoding("identity")
        .content_language("de")
        .expires(expires)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put");
    let etag = put.e_tag().expect("etag").to_string();

    // Stored headers come back on GET and HEAD.
    let head = c
        .head_object()
        .bucket("cpy")
        .key("src")
        .send()
        .await
        .expect("head");
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(
        head.content_disposition(),
        Some("attachment; filename=\"a.bin\"")
    );
    assert_eq!(head.content_encoding(), Some("identity"));
    assert_eq!(head.content_language(), Some("de"));
    assert_eq!(head.expires_string(), Some("Wed, 18 May 2033 03:33:20 GMT"));

    // Copy keeps the metadata (COPY) or takes the request's (REPLACE).
    c.copy_object()
        .bucket("cpy")
        .key("dst")
        .copy_source("cpy/src")
        .send()
        .await
        .expect("copy");
    let got = c
        .get_object()
        .bucket("cpy")
        .key("dst")
        .send()
        .await
        .expect("get");
    assert_eq!(got.content_type(), Some("text/x-src"));
    assert_eq!(
        got.metadata()
            .and_then(|m| m.get("color"))
            .map(String::as_str),
        Some("red")
    );
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    assert!(body(got).await == data);
    c.copy_object()
        .bucket("cpy")
        .key("dst2")
        .copy_source("cpy/src")
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .metadata("color", "blue")
        .content_type("text/x-new")
        .send()
        .await
        .expect("copy replace");
    let got = c
        .head_object()
        .bucket("cpy")
        .key("dst2")
        .send()
        .await
        .expect("head");
    assert_eq!(got.content_type(), Some("text/x-new"));
    assert_eq!(
        got.metadata()
            .and_then(|m| m.get("color"))
            .map(String::as_str),
        Some("blue")
    );
    // From a named version (an unversioned bucket's is "null").
    c.copy_object()
        .bucket("cpy")
        .key("dst-v")
        .copy_source("cpy/src?versionId=null")
        .send()
        .await
        .expect("copy from a version id");
    let got = c
        .get_object()
        .bucket("cpy")
        .key("dst-v")
        .send()
        .await
        .expect("get");
    assert!(body(got).await == data);
    // Onto itself: only with REPLACE.
    let e = c
        .copy_object()
        .bucket("cpy")
        .key("src")
        .copy_source("cpy/src")
        .send()
        .await
        .expect_err("self");
    assert_eq!(status(&e), (Some("InvalidRequest".into()), Some(400)));
    c.copy_object()
        .bucket("cpy")
        .key("src")
        .copy_source("cpy/src")
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .metadata("color", "green")
        .send()
        .await
        .expect("self copy with REPLACE");
    // Copy conditions.
    let e = c
        .copy_object()
        .bucket("cpy")
        .key("dst3")
        .copy_source("cpy/src")
        .copy_source_if_match("\"0000\"")
        .send()
        .await
        .expect_err("if-match");
    assert_eq!(status(&e), (Some("PreconditionFailed".into()), Some(412)));
    let e = c
        .copy_object()
        .bucket("cpy")
        .key("dst3")
        .copy_source("cpy/missing")
        .send()
        .await
        .expect_err("missing");
    assert_eq!(status(&e).1, Some(404));

    // Conditional GET and HEAD.
    let e = c
        .get_object()
        .bucket("cpy")
        .key("dst")
        .if_none_match(&etag)
        .send()
        .await
        .expect_err("304");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(304));
    let e = c
        .get_object()
        .bucket("cpy")
        .key("dst")
        .if_match("\"ffff\"")
        .send()
        .await
        .expect_err("412");
    assert_eq!(status(&e), (Some("PreconditionFailed".into()), Some(412)));
    let future = DateTime::from_secs(4_000_000_000);
    let past = DateTime::from_secs(1_000_000_000);
    let e = c
        .get_object()
        .bucket("cpy")
        .key("dst")
        .if_modified_since(future)
        .send()
        .await
        .expect_err("304");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(304));
    let e = c
        .get_object()
        .bucket("cpy")
        .key("dst")
        .if_unmodified_since(past)
        .send()
        .await
        .expect_err("412");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(412));
    c.get_object()
        .bucket("cpy")
        .key("dst")
        .if_match(&etag)
        .if_unmodified_since(past)
        .send()
        .await
        .expect("If-Match wins over If-Unmodified-Since");
    let e = c
        .head_object()
        .bucket("cpy")
        .key("dst")
        .if_none_match("*")
        .send()
        .await
        .expect_err("304");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(304));

    // Keys of any UTF-8, up to 1024 bytes.
    let long_key = "ü".repeat(512);
    assert_eq!(long_key.len(), 1024);
    for key in [long_key.as_str(), "日本/語 ?&=+%#.txt"] {
        c.put_object()
            .bucket("cpy")
            .key(key)
            .body(ByteStream::from_static(b"k"))
            .send()
            .await
            .expect("put key");
        let got = c
            .get_object()
            .bucket("cpy")
            .key(key)
            .send()
            .await
            .expect("get key");
        assert_eq!(body(got).await, b"k");
    }

    // What is not implemented says so.
    let e = c
        .get_bucket_policy()
        .bucket("cpy")
        .send()
        .await
        .expect_err("policy");
    assert_eq!(status(&e), (Some("NotImplemented".into()), Some(501)));
    let e = c
        .get_bucket_tagging()
        .bucket("cpy")
        .send()
        .await
        .expect_err("tagging");
    assert_eq!(status(&e).1, Some(501));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listings_and_batch_deletes() {
    let s = S3Cluster::start(1, 3).await;
    let c = s.client();
    c.create_bucket().bucket("lst").send().await.expect("mb");
    let keys = ["a/1", "a/2", "a/b/3", "b/1", "c", "sp ace/é"];
    for k in keys {
        c.put_object()
            .bucket("lst")
            .key(k)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .expect("put");
    }
    let r = c
        .list_objects_v2()
        .bucket("lst")
        .delimiter("/")
        .send()
        .await
        .expect("list");
    let prefixes: Vec<&str> = r
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    let contents: Vec<&str> = r.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(prefixes, vec!["a/", "b/", "sp ace/"]);
    assert_eq!(contents, vec!["c"]);
    assert_eq!(r.key_count(), Some(4));
    let r = c
        .list_objects_v2()
        .bucket("lst")
        .prefix("a/")
        .delimiter("/")
        .send()
        .await
        .expect("list");
    let contents: Vec<&str> = r.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(contents, vec!["a/1", "a/2"]);
    assert_eq!(
        r.common_prefixes()
            .iter()
            .filter_map(|p| p.prefix())
            .collect::<Vec<_>>(),
        vec!["a/b/"]
    );

    // Paging by two, V2 tokens and V1 markers, gives every key once, in order.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let r = c
            .list_objects_v2()
            .bucket("lst")
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("page");
        seen.extend(
            r.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        if !r.is_truncated().unwrap_or(false) {
            break;
        }
        token = r.next_continuation_token().map(str::to_string);
    }
    assert_eq!(seen, keys);
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let r = c
            .list_objects()
            .bucket("lst")
            .max_keys(2)
            .set_marker(marker.clone())
            .send()
            .await
            .expect("v1 page");
        seen.extend(
            r.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        if !r.is_truncated().unwrap_or(false) {
            break;
        }
        marker = r
            .next_marker()
            .map(str::to_string)
            .or_else(|| seen.last().cloned());
    }
    assert_eq!(seen, keys);
    let r = c
        .list_objects_v2()
        .bucket("lst")
        .start_after("a/b/3")
        .send()
        .await
        .expect("start-after");
    let contents: Vec<&str> = r.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(contents, vec!["b/1", "c", "sp ace/é"]);
    let r = c
        .list_objects_v2()
        .bucket("lst")
        .prefix("sp")
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
        .send()
        .await
        .expect("url");
    let contents: Vec<&str> = r.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(contents, vec!["sp%20ace/%C3%A9"]);
    c.get_bucket_location()
        .bucket("lst")
        .send()
        .await
        .expect("location");
    let e = c
        .get_bucket_location()
        .bucket("nope")
        .send()
        .await
        .expect_err("no bucket");
    assert_eq!(e.code(), Some("NoSuchBucket"));

    // DeleteObjects: per-key results, quiet mode, at most 1000 keys.
    let ids = |ks: &[&str]| {
        Delete::builder().set_objects(Some(
            ks.iter()
                .map(|k| ObjectIdentifier::builder().key(*k).build().expect("id"))
                .collect(),
        ))
    };
    let r = c
        .delete_objects()
        .bucket("lst")
        .delete(ids(&["a/1", "a/2", "never-was"]).build().expect("delete"))
        .send()
        .await
        .expect("delete objects");
    let mut deleted: Vec<&str> = r.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort();
    assert_eq!(deleted, vec!["a/1", "a/2", "never-was"]);
    assert!(r.errors().is_empty());
    let r = c
        .delete_objects()
        .bucket("lst")
        .delete(ids(&["b/1"]).quiet(true).build().expect("delete"))
        .send()
        .await
        .expect("quiet");
    assert!(r.deleted().is_empty(), "quiet mode lists deletions");
    let many: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let e = c
        .delete_objects()
        .bucket("lst")
        .delete(ids(&many).build().expect("delete"))
        .send()
        .await
        .expect_err("1001");
    assert_eq!(status(&e), (Some("MalformedXML".into()), Some(400)));
    let left = c
        .list_objects_v2()
        .bucket("lst")
        .send()
        .await
        .expect("list");
    let contents: Vec<&str> = left.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(contents, vec!["a/b/3", "c", "sp ace/é"]);
}
