//! Writes of who the cluster knows: join tokens, blob-servers, key
//! holders and TLS members.

use sqlx::SqliteConnection;

use crate::state::model::{
    BlobServer, BlobState, Heartbeat, JoinToken, KeyHolder, Role, TlsMember,
};
use crate::state::reads::to_i64;

// ---------- join tokens and blob-servers ----------

pub async fn put_join_token(c: &mut SqliteConnection, t: &JoinToken) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT OR REPLACE INTO join_tokens (id, role, secret_hash, uses_left, expires_at_ms, created_at_ms) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&t.id)
    .bind(t.role.as_str())
    .bind(&t.secret_hash)
    .bind(i64::from(t.uses_left))
    .bind(t.expires_at_ms)
    .bind(t.created_at_ms)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Spends one use of a join token.
pub async fn spend_join_token(c: &mut SqliteConnection, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE join_tokens SET uses_left = uses_left - 1 WHERE id = ?")
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Adds a blob-server, or updates one registering again: either way it
/// is active and seen at `at`; one registering again keeps its lifecycle
/// and drain target (the caller refuses a removed one).
pub async fn register_blob(
    c: &mut SqliteConnection,
    at: i64,
    s: &BlobServer,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO blob_servers (id, address, failure_domain, capacity_bytes, free_bytes, state, last_heartbeat_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET address = excluded.address, failure_domain = excluded.failure_domain,
           capacity_bytes = excluded.capacity_bytes, free_bytes = excluded.free_bytes,
           state = excluded.state, last_heartbeat_ms = excluded.last_heartbeat_ms",
    )
    .bind(&s.id)
    .bind(&s.address)
    .bind(&s.failure_domain)
    .bind(to_i64(s.capacity_bytes))
    .bind(to_i64(s.free_bytes))
    .bind(BlobState::Active.as_str())
    .bind(at)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Records a heartbeat (and the server active): true if it is registered.
/// The caller refuses a removed server's first: nothing revives one.
pub async fn blob_heartbeat(c: &mut SqliteConnection, hb: &Heartbeat) -> Result<bool, sqlx::Error> {
    // A heartbeat proves it alive: a server judged down is active again.
    let n = sqlx::query(
        "UPDATE blob_servers SET capacity_bytes = ?, free_bytes = ?, shards_stored = ?, \
         bytes_stored = ?, last_heartbeat_ms = ?, state = ? WHERE id = ?",
    )
    .bind(to_i64(hb.capacity_bytes))
    .bind(to_i64(hb.free_bytes))
    .bind(to_i64(hb.shards_stored))
    .bind(to_i64(hb.bytes_stored))
    .bind(hb.at_ms)
    .bind(BlobState::Active.as_str())
    .bind(&hb.id)
    .execute(&mut *c)
    .await?;
    Ok(n.rows_affected() > 0)
}

// ---------- key holders and TLS members ----------

/// Records a key holder's report, seen at `at`.
pub async fn put_key_holder(
    c: &mut SqliteConnection,
    h: &KeyHolder,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT OR REPLACE INTO key_holders (id, role, current_fp, next_fp, last_seen_ms) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&h.id)
    .bind(h.role.as_str())
    .bind(&h.current_fp)
    .bind(&h.next_fp)
    .bind(at)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Records a member's report, seen at `at`.
pub async fn put_member(
    c: &mut SqliteConnection,
    m: &TlsMember,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT OR REPLACE INTO tls_members (role, id, generation, cert_ca, last_seen_ms) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(m.role.as_str())
    .bind(&m.id)
    .bind(i64::try_from(m.generation).unwrap_or(i64::MAX))
    .bind(&m.cert_ca)
    .bind(at)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// True if there was such a member.
pub async fn forget_member(
    c: &mut SqliteConnection,
    role: Role,
    id: &str,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query("DELETE FROM tls_members WHERE role = ? AND id = ?")
        .bind(role.as_str())
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(n.rows_affected() > 0)
}
