//! A naive model of listings, computed from what a test wrote, and the
//! checks that compare the state machine's listings with it page by page.

use super::*;

/// One listing entry, reduced to what the model knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    V {
        key: String,
        id: String,
        marker: bool,
        latest: bool,
    },
    P(String),
}

pub fn item(e: &Entry) -> Item {
    match e {
        Entry::Version { version, is_latest } => Item::V {
            key: version.key.clone(),
            id: version.version_id.clone(),
            marker: version.delete_marker,
            latest: *is_latest,
        },
        Entry::Prefix(p) => Item::P(p.clone()),
    }
}

pub fn v(key: &str, id: &str, marker: bool, latest: bool) -> Item {
    Item::V {
        key: key.into(),
        id: id.into(),
        marker,
        latest,
    }
}

pub fn p(prefix: &str) -> Item {
    Item::P(prefix.into())
}

/// A version as written: its key, id, log index and whether it is a marker.
#[derive(Clone, Debug)]
pub struct Written {
    pub key: String,
    pub id: String,
    pub seq: i64,
    pub marker: bool,
}

/// What a listing must answer, computed naively from what was written:
/// keys in byte order, versions newest (highest log index) first, keys with
/// the delimiter after the prefix folded into one common prefix.
pub fn model(written: &[Written], prefix: &str, delimiter: &str, walk: Walk) -> Vec<Item> {
    let mut by_key: BTreeMap<&str, Vec<&Written>> = BTreeMap::new();
    for w in written {
        by_key.entry(w.key.as_str()).or_default().push(w);
    }
    let mut out = Vec::new();
    let mut seen_prefixes = BTreeSet::new();
    for (key, mut versions) in by_key {
        if !key.as_bytes().starts_with(prefix.as_bytes()) {
            continue;
        }
        versions.sort_by_key(|w| std::cmp::Reverse(w.seq));
        let items: Vec<Item> = match walk {
            Walk::Latest if versions[0].marker => vec![],
            Walk::Latest => vec![v(key, &versions[0].id, false, true)],
            Walk::AllVersions => versions
                .iter()
                .enumerate()
                .map(|(i, w)| v(key, &w.id, w.marker, i == 0))
                .collect(),
        };
        if items.is_empty() {
            continue;
        }
        let rest = &key[prefix.len()..];
        match (!delimiter.is_empty())
            .then(|| rest.find(delimiter))
            .flatten()
        {
            Some(pos) => {
                let cp = key[..prefix.len() + pos + delimiter.len()].to_string();
                if seen_prefixes.insert(cp.clone()) {
                    out.push(Item::P(cp));
                }
            }
            None => out.extend(items),
        }
    }
    out
}

/// Lists everything page by page, each page resuming at the previous
/// page's `next`, and checks each page's shape on the way.
pub async fn list_paged(
    c: &mut SqliteConnection,
    bucket: &str,
    prefix: &str,
    delimiter: &str,
    walk: Walk,
    size: u32,
) -> Vec<Item> {
    let mut out = Vec::new();
    let mut cursor = Cursor::Start;
    for _ in 0..100_000 {
        let page = q::list(c, bucket, prefix, delimiter, cursor.clone(), size, walk)
            .await
            .expect("list");
        assert!(page.entries.len() <= size as usize);
        out.extend(page.entries.iter().map(item));
        if !page.is_truncated {
            return out;
        }
        assert_eq!(
            page.entries.len(),
            size as usize,
            "a truncated page is full ({prefix:?} {delimiter:?} {walk:?} {size})"
        );
        cursor = page
            .next
            .clone()
            .expect("a truncated page says where to resume");
    }
    panic!("listing {bucket} {prefix:?} {delimiter:?} {walk:?} by {size} never ended");
}

