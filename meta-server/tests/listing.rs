//! Listings of the state machine: compared with a naive model (common's
//! `listing`) for every prefix, delimiter and page size, pinned by hand,
//! resumed from every kind of cursor, at sizes past a query batch; prefix
//! successors and continuation tokens.

mod common;

use common::listing::*;
use common::*;

#[tokio::test]
async fn listing_matches_the_model_for_every_prefix_delimiter_and_page_size() {
    let mut db = Db::new().await;
    let written = listing_fixture(&mut db).await;
    let combos: &[(&str, &str)] = &[
        ("", ""),
        ("", "/"),
        ("a", ""),
        ("a", "/"),
        ("a/", ""),
        ("a/", "/"),
        ("a/c", "/"),
        ("b", "/"),
        ("del/", "/"),
        ("del", "/"),
        ("日本", ""),
        ("日本", "/"),
        ("日", "/"),
        ("", "本"),
        ("", "a/"),
        ("", "/c/"),
        ("é", ""),
        ("z", ""),
        ("nothing", "/"),
    ];
    for (prefix, delimiter) in combos {
        for walk in [Walk::Latest, Walk::AllVersions] {
            check_listing(
                db.c(),
                "list",
                &written,
                prefix,
                delimiter,
                walk,
                &[1, 2, 3, 1000],
            )
            .await;
        }
    }
}

#[tokio::test]
async fn listing_by_hand() {
    // The model is code too: pin a few listings down by hand.
    let mut db = Db::new().await;
    let written = listing_fixture(&mut db).await;
    let c = db.c();
    let list =
        async |c: &mut SqliteConnection, prefix: &str, delimiter: &str, walk: Walk| -> Vec<Item> {
            let page = q::list(c, "list", prefix, delimiter, Cursor::Start, 1000, walk)
                .await
                .expect("list");
            assert!(!page.is_truncated);
            page.entries.iter().map(item).collect()
        };

    // Byte order: "a" < "a-" < "a/" < "a0" < ... < "é" < "日本" < U+FFFD < emoji.
    // Deleted keys ("a/c/d", "b/y", "del/*", "z") do not appear.
    let want = vec![
        v("a", "a3", false, true),
        v("a-", "dash1", false, true),
        v("a/", "folder1", false, true),
        v("a/b", "ab1", false, true),
        v("a0", "zero1", false, true),
        v("b", "b2", false, true),
        v("b/x", "bx1", false, true),
        v("c", "c1", false, true),
        v("é", "e1", false, true),
        v("日本", "jp0", false, true),
        v("日本/語", "jp2", false, true),
        v("\u{FFFD}x", "fffd1", false, true),
        v("😀", "emoji1", false, true),
    ];
    assert_eq!(list(c, "", "", Walk::Latest).await, want);
    assert_eq!(model(&written, "", "", Walk::Latest), want);

    // With "/": "del/" holds only deleted keys, so no common prefix for it.
    let want = vec![
        v("a", "a3", false, true),
        v("a-", "dash1", false, true),
        p("a/"),
        v("a0", "zero1", false, true),
        v("b", "b2", false, true),
        p("b/"),
        v("c", "c1", false, true),
        v("é", "e1", false, true),
        v("日本", "jp0", false, true),
        p("日本/"),
        v("\u{FFFD}x", "fffd1", false, true),
        v("😀", "emoji1", false, true),
    ];
    assert_eq!(list(c, "", "/", Walk::Latest).await, want);
    assert_eq!(
        list(c, "a/", "/", Walk::Latest).await,
        vec![
            v("a/", "folder1", false, true),
            v("a/b", "ab1", false, true)
        ]
    );
    assert_eq!(list(c, "del/", "", Walk::Latest).await, vec![]);

    // Every version: markers included, newest first, latest flagged.
    assert_eq!(
        list(c, "b", "", Walk::AllVersions).await,
        vec![
            v("b", "b2", false, true),
            v("b", "dm8", true, false),
            v("b", "b1", false, false),
            v("b/x", "bx1", false, true),
            v("b/y", "dm10", true, true),
        ]
    );
    assert_eq!(
        list(c, "a/", "/", Walk::AllVersions).await,
        vec![
            v("a/", "folder1", false, true),
            v("a/b", "ab1", false, true),
            p("a/c/")
        ]
    );
    assert_eq!(
        list(c, "a/c", "", Walk::AllVersions).await,
        vec![
            v("a/c/d", "dm11", true, true),
            v("a/c/d", "acd1", false, false)
        ]
    );
    assert_eq!(list(c, "del/", "/", Walk::AllVersions).await.len(), 4);
    assert_eq!(
        list(c, "", "/", Walk::AllVersions)
            .await
            .iter()
            .filter(|i| **i == p("del/"))
            .count(),
        1
    );
    assert_eq!(
        list(c, "z", "", Walk::AllVersions).await,
        vec![v("z", "dm25", true, true)]
    );

    // The listed versions are the stored ones, as far as a listing shows
    // them (ADR 0031: no maps, keys, metadata or parts are read).
    let page = q::list(c, "list", "日本/", "", Cursor::Start, 1000, Walk::Latest)
        .await
        .expect("list");
    let Some(Entry::Version { version, .. }) = page.entries.first() else {
        panic!("{page:?}")
    };
    let stored = ver("list", "日本/語", "jp2", "日本/語#jp2");
    let shown = Version {
        bucket: stored.bucket.clone(),
        key: stored.key.clone(),
        version_id: stored.version_id.clone(),
        size: stored.size,
        etag: stored.etag.clone(),
        created_at_ms: stored.created_at_ms,
        delete_marker: stored.delete_marker,
        ..Version::default()
    };
    assert_eq!(version, &shown);
    assert_eq!(
        Some(stored),
        q::latest(c, "list", "日本/語").await.expect("latest")
    );

    // max 0 answers nothing.
    let zero = q::list(c, "list", "", "", Cursor::Start, 0, Walk::Latest)
        .await
        .expect("list");
    assert!(zero.entries.is_empty());
}

