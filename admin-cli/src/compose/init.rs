//! `hamster compose init`: the cluster PKI, the CA directory, each
//! meta-server's TLS directory and the master key, made or repaired so
//! that a second `up` keeps what the first made.
//!
//! - The PKI (`--pki`: admin identity, trust file) is made once.
//! - The CA (ca.crt, ca.key and every minted ca-<fp>.*) lives in `--ca`,
//!   the meta-servers' writable CA directory; init moves it there from
//!   `--pki` (older layouts kept it there), copy first, then delete.
//! - Each meta-N gets node.key, trust.pem and node.crt, node.crt renamed
//!   in last: it marks a whole set, so a crash halfway is redone.
//! - The master key leaves `--pki` only once `--master` holds the same.

use std::path::Path;

use anyhow::{Context, bail};
use hamster_proto::pki::{self, CertAuthority, ExtraNames, Validity};
use hamster_proto::secrets::MasterKey;
use hamster_proto::trust_sync::replace_file;
use hamster_proto::{PeerIdentity, Role};

use super::InitStep;
use crate::init::{CA_CERT, CA_KEY, InitArgs, MASTER_KEY, TRUST, sync_dir};

const NODE_FILES: [(&str, u32); 3] = [
    ("node.key", 0o600),
    ("trust.pem", 0o644),
    ("node.crt", 0o644),
];

pub fn init(a: &InitStep) -> anyhow::Result<()> {
    let ca_dir = a.ca.clone().unwrap_or_else(|| a.pki.clone());
    // The trust file marks a made PKI: the CA and the master key leave it.
    if !a.pki.join(TRUST).exists() && !ca_dir.join(CA_CERT).exists() {
        crate::init::run(&InitArgs {
            dir: a.pki.clone(),
            admin_id: "admin".into(),
        })?;
    }
    if ca_dir != a.pki {
        move_ca(&a.pki, &ca_dir)?;
    }
    for i in 1..=a.metas {
        let name = format!("meta-{i}");
        let old = a.pki.join("nodes").join(&name);
        let dir = match &a.node_tls {
            Some(d) => d.join(&name),
            None => old.clone(),
        };
        // Never over a node's own files: after a CA rotation they are
        // newer than anything this CA could sign.
        if !dir.join("node.crt").exists() {
            if dir != old && old.join("node.crt").exists() {
                copy_node(&old, &dir)?;
            } else {
                provision(&ca_dir, &a.pki, &name, &dir)?;
            }
        }
        if dir != old && old.exists() {
            std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
        }
    }
    if a.pki.join("nodes").exists() && a.node_tls.is_some() {
        let _ = std::fs::remove_dir(a.pki.join("nodes"));
    }
    master_key(&a.pki, &a.master)?;
    println!(
        "cluster PKI ready in {} (CA in {})",
        a.pki.display(),
        ca_dir.display()
    );
    Ok(())
}

fn is_ca_file(name: &str) -> bool {
    name == CA_CERT
        || name == CA_KEY
        || (name.starts_with("ca-") && (name.ends_with(".crt") || name.ends_with(".key")))
}

/// Every CA file of `pki` into `ca`: copied (temp, rename, fsync), then
/// removed from `pki`. A file already in `ca` must be the same.
fn move_ca(pki: &Path, ca: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(ca)?;
    let mut moved = Vec::new();
    for e in std::fs::read_dir(pki)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !is_ca_file(&name) || !e.path().is_file() {
            continue;
        }
        let bytes = std::fs::read(e.path())?;
        let dest = ca.join(&name);
        match std::fs::read(&dest) {
            Ok(there) if there == bytes => {}
            Ok(_) => bail!(
                "{} and {} differ: one CA directory holds another CA; \
                 keep the right one and remove the other",
                e.path().display(),
                dest.display()
            ),
            Err(_) => {
                let mode = if name.ends_with(".key") { 0o600 } else { 0o644 };
                replace_file(&dest, &bytes, mode)?;
            }
        }
        moved.push(e.path());
    }
    for p in &moved {
        std::fs::remove_file(p).with_context(|| format!("removing {}", p.display()))?;
    }
    if !moved.is_empty() {
        sync_dir(pki)?;
        println!("moved {} CA files to {}", moved.len(), ca.display());
    }
    Ok(())
}

