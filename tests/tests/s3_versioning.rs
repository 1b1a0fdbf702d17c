//! Bucket versioning through aws-sdk-s3 against real processes: the
//! x-amz-version-id rules (absent, "null", an id), reads and deletes by
//! version id, delete markers (204 on delete, 404 and 405 on read, with
//! x-amz-delete-marker), ListObjectVersions order and paging, permanent
//! deletes that free shards, and suspended buckets. The long scenario
//! runs in named steps over one cluster.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{BucketVersioningStatus, MfaDelete, VersioningConfiguration};
use hamster_tests::Steps;
use hamster_tests::s3::{
    S3Cluster, assert_s3_error, delete_version, delete_versions, error_header, error_status,
    get_version, head_version, put_version as put, read_body, set_versioning, versioning,
    versioning_status,
};

type Client = aws_sdk_s3::Client;

/// The bytes of `key` (version `id` if given).
async fn get(c: &aws_sdk_s3::Client, bucket: &str, key: &str, id: Option<&str>) -> Vec<u8> {
    let out = get_version(c, bucket, key, id)
        .await
        .unwrap_or_else(|e| panic!("get {key}@{id:?}: {e:?}"));
    read_body(out).await
}

/// (key, version id, is latest, is a delete marker) of every version,
/// following the listing's pages of `page` entries. Versions and markers
/// come in two XML lists, so the order kept is S3's within each list
/// (by key, newest first); `sorted` compares listings as sets.
async fn all_versions(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    page: i32,
) -> Vec<(String, String, bool, bool)> {
    let mut out = Vec::new();
    let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
    for _ in 0..100 {
        let r = c
            .list_object_versions()
            .bucket(bucket)
            .max_keys(page)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(id_marker.clone())
            .send()
            .await
            .expect("list versions");
        let before = out.len();
        for v in r.versions() {
            out.push((
                v.key().unwrap_or_default().into(),
                v.version_id().unwrap_or_default().into(),
                v.is_latest().unwrap_or(false),
                false,
            ));
        }
        for m in r.delete_markers() {
            out.push((
                m.key().unwrap_or_default().into(),
                m.version_id().unwrap_or_default().into(),
                m.is_latest().unwrap_or(false),
                true,
            ));
        }
        assert!(
            out.len() - before <= page as usize,
            "a page holds at most max-keys"
        );
        if !r.is_truncated().unwrap_or(false) {
            return out;
        }
        key_marker = r.next_key_marker().map(str::to_string);
        id_marker = r.next_version_id_marker().map(str::to_string);
    }
    panic!("the listing never ended");
}

fn sorted(mut v: Vec<(String, String, bool, bool)>) -> Vec<(String, String, bool, bool)> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn versioning_ids_markers_and_permanent_deletes() {
    let s = S3Cluster::start(1, 3).await;
    let c = s.client();
    let c = &c;
    let mut steps = Steps::new("versioning_ids_markers_and_permanent_deletes");
    steps
        .require(
            "a never-versioned bucket shows no version id",
            never_versioned(c),
        )
        .await;
    steps
        .run(
            "MFA Delete, a bad status and a missing bucket are refused",
            refusals(c),
        )
        .await;
    let (v1, v2) = steps
        .require(
            "once enabled, ids are made and the old object is null",
            enable(c),
        )
        .await;
    let marker = steps
        .require("DELETE without an id writes a marker", async {
            let d = delete_version(c, "ver", "doc", None, false)
                .await
                .expect("delete");
            assert_eq!(d.delete_marker(), Some(true));
            let marker = d.version_id().expect("marker id").to_string();
            assert!(![v1.as_str(), v2.as_str(), "null"].contains(&marker.as_str()));
            Ok::<_, String>(marker)
        })
        .await;
    steps
        .run(
            "a marker reads as 404, and 405 by its id, flagged",
            marker_reads(c, &marker),
        )
        .await;
    steps
        .run(
            "older versions stay readable; ListObjects hides the key",
            async {
                assert_eq!(get(c, "ver", "doc", Some(&v2)).await, b"two");
                let l = c
                    .list_objects_v2()
                    .bucket("ver")
                    .send()
                    .await
                    .expect("list");
                assert!(l.contents().is_empty(), "{l:?}");
            },
        )
        .await;
    let (a1, a1b, b1) = steps
        .require("other keys are written for the listing", async {
            let a1 = put(c, "ver", "a/1", b"a1").await.expect("id");
            let a1b = put(c, "ver", "a/1", b"a1b").await.expect("id");
            let b1 = put(c, "ver", "b", b"b").await.expect("id");
            Ok::<_, String>((a1, a1b, b1))
        })
        .await;
    let want = vec![
        ("a/1".to_string(), a1b.clone(), true, false),
        ("a/1".to_string(), a1.clone(), false, false),
        ("b".to_string(), b1.clone(), true, false),
        ("doc".to_string(), marker.clone(), true, true),
        ("doc".to_string(), v2.clone(), false, false),
        ("doc".to_string(), v1.clone(), false, false),
        ("doc".to_string(), "null".to_string(), false, false),
    ];
    steps
        .run(
            "ListObjectVersions: S3 order, pages, prefix, delimiter",
            listing(c, want),
        )
        .await;
    steps
        .run(
            "deleting a version by id destroys it and frees its shards",
            async { delete_v1(&s, c, &v1).await },
        )
        .await;
    steps
        .run("deleting the marker by id brings the key back", async {
            let d = delete_version(c, "ver", "doc", Some(&marker), false)
                .await
                .expect("delete marker");
            assert_eq!(
                (d.version_id(), d.delete_marker()),
                (Some(marker.as_str()), Some(true))
            );
            assert_eq!(get(c, "ver", "doc", None).await, b"two");
        })
        .await;
    steps
        .run(
            "DeleteObjects destroys versions by id, the null one too",
            async {
                delete_objects(
                    c,
                    &a1,
                    vec![
                        ("a/1".to_string(), a1b.clone()),
                        ("b".to_string(), b1.clone()),
                        ("doc".to_string(), v2.clone()),
                    ],
                )
                .await
            },
        )
        .await;
    steps.finish();
}

