//! CA rotation at the state machine: the first bundle, the gates a
//! rotation passes (every live member loaded the widened trust; none left
//! on another CA), refusals that name who holds it up, and the narrowed
//! trust at the end. Only public certificates appear here.

mod common;

use common::*;
use hamster_meta::state::ca_rotation;
use hamster_meta::state::key_rotation::LIVE_MS;
use hamster_meta::state::model::TrustBundle;
use hamster_proto::pki::{self, Validity};

fn ca(label: &str) -> (String, String) {
    let pair = pki::generate_ca(label, Validity::starting_now(pki::CA_VALIDITY)).expect("ca");
    let fp = ca_rotation::ca_fingerprint(&pair.cert_pem).expect("fp");
    (pair.cert_pem, fp)
}

fn seen(id: &str, role: &str, generation: u64, cert_ca: &str) -> Op {
    Op::MemberSeen {
        id: id.into(),
        role: role.parse().expect("a role"),
        generation,
        cert_ca: cert_ca.into(),
    }
}

fn advance(from: CaPhase) -> Op {
    Op::AdvanceCaRotation { from }
}

fn refusal(r: &Response) -> String {
    match r {
        Response::Err(MetaError::RotationRefused(why)) => why.clone(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// StartCaRotation to the CA `pem`, proposed by `issuer`.
fn start(pem: &str, issuer: &str, replace: bool) -> Op {
    Op::StartCaRotation {
        ca_pem: pem.into(),
        issuer: issuer.into(),
        replace,
    }
}

/// The trust bundle (there must be one).
async fn bundle(db: &mut Db) -> TrustBundle {
    ca_rotation::bundle(db.c())
        .await
        .expect("bundle")
        .expect("some")
}

/// Three CAs (PEM, fingerprint): the old one, the new one, another.
struct Cas {
    old_pem: String,
    old: String,
    new_pem: String,
    new: String,
    other_pem: String,
}

#[tokio::test]
async fn a_ca_rotation_passes_its_gates_only_when_every_known_member_has() {
    let mut db = Db::new().await;
    let (old_pem, old) = ca("old");
    let (new_pem, new) = ca("new");
    let (other_pem, _) = ca("other");
    let cas = Cas {
        old_pem,
        old,
        new_pem,
        new,
        other_pem,
    };
    first_bundle(&mut db, &cas).await;
    open(&mut db, &cas).await;
    let later = gate_one_every_member_loaded_the_widened_trust(&mut db, &cas).await;
    gate_two_nobody_left_on_another_ca(&mut db, &cas, later).await;
}

/// No rotation without a bundle; the first bundle names an issuing CA it
/// holds, and a second first bundle changes nothing. Members report.
async fn first_bundle(db: &mut Db, cas: &Cas) {
    let r = db.run(start(&cas.new_pem, "meta-1", false)).await;
    assert!(refusal(&r).contains("no trust bundle"));
    db.reject(
        Op::InitTrust {
            cas: vec![cas.old_pem.clone()],
            issuing: cas.new.clone(),
            issuer: "meta-1".into(),
        },
        invalid(),
    )
    .await;
    db.ok(Op::InitTrust {
        cas: vec![cas.old_pem.clone()],
        issuing: cas.old.clone(),
        issuer: "meta-1".into(),
    })
    .await;
    db.ok(Op::InitTrust {
        cas: vec![cas.other_pem.clone()],
        issuing: ca_rotation::ca_fingerprint(&cas.other_pem).expect("fp"),
        issuer: "meta-2".into(),
    })
    .await;
    let b = bundle(db).await;
    assert_eq!((b.generation, b.issuing.as_str()), (1, cas.old.as_str()));

    for (id, role) in [("meta-1", "meta"), ("blob-1", "blob"), ("gw-1", "gateway")] {
        db.ok(seen(id, role, 1, &cas.old)).await;
    }
    db.reject(seen("x", "admin", 1, &cas.old), invalid()).await;
}

/// Open: trust {old, new} under generation 2; still issuing from old.
/// Asking again answers it; another CA is refused while it is open.
async fn open(db: &mut Db, cas: &Cas) {
    let opened = db.ok(start(&cas.new_pem, "meta-1", false)).await;
    assert!(
        matches!(opened, Response::CaRotation { generation: 2, .. }),
        "{opened:?}"
    );
    let b = bundle(db).await;
    assert_eq!(b.cas, vec![cas.old_pem.clone(), cas.new_pem.clone()]);
    assert_eq!(b.issuing, cas.old);
    db.ok(start(&cas.new_pem, "meta-2", false)).await;
    let r = db.run(start(&cas.other_pem, "meta-1", false)).await;
    assert!(refusal(&r).contains("is open"));
}

/// Gate 1: every live member has loaded generation 2. It names who has
/// not. Answers the time the gate passed at.
async fn gate_one_every_member_loaded_the_widened_trust(db: &mut Db, cas: &Cas) -> i64 {
    let old = &cas.old;
    db.ok(seen("meta-1", "meta", 2, old)).await;
    let r = db.run(advance(CaPhase::Widening)).await;
    let why = refusal(&r);
    assert!(
        why.contains("blob/blob-1") && why.contains("gateway/gw-1") && !why.contains("meta-1"),
        "{why}"
    );
    // A member down for a moment (gw-1 is silent past the liveness
    // window) still holds the gate, named as down: it would come back to a
    // trust it cannot join. One gone longer than KNOWN_MS does not count,
    // and one forgotten does not either.
    let later = NOW + LIVE_MS + 1;
    db.run_at(
        later - ca_rotation::KNOWN_MS - 1,
        seen("blob-gone", "blob", 1, old),
    )
    .await;
    db.batch(vec![
        (later, seen("meta-1", "meta", 2, old)),
        (later, seen("blob-1", "blob", 2, old)),
    ])
    .await;
    let r = db.run_at(later, advance(CaPhase::Widening)).await;
    let why = refusal(&r);
    assert!(
        why.contains("gateway/gw-1 (down, last seen") && !why.contains("blob-gone"),
        "{why}"
    );
    db.reject(
        Op::ForgetMember {
            role: Role::Gateway,
            id: "nobody".into(),
        },
        invalid(),
    )
    .await;
    db.ok(Op::ForgetMember {
        role: Role::Gateway,
        id: "gw-1".into(),
    })
    .await;
    let r = db.run_at(later, advance(CaPhase::Widening)).await;
    assert!(
        matches!(r, Response::CaRotation { generation: 3, .. }),
        "{r:?}"
    );
    let b = bundle(db).await;
    assert_eq!(b.issuing, cas.new, "new certificates come from the new CA");
    assert_eq!(b.cas.len(), 2, "both CAs still trusted");
    later
}

/// Gate 2: nobody live left on another CA. Then trust is the new CA
/// alone, a late gate request answers the closed state, and the issuing
/// CA cannot be "rotated" to itself.
async fn gate_two_nobody_left_on_another_ca(db: &mut Db, cas: &Cas, later: i64) {
    let new = &cas.new;
    let r = db.run_at(later, advance(CaPhase::Reissuing)).await;
    let why = refusal(&r);
    assert!(
        why.contains("meta/meta-1") && why.contains("blob/blob-1"),
        "{why}"
    );
    db.batch(vec![
        (later, seen("meta-1", "meta", 3, new)),
        (later, seen("blob-1", "blob", 3, new)),
    ])
    .await;
    let r = db.run_at(later, advance(CaPhase::Reissuing)).await;
    assert!(
        matches!(
            r,
            Response::CaRotation {
                generation: 4,
                rotation: None
            }
        ),
        "{r:?}"
    );
    let b = bundle(db).await;
    assert_eq!(
        b.cas,
        vec![cas.new_pem.clone()],
        "trust is the new CA alone"
    );
    assert!(
        ca_rotation::rotation(db.c())
            .await
            .expect("rotation")
            .is_none()
    );
    let r = db.run_at(later, advance(CaPhase::Reissuing)).await;
    assert!(
        matches!(r, Response::CaRotation { rotation: None, .. }),
        "{r:?}"
    );
    let r = db.run(start(&cas.new_pem, "meta-1", false)).await;
    assert!(refusal(&r).contains("already the issuing CA"));
}

#[tokio::test]
async fn a_rotation_whose_new_ca_key_is_lost_is_replaced_and_still_closes() {
    let mut db = Db::new().await;
    let (old_pem, old) = ca("old");
    let (lost_pem, lost) = ca("lost");
    let (new_pem, new) = ca("new");
    db.ok(Op::InitTrust {
        cas: vec![old_pem.clone()],
        issuing: old.clone(),
        issuer: "meta-1".into(),
    })
    .await;
    // Nobody has reported: no gate can be judged.
    db.ok(start(&lost_pem, "meta-1", false)).await;
    let r = db.run(advance(CaPhase::Widening)).await;
    assert!(refusal(&r).contains("no member"), "{r:?}");
    db.ok(seen("meta-1", "meta", 2, &old)).await;
    db.ok(advance(CaPhase::Widening)).await;
    let b = bundle(&mut db).await;
    assert_eq!(b.issuing, lost);

    // The key of `lost` is gone: nothing can be reissued. Another CA is
    // refused unless it replaces the open one, and then the rotation
    // starts again from its first gate, from the same old CA.
    let r = db.run(start(&new_pem, "meta-1", false)).await;
    assert!(refusal(&r).contains("is open"), "{r:?}");
    // Text beside the certificate (a stray key block) never reaches the bundle.
    let with_key =
        format!("{new_pem}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    db.ok(start(&with_key, "meta-1", true)).await;
    let r = ca_rotation::rotation(db.c())
        .await
        .expect("rotation")
        .expect("open");
    assert_eq!(
        (r.old.as_str(), r.new.as_str(), r.phase),
        (old.as_str(), new.as_str(), CaPhase::Widening)
    );
    let b = bundle(&mut db).await;
    assert_eq!(b.cas.len(), 3);
    assert!(!b.cas.concat().contains("PRIVATE KEY"));
    let widened = r.widened;
    db.ok(seen("meta-1", "meta", widened, &lost)).await;
    db.ok(advance(CaPhase::Widening)).await;
    db.ok(seen("meta-1", "meta", widened + 1, &new)).await;
    db.ok(advance(CaPhase::Reissuing)).await;
    let b = bundle(&mut db).await;
    assert_eq!(b.cas, vec![new_pem], "trust ends on the replacement alone");
    assert_eq!(b.issuing, new);
}
