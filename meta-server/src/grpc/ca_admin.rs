//! The admin side of CA rotation (ADR 0019): open (minting the new CA in
//! this node's CA directory), move past a gate, and the status fields;
//! and of membership (ADR 0030): forgetting a member or removing a
//! meta-server puts its id on the deny list for good.

use hamster_proto::pb;

use super::errors::{ServiceError, expect_ok, unexpected};
use crate::ca::CaStore;
use crate::cluster::{CallError, ForwardRequest, Meta, now_ms};
use crate::state::commands::{MetaError, Op, Response as R};
use crate::state::model::{CaRotation, Role, TrustBundle};
use crate::state::{ca_rotation, deny, reads};

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
    // Only the leader proposes StartCaRotation (it is never forwarded,
    // ADR 0030): a follower sends the caller there before minting, so no
    // key is left behind on a node whose rotation never opened.
    if let Some(addr) = meta.leader_elsewhere() {
        return Err(ServiceError::NotLeader(addr));
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

/// Drops a member gone for good and denies its id (ADR 0030).
pub async fn forget(meta: &Meta, role: &str, id: &str) -> Result<(), ServiceError> {
    let role: Role = role.parse()?;
    // Denying a voter would leave the membership a member every node
    // refuses (a quorum short for good): it leaves the membership first.
    if role == Role::Meta && meta.members().0.values().any(|n| n.name == id) {
        return Err(ServiceError::InvalidArgument(format!(
            "meta-server {id} is in the Raft membership: remove it (hamster member remove) \
             instead, which denies its id too"
        )));
    }
    // Only a member the meta tier knows (a typo must not deny an id for
    // good), or one already denied (an earlier forget cut short).
    let known = meta
        .read(async |c| {
            let seen = reads::members(c)
                .await?
                .iter()
                .any(|m| m.role == role && m.id == id);
            Ok(seen || deny::is_denied(c, role, id).await?)
        })
        .await?;
    if !known {
        return Err(ServiceError::NoSuchMember(format!("no member {role}/{id}")));
    }
    // Deny first (it also drops the member record): a new op, so the old
    // ForgetMember keeps applying as it always did (ADR 0020).
    let op = Op::DenyMember {
        role,
        id: id.into(),
    };
    match meta.write(op).await? {
        R::Ok => {
            tracing::info!(%role, %id, "member forgotten; its id is denied for good");
            Ok(())
        }
        // A blob-server still registered.
        R::Err(e) => Err(e.into()),
        other => Err(unexpected(other)),
    }
}

/// Refuses an id on the deny list: a removed member's id never comes
/// back (every tier refuses its certificate); a replacement takes a new id.
pub async fn refuse_denied(meta: &Meta, role: Role, id: &str) -> Result<(), ServiceError> {
    if meta
        .read(async |c| deny::is_denied(c, role, id).await)
        .await?
    {
        return Err(ServiceError::MemberRemoved(format!(
            "{role}/{id} was removed from the cluster; its replacement needs a new id"
        )));
    }
    Ok(())
}

/// Removes a meta-server from the membership, then denies its id. In
/// that order, so a failure in between never leaves a voter the others
/// refuse; if the second write fails, `hamster rotate-ca --forget
/// meta/NAME` denies it.
pub async fn remove_member(meta: &Meta, raft_id: u64) -> Result<(), ServiceError> {
    let name = meta.members().0.get(&raft_id).map(|n| n.name.clone());
    expect_ok(
        meta.run(ForwardRequest::RemoveVoter { id: raft_id })
            .await?,
    )?;
    if let Some(name) = name {
        let op = Op::DenyMember {
            role: Role::Meta,
            id: name.clone(),
        };
        match meta.write(op).await {
            Ok(r) => expect_ok(r)?,
            // Removing the leader itself moves the leadership before the
            // deny is written. Not NotLeader: the CLI would send the whole
            // removal again to the new leader, which no longer knows the
            // name, and answer success with the id never denied.
            Err(CallError::NotLeader(_)) => {
                return Err(ServiceError::Unavailable(format!(
                    "meta-server {name} left the membership, but the leadership moved before \
                     its id was denied: run `hamster rotate-ca --forget meta/{name}`"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(raft_id, %name, "meta-server removed; its id is denied for good");
    }
    Ok(())
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
