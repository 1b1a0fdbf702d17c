//! `hamster rotate-ca`: rolls the cluster onto a new CA with no trust gap
//! (ADR 0019), and follows it to the end.
//!
//! 1. A meta-server with `--ca-dir` mints the new CA there (the key never
//!    leaves that disk) and publishes trust {old, new}.
//! 2. Every member loads it; then new certificates come from the new CA
//!    and every member renews by CSR over its mTLS channel, with a key it
//!    makes itself. This command renews its own admin certificate too,
//!    written to --admin-cert / --admin-key.
//! 3. When no live member is left on another CA, trust becomes {new}.
//!
//! Each step is a gate the state machine checks; this command only asks
//! to pass it. Re-running it follows the open rotation from wherever it
//! is, so an interrupted run (or a leader change) is resumed by running
//! it again. The old CA's key is never needed.

use std::time::{Duration, Instant};

use anyhow::Context;
use hamster_proto::ErrorCode;
use hamster_proto::pb::{
    AdvanceCaRotationRequest, ForgetMemberRequest, RenewRequest, StartCaRotationRequest,
    SyncRequest, admin_client::AdminClient, certs_client::CertsClient,
};
use hamster_proto::pki::{self, ExtraNames};
use hamster_proto::trust_sync::{install_certified, replace_file};

use crate::conn::{MetaConn, StatusPoller};

#[derive(Debug, clap::Args)]
pub struct RotateCaArgs {
    #[command(flatten)]
    pub meta: MetaConn,
    /// Progress as JSON lines instead of a bar.
    #[arg(long)]
    pub json: bool,
    /// Give up following after the meta tier has not answered for this long.
    #[arg(long, default_value_t = 120)]
    pub unreachable_secs: u64,
    /// Give up following when nothing has moved for this long (the
    /// rotation stays open; run the command again to resume).
    #[arg(long, default_value_t = 600)]
    pub stall_secs: u64,
    /// Drop a member gone for good (ROLE/ID, e.g. blob/blob-7) first, so
    /// it no longer holds the rotation's gates. Repeatable.
    #[arg(long, value_name = "ROLE/ID")]
    pub forget: Vec<String>,
    /// Mint a new CA that replaces the open rotation's (if that CA's key
    /// was lost); the rotation starts again from its first gate.
    #[arg(long)]
    pub replace: bool,
}

/// Opens the rotation (or finds the open one) on the first meta-server
/// that can: minting needs one started with --ca-dir.
async fn open(a: &RotateCaArgs) -> anyhow::Result<hamster_proto::pb::CaRotationState> {
    let req = StartCaRotationRequest { replace: a.replace };
    a.meta
        .on_any(async |ch| AdminClient::new(ch).start_ca_rotation(req).await)
        .await
        .context("rotate-ca could not open the rotation")?
        .into_inner()
        .state
        .context("no rotation state")
}

/// Renews this command's own admin certificate from the issuing CA: a new
/// key made here, a CSR over mTLS to a meta-server that holds the CA key
/// (admin certificates are never signed by forwarding). On disk before
/// anything else uses it.
async fn renew_self(a: &RotateCaArgs) -> anyhow::Result<()> {
    let tls = a.meta.conn.tls()?;
    let (csr, key) = pki::generate_csr(tls.identity(), &ExtraNames::default())?;
    let key = zeroize::Zeroizing::new(key);
    let req = RenewRequest {
        csr_pem: csr,
        for_identity: String::new(),
    };
    let cert = a
        .meta
        .on_any(async |ch| CertsClient::new(ch).renew(req.clone()).await)
        .await
        .context(
            "renewing the admin certificate (it needs a meta-server in --meta that holds the CA key)",
        )?
        .into_inner()
        .cert_pem;
    tls.check_certified(&cert, &key)
        .context("the renewed admin certificate does not fit its key")?;
    install_certified(&a.meta.conn.paths(), &cert, &key)?;
    Ok(())
}

/// The published bundle (public), as this command's admin identity sees it.
async fn published(a: &RotateCaArgs) -> anyhow::Result<String> {
    let r = CertsClient::new(a.meta.channel()?)
        .sync(SyncRequest::default())
        .await
        .map_err(|s| anyhow::anyhow!("fetching the trust bundle: {}", s.message()))?
        .into_inner();
    anyhow::ensure!(
        !r.trust_pem.is_empty(),
        "the published trust bundle is empty"
    );
    Ok(r.trust_pem)
}

fn fingerprints(pem: &str) -> std::collections::BTreeSet<String> {
    pki::certs_from_pem(pem)
        .unwrap_or_default()
        .iter()
        .map(|d| pki::cert_fingerprint(d))
        .collect()
}

/// The CA that signed this command's admin certificate ("" if untrusted).
fn own_ca(a: &RotateCaArgs) -> anyhow::Result<String> {
    Ok(a.meta
        .conn
        .tls()?
        .own_issuer_fingerprint()
        .unwrap_or_default())
}

