//! GetObjectAttributes and GET/HEAD with partNumber (issue 21, point 13).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectAttributes,
};
use hamster_tests::s3::{assert_s3_error, error_header, error_status, read_body};

use crate::{B, Client, part_bytes};

/// A completed multipart upload of `parts` (CRC32 checksums if asked);
/// answers each part's CRC32 as UploadPart gave it.
pub async fn multipart(c: &Client, key: &str, parts: &[Vec<u8>], crc: bool) -> Vec<String> {
    let alg = crc.then_some(ChecksumAlgorithm::Crc32);
    let up = c
        .create_multipart_upload()
        .bucket(B)
        .key(key)
        .set_checksum_algorithm(alg.clone())
        .send()
        .await
        .expect("create upload");
    let id = up.upload_id().expect("upload id");
    let (mut done, mut sums) = (Vec::new(), Vec::new());
    for (i, body) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let r = c
            .upload_part()
            .bucket(B)
            .key(key)
            .upload_id(id)
            .part_number(n)
            .set_checksum_algorithm(alg.clone())
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("upload part");
        sums.push(r.checksum_crc32().unwrap_or_default().to_string());
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(r.e_tag().unwrap_or_default())
                .set_checksum_crc32(r.checksum_crc32().map(str::to_string))
                .build(),
        );
    }
    c.complete_multipart_upload()
        .bucket(B)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    sums
}

/// Every page of `key`'s parts, `max` at a time: (part numbers, sizes)
/// of each page.
pub async fn part_pages(c: &Client, key: &str, max: i32) -> Vec<Vec<(i32, i64)>> {
    let (mut pages, mut marker) = (Vec::new(), None::<String>);
    for _ in 0..10 {
        let r = c
            .get_object_attributes()
            .bucket(B)
            .key(key)
            .object_attributes(ObjectAttributes::ObjectParts)
            .max_parts(max)
            .set_part_number_marker(marker.clone())
            .send()
            .await
            .expect("attributes");
        let p = r.object_parts().expect("ObjectParts");
        assert_eq!(p.total_parts_count(), Some(5));
        pages.push(
            p.parts()
                .iter()
                .map(|x| (x.part_number().unwrap_or(0), x.size().unwrap_or(-1)))
                .collect(),
        );
        if !p.is_truncated().unwrap_or(false) {
            return pages;
        }
        marker = p.next_part_number_marker().map(str::to_string);
    }
    panic!("the parts never ended");
}

pub async fn attributes_of_plain_and_versioned_objects(c: &Client) {
    let v1 = c
        .put_object()
        .bucket(B)
        .key("plain")
        .body(ByteStream::from_static(b"first body"))
        .send()
        .await
        .expect("put v1");
    c.put_object()
        .bucket(B)
        .key("plain")
        .body(ByteStream::from_static(b"second, longer body"))
        .send()
        .await
        .expect("put v2");
    let r = c
        .get_object_attributes()
        .bucket(B)
        .key("plain")
        .object_attributes(ObjectAttributes::Etag)
        .object_attributes(ObjectAttributes::ObjectSize)
        .object_attributes(ObjectAttributes::StorageClass)
        .object_attributes(ObjectAttributes::ObjectParts)
        .send()
        .await
        .expect("attributes");
    assert_eq!(r.object_size(), Some(19));
    assert_eq!(r.storage_class().map(|s| s.as_str()), Some("STANDARD"));
    assert!(
        r.object_parts().is_none(),
        "a single-part object has no parts"
    );
    assert!(r.e_tag().is_some());
    let old = c
        .get_object_attributes()
        .bucket(B)
        .key("plain")
        .version_id(v1.version_id().expect("versioned"))
        .object_attributes(ObjectAttributes::Etag)
        .object_attributes(ObjectAttributes::ObjectSize)
        .send()
        .await
        .expect("attributes of v1");
    assert_eq!(old.object_size(), Some(10));
    assert_eq!(old.version_id(), v1.version_id());
    assert_eq!(
        old.e_tag().map(|e| e.trim_matches('"')),
        v1.e_tag().map(|e| e.trim_matches('"'))
    );
    // Only what was asked for.
    assert!(old.storage_class().is_none() && old.checksum().is_none());
}

