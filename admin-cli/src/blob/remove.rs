//! `hamster blob remove ID [--force]` retires a server for good (its id
//! and certificate are refused by every tier from then on); `hamster
//! blob undrain ID` cancels a drain.

use hamster_proto::ErrorCode;
use hamster_proto::pb::{RemoveBlobRequest, RemoveBlobResponse, UndrainBlobRequest};

use super::blob_json;
use crate::Exit;
use crate::conn::MetaConn;

#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    /// The blob-server to retire.
    pub id: String,
    /// Remove it even though maps name shards on it (a dead server): those
    /// shards count as lost and repair rebuilds them elsewhere.
    #[arg(long)]
    pub force: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct UndrainArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    /// The draining or drained blob-server to put back in service.
    pub id: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run_remove(a: &RemoveArgs) -> anyhow::Result<()> {
    let req = RemoveBlobRequest {
        id: a.id.clone(),
        force: a.force,
    };
    let answer = super::call(&a.meta, async |mut c| {
        c.remove_blob(req.clone())
            .await
            .map(tonic::Response::into_inner)
    })
    .await?;
    let (r, already) = match answer {
        Ok(r) => (r, false),
        // A retry after a lost answer lands here too: what was asked holds.
        Err(s) if ErrorCode::of(&s) == Some(ErrorCode::BlobServerRemoved) => {
            (RemoveBlobResponse::default(), true)
        }
        Err(s) if ErrorCode::of(&s) == Some(ErrorCode::BlobServerInUse) => {
            return Err(in_use(&a.id, s.message()).into());
        }
        Err(s) => return Err(super::refused(&format!("remove {}", a.id), &s)),
    };
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "id": a.id,
                "removed": true,
                "already_removed": already,
                "shards_lost": r.shards_lost,
                "server": r.server.as_ref().map(blob_json),
            })
        );
    } else {
        println!("{}", removed_text(&a.id, already, r.shards_lost));
    }
    Ok(())
}

/// The refusal while maps name the server: the count, and what to do.
fn in_use(id: &str, message: &str) -> Exit {
    Exit {
        code: 1,
        message: format!(
            "remove {id} refused: {message}. Drain it first: `hamster blob drain {id}`; if it \
             is dead for good, `hamster blob remove {id} --force` (repair rebuilds its shards \
             from the others)"
        ),
    }
}

fn removed_text(id: &str, already: bool, lost: u64) -> String {
    if already {
        return format!("{id} was already removed; its id and certificate stay refused");
    }
    let mut s = format!(
        "{id} removed: every tier refuses its id and certificate from now on (a replacement \
         joins under a new id)"
    );
    if lost > 0 {
        s.push_str(&format!(
            "\n{lost} shards named on it are lost; repair rebuilds them from the others. Watch \
             `hamster status` until under-replicated is 0, or follow with `hamster repair`"
        ));
    } else {
        s.push_str(&format!(
            "\nno map named it: stop its process and wipe its data dir ({id} is never coming back)"
        ));
    }
    s
}

pub async fn run_undrain(a: &UndrainArgs) -> anyhow::Result<()> {
    let req = UndrainBlobRequest { id: a.id.clone() };
    let r = super::call(&a.meta, async |mut c| {
        c.undrain_blob(req.clone())
            .await
            .map(tonic::Response::into_inner)
    })
    .await?
    .map_err(|s| super::refused(&format!("undrain {}", a.id), &s))?;
    let server = r.server.unwrap_or_default();
    if a.json {
        println!("{}", blob_json(&server));
    } else {
        println!(
            "{} is in service again ({}): it takes new shards; shards already moved stay where \
             they went ({} named on it now)",
            a.id, server.state, server.shards_named
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_remove_names_the_count_and_the_way_out() {
        let x = in_use(
            "b1",
            "12 shards on blob-server b1 are still named by shard maps",
        );
        assert_eq!(x.code, 1);
        assert!(
            x.message.contains("12 shards on blob-server b1"),
            "{}",
            x.message
        );
        assert!(
            x.message.contains("`hamster blob drain b1`"),
            "{}",
            x.message
        );
        assert!(x.message.contains("--force"), "{}", x.message);
    }

    #[test]
    fn a_forced_remove_says_what_is_lost_and_who_rebuilds_it() {
        let t = removed_text("b1", false, 40);
        assert!(t.contains("40 shards named on it are lost"), "{t}");
        assert!(t.contains("hamster repair"), "{t}");
        let t = removed_text("b1", false, 0);
        assert!(t.contains("wipe its data dir"), "{t}");
        assert!(!t.contains("lost"), "{t}");
        assert!(removed_text("b1", true, 0).contains("already removed"));
    }
}
