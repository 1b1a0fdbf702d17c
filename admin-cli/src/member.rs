//! `hamster member add|remove`: change the meta tier's membership. A new
//! node joins as a learner, catches up, then becomes a voter.

use anyhow::Context;
use hamster_proto::pb::{AddMemberRequest, RemoveMemberRequest, admin_client::AdminClient};

use crate::conn::MetaConn;

#[derive(Debug, clap::Subcommand)]
pub enum MemberCommand {
    /// Add a running meta-server (started without --initial-members).
    Add(AddArgs),
    /// Remove a voter from the meta tier.
    Remove(RemoveArgs),
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    /// The new node's --raft-id.
    #[arg(long)]
    pub raft_id: u64,
    /// The new node's certificate id (hamster://meta/ID).
    #[arg(long)]
    pub node_id: String,
    /// Where peers reach the new node (host:port).
    #[arg(long)]
    pub address: String,
    /// Leave it a learner (no vote).
    #[arg(long)]
    pub learner: bool,
}

#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    #[arg(long)]
    pub raft_id: u64,
}

pub async fn run(cmd: &MemberCommand) -> anyhow::Result<()> {
    match cmd {
        MemberCommand::Add(a) => {
            AdminClient::new(a.meta.channel()?)
                .add_member(AddMemberRequest {
                    raft_id: a.raft_id,
                    node_id: a.node_id.clone(),
                    address: a.address.clone(),
                    as_voter: !a.learner,
                })
                .await
                .context("add member")?;
            println!(
                "added raft id {} ({}) as {}",
                a.raft_id,
                a.node_id,
                if a.learner { "learner" } else { "voter" }
            );
        }
        MemberCommand::Remove(a) => {
            AdminClient::new(a.meta.channel()?)
                .remove_member(RemoveMemberRequest { raft_id: a.raft_id })
                .await
                .context("remove member")?;
            println!("removed raft id {}", a.raft_id);
        }
    }
    Ok(())
}