#[tokio::test]
async fn cursors_after_and_from() {
    let mut db = Db::new().await;
    let written = listing_fixture(&mut db).await;
    let c = db.c();
    let keys = async |c: &mut SqliteConnection,
                      prefix: &str,
                      delimiter: &str,
                      cursor: Cursor,
                      walk: Walk|
           -> Vec<Item> {
        let page = q::list(c, "list", prefix, delimiter, cursor, 1000, walk)
            .await
            .expect("list");
        page.entries.iter().map(item).collect()
    };
    let latest_all = model(&written, "", "", Walk::Latest);
    let after = |k: &str| -> Vec<Item> {
        latest_all
            .iter()
            .filter(|i| matches!(i, Item::V { key, .. } if key.as_bytes() > k.as_bytes()))
            .cloned()
            .collect()
    };
    let from = |k: &str| -> Vec<Item> {
        latest_all
            .iter()
            .filter(|i| matches!(i, Item::V { key, .. } if key.as_bytes() >= k.as_bytes()))
            .cloned()
            .collect()
    };

    // After: strictly after; From: at or after. Existing and missing keys,
    // and keys whose latest is a marker.
    for k in [
        "a", "a/", "a/b", "a/bz", "b", "b/y", "del/1", "é", "日本", "😀", "zzz", "\u{FFFD}",
    ] {
        assert_eq!(
            keys(c, "", "", Cursor::After(k.into()), Walk::Latest).await,
            after(k),
            "After({k:?})"
        );
        assert_eq!(
            keys(c, "", "", Cursor::From(k.into()), Walk::Latest).await,
            from(k),
            "From({k:?})"
        );
    }
    assert_eq!(
        keys(c, "", "", Cursor::Start, Walk::Latest).await,
        latest_all
    );
    assert_eq!(
        keys(c, "", "", Cursor::From(String::new()), Walk::Latest).await,
        latest_all
    );
    assert_eq!(
        keys(c, "", "", Cursor::After(String::new()), Walk::Latest).await,
        latest_all
    );

    // From at a common prefix lists the prefix; From its successor skips it.
    let with_delim = keys(c, "", "/", Cursor::From("b/".into()), Walk::Latest).await;
    assert_eq!(with_delim.first(), Some(&p("b/")));
    let skipped = keys(
        c,
        "",
        "/",
        Cursor::From(q::prefix_successor("b/").expect("successor")),
        Walk::Latest,
    )
    .await;
    assert_eq!(skipped.first(), Some(&v("c", "c1", false, true)));
    // Within a prefix.
    assert_eq!(
        keys(c, "a/", "", Cursor::After("a/".into()), Walk::Latest).await,
        vec![v("a/b", "ab1", false, true)]
    );

    // Every version: After skips the key's versions, From includes them,
    // AfterVersion resumes in the middle of a key.
    let all = model(&written, "", "", Walk::AllVersions);
    let a3 = written.iter().find(|w| w.id == "a3").expect("a3").seq;
    let a2 = written.iter().find(|w| w.id == "a2").expect("a2").seq;
    let got = keys(c, "", "", Cursor::After("a".into()), Walk::AllVersions).await;
    assert_eq!(got.first(), Some(&v("a-", "dash1", false, true)));
    assert_eq!(got, all[3..]);
    assert_eq!(
        keys(c, "", "", Cursor::From("a".into()), Walk::AllVersions).await,
        all
    );
    let got = keys(
        c,
        "",
        "",
        Cursor::AfterVersion("a".into(), a3),
        Walk::AllVersions,
    )
    .await;
    assert_eq!(
        got[..2],
        [v("a", "a2", false, false), v("a", "a1", false, false)]
    );
    assert_eq!(got, all[1..]);
    let got = keys(
        c,
        "",
        "",
        Cursor::AfterVersion("a".into(), a2),
        Walk::AllVersions,
    )
    .await;
    assert_eq!(got, all[2..]);
}

