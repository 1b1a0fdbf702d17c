//! `hamster bucket list`: every bucket, asked for a page at a time (the
//! meta tier answers at most 10000 per call) until none follow.

use hamster_proto::pb::{Bucket, ListBucketsRequest, admin_client::AdminClient};

use super::{bucket_json, default_retention, owner_label, refused};
use crate::conn::MetaConn;

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    /// Only buckets whose name starts with this.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(a: &ListArgs) -> anyhow::Result<()> {
    let buckets = all(&a.meta, &a.prefix).await?;
    if a.json {
        let rows: Vec<_> = buckets.iter().map(bucket_json).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<40} {:<10} {:<5} {:<24} {:<13} DEFAULT RETENTION",
        "NAME", "VERSIONING", "LOCK", "OWNER", "MAX RETENTION"
    );
    for b in &buckets {
        let versioning = if b.versioning.is_empty() {
            "-"
        } else {
            &b.versioning
        };
        let lock = if b.object_lock_enabled { "yes" } else { "no" };
        let max = format!("{}d", b.max_retention_days);
        println!(
            "{:<40} {versioning:<10} {lock:<5} {:<24} {max:<13} {}",
            b.name,
            owner_label(b),
            default_retention(b)
        );
    }
    Ok(())
}

/// Every bucket (admins see all), following continuation tokens.
async fn all(meta: &MetaConn, prefix: &str) -> anyhow::Result<Vec<Bucket>> {
    let mut client = AdminClient::new(meta.channel()?);
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let r = client
            .list_buckets(ListBucketsRequest {
                // Empty: the admin certificate is the actor; it sees all.
                access_key_id: String::new(),
                prefix: prefix.to_string(),
                continuation_token: token.clone(),
                max_buckets: 0,
            })
            .await
            .map_err(refused("list buckets".into()))?
            .into_inner();
        out.extend(r.buckets);
        if r.next_continuation_token.is_empty() {
            return Ok(out);
        }
        // Names only grow page to page; a token that does not would loop.
        anyhow::ensure!(
            r.next_continuation_token > token,
            "list buckets: the meta tier answered continuation token {:?} after {token:?}",
            r.next_continuation_token
        );
        token = r.next_continuation_token;
    }
}
