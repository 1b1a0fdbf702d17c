//! The state machine's access keys and blob-server registry, and the data
//! keys counted per master key.

mod common;

use common::*;

#[tokio::test]
async fn access_keys_put_and_delete() {
    let mut db = Db::new().await;
    let k1 = access_key("AK1");
    let k2 = AccessKey {
        enabled: false,
        ..access_key("AK2")
    };
    assert_eq!(
        db.run(Op::PutAccessKey { key: k1.clone() }).await,
        Response::Ok
    );
    assert_eq!(
        db.run(Op::PutAccessKey { key: k2.clone() }).await,
        Response::Ok
    );
    assert_eq!(db.access_key("AK1").await, Some(k1.clone()));
    assert_eq!(db.access_key("AK2").await, Some(k2.clone()));
    assert_eq!(db.access_keys().await, vec![k1.clone(), k2.clone()]);

    assert_eq!(
        db.run(Op::DeleteAccessKey { id: "AK1".into() }).await,
        Response::Ok
    );
    assert_eq!(db.access_key("AK1").await, None);
    assert_eq!(db.access_keys().await, vec![k2]);
    // The id can be used again.
    assert_eq!(
        db.run(Op::PutAccessKey { key: k1.clone() }).await,
        Response::Ok
    );
}

#[tokio::test]
async fn blob_servers_register_reregister_and_heartbeat() {
    let mut db = Db::new().await;
    let r = db
        .run_at(
            NOW + 10,
            Op::RegisterBlob {
                server: blob("b1", "10.0.0.1:7000"),
            },
        )
        .await;
    assert_eq!(r, Response::Ok);
    db.ok(Op::RegisterBlob {
        server: blob("b0", "10.0.0.0:7000"),
    })
    .await;
    let servers = db.blob_servers().await;
    assert_eq!(
        servers.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec!["b0", "b1"]
    );
    let expected_b1 = BlobServer {
        state: BlobState::Active,
        last_heartbeat_ms: NOW + 10,
        ..blob("b1", "10.0.0.1:7000")
    };
    assert_eq!(servers[1], expected_b1);

    // Registering again updates the row: an upsert, still one row.
    let again = BlobServer {
        failure_domain: "rack-2".into(),
        capacity_bytes: 5000,
        free_bytes: 4000,
        ..blob("b1", "10.0.0.9:7001")
    };
    assert_eq!(
        db.run_at(
            NOW + 20,
            Op::RegisterBlob {
                server: again.clone()
            }
        )
        .await,
        Response::Ok
    );
    let servers = db.blob_servers().await;
    assert_eq!(servers.len(), 2);
    assert_eq!(
        servers[1],
        BlobServer {
            state: BlobState::Active,
            last_heartbeat_ms: NOW + 20,
            ..again.clone()
        }
    );

    // A heartbeat updates space, the store's size and time, nothing else.
    let r = db
        .run_at(
            NOW + 30,
            Op::BlobHeartbeat {
                id: "b1".into(),
                capacity_bytes: 7000,
                free_bytes: 123,
                shards_stored: 42,
                bytes_stored: 4200,
            },
        )
        .await;
    assert_eq!(r, Response::Ok);
    let servers = db.blob_servers().await;
    assert_eq!(
        servers[1],
        BlobServer {
            id: "b1".into(),
            address: "10.0.0.9:7001".into(),
            failure_domain: "rack-2".into(),
            capacity_bytes: 7000,
            free_bytes: 123,
            state: BlobState::Active,
            last_heartbeat_ms: NOW + 30,
            last_scrub_ms: 0,
            lifecycle: Lifecycle::In,
            drain_to: String::new(),
            shards_stored: 42,
            bytes_stored: 4200,
        }
    );
    // b0 untouched.
    assert_eq!(servers[0].last_heartbeat_ms, NOW);
    assert_eq!(servers[0].free_bytes, 600);
}

