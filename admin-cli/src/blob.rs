//! `hamster blob list|drain|undrain|remove|replace|rebalance`: a
//! blob-server's life (ADR 0025).
//!
//! - [`list`]: every server registered (removed ones too), its state,
//!   shards named and stored, free space, heartbeat; and the balance.
//! - [`drain`]: `drain` and `replace` — the meta leader moves a server's
//!   shards away (onto one named server, for `replace`); the command
//!   follows until no map names it and its store is empty.
//! - [`remove`]: `remove` (retire for good) and `undrain` (cancel).
//! - [`rebalance`]: wake the mover and follow it until every server is
//!   within the band.
//!
//! Every command asks the meta tier only; a refusal prints the meta
//! tier's message and exits 1, a follow that runs out of time exits 2.

mod drain;
mod list;
mod rebalance;
mod remove;

use std::time::Duration;

use crate::conn::Channel;
use hamster_proto::pb::{
    ListBlobServersRequest, ListBlobServersResponse, admin_client::AdminClient,
};

pub use list::{balance_json, balance_line, blob_json, human_bytes, table};

use crate::Exit;
use crate::conn::MetaConn;

#[derive(Debug, clap::Subcommand)]
pub enum BlobCommand {
    /// Every blob-server: state, shards named and stored, free space,
    /// last heartbeat; then how evenly they are filled.
    List(list::ListArgs),
    /// Move every shard off a server (it takes no new ones), then wait
    /// until it is empty.
    Drain(drain::DrainArgs),
    /// Cancel a drain: the server takes new shards again.
    Undrain(remove::UndrainArgs),
    /// Retire a server for good: its id and certificate are refused from
    /// then on.
    Remove(remove::RemoveArgs),
    /// Drain OLD onto NEW only (a disk or machine swap); remove OLD after.
    Replace(drain::ReplaceArgs),
    /// Wake the rebalancer and follow it until every server is within
    /// the band.
    Rebalance(rebalance::RebalanceArgs),
}

pub async fn run(cmd: &BlobCommand) -> anyhow::Result<()> {
    match cmd {
        BlobCommand::List(a) => list::run(a).await,
        BlobCommand::Drain(a) => drain::run_drain(a).await,
        BlobCommand::Undrain(a) => remove::run_undrain(a).await,
        BlobCommand::Remove(a) => remove::run_remove(a).await,
        BlobCommand::Replace(a) => drain::run_replace(a).await,
        BlobCommand::Rebalance(a) => rebalance::run(a).await,
    }
}

#[derive(Debug, clap::Args)]
pub struct FollowArgs {
    /// Print one JSON object at the end instead of text.
    #[arg(long)]
    pub json: bool,
    /// Start it and return without following it.
    #[arg(long)]
    pub no_wait: bool,
    /// Stop following (exit 2) after this long; the work goes on.
    #[arg(long, default_value_t = 86_400)]
    pub timeout_secs: u64,
}

/// How long one call may take (a meta-server without a leader waits up
/// to its `--call-wait-ms` before it answers Unavailable).
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Without a terminal, a progress line this often.
const LINE_EVERY: Duration = Duration::from_secs(10);

/// One admin call on the first meta-server that answers it: one that
/// cannot be reached or has no leader passes it to the next; a refusal
/// is final. The outer error is local (certificates); the inner one is
/// the meta tier's answer.
async fn call<T>(
    meta: &MetaConn,
    f: impl AsyncFn(AdminClient<Channel>) -> Result<T, tonic::Status>,
) -> anyhow::Result<Result<T, tonic::Status>> {
    let mut last = tonic::Status::unavailable("no meta-server given");
    for addr in &meta.meta {
        let ch = meta.conn.channel(addr)?;
        let answer = match tokio::time::timeout(CALL_TIMEOUT, f(AdminClient::new(ch))).await {
            Ok(a) => a,
            Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                "no answer within {CALL_TIMEOUT:?}"
            ))),
        };
        match answer {
            Ok(v) => return Ok(Ok(v)),
            Err(s) if passes_on(&s) => {
                last = tonic::Status::new(s.code(), format!("{addr}: {}", s.message()));
            }
            Err(s) => return Ok(Err(s)),
        }
    }
    Ok(Err(last))
}

/// Whether another meta-server may answer where this one could not.
fn passes_on(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
    )
}

/// A refused call as the command's failure: the meta tier's words, exit 1.
fn refused(what: &str, s: &tonic::Status) -> anyhow::Error {
    Exit {
        code: 1,
        message: format!("{what} refused: {}", s.message()),
    }
    .into()
}

/// The registry and the balance, for a follow (errors are the meta
/// tier's words, to show and ride out).
async fn servers(meta: &MetaConn) -> anyhow::Result<ListBlobServersResponse> {
    call(meta, async |mut c| {
        c.list_blob_servers(ListBlobServersRequest {})
            .await
            .map(tonic::Response::into_inner)
    })
    .await?
    .map_err(|s| anyhow::anyhow!("{}", s.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unreachable_or_leaderless_meta_server_passes_a_call_on() {
        assert!(passes_on(&tonic::Status::unavailable("connect")));
        assert!(passes_on(&tonic::Status::deadline_exceeded("slow")));
        assert!(!passes_on(&tonic::Status::failed_precondition("in use")));
        assert!(!passes_on(&tonic::Status::not_found("no such blob")));
    }

    #[test]
    fn a_refusal_shows_the_meta_tiers_message_and_exits_1() {
        let e = refused(
            "remove",
            &tonic::Status::failed_precondition("3 shards on blob-server b1 are still named"),
        );
        let x = e.downcast_ref::<Exit>().expect("an Exit");
        assert_eq!(x.code, 1);
        assert_eq!(
            x.message,
            "remove refused: 3 shards on blob-server b1 are still named"
        );
    }
}
