//! Conditional writes: If-None-Match: * and If-Match on PutObject and
//! CompleteMultipartUpload, racing creates, and a completion repeated.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use hamster_tests::s3::{assert_s3_error, error_status, get_bytes, pattern};

use crate::{B, Client, put, upload};

pub async fn conditional_puts(c: &Client) {
    // If-None-Match: * creates once, then refuses.
    let first = c
        .put_object()
        .bucket(B)
        .key("cond")
        .if_none_match("*")
        .body(ByteStream::from_static(b"one"))
        .send()
        .await
        .expect("If-None-Match: * on a new key");
    let etag = first.e_tag().expect("etag").to_string();
    let again = c
        .put_object()
        .bucket(B)
        .key("cond")
        .if_none_match("*")
        .body(ByteStream::from_static(b"two"))
        .send()
        .await;
    assert_s3_error(again, "PreconditionFailed", 412);
    assert_eq!(get_bytes(c, B, "cond").await.expect("get"), b"one");
    // If-Match: the right ETag replaces, another is 412, none is 404.
    let wrong = c
        .put_object()
        .bucket(B)
        .key("cond")
        .if_match("\"0123456789abcdef0123456789abcdef\"")
        .body(ByteStream::from_static(b"two"))
        .send()
        .await;
    assert_s3_error(wrong, "PreconditionFailed", 412);
    c.put_object()
        .bucket(B)
        .key("cond")
        .if_match(&etag)
        .body(ByteStream::from_static(b"three"))
        .send()
        .await
        .expect("If-Match with the current ETag");
    assert_eq!(get_bytes(c, B, "cond").await.expect("get"), b"three");
    let missing = c
        .put_object()
        .bucket(B)
        .key("cond-missing")
        .if_match(&etag)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_s3_error(missing, "NoSuchKey", 404);
    // Forms AWS does not take on a write.
    let other = c
        .put_object()
        .bucket(B)
        .key("cond")
        .if_none_match(&etag)
        .body(ByteStream::from_static(b"four"))
        .send()
        .await;
    assert_s3_error(other, "NotImplemented", 501);
    assert_eq!(get_bytes(c, B, "cond").await.expect("get"), b"three");
    // A conditional copy destination is not made: refused, not ignored.
    let copy = c
        .copy_object()
        .bucket(B)
        .key("cond")
        .copy_source(format!("{B}/cond"))
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .customize()
        .mutate_request(|r| {
            r.headers_mut().insert("if-none-match", "*");
        })
        .send()
        .await;
    assert_s3_error(copy, "NotImplemented", 501);
    // A delete marker is no object: If-None-Match: * creates again.
    c.delete_object()
        .bucket(B)
        .key("cond")
        .send()
        .await
        .expect("delete");
    c.put_object()
        .bucket(B)
        .key("cond")
        .if_none_match("*")
        .body(ByteStream::from_static(b"five"))
        .send()
        .await
        .expect("If-None-Match: * after a delete");
}

pub async fn conditional_complete(c: &Client) {
    let (id, parts) = upload(c, "cond-mpu", &[b"part one", b"part two"]).await;
    // Another writer got there first: 412, and the upload stays.
    let winner = put(c, "cond-mpu", b"winner").await;
    let refused = c
        .complete_multipart_upload()
        .bucket(B)
        .key("cond-mpu")
        .upload_id(&id)
        .if_none_match("*")
        .multipart_upload(parts.clone())
        .send()
        .await;
    assert_s3_error(refused, "PreconditionFailed", 412);
    assert_eq!(get_bytes(c, B, "cond-mpu").await.expect("get"), b"winner");
    // If-Match naming the winner: completes over it.
    let done = c
        .complete_multipart_upload()
        .bucket(B)
        .key("cond-mpu")
        .upload_id(&id)
        .if_match(&winner)
        .multipart_upload(parts)
        .send()
        .await
        .expect("complete with If-Match");
    assert!(done.e_tag().expect("etag").ends_with("-2\""));
    assert_eq!(
        get_bytes(c, B, "cond-mpu").await.expect("get"),
        b"part onepart two"
    );
}

/// Two If-None-Match: * PUTs of each new key at once: exactly one wins,
/// the other is 412 (it saw the winner) or 409 (the meta tier refused it
/// at apply), and the object is the winner's bytes.
pub async fn racing_creates(c: &Client) {
    let mut conflicts = 0;
    for i in 0..20 {
        let key = format!("race-{i}");
        let send = |seed: u8| {
            let (c, key) = (c.clone(), key.clone());
            async move {
                let data = pattern(64 * 1024, seed);
                let r = c
                    .put_object()
                    .bucket(B)
                    .key(&key)
                    .if_none_match("*")
                    .body(ByteStream::from(data.clone()))
                    .send()
                    .await;
                (r, data)
            }
        };
        let (a, b) = tokio::join!(tokio::spawn(send(1)), tokio::spawn(send(2)));
        let (a, b) = (a.expect("join"), b.expect("join"));
        let mut winners = Vec::new();
        for (r, data) in [a, b] {
            match r {
                Ok(_) => winners.push(data),
                Err(e) => {
                    let (code, status) = error_status(&e);
                    match (code.as_deref(), status) {
                        (Some("PreconditionFailed"), Some(412)) => {}
                        (Some("ConditionalRequestConflict"), Some(409)) => conflicts += 1,
                        other => panic!("{key}: loser answered {other:?}: {e:?}"),
                    }
                }
            }
        }
        assert_eq!(winners.len(), 1, "{key}: exactly one writer wins");
        assert_eq!(get_bytes(c, B, &key).await.expect("get"), winners[0]);
    }
    eprintln!("racing creates: {conflicts} of 20 losers refused at apply (409)");
}

/// A completion repeated (its first answer lost) answers the same, even
/// under If-None-Match: * (the object it finds is its own).
pub async fn complete_twice(c: &Client) {
    let (id, parts) = upload(c, "twice", &[b"alpha-", b"beta"]).await;
    let complete = || {
        c.complete_multipart_upload()
            .bucket(B)
            .key("twice")
            .upload_id(&id)
            .if_none_match("*")
            .multipart_upload(parts.clone())
            .send()
    };
    let first = complete().await.expect("first complete");
    let second = complete().await.unwrap_or_else(|e| {
        panic!(
            "second complete: {:?} {:?}",
            e.code(),
            e.raw_response().map(|r| r.status())
        )
    });
    assert_eq!(first.e_tag(), second.e_tag());
    assert_eq!(first.version_id(), second.version_id());
    assert_eq!(get_bytes(c, B, "twice").await.expect("get"), b"alpha-beta");
}
