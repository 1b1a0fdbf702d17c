//! A new meta tier from a backup, offline (every meta-server stopped).
//!
//! The whole file is verified into a temp DB inside the first data dir
//! to write; the temp DB is checked against what the nodes hold now (their
//! master keys, trust, certificate and revoked set: [`NodeFacts`]) and
//! adjusted ([`super::adjust`]); only then is each data dir seeded with a
//! copy ([`super::reseed::seed`]). A refusal changes nothing: what it
//! created (the first data dir, for the temp DB) is removed again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hamster_proto::keyring::Keyring;
use hamster_proto::pki;
use hamster_proto::revoke;

use super::adjust;
use super::format::{self, BackupError, BackupHeader};
use super::reseed::{self, RAFT_LOG_DB, ReseedError};
use super::take::TempFile;
use crate::cluster::now_ms;
use crate::raft::state_machine::{RESTORE_TEMP_PREFIX, STATE_DB};
use crate::raft::{MetaNode, NodeId};

/// What the restoring node holds now, against which a backup is checked.
pub struct NodeFacts {
    pub keyring: Arc<Keyring>,
    /// The node's trust file (PEM of every trusted CA).
    pub trust_pem: String,
    /// Fingerprint of the trusted CA that signed the node's certificate.
    pub own_cert_ca: String,
    /// Identity URIs in `<trust>.revoked`.
    pub revoked: Vec<String>,
}

impl NodeFacts {
    /// Reads the node's files. `next_key` may name a file that does not
    /// exist (as meta-server allows): then there is no next key. A missing
    /// `<trust>.revoked` means nothing is revoked.
    pub fn load(
        master_key: &Path,
        next_key: Option<&Path>,
        trust: &Path,
        cert: &Path,
    ) -> Result<Self, RestoreError> {
        let keyring = Keyring::load(master_key, next_key)
            .map_err(|e| RestoreError::Node(format!("the master keys: {e}")))?;
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .map_err(|e| RestoreError::Node(format!("reading {}: {e}", p.display())))
        };
        let trust_pem = read(trust)?;
        let cert_pem = read(cert)?;
        let own_cert_ca = issuer_in(&cert_pem, &trust_pem).ok_or_else(|| {
            RestoreError::Node(format!(
                "the certificate {} is not signed by a CA in {}",
                cert.display(),
                trust.display()
            ))
        })?;
        let revoked_file = revoke::file_for(trust);
        let revoked = revoke::read_file(&revoked_file)
            .map_err(|e| RestoreError::Node(format!("reading {}: {e}", revoked_file.display())))?
            .iter()
            .map(|p| p.uri())
            .collect();
        Ok(Self {
            keyring: Arc::new(keyring),
            trust_pem,
            own_cert_ca,
            revoked,
        })
    }
}

/// The fingerprint of the CA in `trust_pem` whose signature the first
/// certificate of `cert_pem` carries.
fn issuer_in(cert_pem: &str, trust_pem: &str) -> Option<String> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let cert_der = pki::certs_from_pem(cert_pem).ok()?.into_iter().next()?;
    let (_, cert) = X509Certificate::from_der(&cert_der).ok()?;
    pki::certs_from_pem(trust_pem)
        .ok()?
        .iter()
        .find_map(|ca_der| {
            let (_, ca) = X509Certificate::from_der(ca_der).ok()?;
            cert.verify_signature(Some(ca.public_key()))
                .ok()
                .map(|()| pki::cert_fingerprint(ca_der))
        })
}

/// A member of the new meta tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub raft_id: u64,
    /// The id in its certificate (`hamster://meta/NAME`).
    pub name: String,
    /// host:port peers reach it at.
    pub addr: String,
}

/// What to restore and where.
#[derive(Clone, Debug)]
pub struct Plan {
    pub backup: PathBuf,
    /// The new cluster's membership (dev: every meta; one node: just it).
    pub members: Vec<Member>,
    /// (raft id, data dir) of each node to write.
    pub seed: Vec<(u64, PathBuf)>,
    /// Restore a backup older than a rotation or removal the nodes have
    /// already seen, adjusting it to them.
    pub accept_older: bool,
}