#[tokio::test]
async fn listing_many_versions_and_many_keys() {
    let mut db = Db::new().await;
    db.ok(create("many", true)).await;
    let mut plan: Vec<(String, Option<String>)> = vec![("j".into(), Some("j1".into()))];
    // One key with more versions than a batch of the listing query.
    for i in 0..600 {
        plan.push(("k".into(), Some(format!("k{i:04}"))));
    }
    plan.push(("l".into(), Some("l1".into())));
    // More deleted keys than a batch, under one prefix.
    for i in 0..300 {
        plan.push((format!("m/{i:03}"), Some(format!("m{i}"))));
        plan.push((format!("m/{i:03}"), None));
    }
    // More live keys than a batch, under one prefix.
    for i in 0..300 {
        plan.push((format!("p/{i:03}"), Some(format!("p{i}"))));
    }
    plan.push(("q".into(), Some("q1".into())));
    let written = write_plan(&mut db, "many", &plan).await;
    let c = db.c();

    check_listing(c, "many", &written, "", "/", Walk::Latest, &[1, 2, 1000]).await;
    check_listing(
        c,
        "many",
        &written,
        "",
        "",
        Walk::Latest,
        &[3, 255, 256, 257, 1000],
    )
    .await;
    check_listing(
        c,
        "many",
        &written,
        "",
        "/",
        Walk::AllVersions,
        &[1, 256, 1000],
    )
    .await;
    check_listing(
        c,
        "many",
        &written,
        "",
        "",
        Walk::AllVersions,
        &[7, 256, 1000],
    )
    .await;
    check_listing(c, "many", &written, "k", "", Walk::AllVersions, &[1, 1000]).await;
    check_listing(c, "many", &written, "m/", "", Walk::Latest, &[1]).await;
    check_listing(c, "many", &written, "m/", "/", Walk::AllVersions, &[1, 5]).await;

    // Latest with "/": the all-deleted "m/" is not a common prefix.
    let page = q::list(c, "many", "", "/", Cursor::Start, 1000, Walk::Latest)
        .await
        .expect("list");
    assert_eq!(
        page.entries.iter().map(item).collect::<Vec<_>>(),
        vec![
            v("j", "j1", false, true),
            v("k", "k0599", false, true),
            v("l", "l1", false, true),
            p("p/"),
            v("q", "q1", false, true)
        ]
    );

    // Versions of "k": newest first, and resuming after any of them,
    // including around the batch size, neither repeats nor skips.
    let k_versions: Vec<&Written> = {
        let mut k: Vec<&Written> = written.iter().filter(|w| w.key == "k").collect();
        k.sort_by_key(|w| std::cmp::Reverse(w.seq));
        k
    };
    assert_eq!(k_versions.len(), 600);
    for i in [0usize, 1, 254, 255, 256, 257, 511, 512, 598, 599] {
        let cursor = Cursor::AfterVersion("k".into(), k_versions[i].seq);
        let page = q::list(c, "many", "", "", cursor, 1000, Walk::AllVersions)
            .await
            .expect("list");
        let got: Vec<Item> = page.entries.iter().map(item).collect();
        let mut want: Vec<Item> = k_versions[i + 1..]
            .iter()
            .map(|w| v("k", &w.id, false, false))
            .collect();
        want.push(v("l", "l1", false, true));
        assert_eq!(got[..want.len()], want[..], "after version #{i} of k");
        // And with small pages from there.
        let mut cursor = Cursor::AfterVersion("k".into(), k_versions[i].seq);
        let mut paged = Vec::new();
        while paged.len() < want.len() {
            let page = q::list(c, "many", "k", "", cursor, 100, Walk::AllVersions)
                .await
                .expect("list");
            paged.extend(page.entries.iter().map(item));
            if !page.is_truncated {
                break;
            }
            cursor = page.next.expect("next");
        }
        assert_eq!(
            paged,
            want[..want.len() - 1],
            "paging after version #{i} of k"
        );
    }

    // A page never holds more than 1000 entries.
    let page = q::list(c, "many", "", "", Cursor::Start, 5000, Walk::AllVersions)
        .await
        .expect("list");
    assert_eq!(page.entries.len(), 1000);
    assert!(page.is_truncated);
    assert_eq!(q::MAX_PAGE, 1000);
}

