//! Who and what the cluster knows: S3 access keys, join tokens, the
//! blob-server registry and the erasure profile for new objects.

use sqlx::SqliteConnection;

use super::commands::{MetaError, Response};
use super::model::{AccessKey, BlobServer, Heartbeat, JoinToken, Lifecycle, Role};
use super::outcome::{Outcome, invalid, reject};
use super::{deny, key_rotation};
use super::{reads, writes};

/// Most shards an object may have (each on its own blob-server).
pub const MAX_SHARDS: u32 = 32;

pub async fn put_access_key(c: &mut SqliteConnection, k: &AccessKey) -> Outcome {
    if k.id.is_empty() || k.sealed_secret.is_empty() || k.kek_fingerprint.is_empty() {
        return invalid(
            "an access key needs an id, a sealed secret and its master-key fingerprint",
        );
    }
    // A secret sealed under any key but the write key would be unreadable
    // once that key is dropped: the split-key guard covers secrets too.
    key_rotation::check_write_key(c, &k.kek_fingerprint).await?;
    if reads::access_key(c, &k.id).await?.is_some() {
        return invalid(format!("access key {} exists", k.id));
    }
    writes::insert_access_key(c, k).await?;
    Ok(Response::Ok)
}

/// Deletes a key with its rights: its grants go, and the buckets it
/// owned stay, ownerless, until an admin names an owner (ADR 0027).
pub async fn delete_access_key(c: &mut SqliteConnection, id: &str) -> Outcome {
    if !writes::delete_access_key(c, id).await? {
        return reject(MetaError::NoSuchAccessKey(id.into()));
    }
    Ok(Response::Ok)
}

pub async fn set_profile(c: &mut SqliteConnection, k: u32, m: u32) -> Outcome {
    if (k, m) == (0, 0) {
        writes::put_setting(c, "profile", None).await?;
        return Ok(Response::Ok);
    }
    if k == 0 || k.saturating_add(m) > MAX_SHARDS {
        return invalid(format!(
            "profile {k}+{m}: need 1 <= K and K+M <= {MAX_SHARDS}"
        ));
    }
    writes::put_setting(c, "profile", Some(&format!("{k}+{m}"))).await?;
    Ok(Response::Ok)
}

pub async fn put_join_token(c: &mut SqliteConnection, t: &JoinToken) -> Outcome {
    if t.id.is_empty() || t.secret_hash.is_empty() || !matches!(t.role, Role::Blob | Role::Gateway)
    {
        return invalid("a join token needs an id, a secret hash and the role blob or gateway");
    }
    writes::put_join_token(c, t).await?;
    Ok(Response::Ok)
}

/// The checks run here, at the command's time, so a replayed or forwarded
/// use can never spend a token twice or after it expired.
pub async fn use_join_token(
    c: &mut SqliteConnection,
    at: i64,
    id: &str,
    secret_hash: &str,
    role: Role,
) -> Outcome {
    let t = reads::join_token(c, id).await?;
    check_join_token(t.as_ref(), at, id, secret_hash, role)?;
    writes::spend_join_token(c, id).await?;
    Ok(Response::Ok)
}

/// Whether token `id` (stored as `t`) may be spent at `at` by a caller
/// holding a secret hashing to `secret_hash`, for `role`. The join port
/// runs it on a read before proposing (a forged token costs no log entry)
/// and apply runs it again (that run decides races on the use count).
pub fn check_join_token(
    t: Option<&JoinToken>,
    at: i64,
    id: &str,
    secret_hash: &str,
    role: Role,
) -> Result<(), MetaError> {
    let Some(t) = t else {
        return Err(MetaError::AccessDenied("unknown join token".into()));
    };
    let refuse = |why: &str| Err(MetaError::AccessDenied(format!("join token {id}: {why}")));
    if !same_secret(&t.secret_hash, secret_hash) {
        return refuse("wrong secret");
    }
    if t.role != role {
        return refuse("issued for another role");
    }
    if t.expires_at_ms <= at {
        return refuse("expired");
    }
    if t.uses_left == 0 {
        return refuse("used up");
    }
    Ok(())
}

/// Compares two secret hashes in time that does not depend on where they
/// differ (their length is public: hex SHA-256).
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// How long a blob-server's address stays its own after its last
/// heartbeat or registration (servers heartbeat every few seconds): within
/// it, no other server may register at that address (ADR 0030).
pub const ADDRESS_HELD_MS: i64 = 60_000;

/// The live server other than `id` that holds `address` at `now`: not
/// removed, and heard from within [`ADDRESS_HELD_MS`]. Judged by the
/// RegisterBlob handler on a linearizable read before it proposes, not at
/// apply, so RegisterBlob entries of old logs replay as they applied (ADR
/// 0020); two registrations racing for one address within one Raft round
/// are not caught (ADR 0030).
pub fn address_holder<'a>(
    servers: &'a [BlobServer],
    id: &str,
    address: &str,
    now: i64,
) -> Option<&'a BlobServer> {
    servers.iter().find(|o| {
        o.id != id
            && o.address == address
            && o.lifecycle != Lifecycle::Removed
            && o.last_heartbeat_ms >= now.saturating_sub(ADDRESS_HELD_MS)
    })
}

pub async fn register_blob(c: &mut SqliteConnection, at: i64, s: &BlobServer) -> Outcome {
    if s.id.is_empty() || s.address.is_empty() {
        return invalid("a blob-server needs an id and an address");
    }
    // Removed, or forgotten: refused for good. (Deny rows come only from
    // DenyMember, which no old log holds: old entries replay as before.)
    deny::check_not_denied(c, Role::Blob, &s.id).await?;
    writes::register_blob(c, at, s).await?;
    Ok(Response::Ok)
}

pub async fn blob_heartbeat(c: &mut SqliteConnection, hb: &Heartbeat) -> Outcome {
    deny::check_not_denied(c, Role::Blob, &hb.id).await?;
    if !writes::blob_heartbeat(c, hb).await? {
        return reject(MetaError::NoSuchBlobServer(hb.id.clone()));
    }
    Ok(Response::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(uses_left: u32) -> JoinToken {
        JoinToken {
            id: "ab".into(),
            role: Role::Blob,
            secret_hash: "f0".repeat(32),
            uses_left,
            expires_at_ms: 1_000,
            created_at_ms: 0,
        }
    }

    #[test]
    fn a_join_token_is_checked_secret_role_expiry_and_uses() {
        let good = "f0".repeat(32);
        let t = token(1);
        let why = |r: Result<(), MetaError>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(check_join_token(Some(&t), 999, "ab", &good, Role::Blob).is_ok());
        assert!(why(check_join_token(None, 0, "ab", &good, Role::Blob)).contains("unknown"));
        let wrong = "f1".repeat(32);
        assert!(
            why(check_join_token(Some(&t), 0, "ab", &wrong, Role::Blob)).contains("wrong secret")
        );
        assert!(
            why(check_join_token(Some(&t), 0, "ab", "f0", Role::Blob)).contains("wrong secret")
        );
        assert!(
            why(check_join_token(Some(&t), 0, "ab", &good, Role::Gateway)).contains("another role")
        );
        assert!(
            why(check_join_token(Some(&t), 1_000, "ab", &good, Role::Blob)).contains("expired")
        );
        assert!(
            why(check_join_token(
                Some(&token(0)),
                0,
                "ab",
                &good,
                Role::Blob
            ))
            .contains("used up")
        );
    }
}
