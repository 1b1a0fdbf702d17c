//! `hamster key create|list|delete`: S3 access keys. A meta-server makes
//! the secret, stores it sealed under the master key, and hands it back
//! once (ADR 0007); it is printed (or written to --out) and never again.
//! A key reaches only buckets it owns or is granted on (ADR 0027), and
//! creates buckets only if made with `--can-create-bucket` (true, the
//! default; `--can-create-bucket false` makes a key that only uses
//! buckets it is granted).

use std::path::PathBuf;

use hamster_proto::pb::{
    CreateAccessKeyRequest, DeleteAccessKeyRequest, ListAccessKeysRequest,
    admin_client::AdminClient,
};
use hamster_proto::secrets::write_private;

use crate::conn::MetaConn;

#[derive(Debug, clap::Subcommand)]
pub enum KeyCommand {
    /// Create an access key; its secret is shown once.
    Create(CreateArgs),
    /// List access keys (ids and names, never secrets).
    List(ListArgs),
    /// Delete an access key; requests signed with it are refused.
    Delete(DeleteArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    /// A label for the key (S3's DisplayName; `--name` is the same).
    #[arg(value_name = "NAME", conflicts_with = "name")]
    pub label: Option<String>,
    /// A label for the key.
    #[arg(long, default_value = "")]
    pub name: String,
    /// Whether the key may create buckets (it owns those it creates).
    /// The bare flag means true; give NAME before it (a word right after
    /// the bare flag is read as its value).
    #[arg(
        long,
        value_name = "true|false",
        num_args = 0..=1,
        default_value = "true",
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub can_create_bucket: bool,
    /// Write {"access_key_id", "secret_access_key"} to this file (0600)
    /// instead of printing the secret.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub use crate::conn::ListArgs;

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    pub access_key_id: String,
}

pub async fn run(cmd: &KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Create(a) => {
            let r = AdminClient::new(a.meta.channel()?)
                .create_access_key(CreateAccessKeyRequest {
                    name: a.label.clone().unwrap_or_else(|| a.name.clone()),
                    can_create_bucket: Some(a.can_create_bucket),
                })
                .await
                .map_err(|s| anyhow::anyhow!("create access key: {}", s.message()))?
                .into_inner();
            let id = r.key.map(|k| k.access_key_id).unwrap_or_default();
            let secret = zeroize::Zeroizing::new(r.secret_access_key);
            match &a.out {
                Some(path) => {
                    let json = zeroize::Zeroizing::new(serde_json::to_string_pretty(
                        &serde_json::json!({
                            "access_key_id": id,
                            "secret_access_key": secret.as_str(),
                        }),
                    )?);
                    write_private(path, json.as_bytes())?;
                    println!("access key {id}: secret written to {}", path.display());
                }
                None => {
                    println!("AWS_ACCESS_KEY_ID={id}");
                    println!("AWS_SECRET_ACCESS_KEY={}", secret.as_str());
                    eprintln!("The secret is shown only this once.");
                }
            }
        }
        KeyCommand::List(a) => {
            let keys = AdminClient::new(a.meta.channel()?)
                .list_access_keys(ListAccessKeysRequest {})
                .await
                .map_err(|s| anyhow::anyhow!("list access keys: {}", s.message()))?
                .into_inner()
                .keys;
            if a.json {
                let v: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "access_key_id": k.access_key_id,
                            "name": k.name,
                            "created_at_ms": k.created_at_ms,
                            "enabled": k.enabled,
                            "can_create_bucket": k.can_create_bucket,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let yes = |b: bool| if b { "yes" } else { "no" };
                println!(
                    "{:<24} {:<8} {:<15} NAME",
                    "ACCESS KEY ID", "ENABLED", "CREATE BUCKETS"
                );
                for k in keys {
                    println!(
                        "{:<24} {:<8} {:<15} {}",
                        k.access_key_id,
                        yes(k.enabled),
                        yes(k.can_create_bucket),
                        k.name
                    );
                }
            }
        }
        KeyCommand::Delete(a) => {
            AdminClient::new(a.meta.channel()?)
                .delete_access_key(DeleteAccessKeyRequest {
                    access_key_id: a.access_key_id.clone(),
                })
                .await
                .map_err(|s| anyhow::anyhow!("delete access key: {}", s.message()))?;
            println!("deleted access key {}", a.access_key_id);
        }
    }
    Ok(())
}
