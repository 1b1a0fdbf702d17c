//! The blob-server lifecycle for the admin (ADR 0025): every server with
//! the shards maps name on it and the balance, drain, undrain, remove.
//! Writes go through Raft and apply decides; a refusal comes back with
//! its code (BlobServerInUse naming the count, NotEnoughBlobServers...).
//! The answers are linearizable reads, so every meta-server answers
//! alike.

use std::collections::HashMap;

use hamster_proto::pb;
use sqlx::SqliteConnection;

use super::errors::{ServiceError, expect_ok};
use crate::cluster::Meta;
use crate::repair::balance::{self, Band};
use crate::state::commands::{MetaError, Op};
use crate::state::model::BlobServer;
use crate::state::reads as q;

/// Inside a read: every registered server (removed ones included) as the
/// admin sees it, and the balance.
pub async fn servers(
    c: &mut SqliteConnection,
    band: Band,
) -> Result<(Vec<pb::BlobServer>, pb::Balance), sqlx::Error> {
    let servers = q::blob_servers(c).await?;
    let named = q::shards_named_by_blob(c).await?;
    Ok(shown(servers, &named, band))
}

fn shown(
    servers: Vec<BlobServer>,
    named: &HashMap<String, u64>,
    band: Band,
) -> (Vec<pb::BlobServer>, pb::Balance) {
    let balance = balance::view(&balance::weigh(&servers, named), band);
    let rows = servers
        .into_iter()
        .map(|s| {
            let shards_named = named.get(&s.id).copied().unwrap_or(0);
            pb::BlobServer {
                shards_named,
                ..s.into()
            }
        })
        .collect();
    (rows, balance)
}

pub async fn list(meta: &Meta, band: Band) -> Result<pb::ListBlobServersResponse, ServiceError> {
    let (servers, balance) = meta.read(async |c| servers(c, band).await).await?;
    Ok(pb::ListBlobServersResponse {
        servers,
        balance: Some(balance),
    })
}

/// The balance as it stands.
pub async fn balance(meta: &Meta, band: Band) -> Result<pb::Balance, ServiceError> {
    let (servers, named) = meta
        .read(async |c| Ok((q::blob_servers(c).await?, q::shards_named_by_blob(c).await?)))
        .await?;
    Ok(balance::view(&balance::weigh(&servers, &named), band))
}

/// One server as the admin sees it, read after a change to it.
async fn one(meta: &Meta, id: &str) -> Result<pb::BlobServer, ServiceError> {
    let found = meta
        .read(async |c| {
            let Some(s) = q::blob_server(c, id).await? else {
                return Ok(None);
            };
            let named = q::shards_named_on_count(c, id).await?;
            Ok(Some((s, named)))
        })
        .await?;
    let (s, shards_named) =
        found.ok_or_else(|| MetaError::NoSuchBlobServer(format!("no blob-server {id:?}")))?;
    Ok(pb::BlobServer {
        shards_named,
        ..s.into()
    })
}

fn required(id: &str) -> Result<(), ServiceError> {
    if id.is_empty() {
        return Err(ServiceError::InvalidArgument(
            "a blob-server id is required".into(),
        ));
    }
    Ok(())
}

/// Starts (or retargets) a drain of `id`, onto `to` only if not "".
pub async fn drain(meta: &Meta, id: String, to: String) -> Result<pb::BlobServer, ServiceError> {
    required(&id)?;
    let op = Op::DrainBlob {
        id: id.clone(),
        to: to.clone(),
    };
    expect_ok(meta.write(op).await?)?;
    tracing::info!(blob = %id, to = %to, "blob-server draining");
    one(meta, &id).await
}

/// Cancels a drain: back in service.
pub async fn undrain(meta: &Meta, id: String) -> Result<pb::BlobServer, ServiceError> {
    required(&id)?;
    expect_ok(meta.write(Op::UndrainBlob { id: id.clone() }).await?)?;
    tracing::info!(blob = %id, "blob-server back in service");
    one(meta, &id).await
}

/// Removes `id` for good; answers it and the shards still named on it
/// (lost, for repair, when forced).
pub async fn remove(
    meta: &Meta,
    id: String,
    force: bool,
) -> Result<pb::RemoveBlobResponse, ServiceError> {
    required(&id)?;
    let op = Op::RemoveBlob {
        id: id.clone(),
        force,
    };
    expect_ok(meta.write(op).await?)?;
    // Read after: the count at removal (nothing may name it anew since).
    let server = one(meta, &id).await?;
    let shards_lost = server.shards_named;
    if shards_lost > 0 {
        tracing::warn!(blob = %id, shards_lost, "blob-server removed by force: its shards are rebuilt elsewhere");
    } else {
        tracing::info!(blob = %id, "blob-server removed");
    }
    Ok(pb::RemoveBlobResponse {
        server: Some(server),
        shards_lost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::model::{BlobState, Lifecycle};

    #[test]
    fn every_server_is_shown_with_its_state_word_and_named_count() {
        let server = |id: &str, lifecycle: Lifecycle, state: BlobState| BlobServer {
            id: id.into(),
            capacity_bytes: 100,
            bytes_stored: 10,
            state,
            lifecycle,
            ..Default::default()
        };
        let servers = vec![
            server("a", Lifecycle::In, BlobState::Active),
            server("b", Lifecycle::Draining, BlobState::Active),
            server("c", Lifecycle::Drained, BlobState::Active),
            server("d", Lifecycle::Removed, BlobState::Down),
            server("e", Lifecycle::Draining, BlobState::Down),
        ];
        let named = HashMap::from([("a".to_string(), 7), ("d".to_string(), 3)]);
        let band = Band {
            pct: 10,
            slack_bytes: 0,
        };
        let (rows, balance) = shown(servers, &named, band);
        let got: Vec<(&str, &str, &str, u64)> = rows
            .iter()
            .map(|r| {
                (
                    r.id.as_str(),
                    r.state.as_str(),
                    r.lifecycle.as_str(),
                    r.shards_named,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", "active", "in", 7),
                ("b", "draining", "draining", 0),
                ("c", "drained", "drained", 0),
                ("d", "removed", "removed", 3),
                ("e", "down", "draining", 0),
            ]
        );
        // Only the server in service has a share.
        let ids: Vec<&str> = balance.servers.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, vec!["a"]);
        assert!(balance.within_band);
    }
}
