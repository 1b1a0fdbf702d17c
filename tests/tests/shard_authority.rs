//! Shard deletion authority (issue 20 item 6, ADR 0029), in named steps
//! over one cluster: a COMPLIANCE-locked version's shards cannot be
//! deleted or overwritten with a gateway certificate, nor deleted with a
//! meta certificate (the blob-server asks the meta tier, which says they
//! are named), nor freed through Meta.FreeShards; the object reads back
//! byte for byte. What nothing names still goes: an overwrite and a
//! delete of an unlocked object free its shards on the blob-servers, and
//! a shard handed over with FreeShards is deleted.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::ObjectLockMode;
use hamster_proto::ErrorCode;
use hamster_proto::pb::{self, blob_client::BlobClient};
use hamster_proto::tls::NodeTls;
use hamster_tests::Steps;
use hamster_tests::lock::{DAY, create_lock_bucket, now_secs};
use hamster_tests::s3::{S3Cluster, assert_s3_error, pattern, read_body};
use tonic::transport::Channel;

type Client = aws_sdk_s3::Client;

/// The locked version and where its shards live.
struct Locked {
    version_id: String,
    bytes: Vec<u8>,
    /// (blob id, shard id).
    shards: Vec<(String, String)>,
    /// Every shard file's bytes on disk when written.
    files: HashMap<std::path::PathBuf, Vec<u8>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_meta_tier_deletes_and_only_what_nothing_names() {
    let s = S3Cluster::start(1, 3).await;
    let c = s.client();
    let mut steps = Steps::new("only_the_meta_tier_deletes_and_only_what_nothing_names");
    let locked = steps
        .require(
            "a COMPLIANCE-locked version is written",
            locked_version(&s, &c),
        )
        .await;
    let locked = &locked;
    steps
        .run(
            "a gateway certificate cannot delete or overwrite its shards",
            gateway_cert(&s, locked),
        )
        .await;
    steps
        .run(
            "a meta certificate's deletes are refused: the shards are in use",
            meta_cert(&s, locked),
        )
        .await;
    steps
        .run(
            "FreeShards naming them deletes nothing; naming an orphan deletes it",
            free_shards(&s, locked),
        )
        .await;
    steps
        .run(
            "the locked version reads back byte for byte, files unchanged",
            intact(&s, &c, locked),
        )
        .await;
    steps
        .run(
            "an overwrite and a delete of an unlocked object free its shards",
            frees(&s, &c),
        )
        .await;
    steps.finish();
}

fn blob_client(s: &S3Cluster, tls: &Arc<NodeTls>, blob_id: &str) -> BlobClient<Channel> {
    let node = s
        .blobs
        .iter()
        .copied()
        .find(|&b| s.c.node(b).id == blob_id)
        .unwrap_or_else(|| panic!("no blob-server {blob_id}"));
    BlobClient::new(s.c.channel(node, tls))
}

fn meta_tls(s: &S3Cluster) -> Arc<NodeTls> {
    s.c.identity(&s.c.node(s.metas[0]).dir)
}

/// Every shard file on every blob-server, with its bytes.
fn all_files(s: &S3Cluster) -> HashMap<std::path::PathBuf, Vec<u8>> {
    s.blobs
        .iter()
        .flat_map(|&b| s.shard_files(b))
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read a shard file");
            (p, bytes)
        })
        .collect()
}

async fn locked_version(s: &S3Cluster, c: &Client) -> anyhow::Result<Locked> {
    let bytes = pattern(700_000, 9);
    create_lock_bucket(c, "vault").await;
    let put = c
        .put_object()
        .bucket("vault")
        .key("doc")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(DateTime::from_secs(now_secs() + 30 * DAY))
        .body(ByteStream::from(bytes.clone()))
        .send()
        .await?;
    let version_id = put.version_id().unwrap_or_default().to_string();
    let gw = s.c.gateway_identity("reader-gw");
    let v =
        s.c.meta_client(s.metas[0], &gw)
            .get_version(pb::GetVersionRequest {
                bucket: "vault".into(),
                key: "doc".into(),
                version_id: version_id.clone(),
            })
            .await?
            .into_inner()
            .version
            .ok_or_else(|| anyhow::anyhow!("no version"))?;
    let shards: Vec<(String, String)> = v
        .shard_map
        .ok_or_else(|| anyhow::anyhow!("no shard map"))?
        .shards
        .into_iter()
        .map(|l| (l.blob_id, l.shard_id))
        .collect();
    anyhow::ensure!(shards.len() >= 2, "shards: {shards:?}");
    let files = all_files(s);
    anyhow::ensure!(files.len() == shards.len(), "files: {}", files.len());
    Ok(Locked {
        version_id,
        bytes,
        shards,
        files,
    })
}

fn assert_code(e: &tonic::Status, code: ErrorCode, what: &str) {
    assert_eq!(ErrorCode::of(e), Some(code), "{what}: {e:?}");
    assert_eq!(e.code(), code.grpc_code(), "{what}");
}

