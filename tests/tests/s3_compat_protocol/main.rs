//! The S3 protocol details of issue 21 (points 3, 4, 8, 9, 11, 16),
//! against real processes with hand-built HTTP/1.1 requests (what an SDK
//! will not send) and aws-sdk-s3: bodies with `Transfer-Encoding:
//! chunked` and no Content-Length, `aws-chunked` stripped from a stored
//! Content-Encoding, request ids in every answer and error body, what a
//! 304 carries, non-ASCII user metadata, legacy LocationConstraint values
//! and s3cmd's "US" signing region, anonymous requests and expired
//! presigned URLs. One cluster, named steps.

mod bodies;
mod raw;

use std::time::{Duration, SystemTime};

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use base64::Engine;
use hamster_tests::Steps;
use hamster_tests::s3::{ClusterSpec, S3Cluster, get_bytes};
use hamster_tests::sigv4::{self, Signer, sha256_hex};

use bodies::{chunked_transfer, content_encoding};
use raw::{Answer, expect, raw, send};

type Client = aws_sdk_s3::Client;

const BUCKET: &str = "proto";

/// Point 8: request ids on every answer, and in error bodies.
async fn request_ids(s: &Signer) {
    let same_ids = |a: &Answer, what: &str| {
        let id = a
            .header("x-amz-request-id")
            .unwrap_or_else(|| panic!("{what}: no id: {}", a.describe()));
        assert_eq!(id.len(), 16, "{what}: {id}");
        let id2 = a
            .header("x-amz-id-2")
            .unwrap_or_else(|| panic!("{what}: no id-2"));
        assert_eq!(
            a.xml("RequestId").as_deref(),
            Some(id),
            "{what}: {}",
            a.describe()
        );
        assert_eq!(
            a.xml("HostId").as_deref(),
            Some(id2),
            "{what}: {}",
            a.describe()
        );
    };
    // A handler's error.
    let r = s.sign(
        "GET",
        "/proto/no-such-key",
        "",
        &[],
        sigv4::EMPTY_SHA256,
        vec![],
    );
    let a = send(s.addr, &r).await;
    expect(&a, 404, "NoSuchKey");
    same_ids(&a, "NoSuchKey");
    // s3s' own errors: a wrong signature, an unknown operation.
    let bad = Signer::new(s.addr, &s.id, "not-the-secret");
    let r = bad.sign("GET", "/proto", "", &[], sigv4::EMPTY_SHA256, vec![]);
    let a = send(s.addr, &r).await;
    expect(&a, 403, "SignatureDoesNotMatch");
    same_ids(&a, "SignatureDoesNotMatch");
    let r = s.sign(
        "GET",
        "/proto",
        "analytics=",
        &[],
        sigv4::EMPTY_SHA256,
        vec![],
    );
    let a = send(s.addr, &r).await;
    assert!(a.status >= 400, "{}", a.describe());
    same_ids(&a, "unimplemented");
    // The guard's, before s3s.
    let a = raw(
        s.addr,
        &format!("POST /proto HTTP/1.1\r\nhost: {}\r\ncontent-type: multipart/form-data; boundary=x\r\ncontent-length: 0\r\n", s.host),
        b"",
    )
    .await;
    expect(&a, 501, "NotImplemented");
    same_ids(&a, "guard");
    // Successes carry the headers; two requests, two ids.
    let r = s.sign(
        "GET",
        "/proto",
        "location=",
        &[],
        sigv4::EMPTY_SHA256,
        vec![],
    );
    let one = send(s.addr, &r).await;
    let two = send(
        s.addr,
        &s.sign(
            "GET",
            "/proto",
            "location=",
            &[],
            sigv4::EMPTY_SHA256,
            vec![],
        ),
    )
    .await;
    assert_eq!(one.status, 200, "{}", one.describe());
    let (i1, i2) = (
        one.header("x-amz-request-id"),
        two.header("x-amz-request-id"),
    );
    assert!(
        i1.is_some() && one.header("x-amz-id-2").is_some(),
        "{}",
        one.describe()
    );
    assert_ne!(i1, i2);
}