#[test]
fn prefix_successor_edges() {
    assert_eq!(q::prefix_successor("a/").as_deref(), Some("a0"));
    assert_eq!(q::prefix_successor("a").as_deref(), Some("b"));
    assert_eq!(q::prefix_successor("abc").as_deref(), Some("abd"));
    assert_eq!(q::prefix_successor("日本").as_deref(), Some("日札"));
    assert_eq!(q::prefix_successor(""), None);
    // The last character cannot grow: the one before it does.
    assert_eq!(q::prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
    assert_eq!(q::prefix_successor("\u{10FFFF}\u{10FFFF}"), None);
    // Surrogates are not characters: U+D7FF is followed by U+E000.
    assert_eq!(
        q::prefix_successor("x\u{D7FF}").as_deref(),
        Some("x\u{E000}")
    );
    // Crossing UTF-8 length boundaries keeps byte order.
    assert_eq!(q::prefix_successor("\u{7F}").as_deref(), Some("\u{80}"));
    assert_eq!(
        q::prefix_successor("\u{FFFF}").as_deref(),
        Some("\u{10000}")
    );

    // The successor bounds exactly the strings with the prefix, in byte order.
    let samples = [
        "",
        "a",
        "a/",
        "a/b",
        "a0",
        "a.",
        "a/\u{10FFFF}",
        "b",
        "日本",
        "日本/語",
        "日札",
        "\u{D7FF}",
        "\u{E000}",
        "😀",
        "\u{FFFF}",
        "\u{10000}",
        "a\u{10FFFF}",
        "a\u{10FFFF}z",
        "b\u{0}",
    ];
    for prefix in ["a", "a/", "日本", "\u{D7FF}", "a\u{10FFFF}", "\u{FFFF}"] {
        let succ = q::prefix_successor(prefix).expect("successor");
        assert!(succ.as_bytes() > prefix.as_bytes());
        for s in samples {
            let in_range = s.as_bytes() >= prefix.as_bytes() && s.as_bytes() < succ.as_bytes();
            assert_eq!(
                in_range,
                s.starts_with(prefix),
                "prefix {prefix:?} successor {succ:?} sample {s:?}"
            );
        }
    }
}

#[test]
fn continuation_tokens_round_trip_and_garbage_is_refused() {
    let cursors = [
        Cursor::Start,
        Cursor::After("a/b".into()),
        Cursor::After(String::new()),
        Cursor::From("日本/語".into()),
        Cursor::From("with.dots and spaces".into()),
        Cursor::AfterVersion("k".into(), 42),
        Cursor::AfterVersion("a.b.c".into(), 0),
        Cursor::AfterVersion("😀".into(), i64::MAX),
        Cursor::AfterVersion("neg".into(), -5),
    ];
    for c in cursors {
        let t = q::encode_token(&c);
        assert_eq!(q::decode_token(&t), Some(c.clone()), "token {t:?}");
    }
    assert_eq!(q::encode_token(&Cursor::Start), "");
    assert_ne!(
        q::encode_token(&Cursor::After("x".into())),
        q::encode_token(&Cursor::From("x".into()))
    );

    for garbage in [
        "x",
        "zzz",
        "A6162",
        "agg",
        "a6",
        "f616",
        "aff",
        "fc328",
        "v",
        "v1",
        "v.61",
        "vx.61",
        "v1.zz",
        "v1.6",
        "v99999999999999999999.61",
        "é",
        "\u{0}",
        "🙂a61",
    ] {
        assert_eq!(q::decode_token(garbage), None, "{garbage:?} was accepted");
    }
}

/// A listing under a prefix stops its index walk at the prefix's end: the
/// bound is one the planner can use, so the last page of a small prefix
/// does not read the rest of the bucket looking for rows.
#[tokio::test]
async fn a_prefix_listing_walks_only_its_prefix() {
    let mut db = Db::new().await;
    for (i, sql) in hamster_meta::state::reads::LIST_STATEMENTS
        .iter()
        .enumerate()
    {
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .fetch_all(db.c())
                .await
                .expect("a plan");
        // Even statements are the bounded ones (a prefix with an end).
        let want = if i % 2 == 0 {
            "(bucket=? AND key>? AND key<?)"
        } else {
            "(bucket=? AND key>?)"
        };
        assert!(
            plan.iter()
                .any(|(.., d)| d.starts_with("SEARCH v USING") && d.ends_with(want)),
            "statement {i}: {plan:?}"
        );
    }
}
