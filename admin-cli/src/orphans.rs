//! `hamster orphans list|release`: shards held since a restore (ADR 0026).
//!
//! After a restore the metadata lacks whatever was written after the
//! backup, so the sweep keeps the shards no row names that were written
//! before the restore, instead of deleting them: they may be acknowledged
//! (even COMPLIANCE-locked) data. `list` shows them; `release` hands them
//! back to the sweep, whose next round deletes those still unnamed.
//! The JSON shapes are what `status --json` and `repair --json` embed.

use hamster_proto::pb::{
    HeldOrphan, ListOrphansRequest, ListOrphansResponse, OrphanHold, ReleaseOrphansRequest,
    admin_client::AdminClient,
};

use crate::blob::human_bytes;
use crate::conn::{ListArgs, MetaConn};
use crate::status::{ago, now_ms};

#[derive(Debug, clap::Subcommand)]
pub enum OrphansCommand {
    /// Shards held since a restore: counts, the restore, the first rows.
    List(OrphansListArgs),
    /// Hand held shards back to the sweep, which deletes those still
    /// unnamed at its next round. Check them first: this cannot be undone.
    Release(ReleaseArgs),
}

#[derive(Debug, clap::Args)]
pub struct OrphansListArgs {
    #[command(flatten)]
    pub list: ListArgs,
    /// Only the shards held on this blob-server.
    #[arg(long)]
    pub blob: Option<String>,
    /// Rows to show (0: the meta-server's default, 1000; at most 10000).
    #[arg(long, default_value_t = 0)]
    pub limit: u32,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["all", "blob"])))]
pub struct ReleaseArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    /// Every held shard.
    #[arg(long)]
    pub all: bool,
    /// The held shards on this blob-server.
    #[arg(long)]
    pub blob: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(c: &OrphansCommand) -> anyhow::Result<()> {
    match c {
        OrphansCommand::List(a) => list(a).await,
        OrphansCommand::Release(a) => release(a).await,
    }
}

async fn list(a: &OrphansListArgs) -> anyhow::Result<()> {
    let req = ListOrphansRequest {
        blob_id: a.blob.clone().unwrap_or_default(),
        limit: a.limit,
    };
    let r = a
        .list
        .meta
        .on_any(async |ch| {
            AdminClient::new(ch)
                .list_orphans(req.clone())
                .await
                .map(tonic::Response::into_inner)
        })
        .await
        .map_err(|e| e.context("listing held orphans"))?;
    if a.list.json {
        println!("{}", serde_json::to_string_pretty(&list_json(&r))?);
    } else {
        for line in list_text(&r, now_ms()) {
            println!("{line}");
        }
    }
    Ok(())
}

async fn release(a: &ReleaseArgs) -> anyhow::Result<()> {
    let req = ReleaseOrphansRequest {
        all: a.all,
        blob_id: a.blob.clone().unwrap_or_default(),
    };
    let r = a
        .meta
        .on_any(async |ch| {
            AdminClient::new(ch)
                .release_orphans(req.clone())
                .await
                .map(tonic::Response::into_inner)
        })
        .await
        .map_err(|e| e.context("releasing held orphans"))?;
    if a.json {
        println!("{}", serde_json::json!({ "released": r.released }));
    } else {
        let scope = a
            .blob
            .as_ref()
            .map_or("everywhere".to_string(), |b| format!("on {b}"));
        println!(
            "released {} held shards {scope}; the meta leader's next sweep deletes those no \
             metadata names",
            r.released
        );
    }
    Ok(())
}

/// One held shard, as `orphans list`, `status` and `repair` show it.
pub fn orphan_json(o: &HeldOrphan) -> serde_json::Value {
    serde_json::json!({
        "blob_id": o.blob_id, "shard_id": o.shard_id, "bytes": o.bytes,
        "modified_ms": o.modified_ms, "found_ms": o.found_ms, "released": o.released,
    })
}

/// The restore's hold; null when the metadata was never restored.
pub fn hold_json(h: Option<&OrphanHold>) -> serde_json::Value {
    h.map_or(serde_json::Value::Null, |h| {
        serde_json::json!({
            "restored_at_ms": h.restored_at_ms, "backup_index": h.backup_index,
            "backup_created_ms": h.backup_created_ms,
        })
    })
}

fn list_json(r: &ListOrphansResponse) -> serde_json::Value {
    serde_json::json!({
        "held": r.held, "held_bytes": r.held_bytes, "released": r.released,
        "hold": hold_json(r.hold.as_ref()),
        "orphans": r.orphans.iter().map(orphan_json).collect::<Vec<_>>(),
    })
}

/// "restored 3 h ago from a backup at index 1234 taken 2 days ago".
pub fn hold_text(h: &OrphanHold, now_ms: i64) -> String {
    format!(
        "restored {} from a backup at index {} taken {}",
        ago(now_ms, h.restored_at_ms),
        h.backup_index,
        ago(now_ms, h.backup_created_ms)
    )
}