/// Point 8: a 304 carries ETag, Last-Modified, Cache-Control, Expires.
async fn not_modified(s: &Signer, c: &Client) {
    let expires = aws_sdk_s3::primitives::DateTime::from_secs(2_000_000_000);
    let put = c
        .put_object()
        .bucket(BUCKET)
        .key("cached")
        .cache_control("max-age=60")
        .expires(expires)
        .body(ByteStream::from_static(b"cached body"))
        .send()
        .await
        .expect("put");
    let etag = put.e_tag().expect("etag").to_string();
    for method in ["GET", "HEAD"] {
        let r = s.sign(
            method,
            "/proto/cached",
            "",
            &[("if-none-match", etag.clone())],
            sigv4::EMPTY_SHA256,
            vec![],
        );
        let a = send(s.addr, &r).await;
        assert_eq!(a.status, 304, "{method}: {}", a.describe());
        assert_eq!(
            a.header("etag"),
            Some(etag.as_str()),
            "{method}: {}",
            a.describe()
        );
        assert!(
            a.header("last-modified")
                .is_some_and(|d| d.ends_with(" GMT")),
            "{method}: {}",
            a.describe()
        );
        assert_eq!(a.header("cache-control"), Some("max-age=60"), "{method}");
        assert_eq!(
            a.header("expires"),
            Some("Wed, 18 May 2033 03:33:20 GMT"),
            "{method}"
        );
        assert!(a.header("x-amz-request-id").is_some(), "{method}");
    }
}

/// Point 9: user metadata, RFC 2047-encoded or raw UTF-8.
async fn metadata(s: &Signer) {
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    let sent = [
        ("x-amz-meta-b", format!("=?UTF-8?B?{}?=", b64("élève"))),
        ("x-amz-meta-q", "=?utf-8?Q?caf=C3=A9?=".to_string()),
        (
            "x-amz-meta-ascii-word",
            format!("=?UTF-8?B?{}?=", b64("abc")),
        ),
        ("x-amz-meta-raw", "grüße, 東京".to_string()),
        ("x-amz-meta-plain", "plain text".to_string()),
    ];
    let r = s.sign(
        "PUT",
        "/proto/meta",
        "",
        &sent,
        &sha256_hex(b"m"),
        b"m".to_vec(),
    );
    let a = send(s.addr, &r).await;
    assert_eq!(a.status, 200, "{}", a.describe());
    let r = s.sign("HEAD", "/proto/meta", "", &[], sigv4::EMPTY_SHA256, vec![]);
    let a = send(s.addr, &r).await;
    assert_eq!(a.status, 200, "{}", a.describe());
    for (name, value) in &sent[..3] {
        assert_eq!(
            a.header(name),
            Some(value.as_str()),
            "{name}: {}",
            a.describe()
        );
    }
    // Raw UTF-8 comes back RFC 2047-encoded, as AWS does.
    let raw = format!("=?UTF-8?B?{}?=", b64("grüße, 東京"));
    assert_eq!(
        a.header("x-amz-meta-raw"),
        Some(raw.as_str()),
        "{}",
        a.describe()
    );
    assert_eq!(a.header("x-amz-meta-plain"), Some("plain text"));
}

/// Point 11: legacy LocationConstraint values, and s3cmd's "US" region.
async fn locations(s: &Signer) {
    let body = |loc: &str| {
        format!(
            "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{loc}</LocationConstraint></CreateBucketConfiguration>"
        )
        .into_bytes()
    };
    for (bucket, loc) in [
        ("loc-us", "US"),
        ("loc-eu", "EU"),
        ("loc-west", "eu-west-1"),
    ] {
        let b = body(loc);
        let r = s.sign("PUT", &format!("/{bucket}"), "", &[], &sha256_hex(&b), b);
        let a = send(s.addr, &r).await;
        assert_eq!(a.status, 200, "{loc}: {}", a.describe());
        let r = s.sign(
            "GET",
            &format!("/{bucket}"),
            "location=",
            &[],
            sigv4::EMPTY_SHA256,
            vec![],
        );
        let a = send(s.addr, &r).await;
        assert_eq!(a.status, 200, "{}", a.describe());
        // One location for every bucket: us-east-1, shown empty.
        assert!(a.text().contains("LocationConstraint"), "{}", a.describe());
        assert_eq!(
            a.xml("LocationConstraint").unwrap_or_default(),
            "",
            "{}",
            a.describe()
        );
    }
    let b = body("Not A Region");
    let r = s.sign("PUT", "/loc-bad", "", &[], &sha256_hex(&b), b);
    expect(&send(s.addr, &r).await, 400, "InvalidLocationConstraint");
    // Signed for region "US" (s3cmd's default): told the region to use.
    let date = sigv4::amz_date(sigv4::now());
    let a = raw(
        s.addr,
        &format!(
            "PUT /loc-s3cmd HTTP/1.1\r\nhost: {}\r\nx-amz-date: {date}\r\nx-amz-content-sha256: {}\r\nauthorization: AWS4-HMAC-SHA256 Credential={}/{}/US/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={}\r\ncontent-length: 0\r\n",
            s.host,
            sigv4::EMPTY_SHA256,
            s.id,
            &date[..8],
            "0".repeat(64)
        ),
        b"",
    )
    .await;
    expect(&a, 400, "AuthorizationHeaderMalformed");
    assert_eq!(
        a.xml("Region").as_deref(),
        Some("us-east-1"),
        "{}",
        a.describe()
    );
}

