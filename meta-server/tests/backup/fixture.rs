//! A meta-server's data dir as the backup tests need it: a state DB fed
//! through the state machine (so `last_applied` is real), with data keys
//! and an S3 secret really wrapped and sealed under a master key, a trust
//! bundle of a real CA, and a backup of it; the files a restoring node
//! holds (keys, trust, certificate, revoked set); restore plans; and
//! Raft started on a seeded data dir.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hamster_meta::backup::format::BackupHeader;
use hamster_meta::backup::reseed::RAFT_LOG_DB;
use hamster_meta::backup::restore::{Member, NodeFacts, Plan, restore};
use hamster_meta::backup::take;
use hamster_meta::raft::log_store::LogStore;
use hamster_meta::raft::state_machine::StateMachine;
use hamster_meta::raft::{Entry, LogId, NodeId, Raft, TypeConfig};
use hamster_proto::envelope::{DataKey, seal_secret, wrap_dek};
use hamster_proto::identity::{PeerIdentity, Role as Who};
use hamster_proto::pki::{self, CertAuthority, ExtraNames, Pair, Validity};
use hamster_proto::secrets::MasterKey;
use openraft::network::RaftNetworkFactory;
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload, SnapshotPolicy};

use super::common::*;

/// The term the fixture's entries were written in.
pub const TERM: u64 = 3;
pub const SECRET: &str = "s3-secret-that-must-never-appear-in-a-backup";

/// A CA and a meta-server certificate it signed.
pub struct Pki {
    pub ca: Pair,
    pub node: Pair,
}

impl Pki {
    pub fn new(label: &str) -> Pki {
        let v = Validity::starting_now(Duration::from_secs(3600));
        let ca = pki::generate_ca(label, v).expect("a CA");
        let auth = CertAuthority::from_pem(&ca.cert_pem, &ca.key_pem).expect("CA loads");
        let id = PeerIdentity::new(Who::Meta, "meta-1").expect("identity");
        let node = auth
            .issue_with_new_key(&id, &ExtraNames::default(), v)
            .expect("a node certificate");
        Pki { ca, node }
    }
    pub fn fingerprint(&self) -> String {
        pki::pem_fingerprint(&self.ca.cert_pem).expect("one certificate")
    }
}

/// A data dir with a state machine applying commands as log entries.
pub struct Source {
    pub dir: TempDir,
    pub db: Arc<StateDb>,
    sm: StateMachine,
    pub index: u64,
}

pub fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

pub fn entry(index: u64, op: Op) -> Entry {
    Entry {
        log_id: log_id(TERM, index),
        payload: EntryPayload::Normal(Command::new("", NOW, op)),
    }
}

impl Source {
    pub async fn empty() -> Source {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = StateDb::open(dir.path()).await.expect("open state db");
        Source {
            sm: StateMachine::new(db.clone()),
            db,
            dir,
            index: 0,
        }
    }

    /// Applies `op` as the next log entry and expects success.
    pub async fn ok(&mut self, op: Op) -> Response {
        self.index += 1;
        let name = op.name();
        let mut r = self
            .sm
            .apply(vec![entry(self.index, op)])
            .await
            .expect("apply");
        let r = r.pop().expect("one response");
        assert!(!matches!(r, Response::Err(_)), "{name} refused: {r:?}");
        r
    }

