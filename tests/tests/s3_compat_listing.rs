//! Issue 21, listings, through aws-sdk-s3 against real processes:
//! ListObjectVersions' version-id-marker as a position (a delete marker,
//! the null version, a version deleted since: the standard "list a page,
//! delete what it listed" loop empties a versioned bucket, which can then
//! be deleted), and ListBuckets paged by max-buckets, continuation-token
//! and prefix. One cluster, named steps.

use std::collections::BTreeSet;

use aws_sdk_s3::Client;
use hamster_tests::Steps;
use hamster_tests::s3::{
    S3Cluster, assert_s3_error, delete_version, delete_versions, put_version, set_versioning,
    versioning,
};

const BUCKET: &str = "empty-me";

/// (key, version id, is a delete marker) in S3's order: keys ascending,
/// newest first.
type Listed = Vec<(String, String, bool)>;

/// What the bucket holds, as written: per key, version ids oldest first.
struct Written(Vec<(String, Vec<(String, bool)>)>);

impl Written {
    fn push(&mut self, key: &str, id: String, marker: bool) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, ids)) => ids.push((id, marker)),
            None => self.0.push((key.to_string(), vec![(id, marker)])),
        }
    }

    /// Every version and marker in S3's listing order.
    fn order(&self) -> Listed {
        let mut keys: Vec<_> = self.0.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        keys.iter()
            .flat_map(|(k, ids)| ids.iter().rev().map(|(id, m)| (k.clone(), id.clone(), *m)))
            .collect()
    }
}

/// One ListObjectVersions page: its entries in S3 order (versions and
/// markers come in two XML lists, merged back by the known order), and
/// the next markers if truncated.
async fn page(
    c: &Client,
    max: i32,
    key_marker: Option<&str>,
    id_marker: Option<&str>,
    order: &Listed,
) -> Result<(Listed, Option<(String, Option<String>)>), String> {
    let r = c
        .list_object_versions()
        .bucket(BUCKET)
        .max_keys(max)
        .set_key_marker(key_marker.map(str::to_string))
        .set_version_id_marker(id_marker.map(str::to_string))
        .send()
        .await
        .map_err(|e| format!("list versions: {e:?}"))?;
    let mut got: Listed = Vec::new();
    for v in r.versions() {
        let id = v.version_id().unwrap_or_default();
        got.push((v.key().unwrap_or_default().into(), id.into(), false));
    }
    for m in r.delete_markers() {
        let id = m.version_id().unwrap_or_default();
        got.push((m.key().unwrap_or_default().into(), id.into(), true));
    }
    let pos = |e: &(String, String, bool)| order.iter().position(|o| o == e);
    if let Some(e) = got.iter().find(|e| pos(e).is_none()) {
        return Err(format!("listed {e:?}, which was never written"));
    }
    got.sort_by_key(|e| pos(e));
    if got.len() > max as usize {
        return Err(format!("{} entries on a page of {max}", got.len()));
    }
    let next = r.is_truncated().unwrap_or(false).then(|| {
        (
            r.next_key_marker().unwrap_or_default().to_string(),
            r.next_version_id_marker().map(str::to_string),
        )
    });
    Ok((got, next))
}

/// Several keys × several versions, delete markers (one in the middle of
/// a key's history, some latest) and null versions put before versioning.
async fn fill(c: &Client) -> Result<Written, String> {
    c.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .map_err(|e| format!("create: {e:?}"))?;
    let mut w = Written(Vec::new());
    for key in ["a", "b"] {
        put_version(c, BUCKET, key, b"before versioning").await;
        w.push(key, "null".into(), false);
    }
    set_versioning(c, BUCKET, versioning("Enabled"))
        .await
        .map_err(|e| format!("enable: {e:?}"))?;
    // (key, Some: put / None: delete marker)
    let script: [(&str, bool); 11] = [
        ("a", true),
        ("a", true),
        ("b", false),
        ("b", true),
        ("c", true),
        ("c", true),
        ("c", true),
        ("c", false),
        ("d", true),
        ("d", false),
        ("e", true),
    ];
    for (i, (key, put)) in script.into_iter().enumerate() {
        if put {
            let body = format!("{key} {i}");
            let id = put_version(c, BUCKET, key, body.as_bytes())
                .await
                .ok_or("a versioned PUT answers an id")?;
            w.push(key, id, false);
        } else {
            let d = delete_version(c, BUCKET, key, None, false)
                .await
                .map_err(|e| format!("delete {key}: {e:?}"))?;
            let id = d.version_id().ok_or("a marker has an id")?.to_string();
            w.push(key, id, true);
        }
    }
    Ok(w)
}

