//! A 10,000-part object (S3's most) on a real cluster (issue 20 item 2,
//! ADR 0031): it completes through S3 with 10,000 parts in the XML, lists
//! (as a listing entry), reads whole and by a range deep
//! inside, answers HEAD, is a source of UploadPartCopy, and deletes;
//! ListParts pages an open 10,000-part upload. Before parts were paged,
//! every answer naming such a version carried all 10,000 shard maps and
//! passed tonic's 4 MiB limit (the step "a version carrying its parts
//! would not fit an answer" measures it).
//!
//! The parts are made at the meta level: one real part is uploaded through
//! S3, and its record (shard map, wrapped data key) is committed again
//! under every other part number with CommitPart, 16 at a time. That is
//! sound because a segment's AES-GCM nonce and AAD bind only the segment
//! index and the last-segment flag, never the part number or the object
//! (gateway/src/pipeline/encrypt.rs): the same shards decrypt as any
//! part. The meta-servers run with the test hook `--test-min-part-size 1`
//! so parts of a few KiB may be completed (S3's 5 MiB minimum would make
//! the object 50 GB).

use std::time::Instant;

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures::StreamExt;
use hamster_proto::message_size::META_ANSWER_MAX;
use hamster_proto::pb;
use hamster_proto::pb::meta_client::MetaClient;
use hamster_tests::Steps;
use hamster_tests::s3::{ClusterSpec, S3Cluster, pattern, read_body, strings};
use md5::{Digest, Md5};
use tonic::transport::Channel;

type Client = aws_sdk_s3::Client;

const PARTS: u32 = 10_000;
/// Bytes of the one real part every part reuses.
const PART_LEN: usize = 1500;
const BUCKET: &str = "many";
/// Objects of 10,000 parts listed on one page. One is enough to fail
/// without paging (its listing entry alone carried ~4.2 MB) and each costs
/// ~10,000 Raft commits, so CI makes one.
const OBJECTS: usize = 1;

/// The meta tier as a gateway sees it, acting for the test's access key.
struct MetaSide {
    client: MetaClient<Channel>,
    key_id: String,
}

/// An upload begun through S3 whose part 1 is real, and part 1's record.
async fn seeded_upload(c: &Client, m: &mut MetaSide, key: &str, body: &[u8]) -> (String, pb::Part) {
    let id = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("create upload")
        .upload_id()
        .expect("upload id")
        .to_string();
    c.upload_part()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .part_number(1)
        .body(body.to_vec().into())
        .send()
        .await
        .expect("upload part 1");
    let parts = m
        .client
        .list_parts(pb::ListPartsRequest {
            bucket: BUCKET.into(),
            key: key.into(),
            upload_id: id.clone(),
            part_number_marker: 0,
            max_parts: 1,
        })
        .await
        .expect("list parts")
        .into_inner()
        .parts;
    let part = parts.into_iter().next().expect("part 1");
    assert!(part.shard_map.is_some(), "a real part has a shard map");
    (id, part)
}

/// Commits `record` as parts 2..=PARTS of upload `id` of `key`, 16 at a
/// time, over the Meta gRPC with a gateway certificate.
async fn commit_parts(m: &MetaSide, key: &str, id: &str, record: &pb::Part) {
    let started = Instant::now();
    let results: Vec<Result<(), tonic::Status>> = futures::stream::iter(2..=PARTS)
        .map(|n| {
            let mut client = m.client.clone();
            let req = pb::CommitPartRequest {
                bucket: BUCKET.into(),
                key: key.into(),
                upload_id: id.into(),
                part: Some(pb::Part {
                    part_number: n,
                    ..record.clone()
                }),
                request_id: String::new(),
                access_key_id: m.key_id.clone(),
            };
            async move { client.commit_part(req).await.map(|_| ()) }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let failed: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    assert!(
        failed.is_empty(),
        "{} commits failed: {:?}",
        failed.len(),
        failed.first()
    );
    eprintln!(
        "committed {} parts of {key} in {:.1?}",
        PARTS - 1,
        started.elapsed()
    );
}

/// The completion list: every part number with the one ETag.
fn all_parts(etag: &str) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            (1..=PARTS as i32)
                .map(|n| CompletedPart::builder().part_number(n).e_tag(etag).build())
                .collect(),
        ))
        .build()
}

/// S3's multipart ETag of PARTS parts that all have `etag`.
fn multipart_etag(etag: &str) -> String {
    let one = hex::decode(etag.trim_matches('"')).expect("an MD5 ETag");
    let mut h = Md5::new();
    for _ in 0..PARTS {
        h.update(&one);
    }
    format!("\"{}-{PARTS}\"", hex::encode(h.finalize()))
}

