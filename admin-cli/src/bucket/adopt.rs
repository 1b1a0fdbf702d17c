//! `hamster bucket adopt [--owner KEY]`: gives every bucket that has no
//! owner one — after an upgrade from before owners existed, or after the
//! key that owned them was deleted (ADR 0027). Without `--owner` the
//! meta tier picks the cluster's only access key (the one that must have
//! created them) and refuses when there are several. Buckets that have
//! an owner are left alone.

use hamster_proto::pb::{AdoptBucketsRequest, AdoptBucketsResponse, admin_client::AdminClient};

use super::refused;
use crate::conn::MetaConn;

#[derive(Debug, clap::Args)]
pub struct AdoptArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    /// The access key to own them (default: the cluster's only key).
    #[arg(long, value_name = "KEY")]
    pub owner: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(a: &AdoptArgs) -> anyhow::Result<()> {
    let r = AdminClient::new(a.meta.channel()?)
        .adopt_buckets(AdoptBucketsRequest {
            owner: a.owner.clone().unwrap_or_default(),
        })
        .await
        .map_err(refused("bucket adopt".into()))?
        .into_inner();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&json(&r))?);
    } else {
        print!("{}", text(&r));
    }
    Ok(())
}

/// `{"owner": KEY, "buckets": [...]}`; owner null if no bucket got one.
pub fn json(r: &AdoptBucketsResponse) -> serde_json::Value {
    serde_json::json!({
        "owner": (!r.owner.is_empty()).then_some(&r.owner),
        "buckets": r.buckets,
    })
}

pub fn text(r: &AdoptBucketsResponse) -> String {
    if r.buckets.is_empty() {
        return "no bucket without an owner\n".into();
    }
    let mut out = String::new();
    for b in &r.buckets {
        out.push_str(&format!("bucket {b}: owner {}\n", r.owner));
    }
    out
}
