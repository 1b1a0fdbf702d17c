//! The S3 data path end to end: aws-sdk-s3 against a real gateway, meta
//! tier and blob-servers (separate processes). Objects round-trip with MD5
//! ETags; ranges cross segment and stripe boundaries; no plaintext lands
//! on any blob-server's disk; errors carry the codes clients expect. The
//! longer scenarios run in named steps over one cluster each.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use hamster_tests::s3::{S3Cluster, assert_s3_error};
use hamster_tests::{Steps, files_under};
use md5::{Digest, Md5};

type Client = aws_sdk_s3::Client;

const SEG: usize = 1 << 20;
/// The sizes of the round-tripped objects.
const SIZES: [usize; 5] = [0, 1, SEG - 1, SEG, 64 * SEG + 3];
const MARKER: &[u8] = b"HAMSTER-S3-PLAINTEXT-MARKER-51c2";

/// Object bytes: the marker repeated, with a position byte mixed in so a
/// misplaced segment cannot go unnoticed.
fn object(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            if (i / MARKER.len()) % 7 == 3 {
                (i / 4096 % 251) as u8
            } else {
                MARKER[i % MARKER.len()]
            }
        })
        .collect()
}

fn etag(data: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Md5::digest(data)))
}

async fn get(c: &aws_sdk_s3::Client, bucket: &str, key: &str, range: Option<&str>) -> Vec<u8> {
    let mut req = c.get_object().bucket(bucket).key(key);
    if let Some(r) = range {
        req = req.range(r);
    }
    hamster_tests::s3::read_body(req.send().await.expect("get")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn objects_round_trip_with_ranges_and_no_plaintext_on_disk() {
    let s = S3Cluster::start(1, 6).await;
    let c = s.client();
    let c = &c;
    let mut steps = Steps::new("objects_round_trip_with_ranges_and_no_plaintext_on_disk");
    steps
        .require(
            "objects of every size round-trip with MD5 ETags",
            round_trip(c),
        )
        .await;
    steps
        .run("ranges cross segment and stripe boundaries", ranges(c))
        .await;
    steps
        .run("the listing shows each object once, with its size", async {
            let list = c
                .list_objects_v2()
                .bucket("data")
                .send()
                .await
                .expect("list");
            let listed: Vec<(String, i64)> = list
                .contents()
                .iter()
                .map(|o| {
                    (
                        o.key().unwrap_or_default().to_string(),
                        o.size().unwrap_or(-1),
                    )
                })
                .collect();
            let mut want: Vec<(String, i64)> = SIZES
                .iter()
                .map(|n| (format!("obj-{n}"), *n as i64))
                .collect();
            want.sort();
            assert_eq!(listed, want);
        })
        .await;
    steps
        .run("no plaintext on any blob-server's disk", async {
            no_plaintext(&s)
        })
        .await;
    steps
        .run("deleted objects are gone, then the bucket", deletes(c))
        .await;
    steps.finish();
}

async fn round_trip(c: &Client) {
    c.create_bucket().bucket("data").send().await.expect("mb");
    for n in SIZES {
        let data = object(n);
        let put = c
            .put_object()
            .bucket("data")
            .key(format!("obj-{n}"))
            .content_type("application/x-test")
            .metadata("origin", "round-trip")
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .expect("put");
        assert_eq!(put.e_tag(), Some(etag(&data).as_str()), "PUT ETag of {n} B");
        let got = c
            .get_object()
            .bucket("data")
            .key(format!("obj-{n}"))
            .send()
            .await
            .expect("get");
        assert_eq!(got.e_tag(), Some(etag(&data).as_str()));
        assert_eq!(got.content_length(), Some(n as i64));
        assert_eq!(got.content_type(), Some("application/x-test"));
        assert_eq!(
            got.metadata()
                .and_then(|m| m.get("origin"))
                .map(String::as_str),
            Some("round-trip")
        );
        let body = got.body.collect().await.expect("body").into_bytes();
        assert!(body.as_ref() == data.as_slice(), "{n} B object differs");
        let head = c
            .head_object()
            .bucket("data")
            .key(format!("obj-{n}"))
            .send()
            .await
            .expect("head");
        assert_eq!(head.content_length(), Some(n as i64));
        assert_eq!(head.e_tag(), Some(etag(&data).as_str()));
    }
}

/// Ranges on the 64 MiB + 3 object: stripes are segments, so crossing a
/// segment boundary crosses a stripe boundary.
async fn ranges(c: &Client) {
    let big = object(64 * SEG + 3);
    let size = big.len();
    let cases: Vec<(String, std::ops::Range<usize>)> = vec![
        ("bytes=0-0".into(), 0..1),
        (format!("bytes={}-{}", SEG - 2, SEG + 1), SEG - 2..SEG + 2),
        (
            format!("bytes={}-{}", 3 * SEG - 1, 6 * SEG),
            3 * SEG - 1..6 * SEG + 1,
        ),
        (format!("bytes={}-", size - 5), size - 5..size),
        ("bytes=-7".into(), size - 7..size),
        (format!("bytes={}-{}", 64 * SEG, size + 100), 64 * SEG..size),
        (
            format!("bytes={}-{}", 10 * SEG, 11 * SEG - 1),
            10 * SEG..11 * SEG,
        ),
    ];
    for (range, want) in cases {
        let out = c
            .get_object()
            .bucket("data")
            .key(format!("obj-{size}"))
            .range(&range)
            .send()
            .await
            .expect("range get");
        assert_eq!(
            out.content_range(),
            Some(format!("bytes {}-{}/{size}", want.start, want.end - 1).as_str()),
            "{range}"
        );
        let body = out.body.collect().await.expect("body").into_bytes();
        assert!(body.as_ref() == &big[want.clone()], "range {range}");
    }
    let r = c
        .get_object()
        .bucket("data")
        .key(format!("obj-{size}"))
        .range(format!("bytes={size}-"))
        .send()
        .await;
    assert_s3_error(r, "InvalidRange", 416);
}

/// The marker is in none of the blob-servers' files (and shards are
/// there: the check is not vacuous).
fn no_plaintext(s: &S3Cluster) {
    let mut shard_files = 0;
    for &b in &s.blobs {
        for f in files_under(&s.c.node(b).dir.join("data")) {
            let bytes = std::fs::read(&f).expect("read shard file");
            shard_files += 1;
            assert!(
                !bytes.windows(MARKER.len()).any(|w| w == MARKER),
                "plaintext marker found in {}",
                f.display()
            );
        }
    }
    // Sizes 0 and 1 are mirrored (1+2: 3 files), the others 4+2 (6).
    assert!(shard_files >= 2 * 3 + 3 * 6, "only {shard_files} files");
}

/// Delete: gone from GET and listings; the bucket can then go.
async fn deletes(c: &Client) {
    let err = c
        .delete_bucket()
        .bucket("data")
        .send()
        .await
        .expect_err("not empty");
    assert_eq!(err.code(), Some("BucketNotEmpty"));
    for n in SIZES {
        c.delete_object()
            .bucket("data")
            .key(format!("obj-{n}"))
            .send()
            .await
            .expect("delete");
    }
    let err = c
        .get_object()
        .bucket("data")
        .key("obj-1")
        .send()
        .await
        .expect_err("deleted");
    assert_eq!(err.code(), Some("NoSuchKey"));
    c.delete_bucket().bucket("data").send().await.expect("rb");
    let err = c
        .head_bucket()
        .bucket("data")
        .send()
        .await
        .expect_err("gone");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_credentials_and_missing_things_get_s3_errors() {
    let s = S3Cluster::start(1, 3).await;
    let c = s.client();
    let (s, c) = (&s, &c);
    let mut steps = Steps::new("wrong_credentials_and_missing_things_get_s3_errors");
    steps
        .require("a bucket (made once) and an object", async {
            c.create_bucket().bucket("bkt1").send().await.expect("mb");
            let err = c
                .create_bucket()
                .bucket("bkt1")
                .send()
                .await
                .expect_err("twice");
            assert_eq!(err.code(), Some("BucketAlreadyOwnedByYou"));
            c.put_object()
                .bucket("bkt1")
                .key("k")
                .body(ByteStream::from_static(b"hello"))
                .send()
                .await
                .expect("put");
            assert_eq!(get(c, "bkt1", "k", None).await, b"hello");
            let buckets = c.list_buckets().send().await.expect("ls");
            assert_eq!(buckets.buckets().len(), 1);
        })
        .await;
    steps
        .run("a wrong secret or an unknown key is refused", async {
            let wrong = s.c.s3_client(
                s.gw,
                &s.access_key_id,
                "not-the-secret-0000000000000000000000000",
            );
            let r = wrong.get_object().bucket("bkt1").key("k").send().await;
            assert_s3_error(r, "SignatureDoesNotMatch", 403);
            let unknown = s.c.s3_client(s.gw, "HKUNKNOWNUNKNOWN0000", &s.secret);
            let r = unknown.list_buckets().send().await;
            assert_s3_error(r, "InvalidAccessKeyId", 403);
        })
        .await;
    steps
        .run("missing buckets and keys get their codes", async {
            let r = c.get_object().bucket("nope").key("k").send().await;
            assert_s3_error(r, "NoSuchBucket", 404);
            let e = c
                .put_object()
                .bucket("nope")
                .key("k")
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
                .expect_err("no bucket");
            assert_eq!(e.code(), Some("NoSuchBucket"));
            let r = c.get_object().bucket("bkt1").key("missing").send().await;
            assert_s3_error(r, "NoSuchKey", 404);
        })
        .await;
    steps
        .run(
            "a wrong Content-MD5 or checksum is BadDigest, stores nothing",
            bad_digests(c),
        )
        .await;
    steps
        .run(
            "key list shows no secret; a deleted key stops working",
            async { deleted_key(s).await },
        )
        .await;
    steps.finish();
}

/// Checks that `key` was not stored.
async fn absent(c: &Client, key: &str) {
    let e = c
        .head_object()
        .bucket("bkt1")
        .key(key)
        .send()
        .await
        .expect_err("absent");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(404));
}

/// A wrong Content-MD5, and a declared checksum that does not match the
/// body: BadDigest, nothing stored.
async fn bad_digests(c: &Client) {
    let e = c
        .put_object()
        .bucket("bkt1")
        .key("bad-md5")
        .content_md5("1B2M2Y8AsgTpgAmY7PhCfg==")
        .body(ByteStream::from_static(b"not empty"))
        .send()
        .await
        .expect_err("bad digest");
    assert_eq!(e.code(), Some("BadDigest"));
    absent(c, "bad-md5").await;
    let e = c
        .put_object()
        .bucket("bkt1")
        .key("bad-crc")
        .checksum_crc32("AAAAAA==")
        .body(ByteStream::from_static(b"some bytes"))
        .send()
        .await
        .expect_err("bad checksum");
    assert_eq!(e.code(), Some("BadDigest"));
    absent(c, "bad-crc").await;
}

/// `key list` shows ids and names, never a secret; a deleted key stops
/// working (after the gateway's short cache).
async fn deleted_key(s: &S3Cluster) {
    let (id2, secret2) = s.c.create_access_key("second");
    let c2 = s.c.s3_client(s.gw, &id2, &secret2);
    c2.list_buckets().send().await.expect("second key works");
    let mut args = vec!["key".to_string(), "list".into(), "--json".into()];
    args.extend(s.c.admin_flags());
    let listed =
        s.c.hamster(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let keys: serde_json::Value = serde_json::from_str(listed.trim()).expect("json");
    let ids: Vec<&str> = keys
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|k| k["access_key_id"].as_str())
        .collect();
    assert!(
        ids.contains(&id2.as_str()) && ids.contains(&s.access_key_id.as_str()),
        "{listed}"
    );
    assert!(
        !listed.contains(&secret2) && !listed.contains(&s.secret),
        "a secret is listed"
    );
    let mut args = vec!["key".to_string(), "delete".into(), id2.clone()];
    args.extend(s.c.admin_flags());
    s.c.hamster(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match c2.list_buckets().send().await {
            Err(e) if e.code() == Some("InvalidAccessKeyId") => break,
            _ => assert!(
                std::time::Instant::now() < deadline,
                "deleted key still accepted"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cluster_profile_applies_to_new_objects() {
    let s = S3Cluster::start(1, 3).await;
    let c = s.client();
    c.create_bucket().bucket("prof").send().await.expect("mb");
    let gw = s.c.gateway_identity("gw-probe");
    let profile_of = async |key: &str| {
        let v =
            s.c.meta_client(s.metas[0], &gw)
                .get_version(hamster_proto::pb::GetVersionRequest {
                    bucket: "prof".into(),
                    key: key.into(),
                    version_id: String::new(),
                })
                .await
                .expect("version")
                .into_inner()
                .version
                .expect("version");
        let m = v.shard_map.expect("map");
        (m.data_shards, m.parity_shards, m.shards.len())
    };
    let put = async |key: &str| {
        c.put_object()
            .bucket("prof")
            .key(key)
            .body(ByteStream::from(object(300_000)))
            .send()
            .await
            .expect("put");
    };
    // 3 blob-servers: 2+1 by default.
    put("default").await;
    assert_eq!(profile_of("default").await, (2, 1, 3));
    // A tiny object (its size known up front) is mirrored: 1+m, the
    // profile's m.
    c.put_object()
        .bucket("prof")
        .key("tiny")
        .body(ByteStream::from(object(4096)))
        .send()
        .await
        .expect("put tiny");
    assert_eq!(profile_of("tiny").await, (1, 1, 2));
    assert_eq!(get(&c, "prof", "tiny", None).await, object(4096));

    let hamster = |args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(s.c.admin_flags());
        s.c.hamster_status(&all.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (ok, out) = hamster(&["profile", "set", "30+5"]);
    assert!(!ok, "an impossible profile was accepted: {out}");
    let (ok, out) = hamster(&["profile", "set", "1+1"]);
    assert!(ok, "{out}");
    // Gateways pick the profile up with their next registry refresh.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut n = 0;
    loop {
        n += 1;
        let key = format!("after-{n}");
        put(&key).await;
        if profile_of(&key).await == (1, 1, 2) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway never used 1+1"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    // Objects of both profiles read back.
    for key in ["default".to_string(), format!("after-{n}")] {
        assert_eq!(get(&c, "prof", &key, None).await, object(300_000), "{key}");
    }
    let (ok, out) = hamster(&["profile", "default"]);
    assert!(ok, "{out}");
}
