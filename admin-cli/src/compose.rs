//! `hamster compose ...`: the one-shot steps of compose.yaml, each one
//! command because the images hold no shell. All are idempotent: a
//! second `up` keeps what the first made.
//!
//! - `init` (before anything runs): the cluster PKI in `--pki`, the CA in
//!   `--ca` (the meta-servers' writable CA directory, where `rotate-ca`
//!   mints), each meta-server's certificate, key and trust file in its
//!   own writable `--node-tls` directory (renewed and rewritten there by
//!   the node), and the master key in `--master` only (the PKI keeps no
//!   copy, so a rotated-out key lives nowhere once dropped) ([`init`]).
//! - `bootstrap` (once the meta tier is healthy): join tokens for
//!   blob-servers and gateways in `--tokens` (many uses, a long life: the
//!   services scale with them), and the first S3 access key; prints the
//!   S3 credentials.
//! - `next-key`, `wait-keys`, `promote-key`, `drop-old-key`: the
//!   master-key rotation steps docker/rotate-key.sh runs ([`keys`]).

mod init;
mod keys;

use std::path::PathBuf;

use anyhow::Context;
use hamster_proto::pb::{self, admin_client::AdminClient};
use hamster_proto::secrets::write_private;

use crate::conn::AdminConn;
use crate::init::{ADMIN_CERT, ADMIN_KEY, TRUST};

#[derive(Debug, clap::Subcommand)]
pub enum ComposeCommand {
    Init(InitStep),
    Bootstrap(BootstrapStep),
    /// Write `master.next.key` in `--master` (kept if already there).
    NextKey(keys::MasterDir),
    /// Wait until every live key holder reports the next or current key.
    WaitKeys(keys::WaitKeys),
    /// `master.next.key` becomes `master.key`; the old one `master.old.key`
    /// (only once the cluster's key rotation to it has closed).
    PromoteKey(keys::Checked),
    /// Remove `master.old.key` (only once every live holder holds the
    /// current key and nothing is left on the old one).
    DropOldKey(keys::Checked),
}

#[derive(Debug, clap::Args)]
pub struct InitStep {
    #[arg(long)]
    pub pki: PathBuf,
    /// The CA directory (ca.crt, ca.key, minted ca-<fp>.*), moved here
    /// from `--pki` if there (default: `--pki`).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    #[arg(long)]
    pub master: PathBuf,
    /// Each meta-server's TLS files go to DIR/meta-N (default:
    /// `--pki`/nodes/meta-N).
    #[arg(long)]
    pub node_tls: Option<PathBuf>,
    #[arg(long, default_value_t = 3)]
    pub metas: u16,
}

#[derive(Debug, clap::Args)]
pub struct BootstrapStep {
    #[arg(long)]
    pub pki: PathBuf,
    #[arg(long)]
    pub tokens: PathBuf,
    /// Meta-servers (host:port, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub meta: Vec<String>,
    /// Uses of each join token.
    #[arg(long, default_value_t = 1000)]
    pub uses: u32,
    /// Life of each join token, seconds (default 365 days).
    #[arg(long, default_value_t = 365 * 24 * 3600)]
    pub ttl_secs: u64,
}

pub async fn run(cmd: &ComposeCommand) -> anyhow::Result<()> {
    match cmd {
        ComposeCommand::Init(a) => init::init(a),
        ComposeCommand::Bootstrap(a) => bootstrap(a).await,
        ComposeCommand::NextKey(a) => keys::next_key(a),
        ComposeCommand::WaitKeys(a) => keys::wait(a).await,
        ComposeCommand::PromoteKey(a) => keys::promote(a).await,
        ComposeCommand::DropOldKey(a) => keys::drop_old(a).await,
    }
}

async fn bootstrap(a: &BootstrapStep) -> anyhow::Result<()> {
    let admin = AdminConn {
        admin_cert: a.pki.join(ADMIN_CERT),
        admin_key: a.pki.join(ADMIN_KEY),
        trust: a.pki.join(TRUST),
    };
    let meta = a.meta.first().context("--meta")?;
    let channel = admin.channel(meta)?;
    std::fs::create_dir_all(&a.tokens)?;
    for role in ["blob", "gateway"] {
        let path = a.tokens.join(format!("{role}.token"));
        if path.exists() {
            continue;
        }
        let token = AdminClient::new(channel.clone())
            .create_join_token(pb::CreateJoinTokenRequest {
                role: role.into(),
                uses: a.uses,
                ttl_secs: a.ttl_secs,
            })
            .await
            .with_context(|| format!("creating the {role} join token"))?
            .into_inner()
            .token;
        write_private(&path, token.as_bytes())?;
    }
    let key_file = a.pki.join("access-key.json");
    if !key_file.exists() {
        let r = AdminClient::new(channel)
            .create_access_key(pb::CreateAccessKeyRequest {
                name: "compose".into(),
                // Absent: it may create buckets (ADR 0027).
                can_create_bucket: None,
            })
            .await
            .context("creating the first access key")?
            .into_inner();
        let json = serde_json::json!({
            "access_key_id": r.key.map(|k| k.access_key_id).unwrap_or_default(),
            "secret_access_key": r.secret_access_key,
        });
        write_private(&key_file, serde_json::to_string_pretty(&json)?.as_bytes())?;
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&key_file)?)?;
    println!(
        "export AWS_ACCESS_KEY_ID={}",
        v["access_key_id"].as_str().unwrap_or_default()
    );
    println!(
        "export AWS_SECRET_ACCESS_KEY={}",
        v["secret_access_key"].as_str().unwrap_or_default()
    );
    println!("export AWS_DEFAULT_REGION=us-east-1");
    Ok(())
}
