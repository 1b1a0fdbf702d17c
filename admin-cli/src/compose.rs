//! `hamster compose init|bootstrap`: the one-shot steps of compose.yaml,
//! each one command because the images hold no shell. Both are
//! idempotent: a second `up` keeps what the first made.
//!
//! - `init` (before anything runs): the cluster PKI and master key in
//!   `--pki`, an identity per meta-server, and a copy of the master key
//!   alone in `--master` (the only file gateways see).
//! - `bootstrap` (once the meta tier is healthy): join tokens for
//!   blob-servers and gateways in `--tokens` (many uses, a long life: the
//!   services scale with them), and the first S3 access key; prints the
//!   S3 credentials.

use std::path::PathBuf;

use anyhow::Context;
use hamster_proto::Role;
use hamster_proto::pb::{self, admin_client::AdminClient};
use hamster_proto::secrets::write_private;

use crate::cert::provision_node;
use crate::conn::AdminConn;
use crate::init::{ADMIN_CERT, ADMIN_KEY, InitArgs, MASTER_KEY, TRUST};

#[derive(Debug, clap::Subcommand)]
pub enum ComposeCommand {
    Init(InitStep),
    Bootstrap(BootstrapStep),
}

#[derive(Debug, clap::Args)]
pub struct InitStep {
    #[arg(long)]
    pub pki: PathBuf,
    #[arg(long)]
    pub master: PathBuf,
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
        ComposeCommand::Init(a) => init(a),
        ComposeCommand::Bootstrap(a) => bootstrap(a).await,
    }
}

fn init(a: &InitStep) -> anyhow::Result<()> {
    if !a.pki.join(MASTER_KEY).exists() {
        crate::init::run(&InitArgs {
            dir: a.pki.clone(),
            admin_id: "admin".into(),
        })?;
    }
    for i in 1..=a.metas {
        let dir = a.pki.join("nodes").join(format!("meta-{i}"));
        if !dir.join("node.crt").exists() {
            provision_node(&a.pki, Role::Meta, &format!("meta-{i}"), &dir)?;
        }
    }
    std::fs::create_dir_all(&a.master)?;
    if !a.master.join(MASTER_KEY).exists() {
        let key = std::fs::read(a.pki.join(MASTER_KEY)).context("master key")?;
        write_private(&a.master.join(MASTER_KEY), &key)?;
    }
    println!("cluster PKI ready in {}", a.pki.display());
    Ok(())
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