pub async fn attributes_of_a_delete_marker(c: &Client) {
    c.put_object()
        .bucket(B)
        .key("gone")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put");
    let m = c
        .delete_object()
        .bucket(B)
        .key("gone")
        .send()
        .await
        .expect("delete");
    let ask = |id: Option<&str>| {
        c.get_object_attributes()
            .bucket(B)
            .key("gone")
            .set_version_id(id.map(str::to_string))
            .object_attributes(ObjectAttributes::ObjectSize)
            .send()
    };
    let e = ask(None).await.expect_err("a delete marker");
    assert_eq!(error_status(&e), (Some("NoSuchKey".into()), Some(404)));
    assert_eq!(
        error_header(&e, "x-amz-delete-marker").as_deref(),
        Some("true")
    );
    let e = ask(m.version_id()).await.expect_err("the marker by id");
    assert_eq!(error_status(&e).1, Some(405));
    assert_eq!(
        error_header(&e, "x-amz-delete-marker").as_deref(),
        Some("true")
    );
}

pub async fn checksums_in_attributes(c: &Client) {
    let sums = multipart(c, "summed", &[part_bytes(1), part_bytes(2)], true).await;
    let r = c
        .get_object_attributes()
        .bucket(B)
        .key("summed")
        .object_attributes(ObjectAttributes::Checksum)
        .object_attributes(ObjectAttributes::ObjectParts)
        .send()
        .await
        .expect("attributes");
    let sum = r.checksum().expect("a checksum");
    assert!(
        sum.checksum_crc32().is_some_and(|v| !v.contains('-')),
        "{sum:?}"
    );
    assert_eq!(sum.checksum_type().map(|t| t.as_str()), Some("COMPOSITE"));
    let parts: Vec<_> = r
        .object_parts()
        .expect("parts")
        .parts()
        .iter()
        .map(|p| p.checksum_crc32().unwrap_or_default().to_string())
        .collect();
    assert_eq!(parts, sums);
    let put = c
        .put_object()
        .bucket(B)
        .key("sha")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from_static(b"summed whole"))
        .send()
        .await
        .expect("put");
    let r = c
        .get_object_attributes()
        .bucket(B)
        .key("sha")
        .object_attributes(ObjectAttributes::Checksum)
        .send()
        .await
        .expect("attributes");
    let sum = r.checksum().expect("a checksum");
    assert_eq!(sum.checksum_sha256(), put.checksum_sha256());
    assert_eq!(sum.checksum_type().map(|t| t.as_str()), Some("FULL_OBJECT"));
}

pub async fn get_and_head_by_part_number(c: &Client) {
    let r = c
        .get_object()
        .bucket(B)
        .key("multi")
        .part_number(2)
        .send()
        .await
        .expect("part 2");
    assert_eq!(r.content_range(), Some("bytes 3-6/25"));
    assert_eq!(r.parts_count(), Some(5));
    assert_eq!(r.content_length(), Some(4));
    assert_eq!(read_body(r).await, part_bytes(2));
    let h = c
        .head_object()
        .bucket(B)
        .key("multi")
        .part_number(5)
        .send()
        .await
        .expect("head part 5");
    assert_eq!(
        (h.content_length(), h.parts_count(), h.content_range()),
        (Some(7), Some(5), Some("bytes 18-24/25"))
    );
    assert_s3_error(
        c.get_object()
            .bucket(B)
            .key("multi")
            .part_number(6)
            .send()
            .await,
        "InvalidPartNumber",
        416,
    );
    // A single-part object: part 1 is all of it, no parts count.
    let r = c
        .get_object()
        .bucket(B)
        .key("plain")
        .part_number(1)
        .send()
        .await
        .expect("part 1 of a plain object");
    assert_eq!(r.parts_count(), None);
    assert_eq!(r.content_range(), Some("bytes 0-18/19"));
    assert_eq!(read_body(r).await, b"second, longer body");
    let h = c
        .head_object()
        .bucket(B)
        .key("plain")
        .part_number(1)
        .send()
        .await
        .expect("head part 1");
    assert_eq!((h.content_length(), h.parts_count()), (Some(19), None));
    let e = c
        .head_object()
        .bucket(B)
        .key("plain")
        .part_number(2)
        .send()
        .await
        .expect_err("part 2 of a plain object");
    assert_eq!(error_status(&e).1, Some(416));
}
