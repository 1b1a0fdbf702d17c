//! A shard id is written once (invariant 10), over real mTLS: a second
//! PutShard of a stored id is refused whoever sends it (a gateway, a
//! repairing blob peer), and the stored bytes stay as they were; so is a
//! put of an id whose copy is in quarantine, and a stream whose id changes
//! midway (how an abandoned rebuild ends its puts).

mod common;

use common::{BlobNode, Ca, client, get, put};
use hamster_proto::pb::{self, blob_client::BlobClient};
use hamster_proto::{ErrorCode, Role};
use tonic::transport::Channel;

fn chunks(id: &str, data: &[u8]) -> Vec<pb::ShardChunk> {
    let mut out = vec![pb::ShardChunk {
        shard_id: id.to_string(),
        shard_index: 0,
        data: Vec::new(),
    }];
    out.extend(data.chunks(100_000).map(|c| pb::ShardChunk {
        data: c.to_vec(),
        ..Default::default()
    }));
    out
}

async fn refused_put(c: &mut BlobClient<Channel>, stream: Vec<pb::ShardChunk>, what: &str) {
    let e = c
        .put_shard(tokio_stream::iter(stream))
        .await
        .expect_err(what);
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{what}: {e:?}");
    assert_eq!(
        ErrorCode::of(&e),
        Some(ErrorCode::MalformedRequest),
        "{what}"
    );
}

async fn stat(c: &mut BlobClient<Channel>, id: &str) -> pb::StatShardResponse {
    c.stat_shard(pb::StatShardRequest {
        shard_id: id.into(),
    })
    .await
    .expect("stat")
    .into_inner()
}

#[tokio::test]
async fn no_peer_can_replace_a_stored_shard() {
    let ca = Ca::new();
    let node = BlobNode::start(&ca, "blob-1", vec![]).await;
    let mut gw = client(&ca, Role::Gateway, &node.addr);
    let mut peer = client(&ca, Role::Blob, &node.addr);
    let mut meta = client(&ca, Role::Meta, &node.addr);
    let first = common::data(300_000, 1);
    let sum_gw = put(&mut gw, "by-gateway", 0, &first).await;
    let sum_peer = put(&mut peer, "by-peer", 0, &first).await;
    let other = common::data(250_000, 2);
    for (who, c) in [("gateway", &mut gw), ("blob peer", &mut peer)] {
        for (id, sum) in [("by-gateway", &sum_gw), ("by-peer", &sum_peer)] {
            refused_put(c, chunks(id, &other), &format!("{who} over {id}")).await;
            // An empty put (a truncation) is refused alike.
            refused_put(c, chunks(id, &[]), &format!("{who} empties {id}")).await;
            assert!(get(&mut meta, id).await.expect("read") == first, "{id}");
            let s = stat(&mut meta, id).await;
            assert_eq!((s.length, &s.checksum), (first.len() as u64, sum));
        }
    }
}

#[tokio::test]
async fn an_id_in_quarantine_or_a_stream_changing_id_is_refused() {
    let ca = Ca::new();
    let node = BlobNode::start(&ca, "blob-1", vec![]).await;
    let mut peer = client(&ca, Role::Blob, &node.addr);
    let mut meta = client(&ca, Role::Meta, &node.addr);
    let bytes = common::data(100_000, 3);
    put(&mut peer, "aside", 0, &bytes).await;
    assert!(node.store.quarantine("aside").await.expect("aside"));
    refused_put(&mut peer, chunks("aside", &bytes), "over a quarantined id").await;
    assert!(!stat(&mut meta, "aside").await.exists);
    assert!(node.dir.path().join("quarantine/aside").exists());

    // The last chunk an abandoned rebuild's body sends: the put is
    // refused and nothing is stored under either id.
    let mut stream = chunks("half", &bytes);
    stream.push(pb::ShardChunk {
        shard_id: ".rebuild-abandoned".into(),
        ..Default::default()
    });
    refused_put(&mut peer, stream, "id changed midway").await;
    assert!(!stat(&mut meta, "half").await.exists);
}