/// Checks a listing against the model: one big page, pages of every
/// size, and the truncation flag at the exact boundary.
pub async fn check_listing(
    c: &mut SqliteConnection,
    bucket: &str,
    written: &[Written],
    prefix: &str,
    delimiter: &str,
    walk: Walk,
    sizes: &[u32],
) {
    let want = model(written, prefix, delimiter, walk);
    let ctx = format!("{bucket} prefix={prefix:?} delimiter={delimiter:?} {walk:?}");
    if want.len() <= 1000 {
        let page = q::list(c, bucket, prefix, delimiter, Cursor::Start, 1000, walk)
            .await
            .expect("list");
        assert_eq!(
            page.entries.iter().map(item).collect::<Vec<_>>(),
            want,
            "{ctx}: one page"
        );
        assert!(!page.is_truncated, "{ctx}");
        if !want.is_empty() {
            let n = want.len() as u32;
            let exact = q::list(c, bucket, prefix, delimiter, Cursor::Start, n, walk)
                .await
                .expect("list");
            assert!(
                !exact.is_truncated,
                "{ctx}: max = number of entries is not truncated"
            );
            assert_eq!(exact.entries.len(), want.len(), "{ctx}");
            if n > 1 {
                let short = q::list(c, bucket, prefix, delimiter, Cursor::Start, n - 1, walk)
                    .await
                    .expect("list");
                assert!(short.is_truncated, "{ctx}: one entry short is truncated");
                assert_eq!(
                    short.entries.iter().map(item).collect::<Vec<_>>(),
                    want[..want.len() - 1],
                    "{ctx}"
                );
            }
        }
    }
    for &size in sizes {
        let got = list_paged(c, bucket, prefix, delimiter, walk, size).await;
        assert_eq!(got, want, "{ctx}: pages of {size}");
    }
    // Common prefixes appear once in a whole listing.
    let mut prefixes: Vec<&Item> = want.iter().filter(|i| matches!(i, Item::P(_))).collect();
    let n = prefixes.len();
    prefixes.dedup();
    assert_eq!(prefixes.len(), n, "{ctx}");
}

/// Writes `plan` (key, id or None for a delete marker) to `bucket`, in one
/// batch, and answers what was written for the model.
pub async fn write_plan(
    db: &mut Db,
    bucket: &str,
    plan: &[(String, Option<String>)],
) -> Vec<Written> {
    let ops: Vec<(i64, Op)> = plan
        .iter()
        .enumerate()
        .map(|(i, (key, id))| {
            let op = match id {
                Some(id) => commit(ver(bucket, key, id, &format!("{key}#{id}"))),
                None => del(bucket, key, None, &format!("dm{i}")),
            };
            (NOW + i as i64, op)
        })
        .collect();
    let out = db.batch(ops).await;
    out.into_iter()
        .zip(plan)
        .map(|((seq, r), (key, id))| match r {
            Response::Committed { version, .. } => {
                assert_eq!(Some(&version.version_id), id.as_ref());
                Written {
                    key: key.clone(),
                    id: version.version_id,
                    seq: seq as i64,
                    marker: false,
                }
            }
            Response::Deleted {
                version_id,
                delete_marker: true,
                ..
            } => Written {
                key: key.clone(),
                id: version_id,
                seq: seq as i64,
                marker: true,
            },
            other => panic!("writing {key}: {other:?}"),
        })
        .collect()
}

pub fn plan_of(steps: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    steps
        .iter()
        .map(|(k, id)| (k.to_string(), id.map(str::to_string)))
        .collect()
}

/// The listing bucket: nested keys, unicode, keys whose latest version is
/// a delete marker, several versions per key.
pub async fn listing_fixture(db: &mut Db) -> Vec<Written> {
    db.ok(create("list", true)).await;
    let plan = plan_of(&[
        ("a", Some("a1")),
        ("b", Some("b1")),
        ("a", Some("a2")),
        ("a/b", Some("ab1")),
        ("a/c/d", Some("acd1")),
        ("a-", Some("dash1")),
        ("a/", Some("folder1")),
        ("a0", Some("zero1")),
        ("b", None),
        ("b/x", Some("bx1")),
        ("b/y", None),
        ("a/c/d", None),
        ("c", Some("c1")),
        ("del/1", Some("d1")),
        ("del/2", Some("d2")),
        ("del/1", None),
        ("del/2", None),
        ("é", Some("e1")),
        ("日本/語", Some("jp1")),
        ("日本", Some("jp0")),
        ("日本/語", Some("jp2")),
        ("\u{FFFD}x", Some("fffd1")),
        ("😀", Some("emoji1")),
        ("b", Some("b2")),
        ("a", Some("a3")),
        ("z", None),
    ]);
    write_plan(db, "list", &plan).await
}