    /// A cluster under master key `key` and CA `pki`: two buckets, plain,
    /// deleted (marker), COMPLIANCE-locked and legally held versions, a
    /// completed multipart object, an open upload, an S3 key, four
    /// blob-servers, one removed.
    pub async fn populated(key: &MasterKey, pki: &Pki) -> Source {
        let mut s = Source::empty().await;
        let fp = key.fingerprint();
        let wrapped = || wrap_dek(key, &DataKey::generate());
        s.ok(Op::KeyHolderSeen {
            id: "meta-1".into(),
            role: Role::Meta,
            current: fp.clone(),
            next: String::new(),
        })
        .await;
        s.ok(Op::InitTrust {
            cas: vec![pki.ca.cert_pem.clone()],
            issuing: pki.fingerprint(),
            issuer: "meta-1".into(),
        })
        .await;
        for i in 0..4 {
            s.ok(Op::RegisterBlob {
                server: blob(&format!("blob-{i}"), &format!("10.0.0.{i}:7500")),
            })
            .await;
        }
        s.ok(create("plain", false)).await;
        s.ok(Op::PutBucketVersioning {
            bucket: "plain".into(),
            status: Versioning::Enabled,
        })
        .await;
        s.ok(create("locked", true)).await;
        let v = |b: &str, k: &str, id: &str| Version {
            wrapped_dek: wrapped(),
            kek_fingerprint: fp.clone(),
            ..ver(b, k, id, &format!("{b}-{k}-{id}"))
        };
        s.ok(commit(v("plain", "a", "va1"))).await;
        s.ok(commit(v("plain", "a", "va2"))).await;
        s.ok(commit(v("plain", "gone", "vg1"))).await;
        s.ok(del("plain", "gone", None, "dm1")).await;
        s.ok(commit(Version {
            lock_mode: LockMode::Compliance,
            retain_until_ms: NOW + 10 * 365 * 86_400_000,
            ..v("locked", "kept", "vk1")
        }))
        .await;
        s.ok(commit(v("locked", "held", "vh1"))).await;
        s.ok(Op::PutLegalHold {
            bucket: "locked".into(),
            key: "held".into(),
            version_id: "vh1".into(),
            on: true,
        })
        .await;
        let p = |n: u32, size: u64, tag: &str| Part {
            wrapped_dek: wrapped(),
            kek_fingerprint: fp.clone(),
            ..part(n, size, tag)
        };
        s.ok(begin("plain", "mp", "u1")).await;
        s.ok(put_part("plain", "mp", "u1", p(1, MIN_PART_SIZE, "p1")))
            .await;
        s.ok(put_part("plain", "mp", "u1", p(2, 10, "p2"))).await;
        let (e1, e2) = (md5_hex(b"p1"), md5_hex(b"p2"));
        s.ok(complete("plain", "mp", "u1", &[(1, &e1), (2, &e2)], "vm1"))
            .await;
        s.ok(begin("plain", "open", "u2")).await;
        s.ok(put_part("plain", "open", "u2", p(1, 10, "p3"))).await;
        s.ok(Op::PutAccessKey {
            key: AccessKey {
                sealed_secret: seal_secret(key, "AK1", SECRET),
                kek_fingerprint: fp.clone(),
                ..access_key("AK1")
            },
        })
        .await;
        s.ok(Op::RemoveBlob {
            id: "blob-3".into(),
            force: true,
        })
        .await;
        s
    }

    pub async fn dump(&self) -> Vec<String> {
        let mut c = self.db.acquire().await.expect("conn");
        dump(&mut c).await
    }
}

/// A backup of a [`Source::populated`] cluster under master key `key`
/// and CA `pki`: `path`, meta.hbk in the otherwise empty `dir`.
pub struct Backup {
    pub src: Source,
    pub key: MasterKey,
    pub pki: Pki,
    pub header: BackupHeader,
    pub dir: TempDir,
    pub path: PathBuf,
}

pub async fn backup() -> Backup {
    let key = MasterKey::generate();
    let pki = Pki::new("ca-1");
    let src = Source::populated(&key, &pki).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("meta.hbk");
    let header = take::write_file(&src.db, 1, &path).await.expect("backup");
    Backup {
        src,
        key,
        pki,
        header,
        dir,
        path,
    }
}

/// The files a restoring node holds, in a dir of their own.
pub struct NodeFiles {
    _dir: TempDir,
    pub master: PathBuf,
    pub next: PathBuf,
    pub trust: PathBuf,
    pub cert: PathBuf,
}

