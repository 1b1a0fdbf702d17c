//! Issue 21 at apply: DeleteBucket with only open uploads left (aborted
//! with it, its answer bounded), conditional writes (If-Match,
//! If-None-Match: *) decided where writes are ordered, checksums kept
//! (composite ones computed from the parts'), and a CompleteMultipart
//! repeated after it succeeded. Every refusal is checked to change nothing.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;

fn conflict() -> MetaError {
    MetaError::ConditionalRequestConflict(String::new())
}

fn shard_refs(rows: &[String]) -> usize {
    rows.iter().filter(|r| r.starts_with("shard_refs")).count()
}

fn put_if(v: Version, if_match: Option<&str>, if_none_match: bool) -> Op {
    Op::CommitVersion {
        version: v,
        if_match: if_match.map(Into::into),
        if_none_match,
    }
}

fn complete_if(
    bucket: &str,
    key: &str,
    upload_id: &str,
    parts: &[(u32, &str)],
    if_match: Option<&str>,
    if_none_match: bool,
) -> Op {
    let Op::CompleteMultipart {
        bucket,
        key,
        upload_id,
        parts,
        version_id,
        ..
    } = complete(bucket, key, upload_id, parts, "v-complete")
    else {
        unreachable!("complete builds a CompleteMultipart")
    };
    Op::CompleteMultipart {
        bucket,
        key,
        upload_id,
        parts,
        version_id,
        if_match: if_match.map(Into::into),
        if_none_match,
    }
}

#[tokio::test]
async fn delete_bucket_aborts_its_open_uploads_and_drops_their_parts() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    db.ok(begin("bkt", "a", "u1")).await;
    db.ok(begin("bkt", "b", "u2")).await;
    db.ok(begin("bkt", "c", "u3")).await;
    for (u, p) in [
        ("u1", part(1, MIN_PART_SIZE, "p1")),
        ("u1", part(2, 1, "p2")),
        ("u2", part(1, 1, "p3")),
    ] {
        let key = if u == "u1" { "a" } else { "b" };
        db.ok(put_part("bkt", key, u, p)).await;
    }
    // Another bucket's upload is not touched.
    db.ok(create("other", false)).await;
    db.ok(begin("other", "a", "u9")).await;
    db.ok(put_part("other", "a", "u9", part(1, 1, "p9"))).await;

    // The answer names no shard (ADR 0031): the proposer read them before.
    assert_eq!(db.run(delete_bucket_and_uploads("bkt")).await, Response::Ok);
    assert_eq!(db.bucket("bkt").await, None);
    for u in ["u1", "u2", "u3"] {
        assert_eq!(db.upload(u).await, None);
        assert!(db.parts(u).await.is_empty());
    }
    // Only the other bucket's part is still named.
    assert_eq!(shard_refs(&db.dump().await), 3);
    assert!(db.upload("u9").await.is_some());
    assert_eq!(db.parts("u9").await.len(), 1);

    // A bucket with no upload answers as before.
    db.ok(create("empty", false)).await;
    assert_eq!(
        db.run(delete_bucket_and_uploads("empty")).await,
        Response::Ok
    );
}

/// A DeleteBucket from before issue 21 (no `abort_uploads`) replays as it
/// applied then: an open upload keeps the bucket.
#[tokio::test]
async fn an_old_delete_bucket_still_leaves_a_bucket_with_uploads() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    db.ok(begin("bkt", "a", "u1")).await;
    let old: Op = serde_json::from_str(r#"{"DeleteBucket":{"name":"bkt"}}"#).expect("decodes");
    assert_eq!(old, delete_bucket("bkt"));
    db.reject(old, MetaError::BucketNotEmpty("bkt".into()))
        .await;
}

#[tokio::test]
async fn delete_bucket_with_versions_or_markers_keeps_its_uploads() {
    let mut db = Db::new().await;
    // A version and an upload: refused, the upload untouched.
    db.ok(create("bkt", false)).await;
    db.ok(commit(ver("bkt", "k", "x", "a"))).await;
    db.ok(begin("bkt", "k", "u1")).await;
    db.ok(put_part("bkt", "k", "u1", part(1, 1, "p1"))).await;
    db.reject(
        delete_bucket_and_uploads("bkt"),
        MetaError::BucketNotEmpty("bkt".into()),
    )
    .await;

    // Only a delete marker and an upload: refused too.
    db.ok(create("vers", true)).await;
    db.ok(commit(ver("vers", "k", "v1", "a"))).await;
    db.ok(del("vers", "k", None, "dm")).await;
    db.ok(del("vers", "k", Some("v1"), "")).await;
    db.ok(begin("vers", "k", "u2")).await;
    db.reject(
        delete_bucket_and_uploads("vers"),
        MetaError::BucketNotEmpty("vers".into()),
    )
    .await;
}