#[tokio::test]
async fn access_key_and_blob_rejections() {
    let mut db = Db::new().await;
    db.ok(Op::PutAccessKey {
        key: access_key("AK1"),
    })
    .await;
    db.ok(Op::RegisterBlob {
        server: blob("b1", "h:1"),
    })
    .await;

    let other_ak1 = AccessKey {
        name: "someone else".into(),
        sealed_secret: vec![9],
        ..access_key("AK1")
    };
    db.reject(
        Op::PutAccessKey {
            key: access_key("AK1"),
        },
        invalid(),
    )
    .await;
    db.reject(Op::PutAccessKey { key: other_ak1 }, invalid())
        .await;
    db.reject(
        Op::PutAccessKey {
            key: access_key(""),
        },
        invalid(),
    )
    .await;
    let no_secret = AccessKey {
        sealed_secret: vec![],
        ..access_key("AK2")
    };
    db.reject(Op::PutAccessKey { key: no_secret }, invalid())
        .await;
    db.reject(
        Op::DeleteAccessKey { id: "AK9".into() },
        MetaError::NoSuchAccessKey("AK9".into()),
    )
    .await;
    db.reject(
        Op::DeleteAccessKey { id: String::new() },
        MetaError::NoSuchAccessKey(String::new()),
    )
    .await;

    db.reject(
        Op::BlobHeartbeat {
            id: "b9".into(),
            capacity_bytes: 1,
            free_bytes: 1,
            shards_stored: 0,
            bytes_stored: 0,
        },
        MetaError::NoSuchBlobServer("b9".into()),
    )
    .await;
    db.reject(
        Op::RegisterBlob {
            server: blob("", "h:2"),
        },
        invalid(),
    )
    .await;
    db.reject(
        Op::RegisterBlob {
            server: blob("b2", ""),
        },
        invalid(),
    )
    .await;
    // Re-registering with an empty address must not wipe the known one.
    db.reject(
        Op::RegisterBlob {
            server: blob("b1", ""),
        },
        invalid(),
    )
    .await;
}

#[tokio::test]
async fn data_keys_counted_per_master_key() {
    let mut db = Db::new().await;
    db.ok(create("plain", false)).await;
    db.ok(create("vers", true)).await;
    let on = |v: Version, kek: &str| Version {
        kek_fingerprint: kek.into(),
        ..v
    };
    db.ok(commit(on(ver("plain", "a", "x", "1"), "A"))).await;
    db.ok(commit(on(ver("plain", "b", "x", "2"), "A"))).await;
    db.ok(commit(on(ver("vers", "a", "v1", "3"), "A"))).await;
    db.ok(commit(on(ver("vers", "a", "v2", "4"), "A"))).await;
    db.ok(commit(on(ver("vers", "b", "v1", "5"), "B"))).await;
    let count =
        async |db: &mut Db, kek: &str| q::count_keys_wrapped_by(db.c(), kek).await.expect("count");
    assert_eq!(count(&mut db, "A").await, 4);
    assert_eq!(count(&mut db, "B").await, 1);
    assert_eq!(count(&mut db, "C").await, 0);

    // Delete markers hold no data key.
    db.ok(del("vers", "a", None, "dm")).await;
    db.ok(del("vers", "b", None, "dm")).await;
    assert_eq!(count(&mut db, "A").await, 4);
    assert_eq!(count(&mut db, "").await, 0);
    // Replacing a null version moves it to the new key.
    db.ok(commit(on(ver("plain", "a", "x", "6"), "B"))).await;
    assert_eq!(count(&mut db, "A").await, 3);
    assert_eq!(count(&mut db, "B").await, 2);
    // Deleting versions takes them off the count.
    db.ok(del("vers", "a", Some("v1"), "")).await;
    db.ok(del("plain", "b", None, "")).await;
    assert_eq!(count(&mut db, "A").await, 1);
    assert_eq!(count(&mut db, "B").await, 2);

    // Multipart: each part has its own data key, counted while the upload
    // is open and after it completes.
    let big = 5 * 1024 * 1024;
    db.ok(begin("plain", "mp", "up-1")).await;
    db.ok(put_part("plain", "mp", "up-1", part(1, big, "m1")))
        .await;
    db.ok(put_part("plain", "mp", "up-1", part(2, 10, "m2")))
        .await;
    assert_eq!(count(&mut db, "kek-a").await, 2, "parts of an open upload");
    let (e1, e2) = (md5_hex(b"m1"), md5_hex(b"m2"));
    db.ok(complete(
        "plain",
        "mp",
        "up-1",
        &[(1, e1.as_str()), (2, e2.as_str())],
        "x",
    ))
    .await;
    assert_eq!(
        count(&mut db, "kek-a").await,
        2,
        "parts of a completed object"
    );
    db.ok(del("plain", "mp", None, "")).await;
    assert_eq!(count(&mut db, "kek-a").await, 0);
}