/// Point 16: unsigned requests, and an expired presigned URL.
async fn anonymous(s: &Signer, c: &Client) {
    let get = |path: &str| {
        let head = format!("GET {path} HTTP/1.1\r\nhost: {}\r\n", s.host);
        async move { raw(s.addr, &head, b"").await }
    };
    expect(&get("/no-such-bucket/key").await, 404, "NoSuchBucket");
    expect(&get("/no-such-bucket").await, 404, "NoSuchBucket");
    expect(&get("/proto/cached").await, 403, "AccessDenied");
    expect(&get("/proto").await, 403, "AccessDenied");
    expect(&get("/").await, 403, "AccessDenied");
    let put = format!(
        "PUT /proto/anon HTTP/1.1\r\nhost: {}\r\ncontent-length: 4\r\n",
        s.host
    );
    expect(&raw(s.addr, &put, b"anon").await, 403, "AccessDenied");
    assert!(
        get_bytes(c, BUCKET, "anon").await.is_err(),
        "an anonymous PUT stored"
    );
    // An unsigned CreateBucket: 403 as AWS (not 404 for the bucket it
    // would create), new name or existing; nothing created.
    for bucket in ["anon-new", BUCKET] {
        let create = format!("PUT /{bucket} HTTP/1.1\r\nhost: {}\r\n", s.host);
        expect(&raw(s.addr, &create, b"").await, 403, "AccessDenied");
    }
    assert!(
        c.head_bucket().bucket("anon-new").send().await.is_err(),
        "an anonymous CreateBucket created"
    );
    // A scan of random names, at once: each answered 404 or, past the
    // gateway's cap on lookups for unsigned requests (20 a second), 403
    // without asking the meta tier — never anything else.
    let scan = (0..100).map(|i| async move { (i, get(&format!("/scan-{i}/k")).await) });
    let mut denied = 0;
    for (i, a) in futures::future::join_all(scan).await {
        match (a.status, a.xml("Code").as_deref()) {
            (404, Some("NoSuchBucket")) => {}
            (403, Some("AccessDenied")) => denied += 1,
            _ => panic!("scan {i}: {}", a.describe()),
        }
    }
    assert!(denied > 0, "100 unsigned lookups at once, none capped");

    // A presigned GET: fine while valid, "Request has expired" after.
    let presign = |start: SystemTime| {
        let cfg = PresigningConfig::builder()
            .start_time(start)
            .expires_in(Duration::from_secs(60))
            .build()
            .expect("presigning config");
        async move {
            c.get_object()
                .bucket(BUCKET)
                .key("cached")
                .presigned(cfg)
                .await
                .expect("presign")
        }
    };
    let fetch = |uri: String| async move {
        // http://HOST:PORT/path?query: the target is from the first '/'
        // after the scheme's "//".
        let after = uri.split_once("//").map_or(uri.as_str(), |(_, r)| r);
        let target = &after[after.find('/').expect("a path")..];
        raw(
            s.addr,
            &format!("GET {target} HTTP/1.1\r\nhost: {}\r\n", s.host),
            b"",
        )
        .await
    };
    let fresh = presign(SystemTime::now()).await;
    let a = fetch(fresh.uri().to_string()).await;
    assert_eq!(
        (a.status, a.body.as_slice()),
        (200, &b"cached body"[..]),
        "{}",
        a.describe()
    );
    let old = presign(SystemTime::now() - Duration::from_secs(3600)).await;
    let a = fetch(old.uri().to_string()).await;
    expect(&a, 403, "AccessDenied");
    assert_eq!(
        a.xml("Message").as_deref(),
        Some("Request has expired"),
        "{}",
        a.describe()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_protocol_details() {
    let mut steps = Steps::new("s3_protocol_details");
    let (cluster, c) = S3Cluster::start_step(&mut steps, &ClusterSpec::default()).await;
    let s = Signer::new(cluster.s3_addr(), &cluster.access_key_id, &cluster.secret);
    let (s, c) = (&s, &c);
    steps
        .require("bucket", async {
            c.create_bucket().bucket(BUCKET).send().await.map(|_| ())
        })
        .await;
    steps
        .run(
            "chunked Transfer-Encoding, no Content-Length",
            chunked_transfer(s, c),
        )
        .await;
    steps
        .run(
            "aws-chunked is never a stored Content-Encoding",
            content_encoding(s, c),
        )
        .await;
    steps
        .run("request ids in headers and error bodies", request_ids(s))
        .await;
    steps
        .run("a 304 carries the validators", not_modified(s, c))
        .await;
    steps.run("non-ASCII user metadata", metadata(s)).await;
    steps
        .run("legacy locations and the US region", locations(s))
        .await;
    steps
        .run("anonymous and expired presigned requests", anonymous(s, c))
        .await;
    steps.finish();
}