#[tokio::test]
async fn commit_conditions_are_decided_at_apply() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    let first = ver("bkt", "k", "x", "first");
    // If-None-Match on a free key writes; a second one is refused.
    db.ok(put_if(first.clone(), None, true)).await;
    db.reject(
        put_if(ver("bkt", "k", "x", "second"), None, true),
        conflict(),
    )
    .await;
    // The same write proposed again (its answer lost) is answered, not
    // refused by its own condition.
    let r = db.run(put_if(first.clone(), None, true)).await;
    assert!(matches!(r, Response::Committed { .. }), "{r:?}");

    // If-Match: the current ETag (quoted or not) writes, another refuses.
    let quoted = format!("\"{}\"", first.etag);
    db.ok(put_if(ver("bkt", "k", "x", "third"), Some(&quoted), false))
        .await;
    db.reject(
        put_if(ver("bkt", "k", "x", "fourth"), Some(&first.etag), false),
        conflict(),
    )
    .await;
    let third = md5_hex(b"third");
    db.ok(put_if(ver("bkt", "k", "x", "fourth"), Some(&third), false))
        .await;
    assert_eq!(
        db.latest("bkt", "k").await.map(|v| v.etag),
        Some(md5_hex(b"fourth"))
    );
    // If-Match on a missing key is refused.
    db.reject(
        put_if(ver("bkt", "none", "x", "a"), Some(&third), false),
        conflict(),
    )
    .await;

    // A delete marker counts as no object.
    db.ok(create("vers", true)).await;
    db.ok(commit(ver("vers", "k", "v1", "a"))).await;
    db.reject(put_if(ver("vers", "k", "v2", "b"), None, true), conflict())
        .await;
    db.ok(del("vers", "k", None, "dm")).await;
    db.ok(put_if(ver("vers", "k", "v2", "b"), None, true)).await;
    db.reject(
        put_if(ver("vers", "k", "v3", "c"), Some(&md5_hex(b"a")), false),
        conflict(),
    )
    .await;
    // A missing bucket is still NoSuchBucket, whatever the condition.
    db.reject(
        put_if(ver("gone", "k", "x", "a"), Some("*"), false),
        MetaError::NoSuchBucket("gone".into()),
    )
    .await;
}

#[tokio::test]
async fn complete_conditions_refuse_and_keep_the_upload() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    db.ok(commit(ver("bkt", "k", "x", "old"))).await;
    db.ok(begin("bkt", "k", "u1")).await;
    let p1 = part(1, 1, "p1");
    db.ok(put_part("bkt", "k", "u1", p1.clone())).await;
    let wanted = [(1, p1.etag.as_str())];
    // Refused: the upload and its part stay, so the client may retry.
    db.reject(
        complete_if("bkt", "k", "u1", &wanted, None, true),
        conflict(),
    )
    .await;
    db.reject(
        complete_if("bkt", "k", "u1", &wanted, Some("\"0123\""), false),
        conflict(),
    )
    .await;
    let old = format!("\"{}\"", md5_hex(b"old"));
    let r = db
        .run(complete_if("bkt", "k", "u1", &wanted, Some(&old), false))
        .await;
    assert!(matches!(r, Response::Completed { .. }), "{r:?}");
    assert_eq!(db.upload("u1").await, None);
}

#[tokio::test]
async fn checksums_are_stored_as_sent() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    let mut v = ver("bkt", "k", "x", "a");
    v.checksum_algorithm = "SHA256".into();
    v.checksum_value = STANDARD.encode(sha2::Sha256::digest(b"a"));
    v.checksum_type = "FULL_OBJECT".into();
    db.ok(commit(v.clone())).await;
    let got = db.latest("bkt", "k").await.expect("stored");
    assert_eq!(
        (
            got.checksum_algorithm,
            got.checksum_value,
            got.checksum_type
        ),
        (v.checksum_algorithm, v.checksum_value, v.checksum_type)
    );

    db.ok(begin("bkt", "k", "u1")).await;
    let mut p = part(1, 1, "p1");
    p.checksum_value = STANDARD.encode(crc32c::crc32c(b"p1").to_be_bytes());
    db.ok(put_part("bkt", "k", "u1", p.clone())).await;
    assert_eq!(db.parts("u1").await, vec![p]);
}

/// Uploads "u" of `key` with the template's algorithm `algorithm` and
/// parts carrying `sums` ("" none), completes it, and answers the version.
async fn complete_with(db: &mut Db, key: &str, algorithm: &str, sums: &[String]) -> Version {
    let id = format!("up-{key}");
    let mut u = upload("bkt", key, &id);
    u.template.checksum_algorithm = algorithm.into();
    db.ok(Op::BeginMultipart { upload: u }).await;
    let mut wanted = Vec::new();
    for (i, sum) in sums.iter().enumerate() {
        let n = i as u32 + 1;
        let mut p = part(n, MIN_PART_SIZE, &format!("{key}-{n}"));
        p.checksum_value = sum.clone();
        wanted.push((n, p.etag.clone()));
        db.ok(put_part("bkt", key, &id, p)).await;
    }
    let wanted: Vec<(u32, &str)> = wanted.iter().map(|(n, e)| (*n, e.as_str())).collect();
    let r = db.run(complete("bkt", key, &id, &wanted, "v")).await;
    let Response::Completed { version, .. } = r else {
        panic!("not completed: {r:?}")
    };
    assert_eq!(db.latest("bkt", key).await, Some(version.clone()));
    version
}

