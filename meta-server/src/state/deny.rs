//! The deny list (ADR 0030): identities (role + id) the cluster removed
//! or forgot, refused for good by every tier. Published whole by
//! `Certs.Sync` (`revoked`) as the union of:
//!
//! - rows written here: a member forgotten (`ForgetMember`, any role) or
//!   a meta-server removed from the Raft membership (`DenyMember`);
//! - removed blob-servers (ADR 0025), which the registry keeps as
//!   `lifecycle = 'removed'`: folded in at read, so state from before the
//!   deny list keeps refusing them with no migration.
//!
//! The rows are `settings` rows keyed `denied/ROLE/ID` (value: the
//! command's time), so the list needs no new table nor migration. An id
//! never comes back: a replaced node joins under a new id.

use hamster_proto::PeerIdentity;
use sqlx::SqliteConnection;

use super::commands::{MetaError, Response};
use super::model::{Lifecycle, Role};
use super::outcome::{ApplyError, Outcome, invalid, reject};
use super::{reads, writes};

/// Every deny row's key starts with this; '0' is the byte after '/', so
/// `[PREFIX, END)` is exactly the rows.
const PREFIX: &str = "denied/";
const END: &str = "denied0";

fn key(role: Role, id: &str) -> String {
    format!("{PREFIX}{role}/{id}")
}

/// Whether `role`/`id` is refused: denied here, or a removed blob-server.
pub async fn is_denied(
    c: &mut SqliteConnection,
    role: Role,
    id: &str,
) -> Result<bool, sqlx::Error> {
    if has_row(c, role, id).await? {
        return Ok(true);
    }
    Ok(role == Role::Blob && reads::blob_lifecycle(c, id).await? == Some(Lifecycle::Removed))
}

/// Whether `role`/`id` has a deny row. Rows come only from `DenyMember`,
/// an op no old log holds: an old op that checks them (MemberSeen)
/// replays exactly as it applied before the deny list (ADR 0020).
async fn has_row(c: &mut SqliteConnection, role: Role, id: &str) -> Result<bool, sqlx::Error> {
    Ok(reads::setting(c, &key(role, id)).await?.is_some())
}

/// Refuses a report from a member with a deny row (not a removed
/// blob-server's: MemberSeen never refused those, and old logs replay).
pub async fn check_no_deny_row(
    c: &mut SqliteConnection,
    role: Role,
    id: &str,
) -> Result<(), ApplyError> {
    if has_row(c, role, id).await? {
        return reject(MetaError::AccessDenied(format!(
            "{role}/{id} was removed from the cluster; a replacement joins under a new id"
        )));
    }
    Ok(())
}

/// Refuses a command from or about a denied identity, with the code the
/// tiers use for it (BlobServerRemoved for a blob-server).
pub async fn check_not_denied(
    c: &mut SqliteConnection,
    role: Role,
    id: &str,
) -> Result<(), ApplyError> {
    if !is_denied(c, role, id).await? {
        return Ok(());
    }
    if role == Role::Blob {
        return reject(MetaError::BlobServerRemoved(id.into()));
    }
    reject(MetaError::AccessDenied(format!(
        "{role}/{id} was removed from the cluster; a replacement joins under a new id"
    )))
}

/// Adds `role`/`id` to the list (kept if there already) and drops its
/// member record, so it holds no rotation gate either.
pub async fn deny(
    c: &mut SqliteConnection,
    at: i64,
    role: Role,
    id: &str,
) -> Result<(), ApplyError> {
    // Only ids a certificate can carry: the list is published as URIs.
    if PeerIdentity::new(role.into(), id).is_err() {
        return invalid(format!("{role}/{id:?} is not a member identity"));
    }
    if reads::setting(c, &key(role, id)).await?.is_none() {
        writes::put_setting(c, &key(role, id), Some(&at.to_string())).await?;
    }
    writes::forget_member(c, role, id).await?;
    Ok(())
}

/// `DenyMember`: a member forgotten (`rotate-ca --forget`) or a
/// meta-server removed from the membership is refused for good. A
/// blob-server still in the registry is refused here: `hamster blob
/// remove` retires it (which denies it too) without leaving maps naming a
/// server nobody talks to. A new op, so no old log applies it.
pub async fn deny_member(c: &mut SqliteConnection, at: i64, role: Role, id: &str) -> Outcome {
    if role == Role::Blob
        && reads::blob_lifecycle(c, id)
            .await?
            .is_some_and(|l| l != Lifecycle::Removed)
    {
        return invalid(format!(
            "blob-server {id} is registered: remove it (hamster blob remove) instead"
        ));
    }
    deny(c, at, role, id).await?;
    Ok(Response::Ok)
}

/// The whole list as identity URIs, sorted: what every tier refuses.
pub async fn revoked_identities(c: &mut SqliteConnection) -> Result<Vec<String>, sqlx::Error> {
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT key FROM settings WHERE key >= ? AND key < ? ORDER BY key")
            .bind(PREFIX)
            .bind(END)
            .fetch_all(&mut *c)
            .await?;
    let mut out: Vec<String> = keys
        .iter()
        .filter_map(|k| {
            let (role, id) = k.strip_prefix(PREFIX)?.split_once('/')?;
            let role: hamster_proto::Role = role.parse().ok()?;
            PeerIdentity::new(role, id).ok().map(|p| p.uri())
        })
        .collect();
    out.extend(reads::revoked_identities(c).await?);
    out.sort();
    out.dedup();
    Ok(out)
}

impl From<Role> for hamster_proto::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::Meta => hamster_proto::Role::Meta,
            Role::Blob => hamster_proto::Role::Blob,
            Role::Gateway => hamster_proto::Role::Gateway,
            Role::Admin => hamster_proto::Role::Admin,
        }
    }
}
