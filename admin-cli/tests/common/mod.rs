//! What the CLI tests share: backup files made to order (the real
//! format, any body), and a cluster's PKI and master key on disk.

#![allow(dead_code)]

use std::path::Path;

use hamster_meta::backup::format::{self, BACKUP_FORMAT, BackupHeader, Summer};
use hamster_proto::Role;
use hamster_proto::secrets::MasterKey;

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