/// Never versioned: no status, and no x-amz-version-id anywhere.
async fn never_versioned(c: &Client) {
    c.create_bucket().bucket("ver").send().await.expect("mb");
    assert_eq!(versioning_status(c, "ver").await, None);
    assert_eq!(put(c, "ver", "doc", b"zero").await, None);
    let g = get_version(c, "ver", "doc", None).await.expect("get");
    assert_eq!(g.version_id(), None);
    let h = head_version(c, "ver", "doc", None).await.expect("head");
    assert_eq!(h.version_id(), None);
}

/// MFA Delete is not supported; an unknown status is malformed.
async fn refusals(c: &Client) {
    let mfa = VersioningConfiguration::builder()
        .status(BucketVersioningStatus::Enabled)
        .mfa_delete(MfaDelete::Enabled)
        .build();
    let r = set_versioning(c, "ver", mfa).await;
    assert_s3_error(r, "NotImplemented", 501);
    let r = set_versioning(c, "ver", versioning("Sometimes")).await;
    assert_s3_error(r, "MalformedXML", 400);
    let r = set_versioning(c, "nobucket", versioning("Enabled")).await;
    assert_s3_error(r, "NoSuchBucket", 404);
}

/// Enables versioning: the object from before is now the "null" version,
/// and says so; new PUTs get ids. Answers the two new versions' ids.
async fn enable(c: &Client) -> anyhow::Result<(String, String)> {
    set_versioning(c, "ver", versioning("Enabled"))
        .await
        .expect("enable");
    assert_eq!(
        versioning_status(c, "ver").await,
        Some(BucketVersioningStatus::Enabled)
    );
    let h = head_version(c, "ver", "doc", None).await.expect("head");
    assert_eq!(h.version_id(), Some("null"));
    let v1 = put(c, "ver", "doc", b"one").await.expect("v1 id");
    let v2 = put(c, "ver", "doc", b"two").await.expect("v2 id");
    assert!(v1 != v2 && v1 != "null" && v2 != "null", "{v1} {v2}");
    assert_eq!(get(c, "ver", "doc", None).await, b"two");
    assert_eq!(get(c, "ver", "doc", Some(&v1)).await, b"one");
    assert_eq!(get(c, "ver", "doc", Some("null")).await, b"zero");
    let g = get_version(c, "ver", "doc", None).await.expect("get");
    assert_eq!(g.version_id(), Some(v2.as_str()));
    let h = head_version(c, "ver", "doc", Some(&v1))
        .await
        .expect("head v1");
    assert_eq!(
        (h.version_id(), h.content_length()),
        (Some(v1.as_str()), Some(3))
    );
    Ok((v1, v2))
}

/// The key's latest is a marker: 404 NoSuchKey, flagged. Naming the
/// marker: 405 MethodNotAllowed, flagged.
async fn marker_reads(c: &Client, marker: &str) {
    let e = get_version(c, "ver", "doc", None).await.expect_err("gone");
    assert_eq!(error_status(&e), (Some("NoSuchKey".into()), Some(404)));
    flagged(&e, 404);
    assert_eq!(
        error_header(&e, "x-amz-version-id").as_deref(),
        Some(marker)
    );
    let e = head_version(c, "ver", "doc", None).await.expect_err("gone");
    flagged(&e, 404);
    let e = get_version(c, "ver", "doc", Some(marker))
        .await
        .expect_err("marker");
    assert_eq!(
        error_status(&e),
        (Some("MethodNotAllowed".into()), Some(405))
    );
    flagged(&e, 405);
    let e = head_version(c, "ver", "doc", Some(marker))
        .await
        .expect_err("marker");
    flagged(&e, 405);
}

