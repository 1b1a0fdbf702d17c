//! The S3 listener's limits, against a trivial service: raw TCP and TLS
//! clients that stall, and the connection cap.

use std::convert::Infallible;
use std::time::Duration;

use hamster_proto::pki::{CertAuthority, ExtraNames, Validity, certs_from_pem, generate_ca};
use hamster_proto::{PeerIdentity, Role};
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

/// Long enough for any test here to notice a connection that stays open.
const WAIT: Duration = Duration::from_secs(20);

async fn ok(_: Request<Incoming>) -> Result<Response<String>, Infallible> {
    Ok(Response::new("hello".to_string()))
}

/// Serves `ok` with `limits` (and TLS if given); the address.
async fn serve(limits: Limits, tls: Option<Arc<ServerConfig>>) -> SocketAddr {
    let l = S3Listener::bind("127.0.0.1:0", tls, limits)
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(l.serve(hyper::service::service_fn(ok)));
    addr
}

fn limits(header: u64, handshake: u64, max: usize) -> Limits {
    Limits {
        header_timeout_secs: header,
        idle_timeout_secs: 60,
        tls_handshake_timeout_secs: handshake,
        max_connections: max,
    }
}

/// Reads until the server closes (Ok) or `WAIT` passes (Err).
async fn closed_by_server(s: &mut (impl AsyncReadExt + Unpin)) -> Result<Vec<u8>, String> {
    let mut got = Vec::new();
    match tokio::time::timeout(WAIT, s.read_to_end(&mut got)).await {
        Ok(_) => Ok(got),
        Err(_) => Err(format!("still open after {WAIT:?}")),
    }
}

#[tokio::test]
async fn half_a_header_is_cut_off_at_the_header_timeout() {
    let addr = serve(limits(1, 10, 16), None).await;
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(b"GET /bucket/key HTTP/1.1\r\nHost: x\r\nX-Half: ")
        .await
        .expect("write");
    let got = closed_by_server(&mut tcp).await.expect("disconnected");
    assert!(!got.starts_with(b"HTTP/1.1 200"), "{got:?}");
    // A silent client too (it never gets as far as a header).
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    closed_by_server(&mut silent).await.expect("disconnected");
}

#[tokio::test]
async fn the_default_header_timeout_is_well_within_30_seconds() {
    assert!(Limits::default().header() <= Duration::from_secs(15));
    assert!(Limits::default().handshake() <= Duration::from_secs(10));
}

/// A self-signed CA and a localhost certificate: (server config, client config).
fn tls_pair() -> (Arc<ServerConfig>, Arc<rustls::ClientConfig>) {
    let ca = generate_ca(
        "listener-test",
        Validity::starting_now(Duration::from_secs(3600)),
    )
    .expect("ca");
    let authority = CertAuthority::from_pem(&ca.cert_pem, &ca.key_pem).expect("authority");
    let leaf = authority
        .issue_with_new_key(
            &PeerIdentity::new(Role::Gateway, "s3").expect("id"),
            &ExtraNames {
                dns: vec!["localhost".into()],
                ips: Vec::new(),
            },
            Validity::starting_now(Duration::from_secs(3600)),
        )
        .expect("leaf");
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("key");
    let mut server = ServerConfig::builder_with_provider(hamster_proto::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs_from_pem(&leaf.cert_pem).expect("certs"), key)
        .expect("server config");
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut roots = rustls::RootCertStore::empty();
    for c in certs_from_pem(&ca.cert_pem).expect("ca pem") {
        roots.add(c).expect("root");
    }
    let client = rustls::ClientConfig::builder_with_provider(hamster_proto::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

#[tokio::test]
async fn over_tls_a_stalled_handshake_and_half_a_header_are_cut_off() {
    let (server, client) = tls_pair();
    let addr = serve(limits(1, 1, 16), Some(server)).await;
    // TCP only, no ClientHello: dropped at the handshake timeout.
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    closed_by_server(&mut tcp).await.expect("disconnected");
    // Half a ClientHello: the same.
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .expect("write");
    closed_by_server(&mut tcp).await.expect("disconnected");
    // A finished handshake, then half a header.
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(client)
        .connect(name, tcp)
        .await
        .expect("handshake");
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .expect("write");
    let mut got = Vec::new();
    let read = tokio::time::timeout(WAIT, tls.read_to_end(&mut got)).await;
    // Closed, cleanly or not (the server does not send close_notify
    // after a timeout), and answered nothing but an error if anything.
    assert!(read.is_ok(), "still open after {WAIT:?}");
    assert!(!got.starts_with(b"HTTP/1.1 200"), "{got:?}");
}

#[tokio::test]
async fn past_the_cap_a_connection_waits_until_one_closes() {
    let addr = serve(limits(30, 10, 2), None).await;
    let first = TcpStream::connect(addr).await.expect("connect");
    let _second = TcpStream::connect(addr).await.expect("connect");
    // The third connects (the kernel's backlog) but is not served.
    let mut third = TcpStream::connect(addr).await.expect("connect");
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(early.is_err(), "served past the cap: {early:?}");
    // One closes: the third is accepted and answered.
    drop(first);
    let got = closed_by_server(&mut third).await.expect("answered");
    assert!(got.starts_with(b"HTTP/1.1 200"), "{got:?}");
}
