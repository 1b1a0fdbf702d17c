//! The bucket changes an admin makes: create, delete, allow, deny, set,
//! defaults. Each is one Admin call; the meta tier decides and applies
//! it (ADR 0027), so these only shape the request and show the answer.

use hamster_proto::pb::{
    AdminCreateBucketRequest, AllowBucketRequest, Bucket, DeleteBucketRequest, DenyBucketRequest,
    SetBucketDefaultsRequest, SetBucketRequest, admin_client::AdminClient,
};

use super::{owner_label, refused, rights};
use crate::conn::MetaConn;

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    pub name: String,
    /// The access key that owns it (default: none; give it one later with
    /// `hamster bucket set NAME --owner KEY`).
    #[arg(long, value_name = "KEY")]
    pub owner: Option<String>,
    /// Enable object lock (and with it versioning, for good).
    #[arg(long)]
    pub object_lock: bool,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    pub name: String,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("rights").required(true).multiple(true)))]
pub struct AllowArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    pub name: String,
    /// The access key id to give rights to.
    #[arg(long = "key", value_name = "ID")]
    pub key: String,
    /// GET, HEAD and listings.
    #[arg(long, group = "rights")]
    pub read: bool,
    /// PUT, multipart, copy into, DeleteObject of unlocked data.
    #[arg(long, group = "rights")]
    pub write: bool,
    /// Everything, and the bucket's configuration and lock powers
    /// (versioning, lock configuration, retention, legal hold, bypassing
    /// GOVERNANCE, DeleteBucket).
    #[arg(long, group = "rights")]
    pub owner: bool,
}

#[derive(Debug, clap::Args)]
pub struct DenyArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    pub name: String,
    /// The access key id whose rights to take away.
    #[arg(long = "key", value_name = "ID")]
    pub key: String,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true)))]
pub struct SetArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    pub name: String,
    /// Make this access key the bucket's owner.
    #[arg(
        long,
        value_name = "KEY",
        group = "change",
        conflicts_with = "no_owner"
    )]
    pub owner: Option<String>,
    /// Leave the bucket with no owner (only admins and granted keys reach it).
    #[arg(long, group = "change")]
    pub no_owner: bool,
    /// The longest retention a version in it may get; 0: back to the
    /// cluster default (`hamster bucket defaults`).
    #[arg(long, value_name = "N", group = "change")]
    pub max_retention_days: Option<u32>,
}

#[derive(Debug, clap::Args)]
pub struct DefaultsArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    /// The longest retention, in days, for buckets without a limit of
    /// their own. Without it: show the current value.
    #[arg(long, value_name = "N")]
    pub max_retention_days: Option<u32>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn create(a: &CreateArgs) -> anyhow::Result<()> {
    let b = AdminClient::new(a.meta.channel()?)
        .create_bucket(AdminCreateBucketRequest {
            name: a.name.clone(),
            object_lock_enabled: a.object_lock,
            owner: a.owner.clone().unwrap_or_default(),
        })
        .await
        .map_err(refused(format!("bucket create {}", a.name)))?
        .into_inner()
        .bucket
        .unwrap_or_default();
    let lock = if b.object_lock_enabled {
        " with object lock"
    } else {
        ""
    };
    match owner_label(&b).as_str() {
        "-" => println!(
            "bucket {} created{lock}, with no owner yet: `hamster bucket set {} --owner KEY`",
            a.name, a.name
        ),
        owner => println!("bucket {} created{lock}, owned by {owner}", a.name),
    }
    Ok(())
}

pub async fn delete(a: &DeleteArgs) -> anyhow::Result<()> {
    AdminClient::new(a.meta.channel()?)
        .delete_bucket(DeleteBucketRequest {
            name: a.name.clone(),
            // Empty: the admin certificate is the actor.
            access_key_id: String::new(),
        })
        .await
        .map_err(refused(format!("delete bucket {}", a.name)))?;
    println!("bucket {} deleted", a.name);
    Ok(())
}

pub async fn allow(a: &AllowArgs) -> anyhow::Result<()> {
    let g = AdminClient::new(a.meta.channel()?)
        .allow_bucket(AllowBucketRequest {
            bucket: a.name.clone(),
            access_key_id: a.key.clone(),
            read: a.read,
            write: a.write,
            owner: a.owner,
        })
        .await
        .map_err(refused(format!("bucket allow {}", a.name)))?
        .into_inner()
        .grant
        .unwrap_or_default();
    println!("key {} on bucket {}: {}", a.key, a.name, rights(&g));
    Ok(())
}

pub async fn deny(a: &DenyArgs) -> anyhow::Result<()> {
    AdminClient::new(a.meta.channel()?)
        .deny_bucket(DenyBucketRequest {
            bucket: a.name.clone(),
            access_key_id: a.key.clone(),
        })
        .await
        .map_err(refused(format!("bucket deny {}", a.name)))?;
    // Writes are refused at once (the meta tier decides at apply); reads
    // until gateways' cached rights expire.
    println!(
        "key {} has no rights on bucket {} (gateways drop cached rights within 5 s)",
        a.key, a.name
    );
    Ok(())
}

pub async fn set(a: &SetArgs) -> anyhow::Result<()> {
    let owner = match (&a.owner, a.no_owner) {
        (Some(k), _) => Some(k.clone()),
        (None, true) => Some(String::new()),
        (None, false) => None,
    };
    let b = AdminClient::new(a.meta.channel()?)
        .set_bucket(SetBucketRequest {
            name: a.name.clone(),
            owner,
            max_retention_days: a.max_retention_days,
        })
        .await
        .map_err(refused(format!("bucket set {}", a.name)))?
        .into_inner()
        .bucket
        .unwrap_or_default();
    println!("{}", summary(&a.name, &b));
    Ok(())
}

/// What `set` leaves: the owner and the limit now in force.
fn summary(name: &str, b: &Bucket) -> String {
    format!(
        "bucket {name}: owner {}, max retention {} days",
        owner_label(b),
        b.max_retention_days
    )
}

pub async fn defaults(a: &DefaultsArgs) -> anyhow::Result<()> {
    let days = AdminClient::new(a.meta.channel()?)
        .set_bucket_defaults(SetBucketDefaultsRequest {
            max_retention_days: a.max_retention_days,
        })
        .await
        .map_err(refused("bucket defaults".into()))?
        .into_inner()
        .max_retention_days;
    if a.json {
        let v = serde_json::json!({ "max_retention_days": days });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("buckets without a limit of their own: max retention {days} days");
    }
    Ok(())
}
