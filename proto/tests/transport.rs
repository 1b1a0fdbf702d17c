//! The mTLS transport between two nodes in one process: who is let in, and
//! that certificate and trust changes take effect at the next handshake
//! with no restart.

use std::sync::Arc;
use std::time::Duration;

use hamster_proto::health::NodeService;
use hamster_proto::pb::admin_client::AdminClient;
use hamster_proto::pb::admin_server::{Admin, AdminServer};
use hamster_proto::pb::node_client::NodeClient;
use hamster_proto::pb::node_server::NodeServer;
use hamster_proto::pb::{HealthRequest, StatusRequest};
use hamster_proto::pki::{self, CertAuthority, ExtraNames, Validity};
use hamster_proto::tls::NodeTls;
use hamster_proto::{PeerIdentity, Role, transport};
use time::OffsetDateTime;
use tokio::net::TcpListener;

struct Ca {
    pem: String,
    ca: CertAuthority,
}

fn new_ca(label: &str) -> Ca {
    let pair = pki::generate_ca(label, Validity::starting_now(pki::CA_VALIDITY)).expect("ca");
    let ca = CertAuthority::from_pem(&pair.cert_pem, &pair.key_pem).expect("load");
    Ca {
        pem: pair.cert_pem,
        ca,
    }
}

/// A node identity issued by `ca` through a CSR, as nodes get theirs.
fn issue(ca: &Ca, role: Role, id: &str, validity: Validity) -> (String, String) {
    let identity = PeerIdentity::new(role, id).expect("id");
    let (csr, key) = pki::generate_csr(&identity, &ExtraNames::default()).expect("csr");
    let cert = ca.ca.sign_csr(&csr, &identity, validity).expect("sign");
    (cert, key)
}

fn node(ca: &Ca, role: Role, id: &str, trust: &str) -> Arc<NodeTls> {
    let (cert, key) = issue(ca, role, id, Validity::starting_now(pki::LEAF_VALIDITY));
    NodeTls::from_pem(&cert, &key, trust).expect("node tls")
}

/// Admin service with nothing implemented: reaching it (UNIMPLEMENTED)
/// proves the role check let the call through.
struct NoAdmin;
impl Admin for NoAdmin {}

async fn start_server(tls: Arc<NodeTls>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let incoming = transport::incoming(listener, tls.clone());
    tokio::spawn(async move {
        transport::server()
            .add_service(NodeServer::new(NodeService::new(tls)))
            .add_service(AdminServer::new(NoAdmin))
            .serve_with_incoming(incoming)
            .await
            .expect("serve");
    });
    addr
}

async fn health(addr: &str, client: &Arc<NodeTls>) -> Result<String, tonic::Status> {
    let ch = transport::channel(addr, client, &[Role::Meta]).expect("channel");
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        NodeClient::new(ch).health(HealthRequest {}),
    )
    .await
    .expect("no hang")?;
    Ok(resp.into_inner().node_id)
}

/// The call failed in the TLS handshake with `reason` (a TLS alert or a
/// verifier error), not in a handler.
fn assert_refused_at_handshake(r: Result<String, tonic::Status>, reason: &str) {
    let status = r.expect_err("the handshake must be refused");
    assert!(
        matches!(
            status.code(),
            tonic::Code::Unknown | tonic::Code::Unavailable
        ),
        "refused at the transport, not by a handler: {status:?}"
    );
    let detail = format!("{status:?}");
    assert!(detail.contains(reason), "expected {reason}, got {detail}");
}

#[tokio::test]
async fn trusted_peers_talk() {
    let ca = new_ca("one");
    let server = node(&ca, Role::Meta, "meta-1", &ca.pem);
    let client = node(&ca, Role::Gateway, "gw-1", &ca.pem);
    let addr = start_server(server).await;
    assert_eq!(health(&addr, &client).await.expect("health"), "meta-1");
}

