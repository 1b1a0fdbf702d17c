//! Master-key rotation at the state machine: the write key and who holds
//! which keys, when a rotation may open and close, the split-key guard on
//! commits, and rewrapped keys applied only while they are still what
//! the rewrapper read. Only fingerprints and wrapped bytes appear here.

mod common;

use common::*;
use hamster_meta::state::key_rotation::{self, LIVE_MS};
use hamster_meta::state::model::{RewrapTarget, Rewrapped};
use hamster_meta::state::reads;

const OLD: &str = "kek-a";
const NEW: &str = "kek-b";

fn seen(id: &str, role: &str, current: &str, next: &str) -> Op {
    Op::KeyHolderSeen {
        id: id.into(),
        role: role.parse().expect("a role"),
        current: current.into(),
        next: next.into(),
    }
}

fn start(old: &str, new: &str) -> Op {
    Op::StartKeyRotation {
        old: old.into(),
        new: new.into(),
    }
}

fn refused() -> MetaError {
    MetaError::RotationRefused(String::new())
}

fn refusal(r: &Response) -> String {
    match r {
        Response::Err(MetaError::RotationRefused(why)) => why.clone(),
        other => panic!("expected a refused rotation, got {other:?}"),
    }
}

async fn write_key(db: &mut Db) -> String {
    key_rotation::write_key(db.c()).await.expect("write key")
}

async fn on(db: &mut Db, fp: &str) -> u64 {
    key_rotation::count_on(db.c(), fp).await.expect("count")
}

/// A cluster with its write key, one of every kind of wrapped key, and
/// two holders reporting both keys.
async fn populated() -> Db {
    let mut db = Db::new().await;
    db.ok(seen("meta-1", "meta", OLD, NEW)).await;
    db.ok(seen("gw-1", "gateway", OLD, NEW)).await;
    db.ok(create("bkt", true)).await;
    db.ok(commit(ver("bkt", "plain", "v1", "plain"))).await;
    db.ok(commit(Version {
        lock_mode: LockMode::Compliance,
        retain_until_ms: NOW + 1_000_000,
        legal_hold: true,
        ..ver("bkt", "locked", "v1", "locked")
    }))
    .await;
    db.ok(del("bkt", "plain", None, "dm")).await;
    // A completed multipart object and an upload still in progress.
    db.multipart_pair().await;
    db.ok(Op::PutAccessKey {
        key: access_key("AK1"),
    })
    .await;
    db
}

#[tokio::test]
async fn the_first_meta_report_records_the_write_key() {
    let mut db = Db::new().await;
    db.ok(seen("gw-1", "gateway", "kek-gw", "")).await;
    assert_eq!(write_key(&mut db).await, "", "a gateway does not set it");
    db.ok(seen("meta-1", "meta", OLD, "")).await;
    db.ok(seen("meta-2", "meta", "kek-other", "")).await;
    assert_eq!(write_key(&mut db).await, OLD);
    db.reject(seen("", "meta", OLD, ""), invalid()).await;
    db.reject(seen("blob-1", "blob", OLD, ""), invalid()).await;
    let holders = reads::key_holders(db.c()).await.expect("holders");
    assert_eq!(holders.len(), 3);
}

#[tokio::test]
async fn a_rotation_opens_only_when_every_live_holder_has_the_next_key() {
    let mut db = Db::new().await;
    db.reject(start(OLD, NEW), refused()).await;
    db.ok(seen("meta-1", "meta", OLD, NEW)).await;
    db.ok(seen("gw-1", "gateway", OLD, "")).await;
    db.run_at(NOW - 2 * LIVE_MS, seen("gw-gone", "gateway", OLD, ""))
        .await;

    // gw-1 lacks the next key and is named; gw-gone is not live.
    let r = db.run(start(OLD, NEW)).await;
    let why = refusal(&r);
    assert!(
        why.contains("gw-1") && !why.contains("gw-gone") && !why.contains("meta-1"),
        "{why}"
    );
    db.reject(start("kek-z", NEW), refused()).await;
    db.reject(start(OLD, OLD), refused()).await;
    db.reject(start(OLD, ""), refused()).await;

    db.ok(seen("gw-1", "gateway", OLD, NEW)).await;
    let r = db.run(start(OLD, NEW)).await;
    assert_eq!(r, Response::RotationStarted { to_rewrap: 0 });
    assert_eq!(write_key(&mut db).await, NEW);
    // One at a time: another target is refused; asking again for this
    // one (as rotate-key does to resume) answers it.
    db.reject(start(NEW, "kek-c"), refused()).await;
    assert!(matches!(
        db.run(start(NEW, NEW)).await,
        Response::RotationStarted { .. }
    ));
}

