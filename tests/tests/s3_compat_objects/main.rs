//! Issue 21, object writes and reads, through aws-sdk-s3 and hand-signed
//! requests against real processes, in named steps over one cluster:
//! conditional writes (If-None-Match: *, If-Match) on PutObject and
//! CompleteMultipartUpload, including racing writers, and a completion
//! repeated after success ([`conditional`]); flexible checksums kept and
//! shown (x-amz-checksum-mode), composite ones for multipart, ListParts
//! ([`checksums`]); the SSE-S3 header on every object answer and SSE-C /
//! KMS requests refused ([`encryption`]); one checksum header at most, and
//! an object checksum sent with a completion checked ([`sent_checksums`]).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use hamster_tests::Steps;
use hamster_tests::s3::{ClusterSpec, S3Cluster, strings};
use hamster_tests::sigv4::Signer;

mod checksums;
mod conditional;
mod encryption;
mod sent_checksums;

use checksums::{checksums_kept, multipart_checksums, trailer_only_checksum};
use conditional::{complete_twice, conditional_complete, conditional_puts, racing_creates};
use encryption::{sse_refused, sse_shown};
use sent_checksums::{object_checksum_on_complete, one_checksum_header};

pub type Client = aws_sdk_s3::Client;

pub const B: &str = "objs";

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn crc32_b64(data: &[u8]) -> String {
    b64(&crc32fast::hash(data).to_be_bytes())
}

pub async fn put(c: &Client, key: &str, data: &[u8]) -> String {
    c.put_object()
        .bucket(B)
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .expect("put")
        .e_tag()
        .expect("etag")
        .to_string()
}

pub fn completed(parts: &[(i32, String, Option<String>)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts
                .iter()
                .map(|(n, e, sha)| {
                    CompletedPart::builder()
                        .part_number(*n)
                        .e_tag(e)
                        .set_checksum_sha256(sha.clone())
                        .build()
                })
                .collect(),
        ))
        .build()
}

/// An upload of `key` with `data` as its parts (no checksum asked):
/// (upload id, the parts to complete with).
pub async fn upload(c: &Client, key: &str, data: &[&[u8]]) -> (String, CompletedMultipartUpload) {
    let id = c
        .create_multipart_upload()
        .bucket(B)
        .key(key)
        .send()
        .await
        .expect("create upload")
        .upload_id()
        .expect("upload id")
        .to_string();
    let mut parts = Vec::new();
    for (i, d) in data.iter().enumerate() {
        let n = i as i32 + 1;
        let p = c
            .upload_part()
            .bucket(B)
            .key(key)
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(d.to_vec()))
            .send()
            .await
            .expect("upload part");
        parts.push((n, p.e_tag().expect("part etag").to_string(), None));
    }
    (id, completed(&parts))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_writes_checksums_encryption_and_repeated_completes() {
    let mut steps = Steps::new("conditional_writes_checksums_encryption_and_repeated_completes");
    let spec = ClusterSpec {
        meta_args: strings(&["--test-min-part-size", "1"]),
        ..ClusterSpec::default()
    };
    let (s, c) = S3Cluster::start_step(&mut steps, &spec).await;
    let signer = Signer::new(s.s3_addr(), &s.access_key_id, &s.secret);
    let (c, signer) = (&c, &signer);
    steps
        .require("bucket", async {
            c.create_bucket().bucket(B).send().await.expect("bucket");
        })
        .await;
    steps
        .run(
            "PutObject If-None-Match: * and If-Match",
            conditional_puts(c),
        )
        .await;
    steps
        .run(
            "CompleteMultipartUpload If-None-Match after a PUT, If-Match",
            conditional_complete(c),
        )
        .await;
    steps
        .run(
            "racing If-None-Match: * creates: one wins",
            racing_creates(c),
        )
        .await;
    steps
        .run("checksums kept and shown when asked", checksums_kept(c))
        .await;
    steps
        .run(
            "multipart composite checksum and ListParts",
            multipart_checksums(c),
        )
        .await;
    steps
        .run(
            "a checksum named only by its trailer is kept",
            trailer_only_checksum(c, signer),
        )
        .await;
    steps
        .run(
            "one x-amz-checksum- header on a PUT or part",
            one_checksum_header(c, signer),
        )
        .await;
    steps
        .run(
            "an object checksum with CompleteMultipartUpload is checked first",
            object_checksum_on_complete(c),
        )
        .await;
    steps
        .run("every object answer says AES256", sse_shown(c))
        .await;
    steps
        .run(
            "SSE-C and KMS refused, nothing written",
            sse_refused(c, signer),
        )
        .await;
    steps
        .run(
            "CompleteMultipartUpload repeated: same ETag",
            complete_twice(c),
        )
        .await;
    steps.finish();
}
