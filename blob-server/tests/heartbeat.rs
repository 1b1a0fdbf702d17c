//! Registration and heartbeats carry what the store holds — its shard
//! files and their bytes, exactly — so the meta tier can weigh servers
//! and see a drained one empty.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Ca, FakeRegistry};
use hamster_blob::meta_link::MetaLink;
use hamster_blob::registration::Registration;
use hamster_blob::store::Store;
use hamster_proto::Role;

async fn put(store: &Store, id: &str, len: usize) {
    let mut w = store.create(id, 0).await.expect("create");
    w.write(&common::data(len, 3)).await.expect("write");
    w.commit().await.expect("commit");
}

#[tokio::test]
async fn heartbeats_report_the_stores_shards_and_bytes() {
    let ca = Ca::new();
    let registry = FakeRegistry::default();
    let meta = registry.start(&ca).await;
    let dir = tempfile::tempdir().expect("tmp");
    // Shards already there at start are counted before registering.
    let store = Store::open(dir.path()).await.expect("store");
    put(&store, "old-1", 70_000).await;
    let store = Store::open(dir.path()).await.expect("reopen");
    let at_start = store.counts();
    assert_eq!(at_start.shards, 1);

    let reg = Registration {
        link: Arc::new(MetaLink::new(vec![meta], ca.node(Role::Blob, "blob-1"))),
        address: "127.0.0.1:1".into(),
        failure_domain: "d".into(),
        data_dir: dir.path().to_path_buf(),
        capacity_bytes: Some(1 << 30),
        interval: Duration::from_millis(50),
        store: store.clone(),
    };
    let task = tokio::spawn(reg.run());

    let seen = |want: hamster_blob::store::count::StoreCounts| {
        let registry = registry.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let last = registry.heartbeats.lock().expect("lock").last().cloned();
                if let Some(hb) = &last
                    && (hb.shards_stored, hb.bytes_stored) == (want.shards, want.bytes)
                {
                    assert_eq!(hb.id, "blob-1");
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no heartbeat with {want:?}: {last:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    seen(at_start).await;
    let registered = registry.registered.lock().expect("lock")[0].clone();
    assert_eq!(
        (registered.shards_stored, registered.bytes_stored),
        (at_start.shards, at_start.bytes)
    );

    put(&store, "new-1", 1000).await;
    put(&store, "new-2", 200_000).await;
    let three = store.counts();
    assert_eq!(three.shards, 3);
    seen(three).await;

    // Emptied (a drain's end): the heartbeat says zero.
    for id in ["old-1", "new-1", "new-2"] {
        assert!(store.delete(id).await.expect("delete"));
    }
    seen(Default::default()).await;
    task.abort();
}
