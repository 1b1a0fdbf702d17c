//! A shard id is written once (invariant 10, ADR 0029), over real mTLS: a
//! second PutShard of a stored id is refused with ALREADY_EXISTS
//! (`ShardExists`) whoever sends it (a gateway, a repairing blob peer, the
//! meta tier), and the stored bytes stay as they were; so is a put of an
//! id whose copy is in quarantine. A stream whose id changes midway (how
//! an abandoned rebuild ends its puts) is malformed.

mod common;

use common::{BlobNode, Ca, client, get, put};
use hamster_proto::pb::{self, blob_client::BlobClient};
use hamster_proto::{ErrorCode, Role};
use tonic::transport::Channel;

fn chunks(id: &str, data: &[u8]) -> Vec<pb::ShardChunk> {
    let mut out = vec![pb::ShardChunk {
        shard_id: id.to_string(),
        shard_index: 0,
        data: Default::default(),
    }];
    out.extend(data.chunks(100_000).map(|c| pb::ShardChunk {
        data: c.to_vec().into(),
        ..Default::default()
    }));
    out
}

async fn refused_put(
    c: &mut BlobClient<Channel>,
    stream: Vec<pb::ShardChunk>,
    code: ErrorCode,
    what: &str,
) {
    let e = c
        .put_shard(tokio_stream::iter(stream))
        .await
        .expect_err(what);
    assert_eq!(e.code(), code.grpc_code(), "{what}: {e:?}");
    assert_eq!(ErrorCode::of(&e), Some(code), "{what}");
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
    let mut meta2 = client(&ca, Role::Meta, &node.addr);
    let exists = ErrorCode::ShardExists;
    assert_eq!(exists.grpc_code(), tonic::Code::AlreadyExists);
    for (who, c) in [
        ("gateway", &mut gw),
        ("blob peer", &mut peer),
        ("meta", &mut meta2),
    ] {
        for (id, sum) in [("by-gateway", &sum_gw), ("by-peer", &sum_peer)] {
            refused_put(c, chunks(id, &other), exists, &format!("{who} over {id}")).await;
            // An empty put (a truncation) is refused alike.
            refused_put(c, chunks(id, &[]), exists, &format!("{who} empties {id}")).await;
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
    let exists = ErrorCode::ShardExists;
    refused_put(
        &mut peer,
        chunks("aside", &bytes),
        exists,
        "over a quarantined id",
    )
    .await;
    assert!(!stat(&mut meta, "aside").await.exists);
    assert!(node.dir.path().join("quarantine/aside").exists());

    // The last chunk an abandoned rebuild's body sends: the put is
    // refused and nothing is stored under either id.
    let mut stream = chunks("half", &bytes);
    stream.push(pb::ShardChunk {
        shard_id: ".rebuild-abandoned".into(),
        ..Default::default()
    });
    let malformed = ErrorCode::MalformedRequest;
    refused_put(&mut peer, stream, malformed, "id changed midway").await;
    assert!(!stat(&mut meta, "half").await.exists);
}

/// The check comes at the stream's start: a put over a stored id is
/// refused after its first chunk, without waiting for the rest of the
/// body (which here never comes).
#[tokio::test]
async fn a_put_over_a_stored_id_is_refused_before_its_body() {
    let ca = Ca::new();
    let node = BlobNode::start(&ca, "blob-1", vec![]).await;
    let mut gw = client(&ca, Role::Gateway, &node.addr);
    let first = common::data(10_000, 4);
    put(&mut gw, "stored", 0, &first).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::ShardChunk {
        shard_id: "stored".into(),
        shard_index: 0,
        data: vec![7; 1000].into(),
    })
    .await
    .expect("send");
    let call = gw.put_shard(tokio_stream::wrappers::ReceiverStream::new(rx));
    // The sender stays open: only a refusal at the start can answer.
    let e = tokio::time::timeout(std::time::Duration::from_secs(20), call)
        .await
        .expect("answered before the body ended")
        .expect_err("refused");
    assert_eq!(ErrorCode::of(&e), Some(ErrorCode::ShardExists));
    drop(tx);
    assert_eq!(get(&mut gw, "stored").await.expect("read"), first);
}