#[tokio::test]
async fn commits_must_use_the_write_key() {
    let mut db = populated().await;
    let stranger = Version {
        kek_fingerprint: "kek-x".into(),
        ..ver("bkt", "k", "v9", "x")
    };
    db.reject(commit(stranger), MetaError::WrongMasterKey(String::new()))
        .await;
    db.ok(start(OLD, NEW)).await;
    // From the opening on, only the new key is taken.
    db.reject(
        commit(ver("bkt", "k", "v2", "x")),
        MetaError::WrongMasterKey(String::new()),
    )
    .await;
    let on_new = Version {
        kek_fingerprint: NEW.into(),
        ..ver("bkt", "k", "v3", "y")
    };
    db.ok(commit(on_new)).await;
    db.reject(
        put_part("bkt", "open", "u2", part(2, 10, "late")),
        MetaError::WrongMasterKey(String::new()),
    )
    .await;
    let late = Part {
        kek_fingerprint: NEW.into(),
        ..part(2, 10, "late")
    };
    db.ok(put_part("bkt", "open", "u2", late)).await;

    // Secrets too: an access key sealed under any other key, or under
    // none named, is refused.
    let stale = AccessKey {
        kek_fingerprint: OLD.into(),
        ..access_key("AKSTALE")
    };
    db.reject(
        Op::PutAccessKey { key: stale },
        MetaError::WrongMasterKey(String::new()),
    )
    .await;
    let unnamed = AccessKey {
        kek_fingerprint: String::new(),
        ..access_key("AKNONE")
    };
    db.reject(Op::PutAccessKey { key: unnamed }, invalid())
        .await;
    let fresh = AccessKey {
        kek_fingerprint: NEW.into(),
        ..access_key("AKNEW")
    };
    db.ok(Op::PutAccessKey { key: fresh }).await;
}

#[tokio::test]
async fn rewrap_moves_every_kind_of_key_and_the_rotation_closes_at_zero() {
    let mut db = populated().await;
    let r = db.run(start(OLD, NEW)).await;
    // plain v1, locked v1, two parts of mv, the open upload's part, AK1.
    assert_eq!(r, Response::RotationStarted { to_rewrap: 6 });
    assert_eq!(on(&mut db, OLD).await, 6);
    db.reject(Op::FinishKeyRotation, refused()).await;
    let locked_before = q::version(db.c(), "bkt", "locked", "v1")
        .await
        .expect("read")
        .expect("locked")
        .0;

    let pending = reads::wrapped_by(db.c(), OLD, 100).await.expect("pending");
    assert_eq!(pending.len(), 6, "{pending:?}");
    let kinds: std::collections::BTreeSet<&str> = pending
        .iter()
        .map(|(t, _)| match t {
            RewrapTarget::Version { .. } => "version",
            RewrapTarget::VersionPart { .. } => "version part",
            RewrapTarget::UploadPart { .. } => "upload part",
            RewrapTarget::AccessKey { .. } => "access key",
        })
        .collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    let items: Vec<Rewrapped> = pending
        .into_iter()
        .map(|(target, old)| {
            let mut new = old.clone();
            new.push(0xbb);
            Rewrapped { target, old, new }
        })
        .collect();

    // A batch for another key, or with an empty result, is refused.
    db.reject(
        Op::Rewrap {
            new: "kek-c".into(),
            items: items.clone(),
        },
        refused(),
    )
    .await;
    // A stale item (its bytes changed since they were read) is skipped.
    let mut stale = items[0].clone();
    stale.old = vec![9, 9, 9];
    let r = db
        .run(Op::Rewrap {
            new: NEW.into(),
            items: vec![stale],
        })
        .await;
    assert_eq!(r, Response::Rewrapped { moved: 0 });

    // Half, then the rest (the first half again: already moved, skipped).
    let r = db
        .run(Op::Rewrap {
            new: NEW.into(),
            items: items[..3].to_vec(),
        })
        .await;
    assert_eq!(r, Response::Rewrapped { moved: 3 });
    assert_eq!(on(&mut db, OLD).await, 3);
    let r = db
        .run(Op::Rewrap {
            new: NEW.into(),
            items: items.clone(),
        })
        .await;
    assert_eq!(r, Response::Rewrapped { moved: 3 });
    assert_eq!(on(&mut db, OLD).await, 0);
    assert_eq!(on(&mut db, NEW).await, 6);

    // The locked version: only its wrapped key changed.
    let locked_after = q::version(db.c(), "bkt", "locked", "v1")
        .await
        .expect("read")
        .expect("locked")
        .0;
    assert_eq!(
        Version {
            wrapped_dek: locked_before.wrapped_dek.clone(),
            kek_fingerprint: locked_before.kek_fingerprint.clone(),
            ..locked_after.clone()
        },
        locked_before
    );
    assert_eq!(locked_after.kek_fingerprint, NEW);
    let ak = q::access_key(db.c(), "AK1")
        .await
        .expect("read")
        .expect("AK1");
    assert_eq!(
        (ak.kek_fingerprint.as_str(), ak.sealed_secret.last()),
        (NEW, Some(&0xbb))
    );

    db.ok(Op::FinishKeyRotation).await;
    assert_eq!(
        key_rotation::rotation(db.c()).await.expect("rotation"),
        None
    );
    db.reject(Op::FinishKeyRotation, refused()).await;
    db.reject(
        Op::Rewrap {
            new: NEW.into(),
            items,
        },
        refused(),
    )
    .await;
    // The next rotation starts from the new key.
    db.ok(seen("meta-1", "meta", NEW, "kek-c")).await;
    db.ok(seen("gw-1", "gateway", NEW, "kek-c")).await;
    assert!(matches!(
        db.run(start(NEW, "kek-c")).await,
        Response::RotationStarted { to_rewrap: 6 }
    ));
}
