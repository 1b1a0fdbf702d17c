//! Flexible checksums kept and shown: PUT, copy, multipart composite,
//! ListParts, and a checksum named only by its trailer.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ChecksumType};
use hamster_tests::s3::{assert_s3_error, pattern, read_body};
use hamster_tests::sigv4::{Signer, unsigned_trailer_body};
use sha2::{Digest, Sha256};

use crate::{B, Client, b64, completed, crc32_b64};

pub async fn checksums_kept(c: &Client) {
    let data = pattern(100_000, 9);
    let put = c
        .put_object()
        .bucket(B)
        .key("sum")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put with CRC32");
    assert_eq!(put.checksum_crc32(), Some(crc32_b64(&data).as_str()));
    let h = c
        .head_object()
        .bucket(B)
        .key("sum")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(h.checksum_crc32(), Some(crc32_b64(&data).as_str()));
    assert_eq!(h.checksum_type().map(|t| t.as_str()), Some("FULL_OBJECT"));
    let plain = c
        .head_object()
        .bucket(B)
        .key("sum")
        .send()
        .await
        .expect("head");
    assert_eq!(plain.checksum_crc32(), None, "not shown unless asked");
    let g = c
        .get_object()
        .bucket(B)
        .key("sum")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("get");
    assert_eq!(g.checksum_crc32(), Some(crc32_b64(&data).as_str()));
    assert_eq!(read_body(g).await, data);
    let ranged = c
        .get_object()
        .bucket(B)
        .key("sum")
        .range("bytes=0-99")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("ranged get");
    assert_eq!(ranged.checksum_crc32(), None, "a range is not the object");
    // A value the client computed (SHA-256), kept as sent.
    let sha = b64(&Sha256::digest(&data));
    c.put_object()
        .bucket(B)
        .key("sum256")
        .checksum_sha256(&sha)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put with SHA-256");
    let h = c
        .head_object()
        .bucket(B)
        .key("sum256")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(h.checksum_sha256(), Some(sha.as_str()));
    // A copy keeps the source's whole-object checksum.
    let copied = c
        .copy_object()
        .bucket(B)
        .key("sum-copy")
        .copy_source(format!("{B}/sum"))
        .send()
        .await
        .expect("copy");
    let r = copied.copy_object_result().expect("result");
    assert_eq!(r.checksum_crc32(), Some(crc32_b64(&data).as_str()));
    let h = c
        .head_object()
        .bucket(B)
        .key("sum-copy")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head copy");
    assert_eq!(h.checksum_crc32(), Some(crc32_b64(&data).as_str()));
}

/// A SHA256 multipart upload of `data`'s parts (not completed): its id,
/// the parts as `completed` takes them (number, ETag, checksum), and the
/// part digests joined (what a composite checksum hashes). Each part's
/// answer must carry the SHA256 the test computed.
pub async fn sha256_upload(
    c: &Client,
    key: &str,
    data: &[Vec<u8>],
) -> (String, Vec<(i32, String, Option<String>)>, Vec<u8>) {
    let id = c
        .create_multipart_upload()
        .bucket(B)
        .key(key)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .expect("create with SHA256")
        .upload_id()
        .expect("id")
        .to_string();
    let mut parts = Vec::new();
    let mut raw = Vec::new();
    for (i, d) in data.iter().enumerate() {
        let n = i as i32 + 1;
        let digest = Sha256::digest(d);
        raw.extend_from_slice(&digest);
        let p = c
            .upload_part()
            .bucket(B)
            .key(key)
            .upload_id(&id)
            .part_number(n)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(d.clone()))
            .send()
            .await
            .expect("upload part");
        assert_eq!(p.checksum_sha256(), Some(b64(&digest).as_str()));
        parts.push((n, p.e_tag().expect("etag").to_string(), Some(b64(&digest))));
    }
    (id, parts, raw)
}

pub async fn multipart_checksums(c: &Client) {
    let key = "sum-mpu";
    let data = [pattern(70_000, 3), pattern(30_000, 4)];
    let (id, parts, raw) = sha256_upload(c, key, &data).await;
    // A whole-object checksum of a multipart upload is not made: refused.
    let full = c
        .create_multipart_upload()
        .bucket(B)
        .key(key)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await;
    assert_s3_error(full, "NotImplemented", 501);
    // A part in another algorithm than the upload's: refused, as AWS.
    let other = c
        .upload_part()
        .bucket(B)
        .key(key)
        .upload_id(&id)
        .part_number(3)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_s3_error(other, "InvalidRequest", 400);
    let listed = c
        .list_parts()
        .bucket(B)
        .key(key)
        .upload_id(&id)
        .send()
        .await
        .expect("list parts");
    let shown: Vec<_> = listed
        .parts()
        .iter()
        .map(|p| p.checksum_sha256().map(str::to_string))
        .collect();
    let want: Vec<_> = parts.iter().map(|p| p.2.clone()).collect();
    assert_eq!(shown, want, "ListParts shows each part's SHA-256");
    let composite = format!("{}-2", b64(&Sha256::digest(&raw)));
    let done = c
        .complete_multipart_upload()
        .bucket(B)
        .key(key)
        .upload_id(&id)
        .multipart_upload(completed(&parts))
        .send()
        .await
        .expect("complete");
    assert_eq!(done.checksum_sha256(), Some(composite.as_str()));
    assert_eq!(done.checksum_type().map(|t| t.as_str()), Some("COMPOSITE"));
    let h = c
        .head_object()
        .bucket(B)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(h.checksum_sha256(), Some(composite.as_str()));
    assert_eq!(h.checksum_type().map(|t| t.as_str()), Some("COMPOSITE"));
}

/// A checksum named only by its trailer (x-amz-trailer, no
/// x-amz-sdk-checksum-algorithm) is verified and kept, in a PUT and a part.
pub async fn trailer_only_checksum(c: &Client, signer: &Signer) {
    let data = pattern(3000, 5);
    let trailed = |path: String, query: &str, value: &str| {
        let mut r = signer.sign(
            "PUT",
            &path,
            query,
            &[
                ("content-encoding", "aws-chunked".into()),
                ("x-amz-decoded-content-length", data.len().to_string()),
                ("x-amz-trailer", "x-amz-checksum-crc32".into()),
            ],
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            vec![],
        );
        r.body = unsigned_trailer_body(&data, &format!("x-amz-checksum-crc32:{value}"));
        r
    };
    let bad = trailed(format!("/{B}/trailed"), "", &crc32_b64(b"other"));
    signer.expect(&bad, 400, "BadDigest").await;
    let good = trailed(format!("/{B}/trailed"), "", &crc32_b64(&data));
    signer.expect(&good, 200, "").await;
    let h = c
        .head_object()
        .bucket(B)
        .key("trailed")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(h.checksum_crc32(), Some(crc32_b64(&data).as_str()));
    // A part of a CRC32 upload, its checksum in the trailer only.
    let id = c
        .create_multipart_upload()
        .bucket(B)
        .key("trailed-mpu")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .expect("create")
        .upload_id()
        .expect("id")
        .to_string();
    let query = format!("partNumber=1&uploadId={id}");
    let part = trailed(format!("/{B}/trailed-mpu"), &query, &crc32_b64(&data));
    signer.expect(&part, 200, "").await;
    let listed = c
        .list_parts()
        .bucket(B)
        .key("trailed-mpu")
        .upload_id(&id)
        .send()
        .await
        .expect("list parts");
    assert_eq!(
        listed.parts().first().and_then(|p| p.checksum_crc32()),
        Some(crc32_b64(&data).as_str())
    );
}
