//! Listings V1/V2 through aws-sdk-s3 against real processes, in named
//! steps over one cluster: delimiters and prefixes, paging by continuation
//! token and by marker, start-after, url encoding, bucket location, and
//! DeleteObjects (per-key results, quiet mode, the 1000-key limit).

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::operation::list_objects_v2::builders::ListObjectsV2FluentBuilder;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, EncodingType, ObjectIdentifier};
use hamster_tests::Steps;
use hamster_tests::s3::{S3Cluster, assert_s3_error};

type Client = aws_sdk_s3::Client;

const KEYS: [&str; 6] = ["a/1", "a/2", "a/b/3", "b/1", "c", "sp ace/é"];

/// The keys of a V2 listing page.
fn keys_of(r: &ListObjectsV2Output) -> Vec<&str> {
    r.contents().iter().filter_map(|o| o.key()).collect()
}

/// The common prefixes of a V2 listing page.
fn prefixes_of(r: &ListObjectsV2Output) -> Vec<&str> {
    r.common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect()
}

/// A V2 listing of "lst" with the options `opts` sets.
async fn list_v2(
    c: &Client,
    opts: impl FnOnce(ListObjectsV2FluentBuilder) -> ListObjectsV2FluentBuilder,
) -> ListObjectsV2Output {
    opts(c.list_objects_v2().bucket("lst"))
        .send()
        .await
        .expect("list")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listings_and_batch_deletes() {
    let s = S3Cluster::start(1, 3).await;
    let c = s.client();
    let c = &c;
    let mut steps = Steps::new("listings_and_batch_deletes");
    steps
        .require("keys are written", async {
            c.create_bucket().bucket("lst").send().await.expect("mb");
            for k in KEYS {
                c.put_object()
                    .bucket("lst")
                    .key(k)
                    .body(ByteStream::from_static(b"x"))
                    .send()
                    .await
                    .expect("put");
            }
        })
        .await;
    steps
        .run("a delimiter folds keys into common prefixes", delimiters(c))
        .await;
    steps
        .run(
            "paging by two, V2 tokens and V1 markers, gives every key once",
            paging(c),
        )
        .await;
    steps
        .run("start-after and url encoding", start_after_and_encoding(c))
        .await;
    steps
        .run(
            "bucket location, and NoSuchBucket for a missing bucket",
            async {
                c.get_bucket_location()
                    .bucket("lst")
                    .send()
                    .await
                    .expect("location");
                let e = c
                    .get_bucket_location()
                    .bucket("nope")
                    .send()
                    .await
                    .expect_err("no bucket");
                assert_eq!(e.code(), Some("NoSuchBucket"));
            },
        )
        .await;
    steps
        .run(
            "DeleteObjects: per-key results, quiet mode, at most 1000 keys",
            batch_deletes(c),
        )
        .await;
    steps.finish();
}

async fn delimiters(c: &Client) {
    let r = list_v2(c, |l| l.delimiter("/")).await;
    assert_eq!(prefixes_of(&r), vec!["a/", "b/", "sp ace/"]);
    assert_eq!(keys_of(&r), vec!["c"]);
    assert_eq!(r.key_count(), Some(4));
    let r = list_v2(c, |l| l.prefix("a/").delimiter("/")).await;
    assert_eq!(keys_of(&r), vec!["a/1", "a/2"]);
    assert_eq!(prefixes_of(&r), vec!["a/b/"]);
}

/// Every key a listing gives, page by page: `page` lists from a cursor
/// (None: the start) and answers the page's keys and the next cursor
/// (None: the listing is complete).
async fn all_pages<F, Fut>(mut page: F) -> Vec<String>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = (Vec<String>, Option<String>)>,
{
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let (keys, next) = page(cursor).await;
        seen.extend(keys);
        if next.is_none() {
            return seen;
        }
        cursor = next;
    }
}

async fn paging(c: &Client) {
    let seen = all_pages(|token| async move {
        let r = list_v2(c, |l| l.max_keys(2).set_continuation_token(token)).await;
        let next = r.is_truncated().unwrap_or(false).then(|| {
            let token = r.next_continuation_token();
            token.expect("a truncated page names the next").to_string()
        });
        (keys_of(&r).into_iter().map(str::to_string).collect(), next)
    })
    .await;
    assert_eq!(seen, KEYS);
    let seen = all_pages(|marker| async move {
        let r = c
            .list_objects()
            .bucket("lst")
            .max_keys(2)
            .set_marker(marker)
            .send()
            .await
            .expect("v1 page");
        let keys: Vec<String> = r
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect();
        // V1 names no next marker without a delimiter: the last key is it.
        let next = r.is_truncated().unwrap_or(false).then(|| {
            let next = r.next_marker().map(str::to_string);
            next.or_else(|| keys.last().cloned()).expect("a marker")
        });
        (keys, next)
    })
    .await;
    assert_eq!(seen, KEYS);
    // A continuation token that is not one of ours is the client's
    // mistake: 400 InvalidArgument, as S3 answers.
    let garbage = c
        .list_objects_v2()
        .bucket("lst")
        .continuation_token("not-a-token")
        .send()
        .await;
    assert_s3_error(garbage, "InvalidArgument", 400);
}

async fn start_after_and_encoding(c: &Client) {
    let r = list_v2(c, |l| l.start_after("a/b/3")).await;
    assert_eq!(keys_of(&r), vec!["b/1", "c", "sp ace/é"]);
    let r = list_v2(c, |l| l.prefix("sp").encoding_type(EncodingType::Url)).await;
    assert_eq!(keys_of(&r), vec!["sp%20ace/%C3%A9"]);
}

async fn batch_deletes(c: &Client) {
    let ids = |ks: &[&str]| {
        Delete::builder().set_objects(Some(
            ks.iter()
                .map(|k| ObjectIdentifier::builder().key(*k).build().expect("id"))
                .collect(),
        ))
    };
    let r = c
        .delete_objects()
        .bucket("lst")
        .delete(ids(&["a/1", "a/2", "never-was"]).build().expect("delete"))
        .send()
        .await
        .expect("delete objects");
    let mut deleted: Vec<&str> = r.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort();
    assert_eq!(deleted, vec!["a/1", "a/2", "never-was"]);
    assert!(r.errors().is_empty());
    let r = c
        .delete_objects()
        .bucket("lst")
        .delete(ids(&["b/1"]).quiet(true).build().expect("delete"))
        .send()
        .await
        .expect("quiet");
    assert!(r.deleted().is_empty(), "quiet mode lists deletions");
    let many: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let r = c
        .delete_objects()
        .bucket("lst")
        .delete(ids(&many).build().expect("delete"))
        .send()
        .await;
    assert_s3_error(r, "MalformedXML", 400);
    let left = list_v2(c, |l| l).await;
    assert_eq!(keys_of(&left), vec!["a/b/3", "c", "sp ace/é"]);
}