#[tokio::test]
async fn client_from_another_ca_is_refused() {
    let ca = new_ca("one");
    let other = new_ca("other");
    let server = node(&ca, Role::Meta, "meta-1", &ca.pem);
    // The stranger trusts our CA, so only the server's check can stop it.
    let stranger = node(&other, Role::Admin, "intruder", &ca.pem);
    let addr = start_server(server).await;
    assert_refused_at_handshake(health(&addr, &stranger).await, "UnknownCA");
}

#[tokio::test]
async fn expired_client_certificate_is_refused() {
    let ca = new_ca("one");
    let server = node(&ca, Role::Meta, "meta-1", &ca.pem);
    let now = OffsetDateTime::now_utc();
    let past = Validity {
        not_before: now - time::Duration::days(30),
        not_after: now - time::Duration::days(1),
    };
    let (cert, key) = issue(&ca, Role::Admin, "old-admin", past);
    let client = NodeTls::from_pem(&cert, &key, &ca.pem).expect("tls");
    let addr = start_server(server).await;
    assert_refused_at_handshake(health(&addr, &client).await, "CertificateExpired");
}

#[tokio::test]
async fn server_of_unexpected_role_is_refused_by_the_client() {
    let ca = new_ca("one");
    // The client dials a "meta" but a blob-server answers.
    let server = node(&ca, Role::Blob, "blob-1", &ca.pem);
    let client = node(&ca, Role::Gateway, "gw-1", &ca.pem);
    let addr = start_server(server).await;
    assert_refused_at_handshake(
        health(&addr, &client).await,
        "ApplicationVerificationFailure",
    );
}

#[tokio::test]
async fn each_service_admits_only_its_roles() {
    let ca = new_ca("one");
    let server = node(&ca, Role::Meta, "meta-1", &ca.pem);
    let addr = start_server(server).await;
    for (role, expect) in [
        (Role::Admin, tonic::Code::Unimplemented),
        (Role::Gateway, tonic::Code::PermissionDenied),
        (Role::Blob, tonic::Code::PermissionDenied),
        (Role::Meta, tonic::Code::PermissionDenied),
    ] {
        let client = node(&ca, role, "c-1", &ca.pem);
        let ch = transport::channel(&addr, &client, &[Role::Meta]).expect("channel");
        let status = AdminClient::new(ch)
            .status(StatusRequest {})
            .await
            .expect_err("nothing implemented, or refused");
        assert_eq!(status.code(), expect, "{role}: {status:?}");
        // Every role may still ask for health.
        health(&addr, &client).await.expect("health for all roles");
    }
}

#[tokio::test]
async fn ca_rollover_in_a_running_server_needs_no_restart() {
    let old = new_ca("old");
    let new = new_ca("new");
    let both = format!("{}{}", old.pem, new.pem);

    let server = node(&old, Role::Meta, "meta-1", &old.pem);
    let addr = start_server(server.clone()).await;

    // A client on the old CA that trusts both, connected before any change.
    let old_client = node(&old, Role::Gateway, "gw-old", &both);
    let old_channel = transport::channel(&addr, &old_client, &[Role::Meta]).expect("ch");
    let mut established = NodeClient::new(old_channel);
    established.health(HealthRequest {}).await.expect("before");

    // A client that knows only the new CA is refused at first.
    let new_client = node(&new, Role::Gateway, "gw-new", &new.pem);
    assert_refused_at_handshake(health(&addr, &new_client).await, "UnknownIssuer");

    // Widen trust, then present a certificate from the new CA.
    server.set_trust(&both).expect("widen");
    let (cert, key) = issue(
        &new,
        Role::Meta,
        "meta-1",
        Validity::starting_now(pki::LEAF_VALIDITY),
    );
    server.set_certified(&cert, &key).expect("reissue");
    assert_eq!(
        health(&addr, &new_client).await.expect("new CA only"),
        "meta-1"
    );
    assert_eq!(
        health(&addr, &old_client).await.expect("old still trusted"),
        "meta-1"
    );

    // Narrow trust to the new CA: new handshakes with old-CA certificates fail.
    server.set_trust(&new.pem).expect("narrow");
    assert_refused_at_handshake(health(&addr, &old_client).await, "UnknownCA");
    assert_eq!(health(&addr, &new_client).await.expect("new"), "meta-1");

    // The connection made before the change is undisturbed (it ages out
    // within transport::MAX_CONNECTION_AGE and then re-handshakes).
    established
        .health(HealthRequest {})
        .await
        .expect("established connection");

    let fps = server.trusted_fingerprints();
    assert_eq!(fps.len(), 1);
    assert_eq!(
        server.own_issuer_fingerprint().as_deref(),
        Some(fps[0].as_str())
    );
}

