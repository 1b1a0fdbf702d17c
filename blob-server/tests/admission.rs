//! Who may call the Blob service, over real mTLS: gateway and meta do
//! everything they did; a blob peer (a repairing server) may only read and
//! write shards; scrub and rebuild are the meta tier's alone.

mod common;

use common::{BlobNode, Ca, client, get, put};
use hamster_proto::{ErrorCode, Role, pb};

fn refused(r: Result<impl std::fmt::Debug, tonic::Status>, what: &str) {
    let e = r.expect_err(what);
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{what}: {e:?}");
    assert_eq!(
        ErrorCode::of(&e),
        Some(ErrorCode::RoleNotAdmitted),
        "{what}"
    );
}

#[tokio::test]
async fn a_blob_peer_reads_and_writes_shards_and_nothing_else() {
    let ca = Ca::new();
    let node = BlobNode::start(&ca, "blob-1", vec![]).await;
    let mut peer = client(&ca, Role::Blob, &node.addr);
    let bytes = common::data(200_000, 1);

    // Read and write: admitted.
    put(&mut peer, "peer-written", 0, &bytes).await;
    assert_eq!(get(&mut peer, "peer-written").await.expect("get"), bytes);

    // Everything else: refused before any handler runs.
    let del = pb::DeleteShardRequest {
        shard_id: "peer-written".into(),
    };
    refused(peer.delete_shard(del).await, "delete");
    refused(
        peer.list_shards(pb::ListShardsRequest {
            modified_before_ms: i64::MAX,
        })
        .await,
        "list",
    );
    refused(
        peer.stat_shard(pb::StatShardRequest {
            shard_id: "peer-written".into(),
        })
        .await,
        "stat",
    );
    refused(peer.scrub(pb::ScrubRequest {}).await, "scrub");
    refused(
        peer.scrub_status(pb::ScrubStatusRequest {}).await,
        "scrub status",
    );
    refused(peer.rebuild(pb::RebuildRequest::default()).await, "rebuild");
    // The refused delete changed nothing.
    let mut meta = client(&ca, Role::Meta, &node.addr);
    assert_eq!(get(&mut meta, "peer-written").await.expect("still"), bytes);
}

#[tokio::test]
async fn scrub_and_rebuild_admit_meta_only() {
    let ca = Ca::new();
    let node = BlobNode::start(&ca, "blob-1", vec![]).await;
    let mut gw = client(&ca, Role::Gateway, &node.addr);
    refused(gw.scrub(pb::ScrubRequest {}).await, "gateway scrub");
    refused(
        gw.scrub_status(pb::ScrubStatusRequest {}).await,
        "gateway scrub status",
    );
    refused(
        gw.rebuild(pb::RebuildRequest::default()).await,
        "gateway rebuild",
    );
    let mut admin = client(&ca, Role::Admin, &node.addr);
    refused(
        admin.get_shard(pb::GetShardRequest::default()).await,
        "admin get",
    );

    // The gateway keeps its old rights; meta reaches scrub and rebuild.
    put(&mut gw, "gw-written", 1, b"hello").await;
    let mut meta = client(&ca, Role::Meta, &node.addr);
    let scrub = common::scrub_done(&mut meta).await;
    assert_eq!(scrub.shards_checked, 1);
    // An empty rebuild request reaches the handler and is refused there.
    let e = meta
        .rebuild(pb::RebuildRequest::default())
        .await
        .expect_err("malformed");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_eq!(ErrorCode::of(&e), Some(ErrorCode::MalformedRequest));
}
