//! `hamster cert request` (on the node: make a key and a CSR) and
//! `hamster cert sign` (beside the CA key: turn a CSR into a certificate).
//! The node's private key never leaves the machine that ran `request`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use hamster_proto::pki::{self, CertAuthority, ExtraNames, Validity};
use hamster_proto::secrets::{write_private, write_public};
use hamster_proto::{PeerIdentity, Role};

use crate::init::{CA_CERT, CA_KEY};

#[derive(Debug, clap::Subcommand)]
pub enum CertCommand {
    /// Generate this node's private key (0600) and a CSR for its identity.
    Request(RequestArgs),
    /// Sign a CSR with the CA key, for the role and id given here.
    Sign(SignArgs),
}

#[derive(Debug, clap::Args)]
pub struct RequestArgs {
    #[arg(long)]
    pub role: Role,
    #[arg(long)]
    pub id: String,
    /// Where to write the new private key (must not exist).
    #[arg(long)]
    pub key_out: PathBuf,
    /// Where to write the CSR (must not exist).
    #[arg(long)]
    pub csr_out: PathBuf,
    /// Extra DNS names for the certificate (for S3 clients over HTTPS).
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// Extra IP addresses for the certificate.
    #[arg(long = "ip")]
    pub ips: Vec<IpAddr>,
}

#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// Directory holding ca.crt and ca.key (as written by `hamster init`;
    /// on compose the `ca` volume, HAMSTER_CA_DIR=/ca in meta containers).
    #[arg(long, env = "HAMSTER_CA_DIR")]
    pub ca_dir: PathBuf,
    /// Sign with the CA of this fingerprint (or its first 8+ hex digits)
    /// in --ca-dir, e.g. one `hamster rotate-ca` minted (default: ca.crt).
    #[arg(long)]
    pub ca: Option<String>,
    #[arg(long)]
    pub csr: PathBuf,
    /// Role the certificate grants; the CSR may not ask for another.
    #[arg(long)]
    pub role: Role,
    /// Node id the certificate grants; the CSR may not ask for another.
    #[arg(long)]
    pub id: String,
    /// Where to write the certificate (must not exist).
    #[arg(long)]
    pub out: PathBuf,
    /// Lifetime in days.
    #[arg(long, default_value_t = 365)]
    pub days: u64,
}

pub fn run(cmd: &CertCommand) -> anyhow::Result<()> {
    match cmd {
        CertCommand::Request(a) => request(a),
        CertCommand::Sign(a) => sign(a),
    }
}

/// A node's key, CSR and certificate in `dir` (node.key, node.crt,
/// trust.pem), signed with the CA in `ca_dir`: `cert request` and `cert
/// sign` in one step, for `hamster dev` (all on one machine anyway).
pub fn provision_node(
    ca_dir: &std::path::Path,
    role: Role,
    id: &str,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let identity = PeerIdentity::new(role, id)?;
    let (csr, key) = pki::generate_csr(&identity, &ExtraNames::default())?;
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
    };
    let ca = CertAuthority::from_pem(&read(ca_dir.join(CA_CERT))?, &read(ca_dir.join(CA_KEY))?)?;
    let cert = ca.sign_csr(&csr, &identity, Validity::starting_now(pki::LEAF_VALIDITY))?;
    write_private(&dir.join("node.key"), key.as_bytes())?;
    write_public(&dir.join("node.crt"), cert.as_bytes())?;
    write_public(
        &dir.join("trust.pem"),
        read(ca_dir.join(crate::init::TRUST))?.as_bytes(),
    )?;
    Ok(())
}

fn request(a: &RequestArgs) -> anyhow::Result<()> {
    let identity = PeerIdentity::new(a.role, &a.id)?;
    let extra = ExtraNames {
        dns: a.dns.clone(),
        ips: a.ips.clone(),
    };
    let (csr, key) = pki::generate_csr(&identity, &extra)?;
    write_private(&a.key_out, key.as_bytes())?;
    write_public(&a.csr_out, csr.as_bytes())?;
    println!(
        "key {} (0600), CSR {} for {}",
        a.key_out.display(),
        a.csr_out.display(),
        identity.uri()
    );
    Ok(())
}

fn sign(a: &SignArgs) -> anyhow::Result<()> {
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
    };
    let ca = match &a.ca {
        Some(fp) => pki::authority_in_dir(&a.ca_dir, fp).with_context(|| {
            format!(
                "no CA with fingerprint {fp} and its key in {}",
                a.ca_dir.display()
            )
        })?,
        None => CertAuthority::from_pem(
            &read(a.ca_dir.join(CA_CERT))?,
            &read(a.ca_dir.join(CA_KEY))?,
        )?,
    };
    let identity = PeerIdentity::new(a.role, &a.id)?;
    let lifetime = Duration::from_secs(a.days.saturating_mul(24 * 3600));
    let cert = ca.sign_csr(
        &read(a.csr.clone())?,
        &identity,
        Validity::starting_now(lifetime),
    )?;
    write_public(&a.out, cert.as_bytes())?;
    println!(
        "signed {} for {} ({} days)",
        a.out.display(),
        identity.uri(),
        a.days
    );
    Ok(())
}