#[tokio::test]
async fn a_ten_thousand_part_object_completes_lists_reads_and_deletes() {
    let mut steps = Steps::new("a_ten_thousand_part_object_completes_lists_reads_and_deletes");
    // Five blob-servers: a 3+2 profile, so one version's 10,000 part
    // records (~490 B each) pass 4 MiB on their own.
    let spec = ClusterSpec {
        blobs: 5,
        meta_args: strings(&["--test-min-part-size", "1"]),
        // Applying a 10,000-part completion writes ~30,000 shard rows: in
        // a debug build on a busy machine that can pass the default 5 s
        // per-attempt deadline (ADR 0032), which is about dead peers.
        // The part is tiny but its map must be a full 3+2 (the answer-size
        // step counts on its size): no mirror (ADR 0038).
        gw_args: strings(&["--meta-call-timeout-ms", "30000", "--mirror-max-bytes", "0"]),
        ..ClusterSpec::default()
    };
    let (s, c) = S3Cluster::start_step(&mut steps, &spec).await;
    let gw = s.c.gateway_identity("gw-many");
    let mut m = MetaSide {
        client: s.c.meta_client(s.metas[0], &gw),
        key_id: s.access_key_id.clone(),
    };
    let body = pattern(PART_LEN, 7);
    let whole: Vec<u8> = body.repeat(PARTS as usize);

    steps
        .require("bucket", async {
            c.create_bucket().bucket(BUCKET).send().await.map(|_| ())
        })
        .await;

    // OBJECTS uploads of 10,000 parts each: the first stays open for the
    // ListParts step, then every one completes through S3.
    let keys: Vec<String> = (0..OBJECTS).map(|i| format!("big-{i}")).collect();
    let mut uploads = Vec::new();
    for key in &keys {
        let (id, record) = steps
            .require(
                &format!("{key}: one real part, 9,999 committed at the meta level"),
                async {
                    let (id, record) = seeded_upload(&c, &mut m, key, &body).await;
                    commit_parts(&m, key, &id, &record).await;
                    Ok::<_, String>((id, record))
                },
            )
            .await;
        uploads.push((key.clone(), id, record));
    }
    let etag = uploads[0].2.etag.clone();

    steps
        .run("ListParts pages an open 10,000-part upload", async {
            let (key, id, _) = &uploads[0];
            let mut seen = Vec::new();
            let mut marker = None;
            let mut pages = 0;
            loop {
                let r = c
                    .list_parts()
                    .bucket(BUCKET)
                    .key(key)
                    .upload_id(id)
                    .set_part_number_marker(marker.clone())
                    .send()
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                pages += 1;
                seen.extend(r.parts().iter().map(|p| p.part_number().unwrap_or(0)));
                if !r.is_truncated().unwrap_or(false) {
                    break;
                }
                marker = r.next_part_number_marker().map(str::to_string);
                if pages > 20 {
                    return Err("ListParts never ends".to_string());
                }
            }
            let want: Vec<i32> = (1..=PARTS as i32).collect();
            if seen != want || pages != 10 {
                return Err(format!("{pages} pages, {} parts", seen.len()));
            }
            Ok(())
        })
        .await;

    for (key, id, _) in &uploads {
        steps
            .require(
                &format!("{key}: CompleteMultipartUpload of 10,000 parts"),
                async {
                    let r = c
                        .complete_multipart_upload()
                        .bucket(BUCKET)
                        .key(key)
                        .upload_id(id)
                        .multipart_upload(all_parts(&etag))
                        .send()
                        .await
                        .map_err(|e| format!("{e:?}"))?;
                    let got = r.e_tag().unwrap_or_default().to_string();
                    if got != multipart_etag(&etag) {
                        return Err(format!("ETag {got}"));
                    }
                    Ok(())
                },
            )
            .await;
    }

    steps
        .run(
            "a version carrying its parts would not fit an answer",
            async {
                // What GetVersion and each listing entry answered before
                // parts were paged: this object's version with every part.
                let record = &uploads[0].2;
                let old = pb::ObjectVersion {
                    parts: (1..=PARTS)
                        .map(|n| pb::Part {
                            part_number: n,
                            ..record.clone()
                        })
                        .collect(),
                    ..Default::default()
                };
                let len = prost::Message::encoded_len(&old);
                eprintln!("a version with its {PARTS} parts: {len} bytes");
                // Before: GetVersion, HEAD, GET and CompleteMultipart answered
                // it whole (and a listing page OBJECTS times over).
                if len <= META_ANSWER_MAX {
                    return Err(format!(
                        "{len} bytes fit {META_ANSWER_MAX}: the test proves nothing"
                    ));
                }
                Ok(())
            },
        )
        .await;

    let size = (PART_LEN * PARTS as usize) as i64;
    steps
        .run("ListObjectsV2 shows them on one page", async {
            let r = c
                .list_objects_v2()
                .bucket(BUCKET)
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            let listed: Vec<(String, i64)> = r
                .contents()
                .iter()
                .map(|o| (o.key().unwrap_or("").to_string(), o.size().unwrap_or(-1)))
                .collect();
            let want: Vec<(String, i64)> = keys.iter().map(|k| (k.clone(), size)).collect();
            if listed != want {
                return Err(format!("{listed:?}"));
            }
            Ok(())
        })
        .await;

    steps
        .run("ListObjectVersions shows them on one page", async {
            let r = c
                .list_object_versions()
                .bucket(BUCKET)
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            let listed: Vec<(String, i64, String)> = r
                .versions()
                .iter()
                .map(|v| {
                    let key = v.key().unwrap_or("").to_string();
                    (key, v.size().unwrap_or(-1), v.e_tag().unwrap_or("").into())
                })
                .collect();
            let want: Vec<_> = keys
                .iter()
                .map(|k| (k.clone(), size, multipart_etag(&etag)))
                .collect();
            if listed != want {
                return Err(format!("{listed:?}"));
            }
            Ok(())
        })
        .await;

    steps
        .run("HEAD", async {
            let r = c
                .head_object()
                .bucket(BUCKET)
                .key(&keys[0])
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            if r.content_length() != Some(size) || r.e_tag() != Some(&multipart_etag(&etag)) {
                return Err(format!("{:?} {:?}", r.content_length(), r.e_tag()));
            }
            Ok(())
        })
        .await;

    steps
        .run("GET the whole object, bytes verified", async {
            let started = Instant::now();
            let r = c
                .get_object()
                .bucket(BUCKET)
                .key(&keys[0])
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            let got = read_body(r).await;
            eprintln!("read {} bytes in {:.1?}", got.len(), started.elapsed());
            if got != whole {
                let at = got.iter().zip(&whole).position(|(a, b)| a != b);
                return Err(format!("{} bytes, first difference at {at:?}", got.len()));
            }
            Ok(())
        })
        .await;

    steps
        .run("a Range GET deep inside (parts 9,000 to 9,501)", async {
            let (first, last) = (8_999 * PART_LEN + 17, 9_500 * PART_LEN + 3);
            let r = c
                .get_object()
                .bucket(BUCKET)
                .key(&keys[0])
                .range(format!("bytes={first}-{last}"))
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            let got = read_body(r).await;
            if got[..] != whole[first..=last] {
                return Err(format!("{} bytes, not the range", got.len()));
            }
            Ok(())
        })
        .await;

    steps
        .run("UploadPartCopy of a range deep inside", async {
            let (first, last) = (5_000 * PART_LEN + 3, 5_010 * PART_LEN + 1);
            let id = c
                .create_multipart_upload()
                .bucket(BUCKET)
                .key("copy")
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?
                .upload_id()
                .unwrap_or_default()
                .to_string();
            let r = c
                .upload_part_copy()
                .bucket(BUCKET)
                .key("copy")
                .upload_id(&id)
                .part_number(1)
                .copy_source(format!("{BUCKET}/{}", keys[0]))
                .copy_source_range(format!("bytes={first}-{last}"))
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            let etag = r
                .copy_part_result()
                .and_then(|p| p.e_tag())
                .unwrap_or_default()
                .to_string();
            let done = CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
                .build();
            c.complete_multipart_upload()
                .bucket(BUCKET)
                .key("copy")
                .upload_id(&id)
                .multipart_upload(done)
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            let got = read_body(
                c.get_object()
                    .bucket(BUCKET)
                    .key("copy")
                    .send()
                    .await
                    .map_err(|e| format!("{e:?}"))?,
            )
            .await;
            c.delete_object()
                .bucket(BUCKET)
                .key("copy")
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            if got[..] != whole[first..=last] {
                return Err(format!("{} bytes, not the range", got.len()));
            }
            Ok(())
        })
        .await;

    steps
        .run("DeleteObject of each, then they are gone", async {
            for key in &keys {
                c.delete_object()
                    .bucket(BUCKET)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| format!("delete {key}: {e:?}"))?;
            }
            let r = c
                .list_objects_v2()
                .bucket(BUCKET)
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            if !r.contents().is_empty() {
                return Err(format!("still listed: {:?}", r.contents()));
            }
            Ok(())
        })
        .await;

    steps.finish();
}