/// Markers that exist: a delete marker and "null" resume right after
/// themselves; a well-formed id of nothing resumes at key-marker's first
/// remaining version; a malformed one is 400.
async fn markers(c: &Client, w: &Written) -> Result<(), String> {
    let order = w.order();
    let all = page(c, 1000, None, None, &order).await?.0;
    if all != order {
        return Err(format!("full listing {all:?}, want {order:?}"));
    }
    // Each existing entry as a marker: the page is what follows it.
    for (i, (key, id, _)) in order.iter().enumerate() {
        let (got, _) = page(c, 1000, Some(key), Some(id), &order).await?;
        if got != order[i + 1..] {
            return Err(format!("after {key}@{id}: {got:?}"));
        }
    }
    // The ones the issue names, explicitly.
    let c_marker = order
        .iter()
        .position(|(k, _, m)| k == "c" && *m)
        .ok_or("c has a marker")?;
    let (got, _) = page(c, 2, Some("c"), Some(&order[c_marker].1), &order).await?;
    if got != order[c_marker + 1..c_marker + 3] {
        return Err(format!("after c's delete marker: {got:?}"));
    }
    let a_null = order
        .iter()
        .position(|(k, id, _)| k == "a" && id == "null")
        .ok_or("a has a null version")?;
    let (got, _) = page(c, 2, Some("a"), Some("null"), &order).await?;
    if got != order[a_null + 1..a_null + 3] {
        return Err(format!("after a's null version: {got:?}"));
    }
    // An id of the right shape that names nothing (as after a delete):
    // key-marker's remaining versions, from its newest.
    let gone = "0000000000010000000000000000abcd";
    let (got, _) = page(c, 1000, Some("c"), Some(gone), &order).await?;
    let first_c = order.iter().position(|(k, ..)| k == "c").ok_or("c")?;
    if got != order[first_c..] {
        return Err(format!("after a vanished version of c: {got:?}"));
    }
    let bad = c
        .list_object_versions()
        .bucket(BUCKET)
        .key_marker("c")
        .version_id_marker("not-a-version-id")
        .send()
        .await;
    assert_s3_error(bad, "InvalidArgument", 400);
    Ok(())
}

/// The emptying loop: pages of 2, each page's entries deleted before the
/// next is asked for. Every entry is listed exactly once; the bucket ends
/// empty and DeleteBucket succeeds.
async fn empty(c: &Client, w: &Written) -> Result<(), String> {
    let order = w.order();
    let mut seen: Listed = Vec::new();
    let mut next: Option<(String, Option<String>)> = None;
    for _ in 0..100 {
        let (km, im) = match &next {
            Some((k, i)) => (Some(k.as_str()), i.as_deref()),
            None => (None, None),
        };
        let (got, more) = page(c, 2, km, im, &order).await?;
        let ids: Vec<(&str, &str)> = got
            .iter()
            .map(|(k, i, _)| (k.as_str(), i.as_str()))
            .collect();
        if !ids.is_empty() {
            let r = delete_versions(c, BUCKET, &ids, None)
                .await
                .map_err(|e| format!("delete page: {e:?}"))?;
            if !r.errors().is_empty() {
                return Err(format!("delete page: {:?}", r.errors()));
            }
        }
        seen.extend(got);
        if more.is_none() {
            break;
        }
        next = more;
    }
    let unique: BTreeSet<_> = seen.iter().collect();
    if unique.len() != seen.len() {
        return Err(format!("an entry was listed twice: {seen:?}"));
    }
    if seen != order {
        return Err(format!("listed {seen:?}, want {order:?}"));
    }
    let left = page(c, 1000, None, None, &order).await?.0;
    if !left.is_empty() {
        return Err(format!("left behind: {left:?}"));
    }
    c.delete_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .map_err(|e| format!("delete bucket: {e:?}"))?;
    Ok(())
}

