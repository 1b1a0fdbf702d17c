//! `hamster init --dir DIR`: everything a new cluster starts from.
//!
//! DIR/ca.crt, ca.key      the cluster CA (key 0600; it stays here)
//! DIR/trust.pem           the trust bundle nodes load (the CA certificate)
//! DIR/admin.crt, admin.key the operator's certificate (role admin)
//! DIR/master.key          32 random bytes, the master key (0600)
//!
//! Secrets are written to files only; the command prints their paths and
//! fingerprints, never their contents.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hamster_proto::pki::{self, CertAuthority, ExtraNames, Validity};
use hamster_proto::secrets::{MasterKey, write_private, write_public};
use hamster_proto::{PeerIdentity, Role};

/// File names inside an init directory, shared with the other commands.
pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const TRUST: &str = "trust.pem";
pub const ADMIN_CERT: &str = "admin.crt";
pub const ADMIN_KEY: &str = "admin.key";
pub const MASTER_KEY: &str = "master.key";

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Directory to write into (created if missing; must not hold a cluster yet).
    #[arg(long, env = "HAMSTER_DIR")]
    pub dir: PathBuf,
    /// Id in the admin certificate (hamster://admin/ID).
    #[arg(long, default_value = "admin")]
    pub admin_id: String,
}

pub fn run(args: &InitArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in [CA_CERT, CA_KEY, TRUST, ADMIN_CERT, ADMIN_KEY, MASTER_KEY] {
        if dir.join(name).exists() {
            bail!(
                "{} already exists: {} holds a cluster; refusing to overwrite",
                dir.join(name).display(),
                dir.display()
            );
        }
    }
    let admin = PeerIdentity::new(Role::Admin, &args.admin_id)?;

    let ca_pair = pki::generate_ca("1", Validity::starting_now(pki::CA_VALIDITY))?;
    let ca = CertAuthority::from_pem(&ca_pair.cert_pem, &ca_pair.key_pem)?;
    let admin_pair = ca.issue_with_new_key(
        &admin,
        &ExtraNames::default(),
        Validity::starting_now(pki::LEAF_VALIDITY),
    )?;
    let kek = MasterKey::generate();

    write_private(&dir.join(CA_KEY), ca_pair.key_pem.as_bytes())?;
    write_public(&dir.join(CA_CERT), ca_pair.cert_pem.as_bytes())?;
    write_public(&dir.join(TRUST), ca_pair.cert_pem.as_bytes())?;
    write_private(&dir.join(ADMIN_KEY), admin_pair.key_pem.as_bytes())?;
    write_public(&dir.join(ADMIN_CERT), admin_pair.cert_pem.as_bytes())?;
    kek.write_new(&dir.join(MASTER_KEY))?;
    sync_dir(dir)?;

    let p = |n: &str| dir.join(n).display().to_string();
    println!("Initialized a Hamster cluster in {}", dir.display());
    println!(
        "  CA certificate   {}  sha256:{}",
        p(CA_CERT),
        pki::cert_fingerprint(ca.cert_der())
    );
    println!(
        "  CA key           {}  (0600; keep it off the nodes)",
        p(CA_KEY)
    );
    println!("  trust bundle     {}", p(TRUST));
    println!("  admin identity   {}  {}", p(ADMIN_CERT), admin.uri());
    println!(
        "  master key       {}  fingerprint {}",
        p(MASTER_KEY),
        kek.fingerprint()
    );
    println!("  S3 access keys: `hamster key create` once the meta tier runs");
    Ok(())
}

/// Makes the new directory entries durable.
pub fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync {}", dir.display()))
}