/// A read that met a delete marker: HTTP `status`, and flagged with
/// x-amz-delete-marker (HEAD has no body, so no error code to check).
#[track_caller]
fn flagged<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>, status: u16) {
    assert_eq!(error_status(e).1, Some(status));
    assert_eq!(
        error_header(e, "x-amz-delete-marker").as_deref(),
        Some("true")
    );
}

/// Every version in `want` (S3's global order), listed in one page, one
/// per page and two per page; then by prefix and delimiter.
async fn listing(c: &Client, want: Vec<(String, String, bool, bool)>) {
    // One page: versions in S3 order (key, newest first), then markers.
    let mut in_lists = want.clone();
    in_lists.sort_by_key(|e| e.3);
    assert_eq!(all_versions(c, "ver", 1000).await, in_lists);
    // Paged through key-marker / version-id-marker: each exactly once, and
    // one entry per page comes in S3's global order.
    assert_eq!(all_versions(c, "ver", 1).await, want);
    assert_eq!(
        sorted(all_versions(c, "ver", 2).await),
        sorted(want.clone())
    );
    let r = c
        .list_object_versions()
        .bucket("ver")
        .delimiter("/")
        .send()
        .await
        .expect("list");
    let prefixes: Vec<_> = r
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, vec!["a/"]);
    assert_eq!(r.versions().len() + r.delete_markers().len(), 5);
    let r = c
        .list_object_versions()
        .bucket("ver")
        .prefix("a/")
        .send()
        .await
        .expect("list");
    assert_eq!(r.versions().len(), 2);
}

/// Deleting a version by id destroys it for good and frees its shards.
async fn delete_v1(s: &S3Cluster, c: &Client, v1: &str) {
    let before = s.shard_file_count();
    let d = delete_version(c, "ver", "doc", Some(v1), false)
        .await
        .expect("delete v1");
    assert_eq!((d.version_id(), d.delete_marker()), (Some(v1), None));
    let r = get_version(c, "ver", "doc", Some(v1)).await;
    assert_s3_error(r, "NoSuchVersion", 404);
    // A tiny body on 3 servers is mirrored: 1+1, two shard files.
    s.wait_shards("v1's 2 shards were not freed", |n| n <= before - 2)
        .await;
}

/// DeleteObjects with version ids (a/1's first version and doc's null
/// one): each destroyed; `left` (key, id) is what remains.
async fn delete_objects(c: &Client, a1: &str, left: Vec<(String, String)>) {
    let r = delete_versions(c, "ver", &[("a/1", a1), ("doc", "null")], None)
        .await
        .expect("delete objects");
    assert_eq!(r.deleted().len(), 2, "{r:?}");
    assert!(r.errors().is_empty(), "{r:?}");
    let remaining: Vec<_> = sorted(all_versions(c, "ver", 1000).await)
        .into_iter()
        .map(|(k, id, _, _)| (k, id))
        .collect();
    assert_eq!(remaining, left);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suspended_bucket_writes_only_the_null_version() {
    let s = S3Cluster::start(1, 3).await;
    let c = s.client();
    c.create_bucket().bucket("sus").send().await.expect("mb");
    set_versioning(&c, "sus", versioning("Enabled"))
        .await
        .expect("enable");
    let v1 = put(&c, "sus", "k", b"kept").await.expect("v1");
    set_versioning(&c, "sus", versioning("Suspended"))
        .await
        .expect("suspend");
    assert_eq!(
        versioning_status(&c, "sus").await,
        Some(BucketVersioningStatus::Suspended)
    );

    // Each PUT answers "null" and replaces the null version only.
    let before = s.shard_file_count();
    assert_eq!(put(&c, "sus", "k", b"n1").await.as_deref(), Some("null"));
    assert_eq!(put(&c, "sus", "k", b"n2").await.as_deref(), Some("null"));
    assert_eq!(get(&c, "sus", "k", None).await, b"n2");
    assert_eq!(get(&c, "sus", "k", Some("null")).await, b"n2");
    assert_eq!(get(&c, "sus", "k", Some(&v1)).await, b"kept");
    let listed = all_versions(&c, "sus", 1000).await;
    assert_eq!(
        listed,
        vec![
            ("k".to_string(), "null".to_string(), true, false),
            ("k".to_string(), v1.clone(), false, false),
        ]
    );
    // n1's shards were freed when n2 replaced it: one object's worth
    // more (a tiny body on 3 servers is mirrored: 1+1, two files).
    s.wait_shards("the replaced null version's shards remain", |n| {
        n == before + 2
    })
    .await;

    // A DELETE without id: a null delete marker replaces the null version.
    let d = delete_version(&c, "sus", "k", None, false)
        .await
        .expect("delete");
    assert_eq!(
        (d.delete_marker(), d.version_id()),
        (Some(true), Some("null"))
    );
    let listed = all_versions(&c, "sus", 1000).await;
    assert_eq!(
        listed,
        vec![
            ("k".to_string(), v1.clone(), false, false),
            ("k".to_string(), "null".to_string(), true, true),
        ]
    );
    assert_eq!(get(&c, "sus", "k", Some(&v1)).await, b"kept");
}
