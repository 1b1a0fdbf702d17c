//! Peers that stop answering without closing their sockets (issue 20
//! item 3, ADR 0032), on one cluster of three meta-servers, three
//! blob-servers and a gateway: with the meta leader SIGSTOPped, a PUT
//! through the gateway that was talking to it completes within 15 s and
//! reads back; the cluster is healthy again once the leader resumes; and
//! a follower the gateway sticks to does not wait on a stopped leader.
//! Then the S3 listener's limits against the real gateway: half a request
//! header is cut off within 30 s, and `--max-connections` defers the
//! connection past the cap. Last, on its own one-node cluster, the join
//! port drops a client that finishes the TLS handshake and says nothing.

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use hamster_tests::Cluster;
use hamster_tests::s3::{ClusterSpec, S3Cluster, pattern};
use hamster_tests::steps::Steps;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BUCKET: &str = "failover";

async fn put(c: &aws_sdk_s3::Client, key: &str, data: &[u8]) -> Result<(), String> {
    c.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("PUT {key}: {e:?}"))
}

/// Restarts the gateway with its `--meta` list in `order` (it stays with
/// the first server that answers) and `args` set.
async fn restart_gateway(s: &mut S3Cluster, order: &[hamster_tests::Node], args: &[(&str, &str)]) {
    let list: Vec<String> = order
        .iter()
        .map(|m| s.c.node(*m).addr.to_string())
        .collect();
    s.c.kill(s.gw);
    s.c.set_arg(s.gw, "--meta", Some(&list.join(",")));
    for (flag, value) in args {
        s.c.set_arg(s.gw, flag, Some(value));
    }
    s.c.restart(s.gw);
    s.c.wait_healthy(s.gw).await;
}

async fn get(c: &aws_sdk_s3::Client, key: &str) -> Result<Vec<u8>, String> {
    hamster_tests::s3::get_bytes(c, BUCKET, key).await
}

