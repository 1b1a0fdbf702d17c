//! Who may delete a shard, over real mTLS (ADR 0029): only the meta tier,
//! and only what it confirms no version, part or upload names. A
//! referenced shard is refused (`ShardInUse`) and kept; a free one is
//! deleted; with the meta tier out of reach nothing is deleted
//! (`Unavailable`); a gateway or blob peer certificate is refused before
//! any handler runs. Deletes arriving together share one ConfirmFree.

mod common;

use std::time::Duration;

use common::{BlobNode, Ca, FakeRegistry, client, put};
use hamster_proto::{ErrorCode, Role, pb};

async fn setup() -> (Ca, FakeRegistry, BlobNode) {
    let ca = Ca::new();
    let registry = FakeRegistry::default();
    let meta = registry.start(&ca).await;
    let node = BlobNode::start(&ca, "blob-1", vec![meta]).await;
    (ca, registry, node)
}

fn delete(id: &str) -> pb::DeleteShardRequest {
    pb::DeleteShardRequest {
        shard_id: id.into(),
    }
}

fn assert_code(e: &tonic::Status, code: ErrorCode, what: &str) {
    assert_eq!(ErrorCode::of(e), Some(code), "{what}: {e:?}");
    assert_eq!(e.code(), code.grpc_code(), "{what}");
}

#[tokio::test]
async fn only_confirmed_free_shards_are_deleted() {
    let (ca, registry, node) = setup().await;
    let mut meta = client(&ca, Role::Meta, &node.addr);
    let bytes = common::data(100_000, 1);
    put(&mut meta, "named", 0, &bytes).await;
    put(&mut meta, "unnamed", 1, &bytes).await;
    registry
        .referenced
        .lock()
        .expect("lock")
        .insert("named".into());
    let before = std::fs::read(node.shard_path("named")).expect("file");

    let e = meta
        .delete_shard(delete("named"))
        .await
        .expect_err("in use");
    assert_code(&e, ErrorCode::ShardInUse, "a named shard");
    assert_eq!(
        std::fs::read(node.shard_path("named")).expect("kept"),
        before
    );

    let r = meta.delete_shard(delete("unnamed")).await.expect("free");
    assert!(r.into_inner().existed);
    assert!(!node.shard_path("unnamed").exists());
    // Each delete asked about its own id.
    let asked = registry.confirms.lock().expect("lock").clone();
    assert_eq!(
        asked,
        [vec!["named".to_string()], vec!["unnamed".to_string()]]
    );

    // A free id that is not stored: nothing to delete, not an error.
    let r = meta.delete_shard(delete("never")).await.expect("absent");
    assert!(!r.into_inner().existed);
    // A malformed id is refused before the meta tier is asked.
    let e = meta
        .delete_shard(delete("../escape"))
        .await
        .expect_err("bad id");
    assert_code(&e, ErrorCode::MalformedRequest, "a bad id");
    assert_eq!(registry.confirms.lock().expect("lock").len(), 3);
}

#[tokio::test]
async fn gateway_and_peer_certificates_cannot_delete() {
    let (ca, registry, node) = setup().await;
    let mut gw = client(&ca, Role::Gateway, &node.addr);
    let bytes = common::data(50_000, 2);
    put(&mut gw, "gw-wrote", 0, &bytes).await;
    for role in [Role::Gateway, Role::Blob] {
        let mut c = client(&ca, role, &node.addr);
        // Even a shard nothing names (the fake confirms every id free).
        let e = c
            .delete_shard(delete("gw-wrote"))
            .await
            .expect_err("refused");
        assert_code(&e, ErrorCode::RoleNotAdmitted, &format!("{role} delete"));
    }
    assert!(node.shard_path("gw-wrote").exists());
    assert!(registry.confirms.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn without_the_meta_tier_nothing_is_deleted() {
    // No meta tier configured at all.
    let ca = Ca::new();
    let alone = BlobNode::start(&ca, "blob-alone", vec![]).await;
    let mut meta = client(&ca, Role::Meta, &alone.addr);
    put(&mut meta, "kept", 0, b"bytes").await;
    let e = meta
        .delete_shard(delete("kept"))
        .await
        .expect_err("no meta");
    assert_code(&e, ErrorCode::Unavailable, "no meta list");
    assert!(alone.shard_path("kept").exists());

    // A meta tier without a leader, and one that is not listening.
    let (ca, registry, node) = setup().await;
    let mut meta = client(&ca, Role::Meta, &node.addr);
    put(&mut meta, "kept", 0, b"bytes").await;
    *registry.confirm_down.lock().expect("lock") = true;
    let e = meta
        .delete_shard(delete("kept"))
        .await
        .expect_err("no leader");
    assert_code(&e, ErrorCode::Unavailable, "no leader");
    assert!(node.shard_path("kept").exists());
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let gone = BlobNode::start(&ca, "blob-2", vec![closed]).await;
    let mut meta = client(&ca, Role::Meta, &gone.addr);
    put(&mut meta, "kept", 0, b"bytes").await;
    let e = meta
        .delete_shard(delete("kept"))
        .await
        .expect_err("unreachable");
    assert_code(&e, ErrorCode::Unavailable, "unreachable");
    assert!(gone.shard_path("kept").exists());
}

#[tokio::test]
async fn deletes_arriving_together_share_one_confirm() {
    let (ca, registry, node) = setup().await;
    let mut meta = client(&ca, Role::Meta, &node.addr);
    for i in 0..31 {
        put(&mut meta, &format!("s-{i}"), 0, b"x").await;
    }
    registry
        .referenced
        .lock()
        .expect("lock")
        .insert("s-7".into());
    let held = registry.confirm_hold.write().await;
    let spawn = |id: String| {
        let mut c = client(&ca, Role::Meta, &node.addr);
        tokio::spawn(async move { c.delete_shard(delete(&id)).await })
    };
    let first = spawn("s-0".into());
    wait_for("the first confirm", || {
        registry.confirms.lock().expect("lock").len() == 1
    })
    .await;
    // While it is in flight, 30 more queue behind it.
    let rest: Vec<_> = (1..31).map(|i| spawn(format!("s-{i}"))).collect();
    wait_for("30 queued", || node.confirmer.queued() == 30).await;
    drop(held);
    assert!(
        first
            .await
            .expect("join")
            .expect("s-0")
            .into_inner()
            .existed
    );
    for (i, call) in rest.into_iter().enumerate() {
        let r = call.await.expect("join");
        if i + 1 == 7 {
            assert_code(&r.expect_err("in use"), ErrorCode::ShardInUse, "s-7");
        } else {
            assert!(r.expect("free").into_inner().existed, "s-{}", i + 1);
        }
    }
    let confirms = registry.confirms.lock().expect("lock").clone();
    assert_eq!(confirms.len(), 2, "{confirms:?}");
    assert_eq!(confirms[1].len(), 30);
    assert!(node.shard_path("s-7").exists());
    assert!(!node.shard_path("s-8").exists());
}

/// Polls `done` until it holds (a hang fails after 20 s).
async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