#[tokio::test]
async fn reload_refuses_a_certificate_for_another_identity() {
    let ca = new_ca("one");
    let server = node(&ca, Role::Meta, "meta-1", &ca.pem);
    let (cert, key) = issue(
        &ca,
        Role::Admin,
        "meta-1",
        Validity::starting_now(pki::LEAF_VALIDITY),
    );
    assert!(server.set_certified(&cert, &key).is_err());
    assert_eq!(server.identity().role, Role::Meta);
    // A key that does not match the certificate is refused too.
    let (cert2, _) = issue(
        &ca,
        Role::Meta,
        "meta-1",
        Validity::starting_now(pki::LEAF_VALIDITY),
    );
    let (_, other_key) = issue(
        &ca,
        Role::Meta,
        "meta-1",
        Validity::starting_now(pki::LEAF_VALIDITY),
    );
    assert!(server.set_certified(&cert2, &other_key).is_err());
}

fn blob_id(id: &str) -> PeerIdentity {
    PeerIdentity::new(Role::Blob, id).expect("id")
}

#[tokio::test]
async fn a_revoked_client_is_refused_at_the_handshake() {
    let ca = new_ca("one");
    let server = node(&ca, Role::Meta, "meta-1", &ca.pem);
    let removed = node(&ca, Role::Blob, "blob-7", &ca.pem);
    let kept = node(&ca, Role::Blob, "blob-8", &ca.pem);
    let addr = start_server(server.clone()).await;
    health(&addr, &removed).await.expect("before the removal");

    server.set_revoked([blob_id("blob-7")]);
    let status = health(&addr, &removed)
        .await
        .expect_err("refused once revoked");
    assert_refused_at_handshake(Err(status.clone()), "CertificateRevoked");
    // The removed node can tell why (it logs it plainly).
    assert!(
        transport_refused_as_revoked(&status),
        "the refusal names the revocation: {status:?}"
    );
    assert_eq!(health(&addr, &kept).await.expect("others"), "meta-1");
}

fn transport_refused_as_revoked(status: &tonic::Status) -> bool {
    hamster_proto::revoke::refused_as_revoked(status)
}

#[tokio::test]
async fn a_revoked_server_is_refused_by_its_clients() {
    let ca = new_ca("one");
    let server = node(&ca, Role::Blob, "blob-7", &ca.pem);
    let gateway = node(&ca, Role::Gateway, "gw-1", &ca.pem);
    let addr = start_server(server).await;
    let dial = |tls: Arc<NodeTls>| {
        let addr = addr.clone();
        async move {
            let ch = transport::channel(&addr, &tls, &[Role::Blob]).expect("channel");
            tokio::time::timeout(
                Duration::from_secs(10),
                NodeClient::new(ch).health(HealthRequest {}),
            )
            .await
            .expect("no hang")
            .map(|r| r.into_inner().node_id)
        }
    };
    assert_eq!(dial(gateway.clone()).await.expect("before"), "blob-7");
    gateway.set_revoked([blob_id("blob-7")]);
    let e = dial(gateway.clone()).await.expect_err("revoked server");
    assert_refused_at_handshake(Err(e), "Revoked");
    gateway.set_revoked([]);
    assert_eq!(dial(gateway).await.expect("unrevoked"), "blob-7");
}