/// A meta-server's files signed by ca.crt, only while it is the issuing
/// CA: once a rotation minted another (ca-<fp>.crt) or the trust file no
/// longer names it, a certificate from it would not be trusted.
fn provision(ca_dir: &Path, pki: &Path, name: &str, dir: &Path) -> anyhow::Result<()> {
    let read =
        |p: &Path| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    let (cert, trust) = (read(&ca_dir.join(CA_CERT))?, read(&pki.join(TRUST))?);
    let trusted: Vec<String> = pki::certs_from_pem(&trust)?
        .iter()
        .map(|c| pki::cert_fingerprint(c))
        .collect();
    let rotated = std::fs::read_dir(ca_dir)?.flatten().any(|e| {
        let n = e.file_name().to_string_lossy().into_owned();
        n.starts_with("ca-") && n.ends_with(".crt")
    });
    let fp = pki::pem_fingerprint(&cert).unwrap_or_default();
    if rotated || !trusted.contains(&fp) {
        bail!(
            "{}/node.crt is missing and {} is no longer the issuing CA (a CA \
             rotation happened): init will not sign {name} with it. Restore \
             that volume, or provision it by hand with `hamster cert request` \
             and `hamster cert sign --ca-dir {} --ca ISSUING-FP` (README, \
             \"Compose: rotate the CA and the master key\")",
            dir.display(),
            ca_dir.join(CA_CERT).display(),
            ca_dir.display()
        );
    }
    let ca = CertAuthority::from_pem(&cert, &read(&ca_dir.join(CA_KEY))?)?;
    let identity = PeerIdentity::new(Role::Meta, name)?;
    let (csr, key) = pki::generate_csr(&identity, &ExtraNames::default())?;
    let crt = ca.sign_csr(&csr, &identity, Validity::starting_now(pki::LEAF_VALIDITY))?;
    write_node(dir, [key.as_bytes(), trust.as_bytes(), crt.as_bytes()])
}

/// An older layout's node files (`--pki`/nodes/meta-N) into `dir`.
fn copy_node(from: &Path, dir: &Path) -> anyhow::Result<()> {
    let mut files = Vec::new();
    for (n, _) in NODE_FILES {
        let p = from.join(n);
        files.push(std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?);
    }
    write_node(dir, [&files[0], &files[1], &files[2]])?;
    println!("moved {} to {}", from.display(), dir.display());
    Ok(())
}

/// node.key, trust.pem, then node.crt, each by temp file and rename
/// (an orphan key of a crashed run is replaced).
fn write_node(dir: &Path, data: [&[u8]; 3]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for ((name, mode), bytes) in NODE_FILES.into_iter().zip(data) {
        replace_file(&dir.join(name), bytes, mode)?;
    }
    Ok(())
}

/// `master/master.key` holds the key; a copy in `pki` (from `hamster
/// init`, or an older compose.yaml) is removed only once `master` holds
/// the same key, durably.
fn master_key(pki: &Path, master: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(master)?;
    let (in_pki, in_master) = (pki.join(MASTER_KEY), master.join(MASTER_KEY));
    if !in_pki.exists() {
        MasterKey::load(&in_master)
            .with_context(|| format!("the master key {}", in_master.display()))?;
        return Ok(());
    }
    let key = MasterKey::load(&in_pki).context("the PKI's master key")?;
    match MasterKey::load(&in_master) {
        Ok(k) if k.fingerprint() == key.fingerprint() => {}
        // Two good but different keys: which one the data needs is not
        // for init to guess.
        Ok(k) => bail!(
            "{} (fingerprint {}) and {} (fingerprint {}) differ: keep the \
             one `hamster status` names as master_key_fingerprint and \
             remove the other",
            in_master.display(),
            k.fingerprint(),
            in_pki.display(),
            key.fingerprint()
        ),
        // Absent or damaged (a crash while it was written).
        Err(_) => {
            replace_file(&in_master, key.expose(), 0o600)?;
            let back = MasterKey::load(&in_master)?;
            anyhow::ensure!(
                back.fingerprint() == key.fingerprint(),
                "{} does not read back as written",
                in_master.display()
            );
        }
    }
    // The `master` volume holds the key from here on (and rotations
    // replace it there): a copy in the PKI would outlive them.
    std::fs::remove_file(&in_pki).context("removing the PKI's master key copy")?;
    sync_dir(pki)?;
    Ok(())
}

#[cfg(test)]
#[path = "init_tests.rs"]
mod tests;
