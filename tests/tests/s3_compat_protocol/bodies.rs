//! Points 3 and 4: request bodies with chunked Transfer-Encoding and no
//! Content-Length, and `aws-chunked` never stored as a Content-Encoding.

use aws_sdk_s3::primitives::ByteStream;
use hamster_tests::s3::{get_bytes, pattern};
use hamster_tests::sigv4::{self, Signer, sha256_hex};

use super::raw::{expect, send, send_chunked};
use super::{BUCKET, Client};

async fn head_encoding(c: &Client, key: &str) -> Option<String> {
    let h = c
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("head {key}: {e:?}"));
    h.content_encoding().map(str::to_string)
}

/// Point 3: PutObject and UploadPart with chunked Transfer-Encoding.
pub async fn chunked_transfer(s: &Signer, c: &Client) {
    let addr = s.addr;
    // 20 MiB, unsigned: streamed, stored whole, read back byte for byte.
    let big = pattern(20 << 20, 3);
    let r = s.sign("PUT", "/proto/te-big", "", &[], "UNSIGNED-PAYLOAD", vec![]);
    let a = send_chunked(addr, &r, &big).await;
    assert_eq!(a.status, 200, "{}", a.describe());
    assert_eq!(
        a.header("etag").map(|e| e.trim_matches('"').to_string()),
        Some(hex::encode(md5_of(&big)))
    );
    let back = get_bytes(c, BUCKET, "te-big").await.expect("get te-big");
    assert!(
        back == big,
        "te-big read back differs ({} bytes)",
        back.len()
    );
    // A signed payload hash: checked at the body's end.
    let small = pattern(300_000, 4);
    let r = s.sign(
        "PUT",
        "/proto/te-signed",
        "",
        &[],
        &sha256_hex(&small),
        vec![],
    );
    let a = send_chunked(addr, &r, &small).await;
    assert_eq!(a.status, 200, "{}", a.describe());
    assert_eq!(get_bytes(c, BUCKET, "te-signed").await.expect("get"), small);
    // ... and refused, storing nothing, when it does not match.
    let r = s.sign(
        "PUT",
        "/proto/te-bad",
        "",
        &[],
        &sha256_hex(b"other"),
        vec![],
    );
    let a = send_chunked(addr, &r, &small).await;
    expect(&a, 400, "XAmzContentSHA256Mismatch");
    assert!(
        get_bytes(c, BUCKET, "te-bad").await.is_err(),
        "a refused body was stored"
    );
    // UploadPart, unsigned and chunked, then completed.
    let up = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("te-mp")
        .send()
        .await
        .expect("create upload");
    let id = up.upload_id().expect("upload id").to_string();
    let part = pattern(6 << 20, 5);
    let q = format!("partNumber=1&uploadId={id}");
    let r = s.sign("PUT", "/proto/te-mp", &q, &[], "UNSIGNED-PAYLOAD", vec![]);
    let a = send_chunked(addr, &r, &part).await;
    assert_eq!(a.status, 200, "{}", a.describe());
    let etag = a.header("etag").expect("part etag").to_string();
    let done = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(1)
                .e_tag(etag)
                .build(),
        )
        .build();
    c.complete_multipart_upload()
        .bucket(BUCKET)
        .key("te-mp")
        .upload_id(&id)
        .multipart_upload(done)
        .send()
        .await
        .expect("complete");
    assert!(get_bytes(c, BUCKET, "te-mp").await.expect("get te-mp") == part);
}

fn md5_of(b: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(b).into()
}

/// Point 4: `aws-chunked` is framing, never a stored Content-Encoding.
pub async fn content_encoding(s: &Signer, c: &Client) {
    for (key, sent, stored) in [
        ("ce-gzip", "gzip, aws-chunked", Some("gzip")),
        ("ce-only", "aws-chunked", None),
    ] {
        let data = b"not really gzip".to_vec();
        let path = format!("/proto/{key}");
        let r = s.sign(
            "PUT",
            &path,
            "",
            &[
                ("content-encoding", sent.to_string()),
                ("x-amz-decoded-content-length", data.len().to_string()),
            ],
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            vec![],
        );
        let mut r = r;
        r.body = sigv4::chunked_body(&r, &[&data], None);
        let a = send(s.addr, &r).await;
        assert_eq!(a.status, 200, "{key}: {}", a.describe());
        assert_eq!(head_encoding(c, key).await.as_deref(), stored, "{key}");
        assert_eq!(get_bytes(c, BUCKET, key).await.expect("get"), data);
    }
    // The SDK's own aws-chunked upload of a gzip object.
    c.put_object()
        .bucket(BUCKET)
        .key("ce-sdk")
        .content_encoding("gzip")
        .body(ByteStream::from_static(b"sdk body"))
        .send()
        .await
        .expect("sdk put");
    assert_eq!(head_encoding(c, "ce-sdk").await.as_deref(), Some("gzip"));
    // CreateMultipartUpload and CopyObject (REPLACE) store it alike.
    let up = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("ce-mp")
        .content_encoding("gzip, aws-chunked")
        .send()
        .await
        .expect("create upload");
    let id = up.upload_id().expect("id");
    let p = c
        .upload_part()
        .bucket(BUCKET)
        .key("ce-mp")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .expect("part");
    let done = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(1)
                .e_tag(p.e_tag().unwrap_or_default())
                .build(),
        )
        .build();
    c.complete_multipart_upload()
        .bucket(BUCKET)
        .key("ce-mp")
        .upload_id(id)
        .multipart_upload(done)
        .send()
        .await
        .expect("complete");
    assert_eq!(head_encoding(c, "ce-mp").await.as_deref(), Some("gzip"));
    c.copy_object()
        .bucket(BUCKET)
        .key("ce-copy")
        .copy_source("proto/ce-gzip")
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .content_encoding("aws-chunked")
        .send()
        .await
        .expect("copy");
    assert_eq!(head_encoding(c, "ce-copy").await, None);
}
