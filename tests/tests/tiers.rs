//! Every tier starts from `hamster init` material, answers over mTLS, and
//! admits only the roles that belong to each service.

use std::time::Duration;

use hamster_proto::pb::admin_client::AdminClient;
use hamster_proto::pb::blob_client::BlobClient;
use hamster_proto::pb::raft_client::RaftClient;
use hamster_proto::pb::{RaftPayload, StatShardRequest, StatusRequest};
use hamster_proto::pki::cert_fingerprint;
use hamster_proto::tls::NodeTls;
use hamster_tests::{Cluster, Kind};

#[tokio::test]
async fn every_tier_starts_and_answers_health() {
    let mut c = Cluster::new();
    let ca_pem = std::fs::read_to_string(c.pki_dir().join("ca.crt")).expect("ca");
    let ca_fp = cert_fingerprint(&hamster_proto::pki::certs_from_pem(&ca_pem).expect("pem")[0]);
    let mut started = Vec::new();
    for (kind, id) in [
        (Kind::Meta, "meta-1"),
        (Kind::Blob, "blob-1"),
        (Kind::Gateway, "gw-1"),
    ] {
        let i = c.start(kind, id);
        started.push(i);
        let h = c.wait_healthy(i).await;
        assert_eq!(h.role, kind.role().to_string());
        assert_eq!(h.node_id, id);
        assert_eq!(h.issuer_fingerprint, ca_fp);
        assert_eq!(h.trusted_ca_fingerprints, vec![ca_fp.clone()]);
        assert!(h.cert_expires_in_secs > 300 * 24 * 3600);
    }
    // The CLI reaches a node with the admin certificate.
    let pki = c.pki_dir();
    let out = c.hamster(&[
        "health",
        "--json",
        "--addr",
        &c.node(started[0]).addr.to_string(),
        "--admin-cert",
        pki.join("admin.crt").to_str().expect("utf8"),
        "--admin-key",
        pki.join("admin.key").to_str().expect("utf8"),
        "--trust",
        pki.join("trust.pem").to_str().expect("utf8"),
    ]);
    let json: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(json["node_id"], "meta-1");
}

#[tokio::test]
async fn services_admit_only_their_roles_on_the_real_binaries() {
    let mut c = Cluster::new();
    let meta = c.start(Kind::Meta, "meta-1");
    let blob = c.start(Kind::Blob, "blob-1");
    // Identities of other members, to call with.
    let gw_dir = c.provision(Kind::Gateway, "gw-1");
    let meta2_dir = c.provision(Kind::Meta, "meta-2");
    let blob2_dir = c.provision(Kind::Blob, "blob-2");
    let load = |dir: &std::path::Path| {
        NodeTls::load(&hamster_proto::tls::TlsPaths {
            cert: dir.join("node.crt"),
            key: dir.join("node.key"),
            trust: dir.join("trust.pem"),
        })
        .expect("tls")
    };
    let (admin, gw, meta2, blob2) = (
        c.admin_tls(),
        load(&gw_dir),
        load(&meta2_dir),
        load(&blob2_dir),
    );
    c.wait_healthy(meta).await;
    c.wait_healthy(blob).await;

    use tonic::Code::{InvalidArgument, PermissionDenied as Denied};
    // Admin RPCs: admin only.
    let status = AdminClient::new(c.channel(meta, &admin))
        .status(StatusRequest {})
        .await
        .expect("the admin certificate may ask for status");
    assert_eq!(status.into_inner().node_id, "meta-1");
    for who in [&gw, &meta2, &blob2] {
        let st = AdminClient::new(c.channel(meta, who))
            .status(StatusRequest {})
            .await
            .expect_err("refused");
        assert_eq!(st.code(), Denied, "{}: {st:?}", who.identity());
    }
    // Raft RPCs: meta only. An empty payload passes admission and is then
    // refused as malformed.
    for (who, expect) in [
        (&meta2, InvalidArgument),
        (&admin, Denied),
        (&gw, Denied),
        (&blob2, Denied),
    ] {
        let st = RaftClient::new(c.channel(meta, who))
            .vote(RaftPayload::default())
            .await
            .expect_err("malformed, or refused");
        assert_eq!(st.code(), expect, "{}: {st:?}", who.identity());
    }
    // Shard RPCs: gateway and meta only (an empty id passes admission and
    // is then refused as invalid).
    for (who, expect) in [
        (&gw, InvalidArgument),
        (&meta2, InvalidArgument),
        (&admin, Denied),
        (&blob2, Denied),
    ] {
        let st = BlobClient::new(c.channel(blob, who))
            .stat_shard(StatShardRequest::default())
            .await
            .expect_err("an empty shard id, or refused");
        assert_eq!(st.code(), expect, "{}: {st:?}", who.identity());
    }
    // Refusals are logged with the caller's identity.
    assert!(c.log(meta).contains("call refused by role"));
}

#[tokio::test]
async fn a_node_refuses_to_start_with_a_certificate_for_another_role() {
    let mut c = Cluster::new();
    let i = c.start(Kind::Blob, "blob-1");
    // Swap in a meta certificate and key for the same node, then restart.
    let other = c.provision(Kind::Meta, "meta-x");
    c.kill(i);
    std::fs::copy(other.join("node.crt"), c.node(i).dir.join("node.crt")).expect("cp");
    std::fs::copy(other.join("node.key"), c.node(i).dir.join("node.key")).expect("cp");
    c.restart(i);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !c.log(i).contains("this binary is a blob node") {
        assert!(
            std::time::Instant::now() < deadline,
            "no refusal in log:\n{}",
            c.log(i)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(c.health(i, &c.admin_tls()).await.is_err());
}
