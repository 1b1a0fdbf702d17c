//! Losing blob-servers and flipped bytes, through S3: every object still
//! reads with m servers gone (a tiny, mirrored one too: the two servers
//! lost hold two of its three copies); a PUT needs k+1 durable shards
//! (503 SlowDown and nothing committed below that; a tiny PUT, mirrored,
//! needs its 1+1); a corrupt shard is detected and the
//! GET still returns the right bytes; a hung server stalls neither. And the S3 endpoint over HTTPS.

use std::sync::Arc;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use hamster_proto::pb::GetVersionRequest;
use hamster_proto::pki::{CertAuthority, ExtraNames, Validity};
use hamster_proto::{PeerIdentity, Role};
use hamster_tests::s3::S3Cluster;
use rustix::process::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SEG: usize = 1 << 20;

fn object(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

async fn get(c: &aws_sdk_s3::Client, key: &str) -> Result<Vec<u8>, String> {
    let out = c
        .get_object()
        .bucket("dur")
        .key(key)
        .send()
        .await
        .map_err(|e| format!("{:?}", e.code()))?;
    Ok(out
        .body
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .into_bytes()
        .to_vec())
}

async fn put(
    c: &aws_sdk_s3::Client,
    key: &str,
    data: &[u8],
) -> Result<(), (Option<String>, Option<u16>)> {
    c.put_object()
        .bucket("dur")
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            (
                e.code().map(str::to_string),
                e.raw_response().map(|r| r.status().as_u16()),
            )
        })
}

/// The shard map of bucket "dur"'s `key`, from the meta tier.
async fn map_of(s: &S3Cluster, key: &str) -> hamster_proto::pb::ShardMap {
    let gw = s.c.gateway_identity("gw-probe");
    s.c.meta_client(s.metas[0], &gw)
        .get_version(GetVersionRequest {
            bucket: "dur".into(),
            key: key.into(),
            version_id: String::new(),
        })
        .await
        .expect("get version")
        .into_inner()
        .version
        .and_then(|v| v.shard_map)
        .expect("shard map")
}

