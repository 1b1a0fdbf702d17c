//! Issue 21 review fixes: a DeleteBucket's answer stays the same however
//! many parts it drops, its proposer reads the shards to free instead
//! (paged, capped), and the upload a version completed is CompleteMultipart's
//! alone to set.

mod common;

use common::*;
use hamster_meta::grpc::frees::bucket_upload_shards;

/// Every location of `tags`' shard maps.
fn locations_of(tags: &[String]) -> BTreeSet<(String, String)> {
    tags.iter()
        .flat_map(|t| shards(t).shards)
        .map(|l| (l.blob_id, l.shard_id))
        .collect()
}

async fn read(db: &mut Db, by: &Actor, bucket: &str, cap: usize) -> Vec<(String, String)> {
    bucket_upload_shards(db.c(), by, bucket, cap)
        .await
        .expect("read")
}

#[tokio::test]
async fn the_proposer_reads_every_part_of_the_buckets_uploads_page_by_page() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    // More uploads than one page of ids, and an upload with more parts
    // than one page of parts.
    let mut tags = Vec::new();
    for i in 0..=q::MAX_PAGE {
        let id = format!("u{i:05}");
        db.ok(begin("bkt", "k", &id)).await;
        if i % 500 == 0 {
            let tag = format!("{id}-1");
            db.ok(put_part("bkt", "k", &id, part(1, 1, &tag))).await;
            tags.push(tag);
        }
    }
    for n in 1..=q::MAX_PAGE + 1 {
        let tag = format!("big-{n}");
        let p = part(n, MIN_PART_SIZE, &tag);
        db.ok(put_part("bkt", "k", "u00001", p)).await;
        tags.push(tag);
    }
    // Another bucket's upload is not read.
    db.ok(create("other", false)).await;
    db.ok(begin("other", "k", "o1")).await;
    db.ok(put_part("other", "k", "o1", part(1, 1, "o1-1")))
        .await;

    let got = read(&mut db, &admin(), "bkt", usize::MAX).await;
    assert_eq!(got.len(), tags.len() * 3, "a location read twice or missed");
    let got: BTreeSet<_> = got.into_iter().collect();
    assert_eq!(got, locations_of(&tags));

    // Capped: collection stops at the frees queue's room.
    assert_eq!(read(&mut db, &admin(), "bkt", 10).await.len(), 10);
    // Then the delete drops them all, answering Ok.
    assert_eq!(db.run(delete_bucket_and_uploads("bkt")).await, Response::Ok);
    assert!(read(&mut db, &admin(), "bkt", usize::MAX).await.is_empty());
}

/// However many parts are dropped, the answer is the same few bytes: it
/// is stored for retries and travels back through Raft.Forward.
#[tokio::test]
async fn delete_bucket_answers_the_same_whatever_the_part_count() {
    let mut db = Db::new().await;
    db.ok(create("big", false)).await;
    for u in ["u1", "u2"] {
        db.ok(begin("big", u, u)).await;
        for n in 1..=300 {
            let p = part(n, MIN_PART_SIZE, &format!("{u}-{n}"));
            db.ok(put_part("big", u, u, p)).await;
        }
    }
    assert_eq!(db.run(delete_bucket_and_uploads("big")).await, Response::Ok);
    assert!(rows_of(&db.dump().await, "shard_refs").is_empty());
    assert!(db.parts("u1").await.is_empty() && db.parts("u2").await.is_empty());
}

/// A delete that will be refused is not worth a read of every part.
#[tokio::test]
async fn nothing_is_read_for_a_delete_that_will_be_refused() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    db.ok(begin("bkt", "k", "u1")).await;
    db.ok(put_part("bkt", "k", "u1", part(1, 1, "p1"))).await;
    assert_eq!(read(&mut db, &admin(), "bkt", usize::MAX).await.len(), 3);
    // A key that does not exist (so has no owner right).
    assert!(
        read(&mut db, &key("AKNOBODY"), "bkt", usize::MAX)
            .await
            .is_empty()
    );
    // A version keeps the bucket.
    db.ok(commit(ver("bkt", "v", "x", "a"))).await;
    assert!(read(&mut db, &admin(), "bkt", usize::MAX).await.is_empty());
    // No such bucket.
    assert!(read(&mut db, &admin(), "gone", usize::MAX).await.is_empty());
}

/// A CommitVersion naming an upload (a gateway's field) does not make a
/// later CompleteMultipart of that upload answer with it.
#[tokio::test]
async fn a_put_cannot_plant_the_version_an_upload_completed_into() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    // Even with the ETag the real completion will have.
    let mut planted = ver("bkt", "k", "x", "planted");
    planted.upload_id = "u1".into();
    planted.etag = s3_multipart_etag(&[&md5_hex(b"p1")]);
    let r = db.run(commit(planted)).await;
    let Response::Committed { version, .. } = r else {
        panic!("not committed: {r:?}")
    };
    assert_eq!(version.upload_id, "");
    assert_eq!(
        db.latest("bkt", "k").await.map(|v| v.upload_id),
        Some("".into())
    );
    let etag = md5_hex(b"p1");
    let etag = etag.as_str();
    db.reject(
        complete("bkt", "k", "u1", &[(1, etag)], "v9"),
        MetaError::NoSuchUpload("u1".into()),
    )
    .await;

    // The real upload completes, and its repeat answers its own version.
    db.ok(begin("bkt", "k", "u1")).await;
    db.ok(put_part("bkt", "k", "u1", part(1, 1, "p1"))).await;
    let first = db.run(complete("bkt", "k", "u1", &[(1, etag)], "v1")).await;
    let again = db.run(complete("bkt", "k", "u1", &[(1, etag)], "v2")).await;
    let (Response::Completed { version: a, .. }, Response::Completed { version: b, .. }) =
        (&first, &again)
    else {
        panic!("not completed: {first:?} / {again:?}")
    };
    assert_eq!((a.upload_id.as_str(), a), ("u1", b));
}

/// Should two versions ever name one upload, the newest answers, never
/// whichever row SQLite finds first.
#[tokio::test]
async fn the_version_of_an_upload_is_the_newest_naming_it() {
    let mut db = Db::new().await;
    db.ok(create("bkt", true)).await;
    db.ok(commit(ver("bkt", "k", "v1", "a"))).await;
    db.ok(commit(ver("bkt", "k", "v2", "b"))).await;
    // Set behind apply's back: no command can do this any more. The index
    // leads SQLite to find rows in version id order (v1 first) unless the
    // query orders them itself.
    for sql in [
        "UPDATE versions SET upload_id = 'u1' WHERE bucket = 'bkt'",
        "CREATE INDEX test_by_upload ON versions (upload_id, bucket, key, version_id)",
    ] {
        sqlx::query(sql).execute(db.c()).await.expect("sql");
    }
    let got = q::version_of_upload(db.c(), "bkt", "k", "u1")
        .await
        .expect("read")
        .map(|v| v.version_id);
    assert_eq!(got.as_deref(), Some("v2"));
}
