//! Joins by token (ADR 0015): a blob-server and gateways that start with
//! nothing but a token make their own keys, get certificates from the meta
//! tier's issuer, register and serve. Used-up, expired, wrong-role, forged
//! and wrongly pinned tokens are refused; a joined node's private key is
//! nowhere but in its own directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use hamster_tests::{Cluster, Kind, files_under};

fn token(c: &Cluster, role: &str, uses: u32, ttl: u64, name: &str) -> PathBuf {
    c.join_token(role, uses, ttl, name)
}

/// Writes a changed copy of a token file.
fn altered(c: &Cluster, src: &Path, name: &str, f: impl Fn(&str) -> String) -> PathBuf {
    let text = std::fs::read_to_string(src).expect("token");
    let out = c.root().join(format!("{name}.token"));
    std::fs::write(&out, f(text.trim())).expect("write");
    out
}

/// Starts a joiner that must fail; returns its log once it has exited.
async fn refused(c: &mut Cluster, kind: Kind, id: &str, token: &Path, join: &str) -> String {
    let i = c.prepare_joiner(kind, id, token, join);
    c.spawn_prepared(i);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c.has_exited(i) {
        assert!(
            Instant::now() < deadline,
            "{id} joined with a bad token:\n{}",
            c.log(i)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !c.node(i).dir.join("node.crt").exists(),
        "{id} got a certificate"
    );
    c.log(i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_join_by_token_and_bad_tokens_are_refused() {
    let mut c = Cluster::new();
    let (meta, join) = c.start_join_meta().await;

    // A blob-server joins with a single-use token and registers.
    let blob_token = token(&c, "blob", 1, 3600, "blob");
    let b1 = c.prepare_joiner(Kind::Blob, "blob-j1", &blob_token, &join);
    c.spawn_prepared(b1);
    c.wait_healthy(b1).await;
    c.wait_blobs_registered(meta, 1).await;

    // The token is used up now.
    let log = refused(&mut c, Kind::Blob, "blob-j2", &blob_token, &join).await;
    assert!(log.contains("used up"), "{log}");
    // Expired.
    let short = token(&c, "blob", 5, 1, "short");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let log = refused(&mut c, Kind::Blob, "blob-j3", &short, &join).await;
    assert!(log.contains("expired"), "{log}");
    // A gateway token passed off as a blob token (the role is in the token text).
    let gw_token = token(&c, "gateway", 2, 3600, "gateway");
    let forged_role = altered(&c, &gw_token, "forged-role", |t| {
        t.replacen(".gateway.", ".blob.", 1)
    });
    let log = refused(&mut c, Kind::Blob, "blob-j4", &forged_role, &join).await;
    assert!(log.contains("another role"), "{log}");
    // A gateway token given to a blob-server is refused before anything is sent.
    let log = refused(&mut c, Kind::Blob, "blob-j5", &gw_token, &join).await;
    assert!(log.contains("for a gateway node"), "{log}");
    // A forged secret.
    let forged_secret = altered(&c, &gw_token, "forged-secret", |t| {
        let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
        parts[3] = "0".repeat(parts[3].len());
        parts.join(".")
    });
    let log = refused(&mut c, Kind::Gateway, "gw-bad", &forged_secret, &join).await;
    assert!(log.contains("wrong secret"), "{log}");
    // A pin for another CA: the joiner stops before sending its token.
    let wrong_pin = altered(&c, &gw_token, "wrong-pin", |t| {
        let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
        parts[4] = "ab".repeat(32);
        parts.join(".")
    });
    let log = refused(&mut c, Kind::Gateway, "gw-pin", &wrong_pin, &join).await;
    assert!(log.contains("does not match the fingerprint"), "{log}");

    // Two gateways join with the two-use token (the refusals above spent
    // none of its uses); a third is refused.
    let g1 = c.prepare_joiner(Kind::Gateway, "gw-j1", &gw_token, &join);
    c.spawn_prepared(g1);
    c.wait_healthy(g1).await;
    let g2 = c.prepare_joiner(Kind::Gateway, "gw-j2", &gw_token, &join);
    c.spawn_prepared(g2);
    c.wait_healthy(g2).await;
    let log = refused(&mut c, Kind::Gateway, "gw-j3", &gw_token, &join).await;
    assert!(log.contains("used up"), "{log}");

    // The joined nodes serve: an S3 round trip through a joined gateway
    // onto the joined blob-server.
    let (id, secret) = c.create_access_key("join");
    let s3 = c.s3_client(g1, &id, &secret);
    s3.create_bucket()
        .bucket("joined")
        .send()
        .await
        .expect("mb");
    s3.put_object()
        .bucket("joined")
        .key("k")
        .body(ByteStream::from_static(b"joined bytes"))
        .send()
        .await
        .expect("put");
    let got = s3
        .get_object()
        .bucket("joined")
        .key("k")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        b"joined bytes"
    );

    // A joined node's private key is in its own directory only.
    let key = std::fs::read(c.node(b1).dir.join("node.key")).expect("key");
    let key_lines: Vec<Vec<u8>> = String::from_utf8_lossy(&key)
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .map(|l| l.as_bytes().to_vec())
        .collect();
    assert!(!key_lines.is_empty());
    let mut files = vec![c.root().join("logs")];
    files.extend(
        c.procs()
            .filter(|n| n.id != "blob-j1")
            .map(|n| n.dir.clone()),
    );
    let logs = c.all_logs();
    for line in &key_lines {
        assert!(
            !logs
                .as_bytes()
                .windows(line.len())
                .any(|w| w == line.as_slice()),
            "key in a log"
        );
    }
    for p in files.iter().flat_map(|d| files_under(d)) {
        if let Ok(bytes) = std::fs::read(&p) {
            for line in &key_lines {
                assert!(
                    !bytes.windows(line.len()).any(|w| w == line.as_slice()),
                    "key in {}",
                    p.display()
                );
            }
        }
    }
}
