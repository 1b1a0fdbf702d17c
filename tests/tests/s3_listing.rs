//! Listings V1/V2 through aws-sdk-s3 against real processes, in named
//! steps over one cluster: delimiters and prefixes, paging by continuation
//! token and by marker, start-after, url encoding, bucket location, and
//! DeleteObjects (per-key results, quiet mode, the 1000-key limit).

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use hamster_tests::Steps;
use hamster_tests::s3::{S3Cluster, assert_s3_error};

type Client = aws_sdk_s3::Client;

const KEYS: [&str; 6] = ["a/1", "a/2", "a/b/3", "b/1", "c", "sp ace/é"];

/// The keys of a V2 listing page.
fn keys_of(r: &aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output) -> Vec<&str> {
    r.contents().iter().filter_map(|o| o.key()).collect()
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
    let r = c
        .list_objects_v2()
        .bucket("lst")
        .delimiter("/")
        .send()
        .await
        .expect("list");
    let prefixes: Vec<&str> = r
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, vec!["a/", "b/", "sp ace/"]);
    assert_eq!(keys_of(&r), vec!["c"]);
    assert_eq!(r.key_count(), Some(4));
    let r = c
        .list_objects_v2()
        .bucket("lst")
        .prefix("a/")
        .delimiter("/")
        .send()
        .await
        .expect("list");
    assert_eq!(keys_of(&r), vec!["a/1", "a/2"]);
    assert_eq!(
        r.common_prefixes()
            .iter()
            .filter_map(|p| p.prefix())
            .collect::<Vec<_>>(),
        vec!["a/b/"]
    );
}

async fn paging(c: &Client) {
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let r = c
            .list_objects_v2()
            .bucket("lst")
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("page");
        seen.extend(
            r.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        if !r.is_truncated().unwrap_or(false) {
            break;
        }
        token = r.next_continuation_token().map(str::to_string);
    }
    assert_eq!(seen, KEYS);
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let r = c
            .list_objects()
            .bucket("lst")
            .max_keys(2)
            .set_marker(marker.clone())
            .send()
            .await
            .expect("v1 page");
        seen.extend(
            r.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        if !r.is_truncated().unwrap_or(false) {
            break;
        }
        marker = r
            .next_marker()
            .map(str::to_string)
            .or_else(|| seen.last().cloned());
    }
    assert_eq!(seen, KEYS);
}

async fn start_after_and_encoding(c: &Client) {
    let r = c
        .list_objects_v2()
        .bucket("lst")
        .start_after("a/b/3")
        .send()
        .await
        .expect("start-after");
    assert_eq!(keys_of(&r), vec!["b/1", "c", "sp ace/é"]);
    let r = c
        .list_objects_v2()
        .bucket("lst")
        .prefix("sp")
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
        .send()
        .await
        .expect("url");
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
    let left = c
        .list_objects_v2()
        .bucket("lst")
        .send()
        .await
        .expect("list");
    assert_eq!(keys_of(&left), vec!["a/b/3", "c", "sp ace/é"]);
}