#[tokio::test]
async fn a_multipart_object_gets_the_composite_checksum_of_its_parts() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;

    // CRC32C: the CRC32C of the parts' big-endian CRC32Cs, then "-N".
    let crcs = [crc32c::crc32c(b"one"), crc32c::crc32c(b"two")];
    let sums: Vec<String> = crcs
        .iter()
        .map(|c| STANDARD.encode(c.to_be_bytes()))
        .collect();
    let joined: Vec<u8> = crcs.iter().flat_map(|c| c.to_be_bytes()).collect();
    let want = format!(
        "{}-2",
        STANDARD.encode(crc32c::crc32c(&joined).to_be_bytes())
    );
    let v = complete_with(&mut db, "crc32c", "CRC32C", &sums).await;
    assert_eq!(v.checksum_algorithm, "CRC32C");
    assert_eq!(v.checksum_value, want);
    assert_eq!(v.checksum_type, "COMPOSITE");
    // The parts inside keep their own.
    let kept: Vec<&str> = v.parts.iter().map(|p| p.checksum_value.as_str()).collect();
    assert_eq!(kept, [sums[0].as_str(), sums[1].as_str()]);

    // SHA256 over the binary digests.
    let digests = [sha2::Sha256::digest(b"one"), sha2::Sha256::digest(b"two")];
    let sums: Vec<String> = digests.iter().map(|d| STANDARD.encode(d)).collect();
    let joined: Vec<u8> = digests.iter().flat_map(|d| d.to_vec()).collect();
    let want = format!("{}-2", STANDARD.encode(sha2::Sha256::digest(&joined)));
    let v = complete_with(&mut db, "sha256", "SHA256", &sums).await;
    assert_eq!(
        (v.checksum_value, v.checksum_type),
        (want, "COMPOSITE".into())
    );

    // CRC32, one part: still "-1".
    let sum = STANDARD.encode(crc32fast::hash(b"one").to_be_bytes());
    let crc = crc32fast::hash(&crc32fast::hash(b"one").to_be_bytes());
    let want = format!("{}-1", STANDARD.encode(crc.to_be_bytes()));
    let v = complete_with(&mut db, "crc32", "CRC32", std::slice::from_ref(&sum)).await;
    assert_eq!(v.checksum_value, want);

    // No checksum: no algorithm asked for, a part without one, CRC64NVME
    // (S3 has only full-object checksums for it).
    for (key, algorithm, sums) in [
        ("plain", "", vec![sum.clone()]),
        ("missing", "CRC32", vec![sum.clone(), String::new()]),
        ("nvme", "CRC64NVME", vec!["AAAAAAAAAAA=".to_string()]),
    ] {
        let v = complete_with(&mut db, key, algorithm, &sums).await;
        assert_eq!(
            (v.checksum_value, v.checksum_type),
            (String::new(), String::new())
        );
        assert_eq!(v.checksum_algorithm, algorithm);
    }
}

#[tokio::test]
async fn a_repeated_completion_answers_the_first_and_changes_nothing() {
    let mut db = Db::new().await;
    db.ok(create("bkt", true)).await;
    db.ok(begin("bkt", "k", "u1")).await;
    let p1 = part(1, MIN_PART_SIZE, "p1");
    let p2 = part(2, 1, "p2");
    for p in [p1.clone(), p2.clone()] {
        db.ok(put_part("bkt", "k", "u1", p)).await;
    }
    let quoted = format!("\"{}\"", p2.etag);
    let wanted = [(1, p1.etag.as_str()), (2, quoted.as_str())];
    let first = db.run(complete("bkt", "k", "u1", &wanted, "v1")).await;
    let Response::Completed { version, .. } = &first else {
        panic!("not completed: {first:?}")
    };
    assert_eq!(version.upload_id, "u1");

    // Another version on top: the retry still answers its own.
    db.ok(commit(ver("bkt", "k", "v2", "later"))).await;
    let before = db.dump().await;
    let again = db.run(complete("bkt", "k", "u1", &wanted, "v3")).await;
    let Response::Completed {
        version: v,
        freed,
        versioned,
    } = again
    else {
        panic!("not answered: {again:?}")
    };
    assert_eq!(v, *version);
    assert!(freed.is_empty());
    assert!(versioned);
    assert_eq!(
        db.dump().await,
        before,
        "a repeated completion changed state"
    );

    // Other parts, another key, or the version gone: the upload is no more.
    let other = [(1, p1.etag.as_str())];
    let no_upload = MetaError::NoSuchUpload("u1".into());
    db.reject(complete("bkt", "k", "u1", &other, "v4"), no_upload.clone())
        .await;
    db.reject(complete("bkt", "j", "u1", &wanted, "v4"), no_upload.clone())
        .await;
    db.ok(del("bkt", "k", Some("v1"), "")).await;
    db.reject(complete("bkt", "k", "u1", &wanted, "v4"), no_upload)
        .await;
    // An upload id never used is NoSuchUpload as before.
    db.reject(
        complete("bkt", "k", "nope", &wanted, "v4"),
        MetaError::NoSuchUpload("nope".into()),
    )
    .await;
}
