//! Checksums a request sends that AWS refuses or checks: more than one
//! x-amz-checksum-* value header on a PUT or UploadPart, and an object
//! checksum sent with CompleteMultipartUpload (checked before the object
//! is made; refused when it cannot be checked).

use hamster_tests::s3::{assert_s3_error, pattern};
use hamster_tests::sigv4::{Signer, sha256_hex};
use sha2::{Digest, Sha256};

use crate::{B, Client, b64, completed, crc32_b64};

/// Two value headers on a PUT or an UploadPart: 400 InvalidRequest, as
/// AWS; nothing stored.
pub async fn one_checksum_header(c: &Client, signer: &Signer) {
    let data = pattern(2000, 7);
    let both = [
        ("x-amz-checksum-crc32", crc32_b64(&data)),
        ("x-amz-checksum-sha256", b64(&Sha256::digest(&data))),
    ];
    let put = |path: String, query: &str, headers: &[(&str, String)]| {
        signer.sign(
            "PUT",
            &path,
            query,
            headers,
            &sha256_hex(&data),
            data.clone(),
        )
    };
    let body = signer
        .expect(
            &put(format!("/{B}/two-sums"), "", &both),
            400,
            "InvalidRequest",
        )
        .await;
    assert!(
        body.contains("Expecting a single x-amz-checksum- header"),
        "{body}"
    );
    let head = c.head_object().bucket(B).key("two-sums").send().await;
    assert_s3_error(head, "NotFound", 404);
    // Either alone is taken.
    signer
        .expect(&put(format!("/{B}/two-sums"), "", &both[..1]), 200, "")
        .await;
    // A part: refused alike, stored by neither.
    let id = c
        .create_multipart_upload()
        .bucket(B)
        .key("two-sums-mpu")
        .send()
        .await
        .expect("create")
        .upload_id()
        .expect("id")
        .to_string();
    let query = format!("partNumber=1&uploadId={id}");
    let part = put(format!("/{B}/two-sums-mpu"), &query, &both);
    signer.expect(&part, 400, "InvalidRequest").await;
    let listed = c
        .list_parts()
        .bucket(B)
        .key("two-sums-mpu")
        .upload_id(&id)
        .send()
        .await
        .expect("list parts");
    assert!(listed.parts().is_empty(), "a refused part was stored");
}

/// An object checksum with CompleteMultipartUpload: compared with the
/// composite of the listed part checksums before anything is made.
pub async fn object_checksum_on_complete(c: &Client) {
    let key = "sent-mpu";
    let data = [pattern(5000, 1), pattern(3000, 2)];
    let (id, parts, raw) = crate::checksums::sha256_upload(c, key, &data).await;
    let composite = format!("{}-2", b64(&Sha256::digest(&raw)));
    let complete = || {
        c.complete_multipart_upload()
            .bucket(B)
            .key(key)
            .upload_id(&id)
    };
    // The wrong value: BadDigest, and nothing made (the upload stays).
    let wrong = b64(&Sha256::digest(b"not the object"));
    let r = complete()
        .multipart_upload(completed(&parts))
        .checksum_sha256(format!("{wrong}-2"))
        .send()
        .await;
    assert_s3_error(r, "BadDigest", 400);
    // Another algorithm than the upload's: InvalidRequest.
    let r = complete()
        .multipart_upload(completed(&parts))
        .checksum_crc32(crc32_b64(b"x"))
        .send()
        .await;
    assert_s3_error(r, "InvalidRequest", 400);
    // Two object checksums: InvalidRequest.
    let r = complete()
        .multipart_upload(completed(&parts))
        .checksum_sha256(&composite)
        .checksum_crc32(crc32_b64(b"x"))
        .send()
        .await;
    assert_s3_error(r, "InvalidRequest", 400);
    // The parts listed without their checksums: it cannot be checked,
    // so it is refused rather than ignored.
    let bare: Vec<_> = parts
        .iter()
        .map(|(n, e, _)| (*n, e.clone(), None))
        .collect();
    let r = complete()
        .multipart_upload(completed(&bare))
        .checksum_sha256(&composite)
        .send()
        .await;
    assert_s3_error(r, "NotImplemented", 501);
    let head = c.head_object().bucket(B).key(key).send().await;
    assert_s3_error(head, "NotFound", 404);
    c.list_parts()
        .bucket(B)
        .key(key)
        .upload_id(&id)
        .send()
        .await
        .expect("the upload is still there");
    // The composite: completed, and shown.
    let done = complete()
        .multipart_upload(completed(&parts))
        .checksum_sha256(&composite)
        .send()
        .await
        .expect("complete with the right composite");
    assert_eq!(done.checksum_sha256(), Some(composite.as_str()));
    // Repeated (the first answer lost): answered as the first; a wrong
    // value is refused and changes nothing.
    let again = complete()
        .multipart_upload(completed(&parts))
        .checksum_sha256(&composite)
        .send()
        .await
        .expect("repeat");
    assert_eq!(again.e_tag(), done.e_tag());
    let r = complete()
        .multipart_upload(completed(&parts))
        .checksum_sha256(&wrong)
        .send()
        .await;
    assert_s3_error(r, "BadDigest", 400);
    // An upload with no algorithm: an object checksum is not its type.
    let (id, plain) = crate::upload(c, "sent-plain", &[b"abc"]).await;
    let r = c
        .complete_multipart_upload()
        .bucket(B)
        .key("sent-plain")
        .upload_id(&id)
        .multipart_upload(plain)
        .checksum_crc32(crc32_b64(b"abc"))
        .send()
        .await;
    assert_s3_error(r, "InvalidRequest", 400);
}
