//! CA rotation as the state machine sees it: the trust bundle (public CA
//! certificates and a generation), each member's report, and the open
//! rotation with its two gates (ADR 0019).
//!
//! No private key is ever here. Fingerprints are computed in apply from
//! the certificates themselves, never taken from the caller.

use hamster_proto::pki;
use sqlx::{Row, SqliteConnection};

use super::apply::Outcome;
use super::commands::{MetaError, Response};
use super::model::{CaRotation, TlsMember, TrustBundle};
use super::queries as q;
use super::rotation::LIVE_MS;

const TRUST: &str = "trust";
const ROTATION: &str = "ca";
pub const WIDENING: &str = "widening";
pub const REISSUING: &str = "reissuing";

fn invalid(why: impl Into<String>) -> MetaError {
    MetaError::InvalidArgument(why.into())
}

fn refused(why: String) -> MetaError {
    MetaError::RotationRefused(why)
}

/// The fingerprint of the one certificate in `pem`.
pub use pki::pem_fingerprint as ca_fingerprint;

pub async fn bundle(c: &mut SqliteConnection) -> Result<Option<TrustBundle>, sqlx::Error> {
    q::setting_json(c, TRUST).await
}

async fn set_bundle(c: &mut SqliteConnection, b: &TrustBundle) -> Result<(), sqlx::Error> {
    q::put_setting(c, TRUST, Some(&q::json(b)?)).await
}

pub async fn rotation(c: &mut SqliteConnection) -> Result<Option<CaRotation>, sqlx::Error> {
    q::rotation(c, ROTATION).await
}

async fn set_rotation(c: &mut SqliteConnection, r: Option<&CaRotation>) -> Result<(), sqlx::Error> {
    q::put_rotation(c, ROTATION, r).await
}

pub async fn members(c: &mut SqliteConnection) -> Result<Vec<TlsMember>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM tls_members ORDER BY role, id")
        .fetch_all(&mut *c)
        .await?;
    Ok(rows
        .iter()
        .map(|r| TlsMember {
            id: r.get("id"),
            role: r.get("role"),
            generation: u64::try_from(r.get::<i64, _>("generation")).unwrap_or(0),
            cert_ca: r.get("cert_ca"),
            last_seen_ms: r.get("last_seen_ms"),
        })
        .collect())
}

pub fn live(m: &TlsMember, at: i64) -> bool {
    m.last_seen_ms >= at.saturating_sub(LIVE_MS)
}

/// A member counts for the rotation's gates if it reported within this
/// long: one down for a restart (or an hour's repair) holds the gates
/// until it is back, rather than come back to a trust it cannot join.
/// Longer gone, it is taken as gone (or dropped with ForgetMember).
pub const KNOWN_MS: i64 = 3_600_000;

pub fn known(m: &TlsMember, at: i64) -> bool {
    m.last_seen_ms >= at.saturating_sub(KNOWN_MS)
}

fn named(m: &TlsMember, at: i64) -> String {
    if live(m, at) {
        format!("{}/{}", m.role, m.id)
    } else {
        let ago = at.saturating_sub(m.last_seen_ms) / 1000;
        format!("{}/{} (down, last seen {ago} s ago)", m.role, m.id)
    }
}

/// The CA every member's certificate should come from: the open
/// rotation's new CA, else the issuing one.
pub fn target_ca(b: &TrustBundle, r: Option<&CaRotation>) -> String {
    r.map(|r| r.new.clone())
        .unwrap_or_else(|| b.issuing.clone())
}

/// Known members whose certificate is not from `target`, by name.
pub fn on_other_ca(members: &[TlsMember], target: &str, at: i64) -> Vec<String> {
    members
        .iter()
        .filter(|m| known(m, at) && m.cert_ca != target)
        .map(|m| named(m, at))
        .collect()
}

/// Records the first trust bundle, from the first meta-server that
/// reports; a bundle already recorded is kept.
pub async fn init(
    c: &mut SqliteConnection,
    cas: &[String],
    issuing: &str,
    issuer: &str,
) -> Outcome {
    if bundle(c).await?.is_some() {
        return Ok(Ok(Response::Ok));
    }
    let cas: Vec<String> = cas.iter().flat_map(|p| pki::split_pem(p)).collect();
    let fps: Option<Vec<String>> = cas.iter().map(|p| ca_fingerprint(p)).collect();
    let Some(fps) = fps.filter(|f| !f.is_empty()) else {
        return Ok(Err(invalid(
            "a trust bundle needs one or more CA certificates",
        )));
    };
    if !fps.iter().any(|f| f == issuing) {
        return Ok(Err(invalid("the issuing CA must be in the bundle")));
    }
    let b = TrustBundle {
        generation: 1,
        cas,
        issuing: issuing.into(),
        issuer: issuer.into(),
    };
    set_bundle(c, &b).await?;
    Ok(Ok(Response::Ok))
}