fn list_text(r: &ListOrphansResponse, now_ms: i64) -> Vec<String> {
    let mut out = Vec::new();
    match &r.hold {
        Some(h) => out.push(hold_text(h, now_ms)),
        None => out.push("never restored: the sweep holds no orphans".into()),
    }
    out.push(format!(
        "{} shards held ({}), {} released and waiting for the sweep",
        r.held,
        human_bytes(r.held_bytes),
        r.released
    ));
    if r.orphans.is_empty() {
        return out;
    }
    let mut rows =
        vec![["BLOB SERVER", "SHARD", "SIZE", "WRITTEN", "FOUND", "STATE"].map(String::from)];
    for o in &r.orphans {
        rows.push([
            o.blob_id.clone(),
            o.shard_id.clone(),
            human_bytes(o.bytes),
            ago(now_ms, o.modified_ms),
            ago(now_ms, o.found_ms),
            if o.released { "released" } else { "held" }.into(),
        ]);
    }
    let width = |c: usize| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0);
    let w: Vec<usize> = (0..6).map(width).collect();
    for r in &rows {
        out.push(
            format!(
                "{:<w0$}  {:<w1$}  {:>w2$}  {:<w3$}  {:<w4$}  {}",
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3],
                w4 = w[4]
            )
            .trim_end()
            .to_string(),
        );
    }
    let shown = r.orphans.len() as u64;
    if r.held + r.released > shown {
        out.push(format!(
            "... and {} more (--limit, --blob)",
            r.held + r.released - shown
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn held(blob: &str, shard: &str, released: bool) -> HeldOrphan {
        HeldOrphan {
            blob_id: blob.into(),
            shard_id: shard.into(),
            bytes: 1536,
            modified_ms: 1_000,
            found_ms: 2_000,
            released,
        }
    }

    fn answer() -> ListOrphansResponse {
        ListOrphansResponse {
            held: 2,
            held_bytes: 3072,
            released: 1,
            orphans: vec![held("b1", "s1", false), held("b2", "s2", true)],
            hold: Some(OrphanHold {
                restored_at_ms: 10,
                backup_index: 42,
                backup_created_ms: 5,
            }),
        }
    }

    /// The shape scripts (and the e2e test) read.
    #[test]
    fn the_json_has_counts_the_hold_and_every_row_field() {
        let v = list_json(&answer());
        assert_eq!(v["held"], 2);
        assert_eq!(v["held_bytes"], 3072);
        assert_eq!(v["released"], 1);
        assert_eq!(v["hold"]["backup_index"], 42);
        assert_eq!(v["hold"]["restored_at_ms"], 10);
        assert_eq!(v["hold"]["backup_created_ms"], 5);
        let row = &v["orphans"][1];
        for f in [
            "blob_id",
            "shard_id",
            "bytes",
            "modified_ms",
            "found_ms",
            "released",
        ] {
            assert!(row.get(f).is_some(), "orphans[1] lacks {f}: {row}");
        }
        assert_eq!(row["released"], true);
        let none = list_json(&ListOrphansResponse::default());
        assert!(none["hold"].is_null());
        assert_eq!(none["orphans"], serde_json::json!([]));
    }

    #[test]
    fn the_text_says_what_is_held_and_what_is_left_out() {
        let mut r = answer();
        r.held = 10;
        let lines = list_text(&r, 100_000);
        assert!(lines[0].contains("index 42"), "{}", lines[0]);
        assert!(
            lines[1].starts_with("10 shards held (3.0 KiB), 1 released"),
            "{}",
            lines[1]
        );
        assert!(lines[2].starts_with("BLOB SERVER"), "{}", lines[2]);
        assert!(lines[3].ends_with("held"), "{}", lines[3]);
        assert!(lines[4].ends_with("released"), "{}", lines[4]);
        assert_eq!(lines[5], "... and 9 more (--limit, --blob)");
        let never = list_text(&ListOrphansResponse::default(), 0);
        assert_eq!(never.len(), 2, "{never:?}");
        assert!(never[0].starts_with("never restored"));
    }

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        c: OrphansCommand,
    }

    #[test]
    fn release_takes_exactly_one_of_all_and_blob() {
        let conn = [
            "x",
            "release",
            "--admin-cert",
            "c",
            "--admin-key",
            "k",
            "--trust",
            "t",
            "--meta",
            "m:1",
        ];
        let parse = |extra: &[&str]| Cli::try_parse_from(conn.iter().chain(extra));
        assert!(parse(&["--all"]).is_ok());
        assert!(parse(&["--blob", "b1"]).is_ok());
        assert!(parse(&[]).is_err(), "neither");
        assert!(parse(&["--all", "--blob", "b1"]).is_err(), "both");
    }
}