impl NodeFiles {
    /// Current key `current`, next key `next` (none: its file is absent),
    /// trusting `pki`'s CA with `pki`'s node certificate.
    pub fn new(current: &MasterKey, next: Option<&MasterKey>, pki: &Pki) -> NodeFiles {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = NodeFiles {
            master: dir.path().join("master.key"),
            next: dir.path().join("next.key"),
            trust: dir.path().join("trust.pem"),
            cert: dir.path().join("meta.crt"),
            _dir: dir,
        };
        current.write_new(&f.master).expect("write key");
        if let Some(n) = next {
            n.write_new(&f.next).expect("write next key");
        }
        std::fs::write(&f.trust, &pki.ca.cert_pem).expect("trust");
        std::fs::write(&f.cert, &pki.node.cert_pem).expect("cert");
        f
    }

    pub fn revoke(&self, uris: &[&str]) {
        let text: String = uris.iter().map(|u| format!("{u}\n")).collect();
        std::fs::write(hamster_proto::revoke::file_for(&self.trust), text).expect("revoked");
    }

    pub fn facts(&self) -> NodeFacts {
        NodeFacts::load(&self.master, Some(&self.next), &self.trust, &self.cert)
            .expect("node facts")
    }
}

/// Member `raft_id` of a restored cluster, named meta-ID, at `addr`.
pub fn member(raft_id: u64, addr: &str) -> Member {
    Member {
        raft_id,
        name: format!("meta-{raft_id}"),
        addr: addr.into(),
    }
}

/// A one-member cluster: member `raft_id` at `addr`, seeded in `dir`.
pub fn one_member_plan(backup: &Path, raft_id: u64, addr: &str, dir: &Path) -> Plan {
    Plan {
        backup: backup.to_path_buf(),
        members: vec![member(raft_id, addr)],
        seed: vec![(raft_id, dir.to_path_buf())],
        accept_older: false,
    }
}

/// A [`backup`] restored as a one-member cluster (member `raft_id` at
/// `addr`) into data/ beside it; answers the backup and that data dir.
pub async fn restored_alone(raft_id: u64, addr: &str) -> (Backup, PathBuf) {
    let b = backup().await;
    let dir = b.dir.path().join("data");
    let plan = one_member_plan(&b.path, raft_id, addr, &dir);
    restore(&plan, &NodeFiles::new(&b.key, None, &b.pki).facts())
        .await
        .expect("restore");
    (b, dir)
}

/// Three dev members and their data dirs under `root`.
pub fn dev_plan(backup: &Path, root: &Path, accept_older: bool) -> Plan {
    Plan {
        backup: backup.to_path_buf(),
        members: (1..=3)
            .map(|i| member(i, &format!("127.0.0.1:{}", 7400 + i)))
            .collect(),
        seed: (1..=3)
            .map(|i| (i, root.join(format!("meta-{i}"))))
            .collect(),
        accept_older,
    }
}

/// Every file under `dir`, relative, sorted (nothing: empty).
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(
                p.strip_prefix(dir)
                    .expect("under dir")
                    .display()
                    .to_string(),
            );
        }
    }
    out.sort();
    out
}

/// Raft running on a data dir, with the state DB and log it runs on.
pub struct Running {
    pub raft: Raft,
    pub db: Arc<StateDb>,
    pub log: LogStore,
}

impl Running {
    /// Starts Raft on `dir` (its raft-log.db and state.db) as node `id`,
    /// with quick elections and no snapshots of its own, over `network`.
    pub async fn start<N: RaftNetworkFactory<TypeConfig>>(
        dir: &Path,
        id: NodeId,
        network: N,
    ) -> Running {
        let log = LogStore::open(&dir.join(RAFT_LOG_DB)).await.expect("log");
        let db = StateDb::open(dir).await.expect("state");
        let config = openraft::Config {
            heartbeat_interval: 50,
            election_timeout_min: 150,
            election_timeout_max: 300,
            snapshot_policy: SnapshotPolicy::Never,
            ..Default::default()
        }
        .validate()
        .expect("config");
        let raft = Raft::new(
            id,
            Arc::new(config),
            network,
            log.clone(),
            StateMachine::new(db.clone()),
        )
        .await
        .expect("raft starts");
        Running { raft, db, log }
    }

    /// The voters of the membership this node holds.
    pub fn voters(&self) -> Vec<u64> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    pub async fn stop(self) {
        self.raft.shutdown().await.expect("shutdown");
        self.log.close().await;
        self.db.close().await;
    }
}