/// Reads until the server closes the connection; how long that took, or
/// an error if it is still open after `limit`.
async fn closed_within(
    s: &mut (impl AsyncReadExt + Unpin),
    limit: Duration,
) -> Result<Duration, String> {
    let started = Instant::now();
    let mut sink = Vec::new();
    match tokio::time::timeout(limit, s.read_to_end(&mut sink)).await {
        Ok(_) => Ok(started.elapsed()),
        Err(_) => Err(format!("still open after {limit:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_meta_leader_does_not_stall_s3() {
    let mut steps = Steps::new("failover");
    // Meta-servers wait through an election for 30 s (default 10 s), so
    // a follower that waited on a stopped leader for want of a forward
    // deadline would hold a call past the 15 s the steps allow.
    let spec = ClusterSpec {
        metas: 3,
        meta_args: vec!["--call-wait-ms=30000".into()],
        ..ClusterSpec::default()
    };
    let (mut s, _) = S3Cluster::start_step(&mut steps, &spec).await;

    // The gateway tries its --meta list in order and stays with the first
    // server that answers: list the leader first, so the gateway talks to
    // the very server that will stop.
    let leader = steps
        .require("gateway talks to the leader", async {
            let leader = s.c.wait_leader(&s.metas).await;
            let mut order = vec![leader];
            order.extend(s.metas.iter().copied().filter(|m| *m != leader));
            // The harness's 3 s --blob-down-after-secs stays: blob
            // heartbeats are writes, late by a registry deadline and an
            // election while the leader is stopped, and the gateway must
            // not call every blob-server down for that (gateway/src/cluster.rs).
            restart_gateway(&mut s, &order, &[]).await;
            let c = s.client();
            c.create_bucket()
                .bucket(BUCKET)
                .send()
                .await
                .map_err(|e| format!("create bucket: {e:?}"))?;
            put(&c, "before", &pattern(300_000, 1)).await?;
            Ok::<_, String>(leader)
        })
        .await;
    let c = s.client();

    steps
        .run("PUT with the leader stopped completes within 15 s", async {
            let frozen = s.c.freeze(leader);
            let data = pattern(2 << 20, 2);
            let started = Instant::now();
            let put = tokio::time::timeout(Duration::from_secs(15), put(&c, "during", &data))
                .await
                .map_err(|_| "the PUT did not complete within 15 s".to_string())?;
            let took = started.elapsed();
            eprintln!("PUT with the leader stopped took {took:?}");
            put?;
            let back = tokio::time::timeout(Duration::from_secs(15), get(&c, "during"))
                .await
                .map_err(|_| "the GET did not complete within 15 s".to_string())??;
            if back != data {
                return Err("the object read back differs".to_string());
            }
            if get(&c, "before").await? != pattern(300_000, 1) {
                return Err("an older object reads back different".to_string());
            }
            frozen.thaw();
            Ok::<_, String>(())
        })
        .await;

    steps
        .run("the cluster is healthy once the leader resumes", async {
            // A Frozen dropped by a failed step resumed it already.
            let now = s.c.wait_leader(&s.metas).await;
            for &m in &s.metas {
                s.c.status(m).await.map_err(|e| format!("status: {e}"))?;
            }
            eprintln!("leader after resuming: {}", s.c.node(now).id);
            put(&c, "after", &pattern(100_000, 3)).await?;
            if get(&c, "after").await? != pattern(100_000, 3) {
                return Err("read back differs".to_string());
            }
            Ok::<_, String>(())
        })
        .await;

    steps
        .run(
            "a follower forwarding to a stopped leader gives up on it",
            async {
                // The gateway now sticks to a follower (and waits on it up to
                // 60 s): only the follower's forward deadline can save the PUT.
                let leader = s.c.wait_leader(&s.metas).await;
                let mut order: Vec<_> = s.metas.iter().copied().filter(|m| *m != leader).collect();
                order.push(leader);
                restart_gateway(&mut s, &order, &[("--meta-call-timeout-ms", "60000")]).await;
                let c = s.client();
                put(&c, "via-follower", &pattern(50_000, 4)).await?;
                let frozen = s.c.freeze(leader);
                let data = pattern(1 << 20, 5);
                let started = Instant::now();
                tokio::time::timeout(Duration::from_secs(15), put(&c, "forwarded", &data))
                    .await
                    .map_err(|_| "the PUT did not complete within 15 s".to_string())??;
                eprintln!(
                    "PUT through a follower, leader stopped: {:?}",
                    started.elapsed()
                );
                if get(&c, "forwarded").await? != data {
                    return Err("read back differs".to_string());
                }
                frozen.thaw();
                s.c.wait_leader(&s.metas).await;
                Ok::<_, String>(())
            },
        )
        .await;

    steps
        .run("half a request header is cut off within 30 s", async {
            let mut tcp = TcpStream::connect(s.s3_addr())
                .await
                .map_err(|e| e.to_string())?;
            tcp.write_all(b"PUT /failover/slow HTTP/1.1\r\nHost: localhost\r\nContent-Le")
                .await
                .map_err(|e| e.to_string())?;
            let took = closed_within(&mut tcp, Duration::from_secs(30)).await?;
            eprintln!("half a header: closed after {took:?}");
            Ok::<_, String>(())
        })
        .await;

    steps
        .run(
            "--max-connections defers the connection past the cap",
            async {
                s.c.kill(s.gw);
                s.c.add_args(s.gw, &["--max-connections=2"]);
                s.c.restart(s.gw);
                s.c.wait_healthy(s.gw).await;
                let addr = s.s3_addr();
                let first = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
                let _second = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
                let mut third = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
                third
                    .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    .await
                    .map_err(|e| e.to_string())?;
                let mut buf = [0u8; 16];
                if let Ok(r) =
                    tokio::time::timeout(Duration::from_secs(1), third.read(&mut buf)).await
                {
                    return Err(format!("answered past the cap: {r:?}"));
                }
                drop(first);
                let mut answer = Vec::new();
                tokio::time::timeout(Duration::from_secs(10), third.read_to_end(&mut answer))
                    .await
                    .map_err(|_| "not answered after a slot freed".to_string())?
                    .map_err(|e| e.to_string())?;
                if !answer.starts_with(b"HTTP/1.1 ") {
                    return Err(format!("not an HTTP answer: {answer:?}"));
                }
                Ok::<_, String>(())
            },
        )
        .await;
    steps.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_join_port_drops_a_client_that_says_nothing() {
    let mut c = Cluster::new();
    let (_meta, join) = c.start_join_meta().await;
    // A TLS handshake, then silence: before, hyper waited for the HTTP/2
    // preface forever.
    let tcp = TcpStream::connect(&join).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(hamster_proto::tls::unverified_client_config())
        .connect(name, tcp)
        .await
        .expect("handshake");
    let took = closed_within(&mut tls, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("join port: {e}"));
    eprintln!("join port, silent after the handshake: closed after {took:?}");
    // No handshake at all: dropped at the handshake timeout.
    let mut tcp = TcpStream::connect(&join).await.expect("connect");
    let took = closed_within(&mut tcp, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("join port: {e}"));
    eprintln!("join port, no handshake: closed after {took:?}");
}
