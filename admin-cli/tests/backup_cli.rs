//! `hamster backup` as an operator runs it: the real binary against a
//! scripted meta-server over real mTLS that streams a file made to order.
//! What is pinned: a whole, checked file appears under FILE only at the
//! end (0600); a stream that breaks or does not verify leaves no FILE and
//! no partial file; an existing FILE is not replaced without --force.
//! Backups of a real cluster are tested in tests/.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use hamster_proto::pb::admin_server::{Admin, AdminServer};
use hamster_proto::pb::{BackupChunk, BackupRequest};
use hamster_proto::pki::{self, CertAuthority, ExtraNames, Validity};
use hamster_proto::tls::NodeTls;
use hamster_proto::{PeerIdentity, Role, transport};
use sha2::{Digest, Sha256};
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

/// Streams `bytes` in 3 chunks, then `error` if set.
#[derive(Clone)]
struct Fake {
    bytes: Vec<u8>,
    error: Option<Status>,
}

#[tonic::async_trait]
impl Admin for Fake {
    async fn backup(
        &self,
        _: Request<BackupRequest>,
    ) -> Result<Response<BoxStream<BackupChunk>>, Status> {
        let third = self.bytes.len().div_ceil(3).max(1);
        let mut items: Vec<Result<BackupChunk, Status>> = self
            .bytes
            .chunks(third)
            .map(|c| Ok(BackupChunk { data: c.to_vec() }))
            .collect();
        items.extend(self.error.clone().map(Err));
        Ok(Response::new(Box::pin(tonic::codegen::tokio_stream::iter(
            items,
        ))))
    }
}

struct Meta {
    addr: String,
    dir: tempfile::TempDir,
}

impl Meta {
    fn start(fake: Fake) -> Self {
        let pair = pki::generate_ca("test", Validity::starting_now(pki::CA_VALIDITY)).expect("ca");
        let ca = CertAuthority::from_pem(&pair.cert_pem, &pair.key_pem).expect("ca");
        let issue = |role, id| {
            let identity = PeerIdentity::new(role, id).expect("id");
            let (csr, key) = pki::generate_csr(&identity, &ExtraNames::default()).expect("csr");
            let cert = ca
                .sign_csr(&csr, &identity, Validity::starting_now(pki::LEAF_VALIDITY))
                .expect("sign");
            (cert, key)
        };
        let dir = tempfile::tempdir().expect("tmp");
        let (cert, key) = issue(Role::Admin, "admin");
        std::fs::write(dir.path().join("admin.crt"), cert).expect("write");
        std::fs::write(dir.path().join("admin.key"), key).expect("write");
        std::fs::write(dir.path().join("trust.pem"), &pair.cert_pem).expect("write");
        let (cert, key) = issue(Role::Meta, "meta-1");
        let tls = NodeTls::from_pem(&cert, &key, &pair.cert_pem).expect("meta tls");
        let (tx, rx) = std::sync::mpsc::channel();
        // Its own runtime: the tests run the CLI as a blocking child process.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("addr").to_string())
                    .expect("send");
                transport::server()
                    .add_service(AdminServer::new(fake))
                    .serve_with_incoming(transport::incoming(listener, tls))
                    .await
                    .expect("serve");
            });
        });
        let addr = rx.recv().expect("address");
        Self { addr, dir }
    }

    fn out(&self) -> std::path::PathBuf {
        self.dir.path().join("out").join("meta.hbk")
    }

    /// Runs `hamster backup --out OUT ARGS` as the admin.
    fn backup(&self, args: &[&str]) -> Output {
        let d: &Path = self.dir.path();
        std::fs::create_dir_all(d.join("out")).expect("mkdir");
        std::process::Command::new(env!("CARGO_BIN_EXE_hamster"))
            .arg("backup")
            .arg(format!("--out={}", self.out().display()))
            .args(args)
            .env("HAMSTER_ADMIN_CERT", d.join("admin.crt"))
            .env("HAMSTER_ADMIN_KEY", d.join("admin.key"))
            .env("HAMSTER_TRUST", d.join("trust.pem"))
            .env("HAMSTER_META", &self.addr)
            .output()
            .expect("run hamster")
    }

    /// The files in the output dir.
    fn left(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path().join("out"))
            .expect("read dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn sample() -> Vec<u8> {
    let body = b"sqlite pages ".repeat(1000);
    common::file(
        &common::header(&body, &"11".repeat(32), &"22".repeat(32)),
        &body,
    )
}

#[test]
fn a_whole_backup_is_renamed_into_place_private_and_described() {
    let bytes = sample();
    let meta = Meta::start(Fake {
        bytes: bytes.clone(),
        error: None,
    });
    let out = meta.backup(&["--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(meta.out()).expect("backup"), bytes);
    let mode = std::fs::metadata(meta.out())
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(meta.left(), ["meta.hbk"]);

    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(v["bytes"], bytes.len());
    assert_eq!(v["raft_index"], 42);
    assert_eq!(v["raft_term"], 3);
    assert_eq!(v["versions"], 7);
    assert_eq!(v["key_fingerprints"][0], "11".repeat(32));
    assert_eq!(v["write_key"], "11".repeat(32));
    assert_eq!(v["issuing_ca"], "22".repeat(32));
    assert_eq!(v["sha256"], hex::encode(Sha256::digest(&bytes)));

    // FILE exists now: not replaced without --force, replaced with it.
    let again = meta.backup(&[]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    let forced = meta.backup(&["--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    let text = String::from_utf8_lossy(&forced.stdout);
    assert!(text.contains("raft index 42 (term 3)"), "{text}");
    assert_eq!(meta.left(), ["meta.hbk"]);
}

#[test]
fn a_backup_that_does_not_verify_leaves_no_file() {
    let mut bytes = sample();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    let meta = Meta::start(Fake { bytes, error: None });
    let out = meta.backup(&[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("checksum"), "{}", stderr(&out));
    assert!(meta.left().is_empty(), "{:?}", meta.left());
}

#[test]
fn a_stream_that_breaks_leaves_no_file_and_an_old_one_untouched() {
    let bytes = sample();
    let meta = Meta::start(Fake {
        bytes: bytes[..bytes.len() / 2].to_vec(),
        error: Some(Status::unavailable("leader lost")),
    });
    std::fs::create_dir_all(meta.dir.path().join("out")).expect("mkdir");
    std::fs::write(meta.out(), b"yesterday's backup").expect("write");
    let out = meta.backup(&["--force"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("leader lost"), "{}", stderr(&out));
    assert_eq!(meta.left(), ["meta.hbk"]);
    assert_eq!(
        std::fs::read(meta.out()).expect("old"),
        b"yesterday's backup"
    );
}
