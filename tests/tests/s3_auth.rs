//! Requests no SDK sends, signed by an independent SigV4 signer
//! (`hamster_tests::sigv4`): tampered aws-chunked signatures, a wrong
//! checksum trailer, a body that does not match its signed hash, a skewed
//! clock, malformed XML, and virtual-hosted bucket names. Each gets the
//! status and code a client expects, and nothing is stored.

use aws_sdk_s3::primitives::ByteStream;
use hamster_tests::s3::S3Cluster;
use hamster_tests::sigv4::{
    EMPTY_SHA256, chunked_body, now, send, sha256_hex, sign, unsigned_trailer_body,
};

fn code(body: &str) -> String {
    body.split("<Code>")
        .nth(1)
        .and_then(|r| r.split("</Code>").next())
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hand_signed_requests_get_the_errors_clients_expect() {
    let s = S3Cluster::start_with(1, 3, &["--domain=s3.test"]).await;
    let addr = s.c.nodes[s.gw].s3_addr.expect("s3");
    let host = addr.to_string();
    let c = s.client();
    c.create_bucket().bucket("raw").send().await.expect("mb");
    let (id, secret) = (s.access_key_id.as_str(), s.secret.as_str());
    let h = |extra: &[(&str, String)]| {
        let mut v = vec![("host".to_string(), host.clone())];
        v.extend(extra.iter().map(|(k, val)| (k.to_string(), val.clone())));
        v
    };

    // The signer is right: a plain signed GET works.
    let r = sign(
        id,
        secret,
        now(),
        "GET",
        "/",
        "",
        h(&[]),
        EMPTY_SHA256,
        vec![],
    );
    let (st, body) = send(addr, &r).await;
    assert_eq!(st, 200, "{body}");

    // A clock 20 minutes off: RequestTimeTooSkewed.
    let r = sign(
        id,
        secret,
        now() - 20 * 60,
        "GET",
        "/",
        "",
        h(&[]),
        EMPTY_SHA256,
        vec![],
    );
    let (st, body) = send(addr, &r).await;
    assert_eq!(
        (st, code(&body).as_str()),
        (403, "RequestTimeTooSkewed"),
        "{body}"
    );

    // aws-chunked with chunk signatures: accepted as signed...
    let chunks: [&[u8]; 3] = [&[b'a'; 70_000], &[b'b'; 70_000], b"tail"];
    let len: usize = chunks.iter().map(|c| c.len()).sum();
    let streaming = |key: &str, tamper: Option<usize>| {
        let mut r = sign(
            id,
            secret,
            now(),
            "PUT",
            &format!("/raw/{key}"),
            "",
            h(&[
                ("content-encoding", "aws-chunked".into()),
                ("x-amz-decoded-content-length", len.to_string()),
            ]),
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            vec![],
        );
        r.body = chunked_body(&r, &chunks, tamper);
        r
    };
    let (st, body) = send(addr, &streaming("chunked-ok", None)).await;
    assert_eq!(st, 200, "{body}");
    let got = c
        .get_object()
        .bucket("raw")
        .key("chunked-ok")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .to_vec(),
        chunks.concat()
    );

    let before = s.shard_file_count();
    // ...and refused when a chunk was changed after signing.
    for tamper in [0, 1] {
        let (st, body) = send(addr, &streaming("chunked-bad", Some(tamper))).await;
        assert_eq!(
            (st, code(&body).as_str()),
            (403, "SignatureDoesNotMatch"),
            "chunk {tamper}: {body}"
        );
    }

    // An unsigned streaming body whose checksum trailer is wrong: BadDigest.
    let data = b"trailer checked data".repeat(1000);
    let crc = |d: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(d).to_be_bytes())
    };
    let trailer_put = |key: &str, value: String| {
        let mut r = sign(
            id,
            secret,
            now(),
            "PUT",
            &format!("/raw/{key}"),
            "",
            h(&[
                ("content-encoding", "aws-chunked".into()),
                ("x-amz-decoded-content-length", data.len().to_string()),
                ("x-amz-trailer", "x-amz-checksum-crc32".into()),
            ]),
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            vec![],
        );
        r.body = unsigned_trailer_body(&data, &format!("x-amz-checksum-crc32:{value}"));
        r
    };
    let (st, body) = send(addr, &trailer_put("trailer-bad", crc(b"something else"))).await;
    assert_eq!((st, code(&body).as_str()), (400, "BadDigest"), "{body}");
    // The other trailer checksums are checked too (wrong → BadDigest, right → stored).
    let b64 = |b: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    let crc32c_of = |d: &[u8]| b64(&crc32c::crc32c(d).to_be_bytes());
    let sha256_of = |d: &[u8]| {
        use sha2::Digest;
        b64(&sha2::Sha256::digest(d))
    };
    for (name, right, wrong) in [
        ("crc32c", crc32c_of(&data), crc32c_of(b"x")),
        ("sha256", sha256_of(&data), sha256_of(b"x")),
    ] {
        for (value, want) in [(wrong, 400), (right, 200)] {
            let mut r = sign(
                id,
                secret,
                now(),
                "PUT",
                &format!("/raw/trailer-{name}-{want}"),
                "",
                h(&[
                    ("content-encoding", "aws-chunked".into()),
                    ("x-amz-decoded-content-length", data.len().to_string()),
                    ("x-amz-trailer", format!("x-amz-checksum-{name}")),
                ]),
                "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                vec![],
            );
            r.body = unsigned_trailer_body(&data, &format!("x-amz-checksum-{name}:{value}"));
            let (st, body) = send(addr, &r).await;
            assert_eq!(st, want, "{name}: {body}");
            if want == 400 {
                assert_eq!(code(&body), "BadDigest");
            }
        }
    }
    // A Content-MD5 that the body does not match.
    let r = sign(
        id,
        secret,
        now(),
        "PUT",
        "/raw/md5-bad",
        "",
        h(&[("content-md5", b64(&[0u8; 16]))]),
        &sha256_hex(b"md5 body"),
        b"md5 body".to_vec(),
    );
    let (st, body) = send(addr, &r).await;
    assert_eq!((st, code(&body).as_str()), (400, "BadDigest"), "{body}");
    // UNSIGNED-PAYLOAD is accepted (what SDKs send over HTTPS).
    let r = sign(
        id,
        secret,
        now(),
        "PUT",
        "/raw/unsigned",
        "",
        h(&[]),
        "UNSIGNED-PAYLOAD",
        b"unsigned body".to_vec(),
    );
    let (st, body) = send(addr, &r).await;
    assert_eq!(st, 200, "{body}");
    // A signed payload hash that the body does not match.
    let r = sign(
        id,
        secret,
        now(),
        "PUT",
        "/raw/sha-bad",
        "",
        h(&[]),
        &sha256_hex(b"other"),
        b"this body".to_vec(),
    );
    let (st, body) = send(addr, &r).await;
    assert_eq!(
        (st, code(&body).as_str()),
        (400, "XAmzContentSHA256Mismatch"),
        "{body}"
    );
    // Nothing of the refused writes is stored, and no shard leaked.
    for key in [
        "chunked-bad",
        "trailer-bad",
        "sha-bad",
        "md5-bad",
        "trailer-crc32c-400",
        "trailer-sha256-400",
    ] {
        let e = c
            .head_object()
            .bucket("raw")
            .key(key)
            .send()
            .await
            .expect_err("absent");
        assert_eq!(
            e.raw_response().map(|r| r.status().as_u16()),
            Some(404),
            "{key}"
        );
    }
    // Three writes above were accepted (two trailers and UNSIGNED-PAYLOAD),
    // 3 shards each (2+1); the refused ones left none.
    assert_eq!(
        s.shard_file_count(),
        before + 3 * 3,
        "refused writes left shards"
    );
    // The right trailer is accepted.
    let (st, body) = send(addr, &trailer_put("trailer-ok", crc(&data))).await;
    assert_eq!(st, 200, "{body}");

    // Malformed XML: DeleteObjects and CompleteMultipartUpload.
    let bad_xml = b"<Delete><Object><Key>x</Key></Object".to_vec();
    let md5 = {
        use base64::Engine;
        use md5::Digest;
        base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&bad_xml))
    };
    let r = sign(
        id,
        secret,
        now(),
        "POST",
        "/raw",
        "delete=",
        h(&[("content-md5", md5)]),
        &sha256_hex(&bad_xml),
        bad_xml,
    );
    let (st, body) = send(addr, &r).await;
    assert_eq!((st, code(&body).as_str()), (400, "MalformedXML"), "{body}");
    let up = c
        .create_multipart_upload()
        .bucket("raw")
        .key("mpu")
        .send()
        .await
        .expect("create");
    let upload_id = up.upload_id().expect("id");
    c.upload_part()
        .bucket("raw")
        .key("mpu")
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .expect("part");
    let bad_xml = b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>".to_vec();
    let r = sign(
        id,
        secret,
        now(),
        "POST",
        "/raw/mpu",
        &format!("uploadId={upload_id}"),
        h(&[]),
        &sha256_hex(&bad_xml),
        bad_xml,
    );
    let (st, body) = send(addr, &r).await;
    assert_eq!((st, code(&body).as_str()), (400, "MalformedXML"), "{body}");
    let uploads = c
        .list_multipart_uploads()
        .bucket("raw")
        .send()
        .await
        .expect("uploads");
    assert_eq!(
        uploads.uploads().len(),
        1,
        "a malformed complete changed the upload"
    );
    let e = c
        .head_object()
        .bucket("raw")
        .key("mpu")
        .send()
        .await
        .expect_err("absent");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(404));

    // Virtual-hosted style: the bucket in the Host name (--domain s3.test).
    let vhost = format!("raw.s3.test:{}", addr.port());
    let r = sign(
        id,
        secret,
        now(),
        "GET",
        "/chunked-ok",
        "",
        vec![("host".into(), vhost)],
        EMPTY_SHA256,
        vec![],
    );
    let (st, body) = send(addr, &r).await;
    assert_eq!(st, 200, "{}", &body[..body.len().min(500)]);
    assert!(
        body.ends_with("tail"),
        "virtual-hosted GET returned another body"
    );

    // A key longer than 1024 bytes is refused.
    let e = c
        .put_object()
        .bucket("raw")
        .key("k".repeat(1025))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("too long");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(400));
}
