//! The admin side of CA rotation (ADR 0019): open (minting the new CA in
//! this node's CA directory), move past a gate, and the status fields.

use hamster_proto::pb;

use super::errors::{ServiceError, unexpected};
use crate::ca::CaStore;
use crate::cluster::{Meta, now_ms};
use crate::state::commands::{MetaError, Op, Response as R};
use crate::state::model::{CaRotation, TrustBundle};
use crate::state::{ca_rotation, reads};

fn state(b: &TrustBundle, r: Option<&CaRotation>) -> pb::CaRotationState {
    pb::CaRotationState {
        trust_generation: b.generation,
        phase: r.map_or("none".into(), |r| r.phase.to_string()),
        old_ca_fingerprint: r.map(|r| r.old.clone()).unwrap_or_default(),
        new_ca_fingerprint: r.map_or(b.issuing.clone(), |r| r.new.clone()),
        trust_pem: b.cas.concat(),
    }
}

/// A rotation step the state machine refuses (a gate still shut, or a
/// phase or CA it cannot take) travels as RotationRefused, under the
/// gRPC code it always had; the CLI shows the reason and asks again.
fn refused(e: MetaError) -> ServiceError {
    ServiceError::RotationRefused(e.to_string())
}

async fn current(meta: &Meta) -> Result<pb::CaRotationState, ServiceError> {
    let (b, r) = meta
        .read(async |c| {
            Ok((
                ca_rotation::bundle(c).await?,
                ca_rotation::rotation(c).await?,
            ))
        })
        .await?;
    let b = b.ok_or(ServiceError::NoTrustBundle)?;
    Ok(state(&b, r.as_ref()))
}

/// Answers the open rotation, or mints a CA here and opens one; with
/// `replace`, mints one that replaces the open rotation's new CA.
pub async fn start(
    meta: &Meta,
    store: &CaStore,
    replace: bool,
) -> Result<pb::CaRotationState, ServiceError> {
    let open = current(meta).await?;
    if open.phase != "none" && !replace {
        return Ok(open);
    }
    if store.dir.is_none() {
        return Err(ServiceError::NoCaKey(format!(
            "meta-server {} has no --ca-dir to mint the new CA in; ask one that has",
            meta.tls.identity().node_id
        )));
    }
    let ca_pem = store
        .mint()
        .map_err(|e| ServiceError::Internal(format!("minting the new CA: {e}")))?;
    let op = Op::StartCaRotation {
        ca_pem,
        issuer: meta.tls.identity().node_id.clone(),
        replace,
    };
    match meta.write(op).await? {
        R::CaRotation { .. } => {}
        R::Err(e) => return Err(refused(e)),
        other => return Err(unexpected(other)),
    }
    let s = current(meta).await?;
    tracing::info!(old = %s.old_ca_fingerprint, new = %s.new_ca_fingerprint, generation = s.trust_generation, "CA rotation open: trust widened");
    Ok(s)
}

/// Moves the rotation past the gate of `from`, or says who holds it up.
pub async fn advance(meta: &Meta, from: &str) -> Result<pb::CaRotationState, ServiceError> {
    match meta
        .write(Op::AdvanceCaRotation {
            from: from.parse()?,
        })
        .await?
    {
        R::CaRotation { .. } => {}
        R::Err(e) => return Err(refused(e)),
        other => return Err(unexpected(other)),
    }
    let s = current(meta).await?;
    tracing::info!(phase = %s.phase, generation = s.trust_generation, "CA rotation moved on");
    Ok(s)
}

/// Drops a member gone for good.
pub async fn forget(meta: &Meta, role: &str, id: &str) -> Result<(), ServiceError> {
    let op = Op::ForgetMember {
        role: role.parse()?,
        id: id.into(),
    };
    match meta.write(op).await? {
        R::Ok => {
            tracing::info!(%role, %id, "member forgotten");
            Ok(())
        }
        // The one refusal: no member by that name.
        R::Err(e) => Err(ServiceError::NoSuchMember(e.to_string())),
        other => Err(unexpected(other)),
    }
}

/// `base` with the CA fields of `hamster status` filled in.
pub async fn status(
    meta: &Meta,
    base: pb::StatusResponse,
) -> Result<pb::StatusResponse, ServiceError> {
    let (b, r, members) = meta
        .read(async |c| {
            Ok((
                ca_rotation::bundle(c).await?.unwrap_or_default(),
                ca_rotation::rotation(c).await?,
                reads::members(c).await?,
            ))
        })
        .await?;
    let at = now_ms();
    let target = ca_rotation::target_ca(&b, r.as_ref());
    Ok(pb::StatusResponse {
        trust_generation: b.generation,
        members_on_old_ca: ca_rotation::on_other_ca(&members, &target, at).len() as u64,
        tls_members: members
            .iter()
            .map(|m| pb::TlsMember {
                id: m.id.clone(),
                role: m.role.to_string(),
                trust_generation: m.generation,
                cert_ca_fingerprint: m.cert_ca.clone(),
                last_seen_ms: m.last_seen_ms,
                live: ca_rotation::live(m, at),
            })
            .collect(),
        ca_rotation: r.as_ref().map_or("none".into(), |r| r.phase.to_string()),
        issuing_ca_fingerprint: b.issuing.clone(),
        ca_rotation_new_fingerprint: r.map(|r| r.new).unwrap_or_default(),
        ..base
    })
}
