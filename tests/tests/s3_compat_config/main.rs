//! Issue 21, points 13–15, against real processes: GetObjectAttributes
//! and GET/HEAD with partNumber (plain, multipart, versioned objects and
//! delete markers), object lock answers as AWS gives them (MalformedXML,
//! InvalidRetentionPeriod, enabling lock on an existing versioned
//! bucket), and bucket encryption and PublicAccessBlock answering
//! truthfully. One cluster, named steps; aws-sdk-s3 where it can send the
//! request, hand-signed XML where it will not.

mod attributes;
mod config;

use hamster_tests::Steps;
use hamster_tests::s3::{ClusterSpec, S3Cluster, set_versioning, strings, versioning};
use hamster_tests::sigv4::Signer;

use attributes::*;
use config::*;

pub type Client = aws_sdk_s3::Client;

pub const B: &str = "cfg-attrs";
/// The multipart object's part sizes (1-byte minimum part size here).
pub const SIZES: [usize; 5] = [3, 4, 5, 6, 7];

pub fn part_bytes(n: usize) -> Vec<u8> {
    vec![b'a' + n as u8; SIZES[n - 1]]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attributes_parts_lock_answers_and_bucket_configuration() {
    let mut steps = Steps::new("attributes_parts_lock_answers_and_bucket_configuration");
    let spec = ClusterSpec {
        meta_args: strings(&["--test-min-part-size", "1"]),
        ..ClusterSpec::default()
    };
    let (s, c) = S3Cluster::start_step(&mut steps, &spec).await;
    let signer = Signer::new(s.s3_addr(), &s.access_key_id, &s.secret);
    let (c, s, signer) = (&c, &s, &signer);
    steps
        .require("versioned bucket and a five-part object", async {
            c.create_bucket().bucket(B).send().await.expect("bucket");
            set_versioning(c, B, versioning("Enabled"))
                .await
                .expect("versioning");
            let parts: Vec<_> = (1..=5).map(part_bytes).collect();
            multipart(c, "multi", &parts, false).await;
        })
        .await;
    steps
        .run(
            "attributes: plain and versioned",
            attributes_of_plain_and_versioned_objects(c),
        )
        .await;
    steps
        .run("attributes: parts paged", async {
            let pages = part_pages(c, "multi", 2).await;
            let sizes = |ns: &[i32]| -> Vec<(i32, i64)> {
                ns.iter()
                    .map(|n| (*n, SIZES[*n as usize - 1] as i64))
                    .collect()
            };
            assert_eq!(pages, vec![sizes(&[1, 2]), sizes(&[3, 4]), sizes(&[5])]);
            assert_eq!(
                part_pages(c, "multi", 1000).await,
                vec![sizes(&[1, 2, 3, 4, 5])]
            );
        })
        .await;
    steps
        .run(
            "attributes: delete marker",
            attributes_of_a_delete_marker(c),
        )
        .await;
    steps
        .run("attributes: checksums", checksums_in_attributes(c))
        .await;
    steps
        .run(
            "get and head by part number",
            get_and_head_by_part_number(c),
        )
        .await;
    steps
        .run(
            "lock: invalid values refused as AWS",
            lock_values_refused_as_aws(c, signer),
        )
        .await;
    steps
        .run(
            "lock: enabled on an existing versioned bucket",
            lock_enabled_on_an_existing_versioned_bucket(c),
        )
        .await;
    steps
        .run(
            "encryption: always SSE-S3",
            encryption_is_always_sse_s3(c, signer),
        )
        .await;
    steps
        .run(
            "public access block: stored",
            public_access_block_is_stored(c),
        )
        .await;
    steps
        .run("rights: owner changes, readers read", rights(s))
        .await;
    steps.finish();
}
