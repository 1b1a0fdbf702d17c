//! `hamster token create`: a join token for a blob-server or gateway
//! (ADR 0015). Single-use and valid for an hour by default; `--uses` and
//! `--ttl-secs` make one for scaling. The token is a secret: it is printed
//! once (or written to --out, 0600) and the meta tier keeps only its hash.

use std::path::PathBuf;

use anyhow::Context;
use hamster_proto::pb::{CreateJoinTokenRequest, admin_client::AdminClient};
use hamster_proto::secrets::write_private;

use crate::conn::MetaConn;

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a join token.
    Create(CreateArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    /// blob or gateway.
    #[arg(long)]
    pub role: String,
    /// How many nodes may join with it.
    #[arg(long, default_value_t = 1)]
    pub uses: u32,
    /// Seconds until it expires.
    #[arg(long, default_value_t = 3600)]
    pub ttl_secs: u64,
    /// Write the token to this file (0600) instead of printing it.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub async fn run(cmd: &TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create(a) => {
            let token = zeroize::Zeroizing::new(
                AdminClient::new(a.meta.channel()?)
                    .create_join_token(CreateJoinTokenRequest {
                        role: a.role.clone(),
                        uses: a.uses,
                        ttl_secs: a.ttl_secs,
                    })
                    .await
                    .context("create join token")?
                    .into_inner()
                    .token,
            );
            match &a.out {
                Some(p) => {
                    write_private(p, format!("{}\n", token.as_str()).as_bytes())?;
                    println!("join token for {} written to {}", a.role, p.display());
                }
                None => println!("{}", token.as_str()),
            }
        }
    }
    Ok(())
}
