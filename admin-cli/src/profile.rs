//! `hamster profile set K+M | default`: the cluster's erasure profile for
//! new objects, held by the meta tier; gateways pick it up within seconds.
//! Objects already stored keep the profile they were written with.

use anyhow::Context;
use hamster_proto::pb::{SetProfileRequest, admin_client::AdminClient};

use crate::conn::MetaConn;

#[derive(Debug, clap::Subcommand)]
pub enum ProfileCommand {
    /// Use K data + M parity shards for new objects (e.g. 4+2).
    Set(SetArgs),
    /// Back to the default that follows the number of blob-servers.
    Default(DefaultArgs),
}

#[derive(Debug, clap::Args)]
pub struct SetArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    /// K+M, e.g. 4+2.
    pub profile: String,
}

#[derive(Debug, clap::Args)]
pub struct DefaultArgs {
    #[command(flatten)]
    pub meta: MetaConn,
}

fn parse(s: &str) -> anyhow::Result<(u32, u32)> {
    let (k, m) = s.split_once('+').context("expected K+M, e.g. 4+2")?;
    Ok((
        k.trim().parse().context("K")?,
        m.trim().parse().context("M")?,
    ))
}

pub async fn run(cmd: &ProfileCommand) -> anyhow::Result<()> {
    let (meta, (k, m)) = match cmd {
        ProfileCommand::Set(a) => {
            let (k, m) = parse(&a.profile)?;
            anyhow::ensure!(k >= 1, "K must be at least 1");
            (&a.meta, (k, m))
        }
        ProfileCommand::Default(a) => (&a.meta, (0, 0)),
    };
    AdminClient::new(meta.channel()?)
        .set_profile(SetProfileRequest {
            data_shards: k,
            parity_shards: m,
        })
        .await
        .context("set profile")?;
    if k == 0 {
        println!("new objects use the default profile for the number of blob-servers");
    } else {
        println!("new objects use {k}+{m}");
    }
    Ok(())
}
