//! `hamster bucket …`: buckets as the meta tier holds them, who owns them
//! and who may use them (ADR 0027).
//!
//! - [`list`]: every bucket, paged through: versioning, lock, owner,
//!   retention limit.
//! - [`info`]: one bucket: owner, grants, lock, limits, what it holds.
//! - [`manage`]: create, delete, allow, deny, set, defaults.
//! - [`adopt`]: give every ownerless bucket an owner (after an upgrade).
//!
//! Every change is a command the meta tier applies under the same rules
//! as S3's: deleting a bucket that holds any version (locked ones
//! included) or an unfinished upload is refused, and there is no force.
//! The admin certificate manages owners and grants; it never lifts object
//! lock. A refusal prints the meta tier's message and exits 1.

mod adopt;
mod info;
mod list;
mod manage;

use hamster_proto::pb::{Bucket, BucketGrant};

#[derive(Debug, clap::Subcommand)]
pub enum BucketCommand {
    /// Every bucket: versioning, object lock, owner, retention limit and
    /// default retention.
    List(list::ListArgs),
    /// One bucket: owner, grants, versioning, lock, retention limit,
    /// objects and bytes.
    Info(info::InfoArgs),
    /// Create a bucket, owned by an access key (or by none yet).
    Create(manage::CreateArgs),
    /// Delete an empty bucket.
    Delete(manage::DeleteArgs),
    /// Give an access key rights on a bucket (added to those it has).
    Allow(manage::AllowArgs),
    /// Take every right an access key has on a bucket away.
    Deny(manage::DenyArgs),
    /// Change a bucket's owner or its maximum retention.
    Set(manage::SetArgs),
    /// The cluster's default maximum retention: show it, or change it.
    Defaults(manage::DefaultsArgs),
    /// Give every bucket with no owner one: the key named, or the
    /// cluster's only key (after an upgrade from before owners existed).
    Adopt(adopt::AdoptArgs),
}

pub async fn run(cmd: &BucketCommand) -> anyhow::Result<()> {
    match cmd {
        BucketCommand::List(a) => list::run(a).await,
        BucketCommand::Info(a) => info::run(a).await,
        BucketCommand::Create(a) => manage::create(a).await,
        BucketCommand::Delete(a) => manage::delete(a).await,
        BucketCommand::Allow(a) => manage::allow(a).await,
        BucketCommand::Deny(a) => manage::deny(a).await,
        BucketCommand::Set(a) => manage::set(a).await,
        BucketCommand::Defaults(a) => manage::defaults(a).await,
        BucketCommand::Adopt(a) => adopt::run(a).await,
    }
}

/// A refused call as the command's failure, in the meta tier's words
/// (not a dump of the gRPC status).
fn refused(what: String) -> impl FnOnce(tonic::Status) -> anyhow::Error {
    move |s| anyhow::anyhow!("{what}: {}", s.message())
}

/// A bucket as `list --json` and `info --json` show it. `owner` and
/// `owner_name` are null for a bucket with no owner.
pub fn bucket_json(b: &Bucket) -> serde_json::Value {
    let or_null = |s: &str| (!s.is_empty()).then(|| s.to_string());
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
        "owner": or_null(&b.owner),
        "owner_name": or_null(&b.owner_name),
        "max_retention_days": b.max_retention_days,
    })
}

/// A grant as JSON: the raw flags (owner implies read and write).
pub fn grant_json(g: &BucketGrant) -> serde_json::Value {
    serde_json::json!({
        "access_key_id": g.access_key_id,
        "read": g.read,
        "write": g.write,
        "owner": g.owner,
    })
}

/// "owner" (read, write and the bucket's configuration and lock
/// powers), or the rights the grant gives ("read, write").
pub fn rights(g: &BucketGrant) -> String {
    if g.owner {
        return "owner".into();
    }
    let r: Vec<&str> = [(g.read, "read"), (g.write, "write")]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
    if r.is_empty() {
        "none".into()
    } else {
        r.join(", ")
    }
}

/// The bucket's default retention ("GOVERNANCE 30d", "-" if none).
fn default_retention(b: &Bucket) -> String {
    match (b.default_lock_days, b.default_lock_years) {
        _ if b.default_lock_mode.is_empty() => "-".to_string(),
        (0, y) => format!("{} {y}y", b.default_lock_mode),
        (d, _) => format!("{} {d}d", b.default_lock_mode),
    }
}

/// The owner as an operator reads it: "ID (name)", "ID", or "-".
fn owner_label(b: &Bucket) -> String {
    match (b.owner.as_str(), b.owner_name.as_str()) {
        ("", _) => "-".into(),
        (id, name) if name.is_empty() || name == id => id.into(),
        (id, name) => format!("{id} ({name})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(read: bool, write: bool, owner: bool) -> BucketGrant {
        BucketGrant {
            bucket: "b".into(),
            access_key_id: "K".into(),
            read,
            write,
            owner,
        }
    }

    #[test]
    fn rights_name_what_the_grant_gives() {
        assert_eq!(rights(&grant(true, false, false)), "read");
        assert_eq!(rights(&grant(false, true, false)), "write");
        assert_eq!(rights(&grant(true, true, false)), "read, write");
        assert_eq!(rights(&grant(true, false, true)), "owner");
        assert_eq!(rights(&grant(false, false, false)), "none");
    }

    #[test]
    fn an_ownerless_bucket_shows_a_dash_and_null() {
        let b = Bucket {
            name: "b".into(),
            ..Bucket::default()
        };
        assert_eq!(owner_label(&b), "-");
        assert!(bucket_json(&b)["owner"].is_null());
        let b = Bucket {
            owner: "AK1".into(),
            owner_name: "alice".into(),
            ..b
        };
        assert_eq!(owner_label(&b), "AK1 (alice)");
        assert_eq!(bucket_json(&b)["owner_name"], "alice");
    }
}
