//! Encryption headers: AES256 on every object answer; SSE-C and KMS
//! requests refused, a mode S3 does not name 400, nothing written.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use hamster_tests::s3::assert_s3_error;
use hamster_tests::sigv4::{Signer, sha256_hex};
use sha2::Digest;

use crate::{B, Client, b64, completed};

pub fn aes(s: Option<&ServerSideEncryption>, what: &str) {
    assert_eq!(s, Some(&ServerSideEncryption::Aes256), "{what}");
}

pub async fn sse_shown(c: &Client) {
    let p = c
        .put_object()
        .bucket(B)
        .key("enc")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from_static(b"secret"))
        .send()
        .await
        .expect("put with AES256");
    aes(p.server_side_encryption(), "PutObject");
    let h = c
        .head_object()
        .bucket(B)
        .key("enc")
        .send()
        .await
        .expect("head");
    aes(h.server_side_encryption(), "HeadObject");
    let g = c
        .get_object()
        .bucket(B)
        .key("enc")
        .send()
        .await
        .expect("get");
    aes(g.server_side_encryption(), "GetObject");
    let cp = c
        .copy_object()
        .bucket(B)
        .key("enc-copy")
        .copy_source(format!("{B}/enc"))
        .send()
        .await
        .expect("copy");
    aes(cp.server_side_encryption(), "CopyObject");
    let create = c
        .create_multipart_upload()
        .bucket(B)
        .key("enc-mpu")
        .send()
        .await
        .expect("create");
    aes(create.server_side_encryption(), "CreateMultipartUpload");
    let id = create.upload_id().expect("id");
    let part = c
        .upload_part()
        .bucket(B)
        .key("enc-mpu")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .expect("part");
    aes(part.server_side_encryption(), "UploadPart");
    let pc = c
        .upload_part_copy()
        .bucket(B)
        .key("enc-mpu")
        .upload_id(id)
        .part_number(2)
        .copy_source(format!("{B}/enc"))
        .send()
        .await
        .expect("part copy");
    aes(pc.server_side_encryption(), "UploadPartCopy");
    let done = c
        .complete_multipart_upload()
        .bucket(B)
        .key("enc-mpu")
        .upload_id(id)
        .multipart_upload(completed(&[
            (1, part.e_tag().expect("etag").into(), None),
            (
                2,
                pc.copy_part_result()
                    .and_then(|r| r.e_tag())
                    .expect("etag")
                    .into(),
                None,
            ),
        ]))
        .send()
        .await
        .expect("complete");
    aes(done.server_side_encryption(), "CompleteMultipartUpload");
}

/// SSE-C and KMS requests are refused (501), a mode S3 does not name is
/// 400, and nothing is written.
pub async fn sse_refused(c: &Client, signer: &Signer) {
    let body = b"not stored".to_vec();
    let put = |extra: Vec<(&'static str, String)>| {
        signer.sign(
            "PUT",
            &format!("/{B}/enc-refused"),
            "",
            &extra,
            &sha256_hex(&body),
            body.clone(),
        )
    };
    let key = b64(&[7u8; 32]);
    let key_md5 = b64(&md5::Md5::digest([7u8; 32]));
    let sse_c = vec![
        (
            "x-amz-server-side-encryption-customer-algorithm",
            "AES256".to_string(),
        ),
        ("x-amz-server-side-encryption-customer-key", key.clone()),
        ("x-amz-server-side-encryption-customer-key-md5", key_md5),
    ];
    signer
        .expect(&put(sse_c.clone()), 501, "NotImplemented")
        .await;
    for mode in ["aws:kms", "aws:kms:dsse"] {
        let r = put(vec![("x-amz-server-side-encryption", mode.to_string())]);
        signer.expect(&r, 501, "NotImplemented").await;
    }
    let r = put(vec![(
        "x-amz-server-side-encryption-aws-kms-key-id",
        "arn:aws:kms:us-east-1:1:key/k".to_string(),
    )]);
    signer.expect(&r, 501, "NotImplemented").await;
    let r = put(vec![("x-amz-server-side-encryption", "AES128".to_string())]);
    signer.expect(&r, 400, "InvalidArgument").await;
    let gone = c.head_object().bucket(B).key("enc-refused").send().await;
    assert_s3_error(gone, "NotFound", 404);
    // The SDK's own KMS request, on a PUT and on CreateMultipartUpload.
    let kms = c
        .put_object()
        .bucket(B)
        .key("enc-refused")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_s3_error(kms, "NotImplemented", 501);
    let kms = c
        .create_multipart_upload()
        .bucket(B)
        .key("enc-refused")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .send()
        .await;
    assert_s3_error(kms, "NotImplemented", 501);
    // SSE-C on a read, a copy and a part: refused too.
    let get = signer.sign(
        "GET",
        &format!("/{B}/enc"),
        "",
        &sse_c,
        &sha256_hex(b""),
        Vec::new(),
    );
    signer.expect(&get, 501, "NotImplemented").await;
    let copy_c: Vec<_> = [
        (
            "x-amz-copy-source-server-side-encryption-customer-algorithm",
            "AES256".to_string(),
        ),
        ("x-amz-copy-source", format!("/{B}/enc")),
    ]
    .into();
    let copy = signer.sign(
        "PUT",
        &format!("/{B}/enc-refused"),
        "",
        &copy_c,
        &sha256_hex(b""),
        Vec::new(),
    );
    signer.expect(&copy, 501, "NotImplemented").await;
    let gone = c.head_object().bucket(B).key("enc-refused").send().await;
    assert_s3_error(gone, "NotFound", 404);
}