/// If the last run's rotation closed before that run saved trust {new}
/// (nothing open, this command's certificate from the issuing CA, and its
/// trust file a strict superset of the published bundle): the issuing CA
/// and the bundle to save. A re-run then finishes that rotation instead
/// of starting another.
async fn unsaved_close(a: &RotateCaArgs) -> anyhow::Result<Option<(String, String)>> {
    let Some(s) = StatusPoller::new(a.unreachable_secs).poll(&a.meta).await? else {
        return Ok(None);
    };
    if s.ca_rotation != "none" || own_ca(a)? != s.issuing_ca_fingerprint {
        return Ok(None);
    }
    let bundle = published(a).await?;
    let (mine, theirs) = (
        fingerprints(&std::fs::read_to_string(&a.meta.conn.trust)?),
        fingerprints(&bundle),
    );
    Ok((mine.is_superset(&theirs) && mine != theirs).then_some((s.issuing_ca_fingerprint, bundle)))
}

/// Writes the published trust bundle to this command's trust file.
async fn save_trust(a: &RotateCaArgs) -> anyhow::Result<()> {
    replace_file(&a.meta.conn.trust, published(a).await?.as_bytes(), 0o644)?;
    Ok(())
}

async fn forget(a: &RotateCaArgs, member: &str) -> anyhow::Result<()> {
    let (role, id) = member
        .split_once('/')
        .context("--forget takes ROLE/ID, e.g. blob/blob-7")?;
    AdminClient::new(a.meta.channel()?)
        .forget_member(ForgetMemberRequest {
            role: role.into(),
            id: id.into(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("forgetting {member}: {}", s.message()))?;
    println!("member {member} forgotten");
    Ok(())
}

pub async fn run(a: &RotateCaArgs) -> anyhow::Result<()> {
    for m in &a.forget {
        forget(a, m).await?;
    }
    if !a.replace
        && let Some((new, bundle)) = unsaved_close(a).await?
    {
        replace_file(&a.meta.conn.trust, bundle.as_bytes(), 0o644)?;
        event(a, "closed", "none", &new, 0, 0, "");
        return Ok(());
    }
    let opened = open(a).await?;
    let new = opened.new_ca_fingerprint.clone();
    // Trust both before anything is reissued, or the first renewed
    // meta-server would cut this command off.
    replace_file(&a.meta.conn.trust, opened.trust_pem.as_bytes(), 0o644)?;
    event(a, "opened", &opened.phase, &new, 0, 0, "");
    let mut poller = StatusPoller::new(a.unreachable_secs);
    let mut last_move = (Instant::now(), String::new());
    let mut note = String::new();
    loop {
        let Some(s) = poller.poll(&a.meta).await? else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let live = s.tls_members.iter().filter(|m| m.live).count() as u64;
        let behind: Vec<String> = s
            .tls_members
            .iter()
            .filter(|m| m.live && m.trust_generation < s.trust_generation)
            .map(|m| format!("{}/{}", m.role, m.id))
            .collect();
        if s.ca_rotation == "none" {
            anyhow::ensure!(
                s.issuing_ca_fingerprint == new,
                "no CA rotation is open, and the issuing CA is {} (not {new})",
                s.issuing_ca_fingerprint
            );
            // Closed when every live member has dropped the old CA too.
            if behind.is_empty() {
                save_trust(a).await?;
                event(a, "closed", "none", &new, live, 0, "");
                return Ok(());
            }
        }
        // Where it is, before acting: whoever watches sees each phase
        // before its gate is asked for.
        event(
            a,
            "progress",
            &s.ca_rotation,
            &new,
            live,
            s.members_on_old_ca,
            &note,
        );
        note = match s.ca_rotation.as_str() {
            "none" => format!(
                "trust {{new}} (generation {}) not yet loaded on: {}",
                s.trust_generation,
                behind.join(", ")
            ),
            "reissuing" => {
                if own_ca(a)? != new {
                    renew_self(a).await?;
                }
                advance(a, "reissuing").await?
            }
            phase => advance(a, phase).await?,
        };
        let moved = format!("{} {} {note}", s.ca_rotation, s.members_on_old_ca);
        if moved != last_move.1 {
            last_move = (Instant::now(), moved);
        }
        anyhow::ensure!(
            last_move.0.elapsed() < Duration::from_secs(a.stall_secs),
            "nothing has moved for {} s ({note}); the rotation stays open: fix that and run \
             rotate-ca again",
            a.stall_secs
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Asks to pass the gate of `phase`; answers why not, if not yet.
async fn advance(a: &RotateCaArgs, phase: &str) -> anyhow::Result<String> {
    let r = AdminClient::new(a.meta.channel()?)
        .advance_ca_rotation(AdvanceCaRotationRequest {
            from_phase: phase.into(),
        })
        .await;
    match r {
        Ok(_) => Ok(String::new()),
        // A gate still shut: the reason is what to wait for.
        Err(s) if ErrorCode::of(&s) == Some(ErrorCode::RotationRefused) => {
            Ok(s.message().to_string())
        }
        // Unreachable or electing: the next round asks again.
        Err(s) => Ok(format!("meta tier: {}", s.message())),
    }
}

fn event(a: &RotateCaArgs, event: &str, phase: &str, new: &str, live: u64, old: u64, note: &str) {
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "event": event, "ca_rotation": phase, "new_ca_fingerprint": new,
                "live_members": live, "members_on_old_ca": old, "waiting_for": note,
            })
        );
        return;
    }
    match event {
        "opened" => println!("CA rotation open: new CA {new}; trust is {{old, new}}"),
        "closed" => println!("\nCA rotation closed: every member is on {new} and trusts it alone"),
        _ => {
            let done = live.saturating_sub(old);
            let tail = format!("{phase}: {done}/{live} members on the new CA {note:<60.60}");
            crate::rotate::progress(done, live, false, &tail);
        }
    }
}