/// ListBuckets pages: names, the continuation token answered while more
/// follow, the prefix echoed.
async fn list_buckets(
    c: &Client,
    prefix: Option<&str>,
    max: Option<i32>,
) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut token = None::<String>;
    for _ in 0..100 {
        let r = c
            .list_buckets()
            .set_prefix(prefix.map(str::to_string))
            .set_max_buckets(max)
            .set_continuation_token(token.clone())
            .send()
            .await
            .map_err(|e| format!("list buckets: {e:?}"))?;
        if r.prefix() != prefix {
            return Err(format!("Prefix {:?}, asked {prefix:?}", r.prefix()));
        }
        let got: Vec<String> = r
            .buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_string))
            .collect();
        if let Some(m) = max
            && got.len() > m as usize
        {
            return Err(format!("{} buckets on a page of {m}", got.len()));
        }
        if r.buckets().iter().any(|b| b.creation_date().is_none()) {
            return Err("a bucket without CreationDate".into());
        }
        names.extend(got);
        match r.continuation_token() {
            Some(t) => token = Some(t.to_string()),
            None => return Ok(names),
        }
    }
    Err("the bucket listing never ended".into())
}

async fn buckets(c: &Client) -> Result<(), String> {
    let made = ["lb-a1", "lb-a2", "lb-a3", "lb-b1"];
    for b in made {
        c.create_bucket()
            .bucket(b)
            .send()
            .await
            .map_err(|e| format!("create {b}: {e:?}"))?;
    }
    let all = list_buckets(c, None, None).await?;
    let mut sorted = all.clone();
    sorted.sort();
    if all != sorted || !made.iter().all(|b| all.iter().any(|a| a == b)) {
        return Err(format!("unpaged: {all:?}"));
    }
    for max in [1, 2, 3] {
        let paged = list_buckets(c, None, Some(max)).await?;
        if paged != all {
            return Err(format!("pages of {max}: {paged:?}, want {all:?}"));
        }
    }
    let lb = list_buckets(c, Some("lb-"), Some(2)).await?;
    if lb != made {
        return Err(format!("prefix lb-: {lb:?}"));
    }
    let lba = list_buckets(c, Some("lb-a"), Some(2)).await?;
    if lba != made[..3] {
        return Err(format!("prefix lb-a: {lba:?}"));
    }
    if !list_buckets(c, Some("zz-"), Some(2)).await?.is_empty() {
        return Err("prefix zz- matched".into());
    }
    // One page exactly: no token (nothing follows).
    let r = c
        .list_buckets()
        .prefix("lb-a")
        .max_buckets(3)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    if r.buckets().len() != 3 || r.continuation_token().is_some() {
        return Err(format!("a full last page: {r:?}"));
    }
    // The first page names the token; the second resumes after it.
    let r = c
        .list_buckets()
        .prefix("lb-")
        .max_buckets(1)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let t = r.continuation_token().ok_or("a token while more follow")?;
    let r = c
        .list_buckets()
        .prefix("lb-")
        .max_buckets(1)
        .continuation_token(t)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let names: Vec<_> = r.buckets().iter().filter_map(|b| b.name()).collect();
    if names != ["lb-a2"] {
        return Err(format!("page after the token: {names:?}"));
    }
    for bad in [0, 10_001] {
        assert_s3_error(
            c.list_buckets().max_buckets(bad).send().await,
            "InvalidArgument",
            400,
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn version_markers_are_positions_and_bucket_pages() {
    let s = S3Cluster::start(1, 3).await;
    let c = s.client();
    let c = &c;
    let mut steps = Steps::new("version_markers_are_positions_and_bucket_pages");
    let w = steps
        .require("a versioned bucket with markers and null versions", fill(c))
        .await;
    steps
        .run(
            "version-id-marker: a delete marker, null, a vanished id",
            markers(c, &w),
        )
        .await;
    steps
        .run(
            "paging and deleting each page empties the bucket",
            empty(c, &w),
        )
        .await;
    steps
        .run(
            "ListBuckets pages by max-buckets, token and prefix",
            buckets(c),
        )
        .await;
    steps.finish();
}