pub async fn member_seen(c: &mut SqliteConnection, at: i64, m: &TlsMember) -> Outcome {
    if m.id.is_empty() || !matches!(m.role.as_str(), "meta" | "blob" | "gateway") {
        return Ok(Err(invalid(
            "a member needs an id and the role meta, blob or gateway",
        )));
    }
    sqlx::query(
        "INSERT OR REPLACE INTO tls_members (role, id, generation, cert_ca, last_seen_ms) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&m.role)
    .bind(&m.id)
    .bind(i64::try_from(m.generation).unwrap_or(i64::MAX))
    .bind(&m.cert_ca)
    .bind(at)
    .execute(&mut *c)
    .await?;
    Ok(Ok(Response::Ok))
}

/// Drops a member's record: one that is gone for good no longer holds a
/// rotation's gates. If it reports again, it is a member again.
pub async fn forget_member(c: &mut SqliteConnection, role: &str, id: &str) -> Outcome {
    let gone = sqlx::query("DELETE FROM tls_members WHERE role = ? AND id = ?")
        .bind(role)
        .bind(id)
        .execute(&mut *c)
        .await?
        .rows_affected();
    if gone == 0 {
        return Ok(Err(invalid(format!("no member {role}/{id}"))));
    }
    Ok(Ok(Response::Ok))
}

fn answer(b: &TrustBundle, r: Option<CaRotation>) -> Response {
    Response::CaRotation {
        generation: b.generation,
        rotation: r,
    }
}

/// Opens a rotation to the CA in `ca_pem`: trust becomes {old…, new}
/// under a new generation; certificates still come from the old CA until
/// every live member has loaded it. Asking again for the open rotation's
/// CA answers it; another CA is refused while one is open.
pub async fn start(
    c: &mut SqliteConnection,
    at: i64,
    ca_pem: &str,
    issuer: &str,
    replace: bool,
) -> Outcome {
    let Some(mut b) = bundle(c).await? else {
        return Ok(Err(refused(
            "the meta tier has no trust bundle yet; wait for a meta-server to report".into(),
        )));
    };
    // Only the certificate block is kept: nothing else of the text given
    // (a stray key block, say) can reach the bundle.
    let one = match pki::split_pem(ca_pem).as_slice() {
        [one] => one.clone(),
        _ => return Ok(Err(invalid("the new CA must be one PEM certificate"))),
    };
    let Some(new) = ca_fingerprint(&one) else {
        return Ok(Err(invalid("the new CA must be one PEM certificate")));
    };
    let open = rotation(c).await?;
    let old = match &open {
        Some(r) if r.new == new => return Ok(Ok(answer(&b, open))),
        // A rotation whose new CA's key is lost can only be finished by
        // another new CA: it restarts at the first gate, the old CA kept.
        Some(r) if replace => r.old.clone(),
        Some(r) => {
            return Ok(Err(refused(format!(
                "a CA rotation to {} is open; finish it first (or replace it)",
                r.new
            ))));
        }
        None => b.issuing.clone(),
    };
    if new == old || (open.is_none() && new == b.issuing) {
        return Ok(Err(refused(format!("{new} is already the issuing CA"))));
    }
    if !b
        .cas
        .iter()
        .any(|p| ca_fingerprint(p).as_deref() == Some(new.as_str()))
    {
        b.cas.push(one);
    }
    b.generation += 1;
    b.issuer = issuer.into();
    let r = CaRotation {
        old,
        new,
        phase: WIDENING.into(),
        widened: b.generation,
        started_at_ms: at,
    };
    set_bundle(c, &b).await?;
    set_rotation(c, Some(&r)).await?;
    Ok(Ok(answer(&b, Some(r))))
}

/// Moves the open rotation past the gate of phase `from`:
/// - widening → reissuing, once every live member has loaded the widened
///   trust: new certificates come from the new CA;
/// - reissuing → closed, once no live member holds a certificate from
///   another CA: trust becomes {new} alone, under a new generation.
///
/// Refused, naming the members that hold it up. Asking for a phase
/// already passed answers the current state, so a re-run converges.
pub async fn advance(c: &mut SqliteConnection, at: i64, from: &str) -> Outcome {
    let (Some(mut b), Some(mut r)) = (bundle(c).await?, rotation(c).await?) else {
        let b = bundle(c).await?.unwrap_or_default();
        return Ok(Ok(answer(&b, None)));
    };
    if r.phase != from {
        return Ok(Ok(answer(&b, Some(r))));
    }
    let members = members(c).await?;
    if !members.iter().any(|m| live(m, at)) {
        return Ok(Err(refused("no member has reported recently".into())));
    }
    // Gates wait for every known member, down ones included (KNOWN_MS).
    match from {
        WIDENING => {
            let behind: Vec<String> = members
                .iter()
                .filter(|m| known(m, at) && m.generation < r.widened)
                .map(|m| named(m, at))
                .collect();
            if !behind.is_empty() {
                return Ok(Err(refused(format!(
                    "waiting for trust generation {} on: {}",
                    r.widened,
                    behind.join(", ")
                ))));
            }
            r.phase = REISSUING.into();
            b.issuing = r.new.clone();
            b.generation += 1;
            set_bundle(c, &b).await?;
            set_rotation(c, Some(&r)).await?;
            Ok(Ok(answer(&b, Some(r))))
        }
        REISSUING => {
            let old = on_other_ca(&members, &r.new, at);
            if !old.is_empty() {
                return Ok(Err(refused(format!(
                    "still on another CA: {}",
                    old.join(", ")
                ))));
            }
            let new_pem = b
                .cas
                .iter()
                .find(|p| ca_fingerprint(p).as_deref() == Some(r.new.as_str()))
                .cloned();
            let Some(new_pem) = new_pem else {
                return Ok(Err(invalid("the new CA is missing from the bundle")));
            };
            b.cas = vec![new_pem];
            b.generation += 1;
            set_bundle(c, &b).await?;
            set_rotation(c, None).await?;
            Ok(Ok(answer(&b, None)))
        }
        other => Ok(Err(invalid(format!("unknown CA rotation phase {other}")))),
    }
}
