//! Reads sized for the wire (ADR 0031), on the state DB: a version read
//! for an answer leaves its parts behind and counts them; a completed
//! object's parts come a page at a time, in order, and only while the
//! version is the one the reader saw; an open upload's parts page too;
//! listings read only what they show.

mod common;

use common::*;
use hamster_meta::state::reads::{
    PartsRefusal, upload_parts_page, version_head, version_parts_page,
};

/// Parts of the big object: two pages and a bit.
const N: u32 = 1100;

/// A bucket with "big" completed from `n` parts, and an upload of `n`
/// parts left open; answers the completed version.
async fn world(db: &mut Db, n: u32) -> Version {
    db.ok(create("bkt", false)).await;
    for id in ["done", "open"] {
        db.ok(begin("bkt", "big", id)).await;
        for i in 1..=n {
            db.ok(put_part(
                "bkt",
                "big",
                id,
                part(i, MIN_PART_SIZE, &format!("p{i}")),
            ))
            .await;
        }
    }
    let etags: Vec<(u32, String)> = (1..=n)
        .map(|i| (i, md5_hex(format!("p{i}").as_bytes())))
        .collect();
    let list: Vec<(u32, &str)> = etags.iter().map(|(n, e)| (*n, e.as_str())).collect();
    match db.run(complete("bkt", "big", "done", &list, "null")).await {
        Response::Completed { version, .. } => version,
        other => panic!("not completed: {other:?}"),
    }
}

#[tokio::test]
async fn parts_page_in_order_and_only_for_the_version_read() {
    let mut db = Db::new().await;
    let v = world(&mut db, N).await;

    // The answer's read: no parts, their count.
    let head = version_head(db.c(), "bkt", "big", None)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(head.parts_count, N);
    assert!(head.version.parts.is_empty());
    assert_eq!(
        (head.version.etag.as_str(), head.version.size),
        (v.etag.as_str(), v.size)
    );
    let by_id = version_head(db.c(), "bkt", "big", Some("null"))
        .await
        .expect("read");
    assert_eq!(by_id, Some(head.clone()));

    // Pages of at most 1000 in part order, resuming after the marker.
    let mut got = Vec::new();
    let mut marker = 0;
    let mut pages = 0;
    loop {
        let page = version_parts_page(
            db.c(),
            "bkt",
            "big",
            "null",
            &v.etag,
            v.created_at_ms,
            marker,
            0,
        )
        .await
        .expect("read")
        .expect("the version read");
        pages += 1;
        assert!(page.parts.len() <= 1000);
        got.extend(page.parts.iter().cloned());
        if !page.is_truncated {
            break;
        }
        marker = page
            .parts
            .last()
            .expect("a truncated page names a part")
            .part_number;
    }
    assert_eq!(pages, 2);
    assert_eq!(got, v.parts, "every part, in order, as stored");
    let page = version_parts_page(
        db.c(),
        "bkt",
        "big",
        "null",
        &v.etag,
        v.created_at_ms,
        1098,
        5,
    )
    .await
    .expect("read")
    .expect("found");
    let numbers: Vec<u32> = page.parts.iter().map(|p| p.part_number).collect();
    assert_eq!((numbers, page.is_truncated), (vec![1099, 1100], false));

    // Another etag or time (the "null" version replaced in between), a
    // version that does not exist: refused, nothing mixed.
    for (id, etag, at) in [
        (
            "null",
            "0123456789abcdef0123456789abcdef-1100",
            v.created_at_ms,
        ),
        ("null", v.etag.as_str(), v.created_at_ms + 1),
        ("other", v.etag.as_str(), v.created_at_ms),
    ] {
        let r = version_parts_page(db.c(), "bkt", "big", id, etag, at, 0, 10)
            .await
            .expect("read");
        assert_eq!(r, Err(PartsRefusal::NoSuchVersion), "{id} {etag} {at}");
    }

    // An open upload's parts: paged in SQL after the marker.
    let page = upload_parts_page(db.c(), "open", 99, 0)
        .await
        .expect("read");
    assert_eq!(page.parts.len(), 1000);
    assert_eq!(page.parts[0].part_number, 100);
    assert!(page.is_truncated);
    let page = upload_parts_page(db.c(), "open", 1000, 1000)
        .await
        .expect("read");
    assert_eq!((page.parts.len(), page.is_truncated), (100, false));
    assert_eq!(page.parts[0], part(1001, MIN_PART_SIZE, "p1001"));
}

#[tokio::test]
async fn listings_read_only_what_they_show() {
    let mut db = Db::new().await;
    let v = world(&mut db, 3).await;
    for walk in [Walk::Latest, Walk::AllVersions] {
        let page = q::list(db.c(), "bkt", "", "", Cursor::Start, 1000, walk)
            .await
            .expect("list");
        let [Entry::Version { version, is_latest }] = &page.entries[..] else {
            panic!("{walk:?}: {:?}", page.entries);
        };
        assert!(*is_latest);
        // What S3 shows, as stored...
        assert_eq!(
            (
                &version.key,
                &version.version_id,
                version.size,
                &version.etag,
                version.created_at_ms
            ),
            (&v.key, &v.version_id, v.size, &v.etag, v.created_at_ms)
        );
        // ...and nothing else: no parts, maps, keys or metadata.
        assert!(version.parts.is_empty(), "{walk:?}: parts listed");
        assert_eq!(version.shard_map, None);
        assert!(version.wrapped_dek.is_empty() && version.kek_fingerprint.is_empty());
        assert!(version.user_metadata.is_empty() && version.stored_headers.is_empty());
        assert!(version.content_type.is_empty());
    }
}