/// What a restore did.
#[derive(Clone, Debug)]
pub struct Report {
    pub header: BackupHeader,
    /// The older-than-the-nodes findings accepted (and adjusted).
    pub accepted_older: Vec<String>,
    /// Keys rewrapped to the node's current master key.
    pub rewrapped: u64,
    pub restored_at_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(
        "this node does not hold master key {needed} (it holds {}); give it as --master-key-file or --next-master-key-file",
        held.join(", ")
    )]
    MissingMasterKey { needed: String, held: Vec<String> },
    #[error(
        "the backup is older than what the nodes hold now: {}; pass --accept-older to restore it anyway (and take a backup after every rotation)",
        .0.join("; ")
    )]
    Older(Vec<String>),
    #[error("{} already holds a meta-server's state (state.db or raft-log.db); restore writes only fresh data dirs", .0.display())]
    DataDirInUse(PathBuf),
    #[error("this node's files: {0}")]
    Node(String),
    #[error("restore plan: {0}")]
    Plan(String),
    #[error("restoring the database: {0}")]
    Db(String),
    #[error(transparent)]
    Reseed(#[from] ReseedError),
    #[error("restore I/O: {0}")]
    Io(#[from] std::io::Error),
}

fn check_plan(plan: &Plan) -> Result<BTreeMap<NodeId, MetaNode>, RestoreError> {
    let bad = |m: String| Err(RestoreError::Plan(m));
    let mut members = BTreeMap::new();
    for m in &plan.members {
        if m.raft_id == 0 || m.name.is_empty() || m.addr.is_empty() {
            return bad(format!(
                "member {m:?}: needs a raft id > 0, a name and an address"
            ));
        }
        let node = MetaNode {
            addr: m.addr.clone(),
            name: m.name.clone(),
        };
        if members.insert(m.raft_id, node).is_some() {
            return bad(format!("raft id {} is given twice", m.raft_id));
        }
    }
    if plan.seed.is_empty() {
        return bad("no data dir to write".into());
    }
    for (i, (id, dir)) in plan.seed.iter().enumerate() {
        if !members.contains_key(id) {
            return bad(format!("raft id {id} ({}) is not a member", dir.display()));
        }
        if plan.seed[..i].iter().any(|(o, d)| o == id || d == dir) {
            return bad(format!("raft id {id} or {} is given twice", dir.display()));
        }
        for f in [STATE_DB, RAFT_LOG_DB] {
            if dir.join(f).exists() {
                return Err(RestoreError::DataDirInUse(dir.clone()));
            }
        }
    }
    Ok(members)
}

/// Builds the data dirs of `plan` from its backup, checked against `node`.
pub async fn restore(plan: &Plan, node: &NodeFacts) -> Result<Report, RestoreError> {
    let members = check_plan(plan)?;
    // The data dirs this restore creates (the topmost missing ancestor of
    // each): removed again, if empty, when it refuses or fails.
    let made: Vec<(PathBuf, PathBuf)> = plan
        .seed
        .iter()
        .filter_map(|(_, d)| first_missing(d).map(|top| (d.clone(), top)))
        .collect();
    let result = restore_into(plan, node, &members).await;
    if result.is_err() {
        for (dir, top) in &made {
            remove_empty_dirs(dir, top);
        }
    }
    result
}

/// The topmost ancestor of `dir` (itself included) that does not exist.
fn first_missing(dir: &Path) -> Option<PathBuf> {
    let mut top = None;
    for a in dir.ancestors() {
        if a.as_os_str().is_empty() || a.exists() {
            break;
        }
        top = Some(a.to_path_buf());
    }
    top
}

/// Removes `dir` and its parents up to `top`, while they are empty.
fn remove_empty_dirs(dir: &Path, top: &Path) {
    for a in dir.ancestors() {
        if std::fs::remove_dir(a).is_err() || a == top {
            break;
        }
    }
}

async fn restore_into(
    plan: &Plan,
    node: &NodeFacts,
    members: &BTreeMap<NodeId, MetaNode>,
) -> Result<Report, RestoreError> {
    // The verified DB is made inside the first data dir (the same
    // filesystem as its state.db, writable: its parent may be neither,
    // as `/` is for `--data-dir /data`). Its name is one only temp copies
    // have (never state.db or raft-log.db, so it never makes the dir look
    // in use), removed on every path here and, after a crash, when the
    // meta-server opens the dir.
    let (first_id, first) = &plan.seed[0];
    std::fs::create_dir_all(first)?;
    let nonce: u32 = rand::random();
    let temp = TempFile::new(first.join(format!("{RESTORE_TEMP_PREFIX}{nonce:08x}.db")));
    let header = format::verify_into(&plan.backup, temp.path()).await?;
    let now = now_ms();
    let adjusted = adjust::adjust(temp.path(), &header, node, plan.accept_older, now).await?;

    // The other dirs get copies; the first one the temp DB itself, last.
    let mut written: Vec<&Path> = Vec::new();
    let mut seeded = Ok(());
    for (id, dir) in plan.seed.iter().skip(1) {
        written.push(dir);
        seeded = seed_one(temp.path(), dir, *id, members, false).await;
        if seeded.is_err() {
            break;
        }
    }
    if seeded.is_ok() {
        written.push(first);
        seeded = seed_one(temp.path(), first, *first_id, members, true).await;
    }
    if let Err(e) = seeded {
        // Whatever this restore wrote goes; nothing else was there.
        for d in &written {
            remove_seeded(d);
        }
        return Err(e);
    }
    drop(temp);
    tracing::info!(
        index = header.raft_index,
        members = members.len(),
        rewrapped = adjusted.rewrapped,
        accepted_older = adjusted.accepted_older.len(),
        "restored the meta tier from a backup"
    );
    Ok(Report {
        header,
        accepted_older: adjusted.accepted_older,
        rewrapped: adjusted.rewrapped,
        restored_at_ms: now,
    })
}

/// Makes `db` the state.db of `dir` (a copy, or `db` itself moved there
/// when it is in that dir already) and seeds the dir.
async fn seed_one(
    db: &Path,
    dir: &Path,
    id: NodeId,
    members: &BTreeMap<NodeId, MetaNode>,
    move_it: bool,
) -> Result<(), RestoreError> {
    std::fs::create_dir_all(dir)?;
    let (from, to) = (db.to_path_buf(), dir.join(STATE_DB));
    tokio::task::spawn_blocking(move || place_durably(&from, &to, move_it))
        .await
        .map_err(|e| RestoreError::Io(std::io::Error::other(e.to_string())))??;
    reseed::seed(dir, id, members).await?;
    Ok(())
}

/// Copies (or renames) a file and makes it durable (the file, then its
/// directory).
fn place_durably(from: &Path, to: &Path, move_it: bool) -> std::io::Result<()> {
    if move_it {
        std::fs::rename(from, to)?;
    } else {
        std::fs::copy(from, to)?;
    }
    std::fs::File::open(to)?.sync_all()?;
    if let Some(dir) = to.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Removes what seeding writes in a data dir (after a failed restore).
fn remove_seeded(dir: &Path) {
    format::remove_db(&dir.join(STATE_DB));
    format::remove_db(&dir.join(RAFT_LOG_DB));
}
