//! blob-servers as real processes: they register with the meta tier and
//! heartbeat, store shards durably (an acknowledged shard survives
//! SIGKILL), serve byte ranges, and refuse to serve a corrupt block (the
//! shard is moved aside at once and never served again).

use std::time::{Duration, Instant};

use hamster_proto::pb::blob_client::BlobClient;
use hamster_proto::pb::registry_client::RegistryClient;
use hamster_proto::pb::{self, GetShardRequest, ListBlobsRequest, ShardChunk, StatShardRequest};
use hamster_tests::{Cluster, Kind, Node};
use tonic::transport::Channel;

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 131 % 253) as u8).collect()
}

async fn put(client: &mut BlobClient<Channel>, id: &str, data: &[u8]) -> pb::PutShardResponse {
    let chunks: Vec<ShardChunk> = data
        .chunks(100_000)
        .enumerate()
        .map(|(i, c)| ShardChunk {
            shard_id: if i == 0 { id.into() } else { String::new() },
            shard_index: 1,
            data: c.to_vec().into(),
        })
        .collect();
    client
        .put_shard(tokio_stream::iter(chunks))
        .await
        .expect("put")
        .into_inner()
}

async fn get(
    client: &mut BlobClient<Channel>,
    id: &str,
    offset: u64,
    length: u64,
) -> Result<Vec<u8>, tonic::Status> {
    let mut stream = client
        .get_shard(GetShardRequest {
            shard_id: id.into(),
            offset,
            length,
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.message().await? {
        out.extend_from_slice(&chunk.data);
    }
    Ok(out)
}

#[tokio::test]
async fn blob_servers_register_and_heartbeat_with_the_meta_tier() {
    let mut c = Cluster::new();
    let meta = c.start(Kind::Meta, "meta-1");
    c.wait_healthy(meta).await;
    let b1 = c.start(Kind::Blob, "blob-1");
    let b2 = c.start(Kind::Blob, "blob-2");
    c.wait_healthy(b1).await;
    c.wait_healthy(b2).await;
    let gw = c.gateway_identity("gw-test");
    let mut registry = RegistryClient::new(c.channel(meta, &gw));
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let servers = registry
            .list_blobs(ListBlobsRequest {})
            .await
            .expect("list")
            .into_inner()
            .servers;
        if servers.len() == 2 {
            break servers;
        }
        assert!(
            Instant::now() < deadline,
            "blob-servers did not register: {servers:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (s, b) in first.iter().zip([b1, b2]) {
        assert_eq!(s.id, c.node(b).id);
        assert_eq!(s.address, c.node(b).addr.to_string());
        assert_eq!(s.failure_domain, format!("fd-{}", c.node(b).id));
        assert_eq!(s.state, "active");
        assert!(
            s.capacity_bytes > 0 && s.free_bytes <= s.capacity_bytes,
            "{s:?}"
        );
    }
    // Heartbeats move last_heartbeat_ms forward.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = registry
        .list_blobs(ListBlobsRequest {})
        .await
        .expect("list")
        .into_inner()
        .servers;
    assert!(
        later[0].last_heartbeat_ms > first[0].last_heartbeat_ms,
        "{first:?} -> {later:?}"
    );
}

#[tokio::test]
async fn shards_round_trip_by_range_and_survive_sigkill_after_the_ack() {
    let (mut c, b, gw, mut client) = one_blob_server().await;
    let data = payload(1_000_003);
    let ack = put(&mut client, "obj-1.s1", &data).await;
    assert_eq!(ack.length, data.len() as u64);
    assert_eq!(ack.checksum.len(), 4);
    assert_eq!(get(&mut client, "obj-1.s1", 0, 0).await.expect("get"), data);
    assert_eq!(
        get(&mut client, "obj-1.s1", 65_530, 20)
            .await
            .expect("range"),
        &data[65_530..65_550]
    );
    assert_eq!(
        get(&mut client, "obj-1.s1", 999_999, 0)
            .await
            .expect("tail"),
        &data[999_999..]
    );
    let oor = get(&mut client, "obj-1.s1", 2_000_000, 0)
        .await
        .expect_err("out of range");
    assert_eq!(oor.code(), tonic::Code::OutOfRange);
    let missing = get(&mut client, "nope", 0, 0).await.expect_err("missing");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let bad = client
        .stat_shard(StatShardRequest {
            shard_id: "../../etc/passwd".into(),
        })
        .await
        .expect_err("bad id");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);

    // Acknowledged means durable: SIGKILL right after the ack.
    c.kill(b);
    c.restart(b);
    c.wait_healthy(b).await;
    let mut client = BlobClient::new(c.channel(b, &gw));
    let st = client
        .stat_shard(StatShardRequest {
            shard_id: "obj-1.s1".into(),
        })
        .await
        .expect("stat")
        .into_inner();
    assert!(st.exists);
    assert_eq!((st.length, st.checksum), (ack.length, ack.checksum));
    assert_eq!(
        get(&mut client, "obj-1.s1", 0, 0)
            .await
            .expect("after restart"),
        data
    );

    // A gateway certificate cannot delete (ADR 0029: only the meta tier
    // does, and only what it confirms unnamed); the shard stays.
    let e = client
        .delete_shard(pb::DeleteShardRequest {
            shard_id: "obj-1.s1".into(),
        })
        .await
        .expect_err("a gateway delete");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let st = client
        .stat_shard(StatShardRequest {
            shard_id: "obj-1.s1".into(),
        })
        .await
        .expect("stat")
        .into_inner();
    assert!(st.exists);
}

#[tokio::test]
async fn a_flipped_byte_on_disk_is_reported_as_data_loss_and_moved_aside() {
    let (c, b, _gw, mut client) = one_blob_server().await;
    let data = payload(300_000);
    put(&mut client, "victim", &data).await;
    let file = find(&c.node(b).dir.join("data/shards"), "victim").expect("shard file");
    let mut raw = std::fs::read(&file).expect("read");
    raw[200_000] ^= 0xff;
    std::fs::write(&file, &raw).expect("write");
    let err = get(&mut client, "victim", 0, 0).await.expect_err("corrupt");
    assert_eq!(err.code(), tonic::Code::DataLoss, "{err:?}");
    // The read moved the whole shard aside: never served again, not even
    // its untouched first block; kept in quarantine/ until freed.
    let err = get(&mut client, "victim", 0, 1000)
        .await
        .expect_err("a shard moved aside is not served");
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    assert!(!file.exists(), "still in shards/");
    assert!(c.node(b).dir.join("data/quarantine/victim").exists());
    assert!(c.log(b).contains("corrupt shard moved aside"));
}

/// One healthy blob-server, a gateway identity, and a client as it.
async fn one_blob_server() -> (
    Cluster,
    Node,
    std::sync::Arc<hamster_proto::tls::NodeTls>,
    BlobClient<Channel>,
) {
    let mut c = Cluster::new();
    let b = c.start(Kind::Blob, "blob-1");
    c.wait_healthy(b).await;
    let gw = c.gateway_identity("gw-test");
    let client = BlobClient::new(c.channel(b, &gw));
    (c, b, gw, client)
}

fn find(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find(&p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

#[tokio::test]
async fn only_a_blob_server_itself_may_register_or_heartbeat_as_itself() {
    let mut c = Cluster::new();
    let meta = c.start(Kind::Meta, "meta-1");
    c.wait_healthy(meta).await;
    let server = pb::BlobServer {
        id: "blob-1".into(),
        address: "127.0.0.1:1".into(),
        ..Default::default()
    };
    // Another blob-server's certificate, and a gateway's, are refused.
    let other_blob = c.identity(&c.provision(Kind::Blob, "blob-2"));
    let gw = c.gateway_identity("gw-test");
    for who in [&other_blob, &gw] {
        let mut r = RegistryClient::new(c.channel(meta, who));
        let e = r
            .register_blob(pb::RegisterBlobRequest {
                server: Some(server.clone()),
            })
            .await
            .expect_err("impersonation");
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
        let e = r
            .heartbeat(pb::HeartbeatRequest {
                id: "blob-1".into(),
                ..Default::default()
            })
            .await
            .expect_err("impersonation");
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    }
    // Nothing was registered.
    let listed = RegistryClient::new(c.channel(meta, &gw))
        .list_blobs(ListBlobsRequest {})
        .await
        .expect("list");
    assert!(listed.into_inner().servers.is_empty());
}

#[tokio::test]
async fn a_wildcard_listener_advertises_a_reachable_address_and_its_own_domain() {
    let mut c = Cluster::new();
    let meta = c.start(Kind::Meta, "meta-1");
    c.wait_healthy(meta).await;
    let b = c.prepare(Kind::Blob, "blob-any");
    let port = c.node(b).addr.port();
    c.set_arg(b, "--listen", Some(&format!("0.0.0.0:{port}")));
    c.set_arg(b, "--failure-domain", None);
    c.spawn_prepared(b);
    c.wait_healthy(b).await;
    let gw = c.gateway_identity("gw-test");
    let mut registry = RegistryClient::new(c.channel(meta, &gw));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let servers = registry
            .list_blobs(ListBlobsRequest {})
            .await
            .expect("list")
            .into_inner()
            .servers;
        if let Some(s) = servers.first() {
            // The route to the meta tier (loopback here) gives the address.
            assert_eq!(s.address, format!("127.0.0.1:{port}"));
            assert_eq!(s.failure_domain, "blob-any");
            break;
        }
        assert!(Instant::now() < deadline, "never registered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A node can check its own health with its own certificate.
    let dir = c.node(b).dir.clone();
    let out = c.hamster(&[
        "health",
        "--as-node",
        "--addr",
        &c.node(b).addr.to_string(),
        "--admin-cert",
        dir.join("node.crt").to_str().expect("utf8"),
        "--admin-key",
        dir.join("node.key").to_str().expect("utf8"),
        "--trust",
        dir.join("trust.pem").to_str().expect("utf8"),
    ]);
    assert!(out.contains("blob-any"), "{out}");
}