#[tokio::test]
async fn calls_on_an_open_connection_stop_once_the_peer_is_revoked() {
    let ca = new_ca("one");
    // Server side: a meta-server with a blob-server connected.
    let meta = node(&ca, Role::Meta, "meta-1", &ca.pem);
    let blob = node(&ca, Role::Blob, "blob-7", &ca.pem);
    let addr = start_server(meta.clone()).await;
    let ch = transport::channel(&addr, &blob, &[Role::Meta]).expect("channel");
    let mut open = NodeClient::new(ch);
    open.health(HealthRequest {}).await.expect("before");
    meta.set_revoked([blob_id("blob-7")]);
    let e = open
        .health(HealthRequest {})
        .await
        .expect_err("refused per call");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert_eq!(
        hamster_proto::ErrorCode::of(&e),
        Some(hamster_proto::ErrorCode::BlobServerRemoved)
    );
    assert!(transport_refused_as_revoked(&e));

    // Client side: a gateway's open connection to a blob-server.
    let blob = node(&ca, Role::Blob, "blob-9", &ca.pem);
    let gateway = node(&ca, Role::Gateway, "gw-1", &ca.pem);
    let addr = start_server(blob).await;
    let ch = transport::channel(&addr, &gateway, &[Role::Blob]).expect("channel");
    let mut open = NodeClient::new(ch);
    open.health(HealthRequest {}).await.expect("before");
    gateway.set_revoked([blob_id("blob-9")]);
    let e = tokio::time::timeout(Duration::from_secs(10), open.health(HealthRequest {}))
        .await
        .expect("no hang")
        .expect_err("the gateway no longer talks to it");
    // The open connection fails under the call...
    assert!(
        matches!(
            e.code(),
            tonic::Code::Cancelled | tonic::Code::Unavailable | tonic::Code::Unknown
        ),
        "{e:?}"
    );
    // ...and the channel's reconnection is refused at the handshake.
    let e = tokio::time::timeout(Duration::from_secs(10), open.health(HealthRequest {}))
        .await
        .expect("no hang")
        .expect_err("still refused");
    assert_refused_at_handshake(Err(e), "Revoked");
}

#[tokio::test]
async fn the_revoked_file_beside_the_trust_file_is_loaded_at_start() {
    let ca = new_ca("one");
    let (cert, key) = issue(
        &ca,
        Role::Gateway,
        "gw-1",
        Validity::starting_now(pki::LEAF_VALIDITY),
    );
    let dir = tempfile::tempdir().expect("dir");
    let paths = hamster_proto::tls::TlsPaths {
        cert: dir.path().join("node.crt"),
        key: dir.path().join("node.key"),
        trust: dir.path().join("trust.pem"),
    };
    std::fs::write(&paths.cert, cert).expect("w");
    std::fs::write(&paths.key, key).expect("w");
    std::fs::write(&paths.trust, &ca.pem).expect("w");
    // No file yet: nothing revoked.
    assert!(NodeTls::load(&paths).expect("load").revoked().is_empty());
    let ids = vec![blob_id("blob-2"), blob_id("blob-7")];
    std::fs::write(
        hamster_proto::revoke::file_for(&paths.trust),
        format!("{}not a uri\n", hamster_proto::revoke::render(&ids)),
    )
    .expect("w");
    let tls = NodeTls::load(&paths).expect("load");
    assert_eq!(tls.revoked(), ids);
    // And it is enforced from the first handshake.
    let server = node(&ca, Role::Blob, "blob-7", &ca.pem);
    let addr = start_server(server).await;
    let ch = transport::channel(&addr, &tls, &[Role::Blob]).expect("channel");
    let e = NodeClient::new(ch)
        .health(HealthRequest {})
        .await
        .expect_err("revoked from the start");
    assert_refused_at_handshake(Err(e), "Revoked");
}