async fn gateway_cert(s: &S3Cluster, locked: &Locked) {
    let gw = s.c.gateway_identity("rogue-gw");
    for (blob, id) in &locked.shards {
        let mut b = blob_client(s, &gw, blob);
        let e = b
            .delete_shard(pb::DeleteShardRequest {
                shard_id: id.clone(),
            })
            .await
            .expect_err("a gateway delete");
        assert_code(&e, ErrorCode::RoleNotAdmitted, "gateway delete");
        // Overwrite: zeros of the same length, then an empty shard.
        for data in [vec![0u8; 300_000], Vec::new()] {
            let chunk = pb::ShardChunk {
                shard_id: id.clone(),
                shard_index: 0,
                data: data.into(),
            };
            let e = b
                .put_shard(tokio_stream::iter([chunk]))
                .await
                .expect_err("a put over a stored shard");
            assert_code(&e, ErrorCode::ShardExists, "gateway overwrite");
            assert_eq!(e.code(), tonic::Code::AlreadyExists);
        }
    }
    assert_eq!(all_files(s), locked.files, "shard files changed");
}

async fn meta_cert(s: &S3Cluster, locked: &Locked) {
    let meta = meta_tls(s);
    for (blob, id) in &locked.shards {
        let e = blob_client(s, &meta, blob)
            .delete_shard(pb::DeleteShardRequest {
                shard_id: id.clone(),
            })
            .await
            .expect_err("a meta delete of a named shard");
        assert_code(&e, ErrorCode::ShardInUse, "meta delete");
    }
    assert_eq!(all_files(s), locked.files, "shard files changed");
}

async fn free_shards(s: &S3Cluster, locked: &Locked) {
    let gw = s.c.gateway_identity("rogue-gw");
    let mut meta = s.c.meta_client(s.metas[0], &gw);
    // Bounded: at most 64 maps per call.
    let e = meta
        .free_shards(pb::FreeShardsRequest {
            shards: vec![pb::ShardMap::default(); 65],
        })
        .await
        .expect_err("65 maps");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");

    // The locked version's shards: each blob-server asks and refuses.
    let map = |shards: &[(String, String)]| pb::ShardMap {
        shards: shards
            .iter()
            .enumerate()
            .map(|(i, (blob, id))| pb::ShardLocation {
                index: i as u32,
                blob_id: blob.clone(),
                shard_id: id.clone(),
                checksum: Vec::new(),
            })
            .collect(),
        ..Default::default()
    };
    meta.free_shards(pb::FreeShardsRequest {
        shards: vec![map(&locked.shards)],
    })
    .await
    .expect("free the locked shards");
    let refusals = || {
        s.blobs
            .iter()
            .map(|&b| {
                s.c.log(b)
                    .matches("delete refused: the meta tier says the shard is in use")
                    .count()
            })
            .sum::<usize>()
    };
    // The meta-certificate deletes of the step before refused once each.
    let want = 2 * locked.shards.len();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while refusals() < want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {want} refusals",
            refusals()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(all_files(s), locked.files, "shard files changed");

    // A shard no metadata names (a failed write's), handed over: deleted.
    let (blob, _) = &locked.shards[0];
    let orphan = "orphan-of-a-failed-write".to_string();
    let chunk = pb::ShardChunk {
        shard_id: orphan.clone(),
        shard_index: 0,
        data: pattern(10_000, 3).into(),
    };
    blob_client(s, &gw, blob)
        .put_shard(tokio_stream::iter([chunk]))
        .await
        .expect("put an orphan");
    let before = s.shard_file_count();
    meta.free_shards(pb::FreeShardsRequest {
        shards: vec![map(&[(blob.clone(), orphan)])],
    })
    .await
    .expect("free the orphan");
    s.wait_shards("the orphan handed over was not deleted", |n| {
        n == before - 1
    })
    .await;
}

async fn intact(s: &S3Cluster, c: &Client, locked: &Locked) {
    let got = c
        .get_object()
        .bucket("vault")
        .key("doc")
        .version_id(&locked.version_id)
        .send()
        .await
        .expect("get the locked version");
    assert_eq!(read_body(got).await, locked.bytes);
    assert_eq!(all_files(s), locked.files, "shard files changed");
}

async fn frees(s: &S3Cluster, c: &Client) {
    c.create_bucket().bucket("plain").send().await.expect("mb");
    let base = s.shard_file_count();
    let put = |seed: u8| {
        c.put_object()
            .bucket("plain")
            .key("k")
            .body(ByteStream::from(pattern(200_000, seed)))
            .send()
    };
    put(1).await.expect("put");
    let one = s.shard_file_count() - base;
    assert!(one >= 2, "one object's shards: {one}");
    // Unversioned: the overwrite frees the first object's shards.
    put(2).await.expect("overwrite");
    s.wait_shards("the overwritten object's shards remain", |n| {
        n == base + one
    })
    .await;
    c.delete_object()
        .bucket("plain")
        .key("k")
        .send()
        .await
        .expect("delete");
    s.wait_shards("the deleted object's shards remain", |n| n == base)
        .await;
    // A PUT refused after its shards landed (the body does not match its
    // Content-MD5): the gateway hands them to FreeShards, and they go.
    let wrong_md5 = "AAAAAAAAAAAAAAAAAAAAAA==";
    let e = c
        .put_object()
        .bucket("plain")
        .key("bad")
        .content_md5(wrong_md5)
        .body(ByteStream::from(pattern(200_000, 3)))
        .send()
        .await
        .expect_err("a wrong Content-MD5");
    assert_s3_error(Err::<(), _>(e), "BadDigest", 400);
    // (Its shards were durable before the digest was compared: ingest.rs
    // checks after write(); with the gateway's own deletes refused, only
    // FreeShards can remove them.)
    assert!(
        !s.c.log(s.gw)
            .contains("could not free the shards of a failed write"),
        "FreeShards refused"
    );
    s.wait_shards("a refused PUT's shards remain", |n| n == base)
        .await;
}