/// The blob-server of ours with registry id `blob_id`.
fn node_of(s: &S3Cluster, blob_id: &str) -> hamster_tests::Node {
    *s.blobs
        .iter()
        .find(|&&b| s.c.node(b).id == blob_id)
        .expect("a blob-server of the map")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_survive_m_losses_and_writes_need_k_plus_one() {
    let mut s = S3Cluster::start(1, 6).await;
    let c = s.client();
    c.create_bucket().bucket("dur").send().await.expect("mb");

    // A flipped byte in two shards of an object (m = 2): detected by the
    // blob-servers' block checksums, rebuilt from parity.
    let flip = object(3 * SEG + 17, 1);
    put(&c, "flip", &flip).await.expect("put");
    // Two data shards (the GET reads data first: corrupt parity could go
    // unread), found through the object's shard map.
    let map = map_of(&s, "flip").await;
    let data_blobs: Vec<hamster_tests::Node> = map
        .shards
        .iter()
        .filter(|l| l.index < map.data_shards)
        .take(2)
        .map(|l| node_of(&s, &l.blob_id))
        .collect();
    assert_eq!(data_blobs.len(), 2);
    for &b in &data_blobs {
        let files = s.shard_files(b);
        assert_eq!(files.len(), 1, "one shard per server so far");
        let mut bytes = std::fs::read(&files[0]).expect("shard");
        let at = bytes.len() / 2;
        bytes[at] ^= 0x40;
        std::fs::write(&files[0], bytes).expect("flip");
    }
    assert!(
        get(&c, "flip").await.expect("get") == flip,
        "flipped shards served"
    );
    let logs = s.c.all_logs();
    assert!(
        logs.contains("corrupt"),
        "blob-servers did not report the corruption"
    );
    c.delete_object()
        .bucket("dur")
        .key("flip")
        .send()
        .await
        .expect("rm");

    let objects: Vec<(String, Vec<u8>)> = [
        (5 * SEG + 1, 2),
        (100_000, 3),
        (0, 4),
        (2 * SEG, 5),
        (4096, 8),
    ]
    .into_iter()
    .map(|(n, seed)| (format!("obj-{n}"), object(n, seed)))
    .collect();
    for (k, d) in &objects {
        put(&c, k, d).await.expect("put");
    }
    // The 4 KiB object is mirrored (1+2); the two servers that die below
    // hold its first two copies, so only the third is left to read.
    let tiny = map_of(&s, "obj-4096").await;
    assert_eq!(
        (tiny.data_shards, tiny.parity_shards, tiny.shards.len()),
        (1, 2, 3),
        "{tiny:?}"
    );
    let doomed: Vec<hamster_tests::Node> = [0, 1]
        .iter()
        .map(|&i| {
            let l = tiny.shards.iter().find(|l| l.index == i).expect("copy");
            node_of(&s, &l.blob_id)
        })
        .collect();
    let alive: Vec<hamster_tests::Node> = s
        .blobs
        .iter()
        .copied()
        .filter(|b| !doomed.contains(b))
        .collect();

    // A hung server (SIGSTOP: it accepts connections, answers nothing)
    // holds up neither writes (its stream is given up, 5 of 6 land) nor
    // reads (parity is asked when its data chunks are late).
    s.c.signal(s.blobs[0], Signal::STOP);
    let during = object(2 * SEG + 9, 6);
    let limit = std::time::Duration::from_secs(60);
    tokio::time::timeout(limit, put(&c, "during-stall", &during))
        .await
        .expect("PUT hung on a stopped server")
        .expect("put with a hung server");
    for (k, d) in objects
        .iter()
        .chain([&("during-stall".to_string(), during.clone())])
    {
        let got = tokio::time::timeout(limit, get(&c, k))
            .await
            .expect("GET hung on a stopped server");
        assert!(got.expect("get") == *d, "{k}");
    }
    s.c.signal(s.blobs[0], Signal::CONT);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;

    // k+1 = 5 servers up: a PUT still succeeds, and reads too.
    s.c.kill(doomed[0]);
    let late = object(SEG + 5, 9);
    put(&c, "late", &late).await.expect("put with 5 of 6 up");
    assert!(get(&c, "late").await.expect("get") == late);

    // k = 4 up: every object still reads (m = 2 lost)...
    s.c.kill(doomed[1]);
    for (k, d) in &objects {
        assert!(get(&c, k).await.expect("get with 2 down") == *d, "{k}");
    }
    assert!(get(&c, "late").await.expect("get") == late);

    // ...but a PUT is refused with 503 SlowDown, leaves no version and no shard.
    let before: usize = alive.iter().map(|&b| s.shard_files(b).len()).sum();
    for _ in 0..2 {
        // Once while the gateway may still believe the dead are up, once after.
        let e = put(&c, "refused", &object(2 * SEG, 7))
            .await
            .expect_err("refused");
        assert_eq!(e, (Some("SlowDown".into()), Some(503)));
        tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    }
    let after: usize = alive.iter().map(|&b| s.shard_files(b).len()).sum();
    assert_eq!(before, after, "a refused PUT left shards behind");
    let list = c.list_objects_v2().bucket("dur").send().await.expect("ls");
    assert!(
        list.contents().iter().all(|o| o.key() != Some("refused")),
        "a refused PUT is listed"
    );
    let e = c
        .head_object()
        .bucket("dur")
        .key("refused")
        .send()
        .await
        .expect_err("absent");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(404));
    // A tiny PUT is mirrored, 1+2: four servers up hold all three copies.
    let small = object(100, 11);
    put(&c, "tiny-with-two-down", &small)
        .await
        .expect("a tiny PUT with 4 of 6 up");
    assert_eq!(map_of(&s, "tiny-with-two-down").await.shards.len(), 3);
    assert!(get(&c, "tiny-with-two-down").await.expect("get") == small);

    // Back to 5 up: writes resume (a body above the mirror threshold).
    s.c.restart(doomed[1]);
    s.c.wait_healthy(doomed[1]).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let again = object(20_000, 12);
    while put(&c, "again", &again).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "writes never resumed");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(get(&c, "again").await.expect("get") == again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_s3_endpoint_serves_https_with_a_given_certificate() {
    // A public-facing certificate for localhost, here signed by the test CA.
    let dir = tempfile::tempdir().expect("tmp");
    let (cert, key) = (dir.path().join("s3.crt"), dir.path().join("s3.key"));
    let mut s = S3Cluster::start(1, 3).await;
    let ca_dir = s.c.pki_dir();
    let ca = CertAuthority::from_pem(
        &std::fs::read_to_string(ca_dir.join("ca.crt")).expect("ca"),
        &std::fs::read_to_string(ca_dir.join("ca.key")).expect("ca key"),
    )
    .expect("ca");
    let pair = ca
        .issue_with_new_key(
            &PeerIdentity::new(Role::Gateway, "s3-https").expect("id"),
            &ExtraNames {
                dns: vec!["localhost".into()],
                ips: vec!["127.0.0.1".parse().expect("ip")],
            },
            Validity::starting_now(std::time::Duration::from_secs(3600)),
        )
        .expect("issue");
    std::fs::write(&cert, &pair.cert_pem).expect("cert");
    std::fs::write(&key, &pair.key_pem).expect("key");
    let gw = s.c.prepare(hamster_tests::Kind::Gateway, "gw-https");
    let cert_flag = format!("--s3-tls-cert={}", cert.display());
    let key_flag = format!("--s3-tls-key={}", key.display());
    s.c.add_args(gw, &[&cert_flag, &key_flag]);
    s.c.spawn_prepared(gw);
    s.c.wait_healthy(gw).await;
    let addr = s.c.node(gw).s3_addr.expect("s3 addr");

    let mut roots = rustls::RootCertStore::empty();
    for c in hamster_proto::pki::certs_from_pem(
        &std::fs::read_to_string(ca_dir.join("ca.crt")).expect("ca"),
    )
    .expect("pem")
    {
        roots.add(c).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(hamster_proto::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    // An unsigned request: the S3 layer answers, over TLS, with 403.
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut resp = Vec::new();
    tls.read_to_end(&mut resp).await.expect("read");
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    assert!(text.contains("AccessDenied"), "{text}");

    // Plain HTTP to the HTTPS endpoint gets no S3 answer.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tcp.read_to_end(&mut resp),
    )
    .await;
    assert!(
        !String::from_utf8_lossy(&resp).contains("HTTP/1.1"),
        "plain HTTP served"
    );
    drop(s);
}
