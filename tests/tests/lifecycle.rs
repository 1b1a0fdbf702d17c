//! Nodes survive SIGKILL and restart, and take new certificates and trust
//! on SIGHUP without restarting.

use std::time::{Duration, Instant};

use hamster_proto::pki::{self, CertAuthority, ExtraNames, Validity};
use hamster_proto::secrets::{write_private, write_public};
use hamster_proto::tls::NodeTls;
use hamster_proto::{PeerIdentity, Role};
use hamster_tests::{Cluster, Kind, replace_file};
use rustix::process::Signal;

#[tokio::test]
async fn sigkilled_node_restarts_on_the_same_port() {
    let mut c = Cluster::new();
    let i = c.start(Kind::Meta, "meta-1");
    c.wait_healthy(i).await;
    let admin = c.admin_tls();
    let pid_before = c.node(i).pid();

    c.kill(i);
    let err = c
        .health(i, &admin)
        .await
        .expect_err("a killed node answers nothing");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");

    c.restart(i);
    let h = c.wait_healthy(i).await;
    assert_eq!(h.node_id, "meta-1");
    assert_ne!(c.node(i).pid(), pid_before);
    // Killed without a shutdown message, started twice.
    let log = c.log(i);
    assert_eq!(log.matches("listening").count(), 2, "{log}");
    assert_eq!(log.matches("shutting down").count(), 0, "{log}");
}

/// A second CA, written like `hamster init` writes one.
fn second_ca(c: &Cluster) -> (std::path::PathBuf, String, CertAuthority) {
    let dir = c.root().join("ca2");
    std::fs::create_dir_all(&dir).expect("dir");
    let pair = pki::generate_ca("2", Validity::starting_now(pki::CA_VALIDITY)).expect("ca");
    write_private(&dir.join("ca.key"), pair.key_pem.as_bytes()).expect("key");
    write_public(&dir.join("ca.crt"), pair.cert_pem.as_bytes()).expect("crt");
    let ca = CertAuthority::from_pem(&pair.cert_pem, &pair.key_pem).expect("load");
    (dir, pair.cert_pem, ca)
}

fn client(ca: &CertAuthority, id: &str, trust: &str) -> std::sync::Arc<NodeTls> {
    let identity = PeerIdentity::new(Role::Gateway, id).expect("id");
    let (csr, key) = pki::generate_csr(&identity, &ExtraNames::default()).expect("csr");
    let cert = ca
        .sign_csr(&csr, &identity, Validity::starting_now(pki::LEAF_VALIDITY))
        .expect("sign");
    NodeTls::from_pem(&cert, &key, trust).expect("tls")
}

/// Polls until `ok` says the node reached the wanted state.
async fn eventually<F, Fut>(what: &str, mut ok: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ok().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sighup_rolls_a_running_node_onto_a_new_ca() {
    let mut c = Cluster::new();
    let i = c.start(Kind::Meta, "meta-1");
    c.wait_healthy(i).await;
    let pid = c.node(i).pid();

    let ca1_pem = std::fs::read_to_string(c.pki_dir().join("ca.crt")).expect("ca1");
    let ca1 = CertAuthority::from_pem(
        &ca1_pem,
        &std::fs::read_to_string(c.pki_dir().join("ca.key")).expect("key"),
    )
    .expect("ca1");
    let (ca2_dir, ca2_pem, ca2) = second_ca(&c);
    let both = format!("{ca1_pem}{ca2_pem}");

    let old_client = client(&ca1, "gw-old", &both);
    let new_client = client(&ca2, "gw-new", &ca2_pem);
    c.health(i, &old_client)
        .await
        .expect("old CA client before");
    assert!(
        c.health(i, &new_client).await.is_err(),
        "new CA not trusted yet"
    );

    // Reissue by CSR: the new key is made in the node's directory.
    let dir = c.node(i).dir.clone();
    let p = |n: &str| dir.join(n).to_str().expect("utf8").to_string();
    c.hamster(&[
        "cert",
        "request",
        "--role",
        "meta",
        "--id",
        "meta-1",
        "--key-out",
        &p("next.key"),
        "--csr-out",
        &p("next.csr"),
    ]);
    c.hamster(&[
        "cert",
        "sign",
        "--ca-dir",
        ca2_dir.to_str().expect("utf8"),
        "--csr",
        &p("next.csr"),
        "--role",
        "meta",
        "--id",
        "meta-1",
        "--out",
        &p("next.crt"),
    ]);

    // Widen trust and present the new certificate: one SIGHUP.
    replace_file(&dir.join("trust.pem"), both.as_bytes());
    replace_file(
        &dir.join("node.key"),
        &std::fs::read(dir.join("next.key")).expect("k"),
    );
    replace_file(
        &dir.join("node.crt"),
        &std::fs::read(dir.join("next.crt")).expect("c"),
    );
    c.signal(i, Signal::HUP);
    eventually("a client knowing only the new CA connects", || async {
        c.health(i, &new_client).await.is_ok()
    })
    .await;
    c.health(i, &old_client)
        .await
        .expect("old CA client during dual trust");

    // A broken trust file changes nothing.
    replace_file(&dir.join("trust.pem"), b"not a certificate");
    c.signal(i, Signal::HUP);
    eventually("the failed reload is logged", || async {
        c.log(i).contains("TLS reload failed")
    })
    .await;
    c.health(i, &old_client)
        .await
        .expect("state kept after a bad reload");

    // Narrow trust to the new CA: old-CA clients are refused.
    replace_file(&dir.join("trust.pem"), ca2_pem.as_bytes());
    c.signal(i, Signal::HUP);
    eventually("an old-CA client is refused", || async {
        c.health(i, &old_client).await.is_err()
    })
    .await;
    let h = c.health(i, &new_client).await.expect("new CA client after");
    assert_eq!(h.trusted_ca_fingerprints.len(), 1);
    assert_eq!(h.issuer_fingerprint, h.trusted_ca_fingerprints[0]);
    assert_eq!(c.node(i).pid(), pid, "no restart");
}
