//! The sweep: a shard no metadata names (a gateway died between fan-out
//! and commit) is deleted by the meta leader once past the grace period;
//! committed shards are never touched; a commit naming shards older than
//! the write window is refused, so the sweep cannot race a slow PUT.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::primitives::ByteStream;
use hamster_proto::pb::{self, blob_client::BlobClient};
use hamster_proto::{ErrorCode, shard_id};
use hamster_tests::meta::test_version;
use hamster_tests::s3::S3Cluster;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .expect("clock")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orphan_shards_are_swept_and_committed_ones_kept() {
    let s = S3Cluster::build(1, 3, &["--sweep-every-secs=1", "--sweep-grace-secs=4"], &[]).await;
    let c = s.client();
    c.create_bucket().bucket("swept").send().await.expect("mb");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    c.put_object()
        .bucket("swept")
        .key("kept")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put");

    // An orphan, as a gateway that crashed before committing leaves it.
    let gw = s.c.gateway_identity("gw-crashed");
    let orphan = shard_id::shard(&shard_id::new_object(now_ms()), 0);
    let blob = s.blobs[0];
    let mut client = BlobClient::new(s.c.channel(blob, &gw));
    let chunk = pb::ShardChunk {
        shard_id: orphan.clone(),
        shard_index: 0,
        data: vec![9; 1000].into(),
    };
    client
        .put_shard(futures::stream::iter(vec![chunk]))
        .await
        .expect("orphan written");
    let exists = |r: pb::StatShardResponse| r.exists;
    let mut stat = async |id: &str| {
        exists(
            client
                .stat_shard(pb::StatShardRequest {
                    shard_id: id.into(),
                })
                .await
                .expect("stat")
                .into_inner(),
        )
    };
    assert!(stat(&orphan).await);

    // A commit naming shards older than the window (grace / 2 = 2 s) is refused.
    let mut v = test_version(&s.c.kek_fingerprint(), "swept", "stale", 1);
    let old = shard_id::new_object(now_ms() - 3_000);
    for (i, loc) in v
        .shard_map
        .iter_mut()
        .flat_map(|m| &mut m.shards)
        .enumerate()
    {
        loc.shard_id = shard_id::shard(&old, i);
    }
    let refused =
        s.c.meta_client(s.metas[0], &gw)
            .commit_version(pb::CommitVersionRequest {
                version: Some(v),
                request_id: String::new(),
                access_key_id: s.access_key_id.clone(),
                ..Default::default()
            })
            .await
            .expect_err("stale commit");
    assert_eq!(
        ErrorCode::of(&refused),
        Some(ErrorCode::RequestTimeout),
        "{refused:?}"
    );

    // The orphan goes once past the grace period.
    let deadline = Instant::now() + Duration::from_secs(30);
    while stat(&orphan).await {
        assert!(Instant::now() < deadline, "orphan never swept");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Several more rounds: the committed object is whole.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = c
        .get_object()
        .bucket("swept")
        .key("kept")
        .send()
        .await
        .expect("get");
    let body = got.body.collect().await.expect("body").into_bytes();
    assert!(body.as_ref() == data.as_slice());
    let v =
        s.c.meta_client(s.metas[0], &gw)
            .get_version(pb::GetVersionRequest {
                bucket: "swept".into(),
                key: "kept".into(),
                version_id: String::new(),
            })
            .await
            .expect("version")
            .into_inner()
            .version
            .expect("version");
    let map = v.shard_map.expect("map");
    assert_eq!(map.shards.len(), 3);
    for loc in &map.shards {
        let b = s
            .blobs
            .iter()
            .copied()
            .find(|&b| s.c.node(b).id == loc.blob_id)
            .expect("blob");
        let r = BlobClient::new(s.c.channel(b, &gw))
            .stat_shard(pb::StatShardRequest {
                shard_id: loc.shard_id.clone(),
            })
            .await
            .expect("stat")
            .into_inner();
        assert!(r.exists, "committed shard {} was swept", loc.shard_id);
    }
    assert!(s.c.all_logs().contains("sweep round"));
}
