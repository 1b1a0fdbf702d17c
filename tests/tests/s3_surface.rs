//! The wider S3 surface through aws-sdk-s3 against real processes, in
//! named steps over one cluster: stored headers, server-side copy
//! (metadata directives, versions, onto itself, conditions), conditional
//! reads, UTF-8 keys, and calls that are not implemented. Multipart
//! uploads are in s3_multipart.rs, listings and DeleteObjects in
//! s3_listing.rs.

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use hamster_tests::Steps;
use hamster_tests::s3::{
    S3Cluster, assert_s3_error, error_status as status, pattern, read_body as body,
};

type Client = aws_sdk_s3::Client;

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copies_conditionals_stored_headers_and_unsupported_calls() {
    let s = S3Cluster::start(1, 3).await;
    let c = s.client();
    let c = &c;
    let data = pattern(3 * MIB + 5, 9);
    let mut steps = Steps::new("copies_conditionals_stored_headers_and_unsupported_calls");
    let etag = steps
        .require("stored headers come back on HEAD", stored_headers(c, &data))
        .await;
    steps
        .run(
            "copy keeps the metadata (COPY) or takes the request's (REPLACE)",
            async { copy_directives(c, &data, &etag).await },
        )
        .await;
    steps
        .run("copy from a named version, the null one", async {
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
        })
        .await;
    steps
        .run("copy onto itself only with REPLACE", self_copy(c))
        .await;
    steps
        .run("copy conditions and a missing source", copy_conditions(c))
        .await;
    steps
        .run("conditional GET and HEAD", conditional_reads(c, &etag))
        .await;
    steps
        .run("keys of any UTF-8, up to 1024 bytes", utf8_keys(c))
        .await;
    steps
        .run("what is not implemented says so", async {
            let r = c.get_bucket_policy().bucket("cpy").send().await;
            assert_s3_error(r, "NotImplemented", 501);
            let e = c
                .get_bucket_tagging()
                .bucket("cpy")
                .send()
                .await
                .expect_err("tagging");
            assert_eq!(status(&e).1, Some(501));
        })
        .await;
    steps.finish();
}

/// PUTs "cpy/src" with stored headers and checks them on HEAD; answers
/// its ETag.
async fn stored_headers(c: &Client, data: &[u8]) -> anyhow::Result<String> {
    c.create_bucket().bucket("cpy").send().await.expect("mb");
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
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .expect("put");
    let etag = put.e_tag().expect("etag").to_string();
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
    Ok(etag)
}

async fn copy_directives(c: &Client, data: &[u8], etag: &str) {
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
    assert_eq!(got.e_tag(), Some(etag));
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
}

async fn self_copy(c: &Client) {
    let r = c
        .copy_object()
        .bucket("cpy")
        .key("src")
        .copy_source("cpy/src")
        .send()
        .await;
    assert_s3_error(r, "InvalidRequest", 400);
    c.copy_object()
        .bucket("cpy")
        .key("src")
        .copy_source("cpy/src")
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .metadata("color", "green")
        .send()
        .await
        .expect("self copy with REPLACE");
}

async fn copy_conditions(c: &Client) {
    let r = c
        .copy_object()
        .bucket("cpy")
        .key("dst3")
        .copy_source("cpy/src")
        .copy_source_if_match("\"0000\"")
        .send()
        .await;
    assert_s3_error(r, "PreconditionFailed", 412);
    let e = c
        .copy_object()
        .bucket("cpy")
        .key("dst3")
        .copy_source("cpy/missing")
        .send()
        .await
        .expect_err("missing");
    assert_eq!(status(&e).1, Some(404));
}

/// The HTTP status of a failed call.
fn http_status<E>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// Conditional GET and HEAD of "dst" (a copy of "src", same ETag).
async fn conditional_reads(c: &Client, etag: &str) {
    let e = c
        .get_object()
        .bucket("cpy")
        .key("dst")
        .if_none_match(etag)
        .send()
        .await
        .expect_err("304");
    assert_eq!(http_status(&e), Some(304));
    let r = c
        .get_object()
        .bucket("cpy")
        .key("dst")
        .if_match("\"ffff\"")
        .send()
        .await;
    assert_s3_error(r, "PreconditionFailed", 412);
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
    assert_eq!(http_status(&e), Some(304));
    let e = c
        .get_object()
        .bucket("cpy")
        .key("dst")
        .if_unmodified_since(past)
        .send()
        .await
        .expect_err("412");
    assert_eq!(http_status(&e), Some(412));
    c.get_object()
        .bucket("cpy")
        .key("dst")
        .if_match(etag)
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
    assert_eq!(http_status(&e), Some(304));
}

async fn utf8_keys(c: &Client) {
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
}
