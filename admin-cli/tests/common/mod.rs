//! What the CLI tests share: a scripted meta-server over real mTLS and
//! the admin files to reach it, backup files made to order (the real
//! format, any body), and a cluster's PKI and master key on disk.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use hamster_meta::backup::format::{self, BACKUP_FORMAT, BackupHeader, Summer};
use hamster_proto::pb::admin_server::{Admin, AdminServer};
use hamster_proto::pki::{self, CertAuthority, ExtraNames, Validity};
use hamster_proto::secrets::MasterKey;
use hamster_proto::tls::NodeTls;
use hamster_proto::{PeerIdentity, Role, transport};

/// A meta-server answering the admin API with a test's script over real
/// mTLS, and the admin's certificate, key and trust bundle in `dir`.
pub struct ScriptedMeta {
    pub addr: String,
    pub dir: tempfile::TempDir,
}

impl ScriptedMeta {
    /// A new CA, the admin's files and meta-1's certificate from it, and
    /// `service` served on a loopback port.
    pub fn start(service: impl Admin) -> Self {
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
                    .add_service(AdminServer::new(service))
                    .serve_with_incoming(transport::incoming(listener, tls))
                    .await
                    .expect("serve");
            });
        });
        let addr = rx.recv().expect("address");
        Self { addr, dir }
    }

    /// The `hamster` binary, to run as the admin of this meta-server.
    pub fn hamster(&self) -> Command {
        let d: &Path = self.dir.path();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hamster"));
        cmd.env("HAMSTER_ADMIN_CERT", d.join("admin.crt"))
            .env("HAMSTER_ADMIN_KEY", d.join("admin.key"))
            .env("HAMSTER_TRUST", d.join("trust.pem"))
            .env("HAMSTER_META", &self.addr);
        cmd
    }
}

/// A header for `body`, naming `key` as the one master key it needs.
pub fn header(body: &[u8], key: &str, ca: &str) -> BackupHeader {
    BackupHeader {
        format: BACKUP_FORMAT,
        cluster_id: ca.into(),
        raft_term: 3,
        raft_index: 42,
        created_ms: 1_700_000_000_000,
        source_raft_id: 1,
        schema_version: 9,
        db_bytes: body.len() as u64,
        key_fingerprints: vec![key.into()],
        write_key: key.into(),
        trust_generation: 1,
        trust_cas: vec![ca.into()],
        issuing_ca: ca.into(),
        removed_blob_servers: Vec::new(),
        versions: 7,
        buckets: 2,
        access_keys: 1,
    }
}

/// The file for `header` and `body`, checksum and all.
pub fn file(header: &BackupHeader, body: &[u8]) -> Vec<u8> {
    let mut out = format::prefix(header).expect("prefix");
    out.extend_from_slice(body);
    let mut sum = Summer::default();
    sum.update(&out);
    out.extend_from_slice(&sum.trailer());
    out
}

/// A cluster as `hamster init` and dev provisioning leave it: `pki/`
/// (CA, admin, trust), `master.key`, and meta-1's node files in
/// `nodes/meta-1/`. Answers (master key fingerprint, CA fingerprint).
pub fn cluster(dir: &Path) -> (String, String) {
    let pki = dir.join("pki");
    hamster_admin::init::run(&hamster_admin::init::InitArgs {
        dir: pki.clone(),
        admin_id: "admin".into(),
    })
    .expect("init");
    hamster_admin::cert::provision_node(&pki, Role::Meta, "meta-1", &dir.join("nodes/meta-1"))
        .expect("provision");
    let key = MasterKey::load(&pki.join("master.key")).expect("master key");
    let ca = std::fs::read_to_string(pki.join("ca.crt")).expect("ca");
    (
        key.fingerprint(),
        hamster_proto::pki::pem_fingerprint(&ca).expect("ca fingerprint"),
    )
}

/// Every file under `dir` (relative paths, sorted) with its bytes.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .expect("under root")
                .display()
                .to_string();
            if p.is_dir() {
                out.push((rel + "/", Vec::new()));
                walk(root, &p, out);
            } else {
                out.push((rel, std::fs::read(&p).expect("read")));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A real backup, as `take` writes it, of a state DB in which two
/// blob-servers registered (entries 1 and 2, term 3) and whose write key
/// is `write_key`. Written to `dir/real.hbk`.
pub async fn real_backup(dir: &Path, write_key: &str) -> std::path::PathBuf {
    use hamster_meta::raft::state_machine::{StateDb, StateMachine};
    use hamster_meta::state::commands::{Command, Op};
    use hamster_meta::state::model::BlobServer;
    use openraft::EntryPayload;
    use openraft::storage::RaftStateMachine;

    let src = dir.join("source-db");
    std::fs::create_dir_all(&src).expect("mkdir");
    let db = StateDb::open(&src).await.expect("state db");
    {
        let mut c = db.acquire().await.expect("conn");
        hamster_meta::state::key_rotation::set_write_key(&mut c, write_key)
            .await
            .expect("write key");
    }
    let entries = (1..=2u64).map(|i| hamster_meta::raft::Entry {
        log_id: openraft::testing::log_id(3, 1, i),
        payload: EntryPayload::Normal(Command::new(
            format!("cmd-{i}"),
            1_700_000_000_000,
            Op::RegisterBlob {
                server: BlobServer {
                    id: format!("blob-{i}"),
                    address: format!("10.0.0.{i}:7500"),
                    ..BlobServer::default()
                },
            },
        )),
    });
    StateMachine::new(db.clone())
        .apply(entries)
        .await
        .expect("apply");
    let out = dir.join("real.hbk");
    hamster_meta::backup::take::write_file(&db, 1, &out)
        .await
        .expect("backup");
    db.close().await;
    out
}

/// `bytes` (a whole backup) with its header changed by `edit`, checksum
/// recomputed: a backup that claims something else about its DB.
pub fn reheader(bytes: &[u8], edit: impl FnOnce(&mut BackupHeader)) -> Vec<u8> {
    let len = u32::from_be_bytes(bytes[8..12].try_into().expect("length")) as usize;
    let mut h: BackupHeader = serde_json::from_slice(&bytes[12..12 + len]).expect("header");
    let body = &bytes[12 + len..12 + len + h.db_bytes as usize];
    edit(&mut h);
    file(&h, body)
}
