//! `hamster bucket info NAME`: one bucket as the meta tier holds it —
//! owner, grants, versioning, lock, retention limit, what it stores.

use hamster_proto::pb::{Bucket, BucketInfoRequest, BucketInfoResponse, admin_client::AdminClient};

use super::{bucket_json, default_retention, grant_json, owner_label, refused, rights};
use crate::blob::human_bytes;
use crate::conn::MetaConn;

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    pub name: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(a: &InfoArgs) -> anyhow::Result<()> {
    let r = AdminClient::new(a.meta.channel()?)
        .bucket_info(BucketInfoRequest {
            name: a.name.clone(),
        })
        .await
        .map_err(refused(format!("bucket info {}", a.name)))?
        .into_inner();
    let b = r
        .bucket
        .clone()
        .ok_or_else(|| anyhow::anyhow!("bucket info {}: the answer holds no bucket", a.name))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&json(&r, &b))?);
    } else {
        print!("{}", text(&r, &b));
    }
    Ok(())
}

/// The `--json` shape: the bucket as `list --json` shows it, then its
/// limits, grants and counts. `own_max_retention_days` is null when the
/// cluster default applies.
pub fn json(r: &BucketInfoResponse, b: &Bucket) -> serde_json::Value {
    let mut v = bucket_json(b);
    let extra = serde_json::json!({
        "own_max_retention_days": (r.own_max_retention_days != 0).then_some(r.own_max_retention_days),
        "cluster_max_retention_days": r.cluster_max_retention_days,
        "grants": r.grants.iter().map(grant_json).collect::<Vec<_>>(),
        "objects": r.objects,
        "bytes": r.bytes,
        "versions": r.versions,
        "version_bytes": r.version_bytes,
        "uploads": r.uploads,
    });
    if let (Some(v), serde_json::Value::Object(extra)) = (v.as_object_mut(), extra) {
        v.extend(extra);
    }
    v
}

/// The human form: one "field: value" line each, then the grants.
pub fn text(r: &BucketInfoResponse, b: &Bucket) -> String {
    let lock = if b.object_lock_enabled {
        format!("enabled, default retention {}", default_retention(b))
    } else {
        "not enabled".into()
    };
    let max = if r.own_max_retention_days != 0 {
        format!("{} days", r.own_max_retention_days)
    } else {
        format!("cluster default {} days", r.cluster_max_retention_days)
    };
    let ownerless = b.owner.is_empty();
    let owner = match owner_label(b).as_str() {
        "-" => "none".to_string(),
        o => o.to_string(),
    };
    let versioning = if b.versioning.is_empty() {
        "never enabled"
    } else {
        &b.versioning
    };
    let mut out = String::new();
    let mut line = |k: &str, v: &str| out.push_str(&format!("{k:<15}{v}\n"));
    line("bucket", &b.name);
    line("owner", &owner);
    line("versioning", versioning);
    line("object lock", &lock);
    line("max retention", &max);
    let sized = |n: u64, bytes: u64| format!("{n} ({})", human_bytes(bytes));
    line("objects", &sized(r.objects, r.bytes));
    line("versions", &sized(r.versions, r.version_bytes));
    line("uploads", &r.uploads.to_string());
    if r.grants.is_empty() {
        line(
            "grants",
            if ownerless {
                "none"
            } else {
                "none (the owner's only)"
            },
        );
    } else {
        out.push_str("grants\n");
        for g in &r.grants {
            out.push_str(&format!("  {:<24} {}\n", g.access_key_id, rights(g)));
        }
    }
    if ownerless {
        out.push_str(&no_owner_hint(&b.name, !r.grants.is_empty()));
    }
    out
}

/// What an ownerless bucket means and how to give it an owner (after an
/// upgrade from before owners existed, buckets start so; ADR 0027).
fn no_owner_hint(name: &str, granted: bool) -> String {
    let who = if granted {
        "only admins and the keys granted above reach it"
    } else {
        "only admins reach it"
    };
    format!("no owner: {who} (hamster bucket set {name} --owner KEY, or hamster bucket adopt)\n")
}
