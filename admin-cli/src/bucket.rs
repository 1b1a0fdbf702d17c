//! `hamster bucket list|delete`: buckets as the meta tier holds them.
//! Deleting is the same command S3's DeleteBucket sends, under the same
//! rules: a bucket that holds any version — locked ones included — or an
//! unfinished upload is refused; there is no force.

use anyhow::Context;
use hamster_proto::pb::{DeleteBucketRequest, ListBucketsRequest, admin_client::AdminClient};

use crate::conn::MetaConn;

#[derive(Debug, clap::Subcommand)]
pub enum BucketCommand {
    /// Every bucket: name, versioning, object lock and default retention.
    List(ListArgs),
    /// Delete an empty bucket.
    Delete(DeleteArgs),
}

pub use crate::conn::ListArgs;

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    pub name: String,
}

pub async fn run(cmd: &BucketCommand) -> anyhow::Result<()> {
    match cmd {
        BucketCommand::List(a) => {
            let r = AdminClient::new(a.meta.channel()?)
                .list_buckets(ListBucketsRequest {})
                .await
                .context("list buckets")?
                .into_inner();
            let rows: Vec<serde_json::Value> = r
                .buckets
                .iter()
                .map(|b| {
                    serde_json::json!({
                        "name": b.name,
                        "versioning": b.versioning,
                        "object_lock": b.object_lock_enabled,
                        "default_retention": (!b.default_lock_mode.is_empty()).then(|| {
                            serde_json::json!({
                                "mode": b.default_lock_mode,
                                "days": b.default_lock_days,
                                "years": b.default_lock_years,
                            })
                        }),
                    })
                })
                .collect();
            if a.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            println!(
                "{:<40} {:<10} {:<5} DEFAULT RETENTION",
                "NAME", "VERSIONING", "LOCK"
            );
            for b in &r.buckets {
                let default = match (b.default_lock_days, b.default_lock_years) {
                    _ if b.default_lock_mode.is_empty() => "-".to_string(),
                    (0, y) => format!("{} {y}y", b.default_lock_mode),
                    (d, _) => format!("{} {d}d", b.default_lock_mode),
                };
                let versioning = if b.versioning.is_empty() {
                    "-"
                } else {
                    &b.versioning
                };
                let lock = if b.object_lock_enabled { "yes" } else { "no" };
                println!("{:<40} {versioning:<10} {lock:<5} {default}", b.name);
            }
            Ok(())
        }
        BucketCommand::Delete(a) => {
            AdminClient::new(a.meta.channel()?)
                .delete_bucket(DeleteBucketRequest {
                    name: a.name.clone(),
                })
                .await
                .with_context(|| format!("delete bucket {}", a.name))?;
            println!("bucket {} deleted", a.name);
            Ok(())
        }
    }
}
