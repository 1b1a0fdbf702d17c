//! CA rotation as the state machine sees it: the trust bundle (public CA
//! certificates and a generation), each member's report, and the open
//! rotation with its two gates (ADR 0019).
//!
//! No private key is ever here. Fingerprints are computed in apply from
//! the certificates themselves, never taken from the caller.

use hamster_proto::pki;
use sqlx::SqliteConnection;

use super::commands::Response;
use super::key_rotation::LIVE_MS;
use super::model::{CaPhase, CaRotation, Role, TlsMember, TrustBundle};
use super::outcome::{Outcome, invalid, refused};
use super::{deny, reads, writes};

const TRUST: &str = "trust";
const ROTATION: &str = "ca";
const CLUSTER_ID: &str = "cluster_id";

/// The fingerprint of the one certificate in `pem`.
pub use pki::pem_fingerprint as ca_fingerprint;

pub async fn bundle(c: &mut SqliteConnection) -> Result<Option<TrustBundle>, sqlx::Error> {
    reads::setting_json(c, TRUST).await
}

/// Replaces the trust bundle as given (apply's steps, and a restore).
pub async fn set_bundle(c: &mut SqliteConnection, b: &TrustBundle) -> Result<(), sqlx::Error> {
    writes::put_setting(c, TRUST, Some(&writes::json(b)?)).await
}

pub async fn rotation(c: &mut SqliteConnection) -> Result<Option<CaRotation>, sqlx::Error> {
    reads::rotation(c, ROTATION).await
}

/// Records (or, None, clears) the open CA rotation as given.
pub async fn set_rotation(
    c: &mut SqliteConnection,
    r: Option<&CaRotation>,
) -> Result<(), sqlx::Error> {
    writes::put_rotation(c, ROTATION, r).await
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
        return Ok(Response::Ok);
    }
    let cas: Vec<String> = cas.iter().flat_map(|p| pki::split_pem(p)).collect();
    let fps: Option<Vec<String>> = cas.iter().map(|p| ca_fingerprint(p)).collect();
    let Some(fps) = fps.filter(|f| !f.is_empty()) else {
        return invalid("a trust bundle needs one or more CA certificates");
    };
    if !fps.iter().any(|f| f == issuing) {
        return invalid("the issuing CA must be in the bundle");
    }
    let b = TrustBundle {
        generation: 1,
        cas,
        issuing: issuing.into(),
        issuer: issuer.into(),
    };
    set_bundle(c, &b).await?;
    // The cluster's id for its life: its first issuing CA (ADR 0026).
    if reads::setting(c, CLUSTER_ID).await?.is_none() {
        writes::put_setting(c, CLUSTER_ID, Some(issuing)).await?;
    }
    Ok(Response::Ok)
}

/// The cluster's id ("" before the first trust bundle).
pub async fn cluster_id(c: &mut SqliteConnection) -> Result<String, sqlx::Error> {
    Ok(reads::setting(c, CLUSTER_ID).await?.unwrap_or_default())
}

pub async fn member_seen(c: &mut SqliteConnection, at: i64, m: &TlsMember) -> Outcome {
    if m.id.is_empty() || !matches!(m.role, Role::Meta | Role::Blob | Role::Gateway) {
        return invalid("a member needs an id and the role meta, blob or gateway");
    }
    // A forgotten or removed member is not one again by reporting (a
    // report forwarded before its peer learnt of the removal).
    deny::check_no_deny_row(c, m.role, &m.id).await?;
    writes::put_member(c, m, at).await?;
    Ok(Response::Ok)
}

/// Drops a member's record: one that is gone for good no longer holds a
/// rotation's gates. Applies exactly as before the deny list, so old logs
/// replay to the same state (ADR 0020): the admin's forget writes
/// `DenyMember` first, which denies the id (ADR 0030).
pub async fn forget_member(c: &mut SqliteConnection, role: Role, id: &str) -> Outcome {
    if !writes::forget_member(c, role, id).await? {
        return invalid(format!("no member {role}/{id}"));
    }
    Ok(Response::Ok)
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
        return refused(
            "the meta tier has no trust bundle yet; wait for a meta-server to report".into(),
        );
    };
    // Only the certificate block is kept: nothing else of the text given
    // (a stray key block, say) can reach the bundle.
    let one = match pki::split_pem(ca_pem).as_slice() {
        [one] => one.clone(),
        _ => return invalid("the new CA must be one PEM certificate"),
    };
    let Some(new) = ca_fingerprint(&one) else {
        return invalid("the new CA must be one PEM certificate");
    };
    let open = rotation(c).await?;
    let old = match &open {
        Some(r) if r.new == new => return Ok(answer(&b, open)),
        // A rotation whose new CA's key is lost can only be finished by
        // another new CA: it restarts at the first gate, the old CA kept.
        Some(r) if replace => r.old.clone(),
        Some(r) => {
            return refused(format!(
                "a CA rotation to {} is open; finish it first (or replace it)",
                r.new
            ));
        }
        None => b.issuing.clone(),
    };
    if new == old || (open.is_none() && new == b.issuing) {
        return refused(format!("{new} is already the issuing CA"));
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
        phase: CaPhase::Widening,
        widened: b.generation,
        started_at_ms: at,
    };
    set_bundle(c, &b).await?;
    set_rotation(c, Some(&r)).await?;
    Ok(answer(&b, Some(r)))
}

/// Moves the open rotation past the gate of phase `from`:
/// - widening → reissuing, once every live member has loaded the widened
///   trust: new certificates come from the new CA;
/// - reissuing → closed, once no live member holds a certificate from
///   another CA: trust becomes {new} alone, under a new generation.
///
/// Refused, naming the members that hold it up. Asking for a phase
/// already passed answers the current state, so a re-run converges.
pub async fn advance(c: &mut SqliteConnection, at: i64, from: CaPhase) -> Outcome {
    let (Some(mut b), Some(mut r)) = (bundle(c).await?, rotation(c).await?) else {
        let b = bundle(c).await?.unwrap_or_default();
        return Ok(answer(&b, None));
    };
    if r.phase != from {
        return Ok(answer(&b, Some(r)));
    }
    let members = reads::members(c).await?;
    if !members.iter().any(|m| live(m, at)) {
        return refused("no member has reported recently".into());
    }
    // Gates wait for every known member, down ones included (KNOWN_MS).
    match from {
        CaPhase::Widening => {
            let behind: Vec<String> = members
                .iter()
                .filter(|m| known(m, at) && m.generation < r.widened)
                .map(|m| named(m, at))
                .collect();
            if !behind.is_empty() {
                return refused(format!(
                    "waiting for trust generation {} on: {}",
                    r.widened,
                    behind.join(", ")
                ));
            }
            r.phase = CaPhase::Reissuing;
            b.issuing = r.new.clone();
            b.generation += 1;
            set_bundle(c, &b).await?;
            set_rotation(c, Some(&r)).await?;
            Ok(answer(&b, Some(r)))
        }
        CaPhase::Reissuing => {
            let old = on_other_ca(&members, &r.new, at);
            if !old.is_empty() {
                return refused(format!("still on another CA: {}", old.join(", ")));
            }
            let new_pem = b
                .cas
                .iter()
                .find(|p| ca_fingerprint(p).as_deref() == Some(r.new.as_str()))
                .cloned();
            let Some(new_pem) = new_pem else {
                return invalid("the new CA is missing from the bundle");
            };
            b.cas = vec![new_pem];
            b.generation += 1;
            set_bundle(c, &b).await?;
            set_rotation(c, None).await?;
            Ok(answer(&b, None))
        }
    }
}
