//! Per-key authorization at the state machine (ADR 0027): every bucket
//! op fed straight to apply for a key with no right, a read grant, a
//! write grant, ownership, an admin and no actor at all. Each refusal is
//! AccessDenied and leaves every table as it was (`Db::reject_by`).

mod common;

use common::*;

fn create_owned(name: &str, lock: bool, owner: Option<&str>) -> Op {
    Op::CreateBucket {
        name: name.into(),
        object_lock_enabled: lock,
        owner: owner.map(Into::into),
    }
}

fn versioning(bucket: &str) -> Op {
    Op::PutBucketVersioning {
        bucket: bucket.into(),
        status: Versioning::Enabled,
    }
}

fn lock_config(bucket: &str) -> Op {
    Op::PutLockConfiguration {
        bucket: bucket.into(),
        default_retention: Some(DefaultRetention {
            mode: LockMode::Governance,
            days: 1,
            years: 0,
        }),
        enable: false,
    }
}

fn retention(bucket: &str, id: &str, mode: LockMode, until: i64, bypass: bool) -> Op {
    Op::PutRetention {
        bucket: bucket.into(),
        key: "doc".into(),
        version_id: id.into(),
        mode,
        retain_until_ms: until,
        bypass_governance: bypass,
    }
}

fn legal_hold(bucket: &str, id: &str, on: bool) -> Op {
    Op::PutLegalHold {
        bucket: bucket.into(),
        key: "doc".into(),
        version_id: id.into(),
        on,
    }
}

fn governed(bucket: &str, id: &str, until: i64) -> Version {
    Version {
        lock_mode: LockMode::Governance,
        retain_until_ms: until,
        ..ver(bucket, "doc", id, id)
    }
}

/// [`access_world`], and in "vault" one GOVERNANCE version "g1" and an
/// open upload "u1".
async fn world() -> Db {
    let mut db = access_world().await;
    db.ok_by(key("alice"), commit(governed("vault", "g1", NOW + DAY)))
        .await;
    db.ok_by(key("alice"), begin("vault", "up", "u1")).await;
    db
}

/// Every op that needs write on `bucket`, in an order that succeeds.
fn write_ops(bucket: &str) -> Vec<Op> {
    vec![
        commit(ver(bucket, "k", "w1", "w")),
        del(bucket, "k", None, "m1"),
        begin(bucket, "k", "u2"),
        put_part(bucket, "k", "u2", part(1, 10, "p")),
        complete(bucket, "k", "u2", &[(1, &md5_hex(b"p"))], "c1"),
        begin(bucket, "k", "u3"),
        abort(bucket, "k", "u3"),
    ]
}

/// Every op that needs owner on the lock bucket "vault".
fn owner_ops() -> Vec<Op> {
    vec![
        versioning("vault"),
        lock_config("vault"),
        retention("vault", "g1", LockMode::Governance, NOW + 2 * DAY, false),
        legal_hold("vault", "g1", true),
        del_bypass("vault", "doc", "g1"),
        delete_bucket("vault"),
    ]
}

#[tokio::test]
async fn a_key_owns_what_it_creates_and_others_get_nothing() {
    let mut db = world().await;
    let b = db.bucket("abc").await.expect("abc");
    assert_eq!(b.owner, "alice");
    assert_eq!(db.rights("alice", "abc").await, Rights::ALL);
    assert_eq!(db.rights("bob", "abc").await, Rights::NONE);

    for op in write_ops("abc").into_iter().chain(owner_ops()) {
        db.reject_by(Some(key("bob")), op, denied()).await;
    }
    // A key no one made, and the empty key, are refused the same way.
    for who in ["mallory", ""] {
        db.write_refused(who, "abc").await;
    }
    // The owner may do all of it.
    for op in write_ops("abc") {
        db.ok_by(key("alice"), op).await;
    }
}

#[tokio::test]
async fn read_and_write_grants_open_exactly_their_ops() {
    let mut db = world().await;
    let r = db
        .ok_by(admin(), allow("abc", "bob", true, false, false))
        .await;
    assert_eq!(r, Response::Grant(grant("abc", "bob", true, false, false)));
    assert_eq!(
        db.rights("bob", "abc").await,
        Rights {
            read: true,
            ..Rights::NONE
        }
    );
    // Reads are not commands: a read grant opens no command.
    db.write_refused("bob", "abc").await;

    db.ok_by(admin(), allow("abc", "bob", false, true, false))
        .await;
    db.ok_by(admin(), allow("vault", "bob", false, true, false))
        .await;
    assert_eq!(
        db.rights("bob", "abc").await,
        Rights {
            read: true,
            write: true,
            owner: false
        }
    );
    for op in write_ops("abc") {
        db.ok_by(key("bob"), op).await;
    }
    for op in owner_ops() {
        db.reject_by(Some(key("bob")), op, denied()).await;
    }

    // Write without read: a drop box.
    db.ok_by(admin(), allow("abc", "carol", false, true, false))
        .await;
    assert_eq!(
        db.rights("carol", "abc").await,
        Rights {
            write: true,
            ..Rights::NONE
        }
    );
    db.ok_by(key("carol"), commit(ver("abc", "drop", "x", "x")))
        .await;

    // Deny closes writes at once: the next command meets the state.
    assert_eq!(
        db.run_by_at(NOW, Some(admin()), deny("abc", "bob")).await,
        Response::Ok
    );
    assert_eq!(db.rights("bob", "abc").await, Rights::NONE);
    db.write_refused("bob", "abc").await;
}

#[tokio::test]
async fn a_writer_has_none_of_the_owners_powers() {
    let mut db = world().await;
    db.ok_by(admin(), allow("vault", "bob", true, true, false))
        .await;
    // Each refused, even the bypass that would not be needed (an expired
    // version) and a lengthening, which object lock would allow.
    let old = commit(governed("vault", "old", NOW - 1));
    let r = db.run_by_at(NOW - 10, Some(key("alice")), old).await;
    assert!(matches!(r, Response::Committed { .. }), "{r:?}");
    for op in [
        del_bypass("vault", "doc", "g1"),
        del_bypass("vault", "doc", "old"),
        retention("vault", "g1", LockMode::Governance, NOW + 9 * DAY, false),
        retention("vault", "g1", LockMode::None, 0, true),
        legal_hold("vault", "g1", true),
        legal_hold("vault", "g1", false),
        versioning("vault"),
        lock_config("vault"),
        delete_bucket("vault"),
    ] {
        db.reject_by(Some(key("bob")), op, denied()).await;
    }
    // Without bypass, a writer meets object lock like anyone.
    db.reject_by(
        Some(key("bob")),
        del("vault", "doc", Some("g1"), ""),
        denied(),
    )
    .await;
    assert!(db.version("vault", "doc", "g1").await.is_some());

    // The owner may bypass GOVERNANCE.
    db.ok_by(key("alice"), del_bypass("vault", "doc", "g1"))
        .await;
    assert!(db.version("vault", "doc", "g1").await.is_none());

    // A grant with owner gives the owner's powers.
    db.ok_by(admin(), allow("vault", "bob", false, false, true))
        .await;
    assert_eq!(db.rights("bob", "vault").await, Rights::ALL);
    db.ok_by(key("bob"), legal_hold("vault", "old", true)).await;
    db.ok_by(key("bob"), legal_hold("vault", "old", false))
        .await;
    db.ok_by(key("bob"), del_bypass("vault", "doc", "old"))
        .await;
}

#[tokio::test]
async fn no_one_lifts_compliance_or_a_legal_hold_not_even_an_admin() {
    let mut db = world().await;
    let v = Version {
        lock_mode: LockMode::Compliance,
        ..governed("vault", "c1", NOW + DAY)
    };
    db.ok_by(key("alice"), commit(v)).await;
    db.ok_by(key("alice"), legal_hold("vault", "g1", true))
        .await;
    for by in [key("alice"), admin()] {
        for op in [
            del_bypass("vault", "doc", "c1"),
            retention("vault", "c1", LockMode::Governance, NOW + DAY, true),
            del_bypass("vault", "doc", "g1"),
        ] {
            db.reject_by(Some(by.clone()), op, denied()).await;
        }
        db.reject_by(
            Some(by),
            delete_bucket("vault"),
            MetaError::BucketNotEmpty("vault".into()),
        )
        .await;
    }
    // An admin may lift the hold (an owner's power); GOVERNANCE then
    // still needs the bypass, which an admin may send.
    db.ok_by(admin(), legal_hold("vault", "g1", false)).await;
    db.reject_by(Some(admin()), del("vault", "doc", Some("g1"), ""), denied())
        .await;
    db.ok_by(admin(), del_bypass("vault", "doc", "g1")).await;
}

#[tokio::test]
async fn commands_without_an_actor_do_what_they_always_did() {
    let mut db = world().await;
    // An old log's bucket ops replay whoever owns the bucket now.
    db.ok(commit(ver("abc", "k", "x", "x"))).await;
    db.ok(versioning("abc")).await;
    db.ok(del_bypass("vault", "doc", "g1")).await;
    // The admin ops are new: no old log holds them, so None is refused,
    // and so is every key, the bucket's owner included.
    let ops = [
        allow("abc", "bob", true, false, false),
        deny("abc", "bob"),
        Op::SetBucket {
            bucket: "abc".into(),
            owner: Some("bob".into()),
            max_retention_days: None,
        },
        Op::SetBucketDefaults {
            max_retention_days: 10,
        },
        Op::AdoptBuckets {
            owner: Some("bob".into()),
        },
    ];
    for op in ops {
        for by in [None, Some(key("alice")), Some(key("bob"))] {
            db.reject_by(by, op.clone(), denied()).await;
        }
        db.ok_by(admin(), op).await;
    }
}

#[tokio::test]
async fn a_disabled_or_deleted_key_is_refused_and_its_rights_go() {
    let mut db = world().await;
    let off = AccessKey {
        enabled: false,
        ..access_key("dora")
    };
    db.ok(Op::PutAccessKey { key: off }).await;
    db.ok_by(admin(), allow("abc", "dora", true, true, true))
        .await;
    assert_eq!(db.rights("dora", "abc").await, Rights::NONE);
    db.write_refused("dora", "abc").await;
    db.reject_by(Some(key("dora")), create("dora-new", false), denied())
        .await;

    db.ok_by(admin(), allow("abc", "bob", true, true, false))
        .await;
    db.ok_by(admin(), allow("vault", "carol", true, false, false))
        .await;
    db.ok(Op::DeleteAccessKey { id: "alice".into() }).await;
    assert_eq!(db.bucket("abc").await.expect("kept").owner, "");
    assert_eq!(db.bucket("vault").await.expect("kept").owner, "");
    // Other keys keep their grants.
    assert!(db.rights("bob", "abc").await.write);
    // A key made again under the same id gets nothing back.
    db.ok(Op::PutAccessKey {
        key: access_key("alice"),
    })
    .await;
    assert_eq!(db.rights("alice", "abc").await, Rights::NONE);
    assert_eq!(
        q::key_grants(db.c(), "alice").await.expect("grants"),
        vec![]
    );
    db.write_refused("alice", "abc").await;

    // Deleting bob drops his grant rows.
    db.ok(Op::DeleteAccessKey { id: "bob".into() }).await;
    let d = db.dump().await;
    let grants: Vec<_> = rows_of(&d, "bucket_grants");
    assert_eq!(grants.len(), 2, "{grants:?}");
    assert!(grants.iter().all(|r| !r.contains("'bob'")), "{grants:?}");
}

#[tokio::test]
async fn create_bucket_says_whose_it_is() {
    let mut db = world().await;
    db.reject_by(
        Some(key("alice")),
        create("abc", false),
        MetaError::BucketAlreadyOwnedByYou("abc".into()),
    )
    .await;
    for by in [Some(key("bob")), Some(admin()), None] {
        db.reject_by(
            by,
            create("abc", true),
            MetaError::BucketAlreadyExists("abc".into()),
        )
        .await;
    }
    // Owner by grant: the owner's powers, but the bucket is still
    // alice's (S3 answers OwnedByYou to the owning account only).
    db.ok_by(admin(), allow("abc", "bob", false, false, true))
        .await;
    db.reject_by(
        Some(key("bob")),
        create("abc", false),
        MetaError::BucketAlreadyExists("abc".into()),
    )
    .await;

    // A key names no other owner; an admin does.
    db.reject_by(
        Some(key("bob")),
        create_owned("bkt2", false, Some("bob")),
        invalid(),
    )
    .await;
    let r = db
        .ok_by(admin(), create_owned("bkt2", false, Some("carol")))
        .await;
    assert!(matches!(r, Response::Bucket(b) if b.owner == "carol"));
    db.reject_by(
        Some(admin()),
        create_owned("bkt3", false, Some("nobody")),
        MetaError::NoSuchAccessKey("nobody".into()),
    )
    .await;
    let r = db.ok_by(admin(), create_owned("bkt3", true, None)).await;
    assert!(matches!(r, Response::Bucket(b) if b.owner.is_empty()));
    // An ownerless bucket: no key reaches it until an admin grants it.
    assert_eq!(db.rights("alice", "bkt3").await, Rights::NONE);
    db.write_refused("alice", "bkt3").await;

    // A key that may not create buckets.
    let no = AccessKey {
        can_create_bucket: false,
        ..access_key("eve")
    };
    db.ok(Op::PutAccessKey { key: no }).await;
    assert_eq!(
        db.access_key("eve").await.map(|k| k.can_create_bucket),
        Some(false)
    );
    db.reject_by(Some(key("eve")), create("eves", false), denied())
        .await;
    db.reject_by(Some(key("mallory")), create("mal", false), denied())
        .await;
    let r = db.ok_by(key("bob"), create("bobs", false)).await;
    assert!(matches!(r, Response::Bucket(b) if b.owner == "bob"));
}

#[tokio::test]
async fn a_deleted_bucket_takes_its_grants_and_a_new_one_starts_clean() {
    let mut db = world().await;
    db.ok_by(admin(), allow("abc", "bob", true, true, false))
        .await;
    db.reject_by(Some(key("bob")), delete_bucket("abc"), denied())
        .await;
    db.ok_by(key("alice"), delete_bucket("abc")).await;
    assert!(rows_of(&db.dump().await, "bucket_grants").is_empty());
    db.ok_by(key("carol"), create("abc", false)).await;
    assert_eq!(db.rights("bob", "abc").await, Rights::NONE);
    assert_eq!(db.rights("alice", "abc").await, Rights::NONE);
    assert_eq!(db.rights("carol", "abc").await, Rights::ALL);
}

#[tokio::test]
async fn a_missing_bucket_is_no_such_bucket_for_anyone_with_a_key() {
    let mut db = world().await;
    let nsb = || MetaError::NoSuchBucket("missing".into());
    for by in [Some(key("bob")), Some(admin()), None] {
        db.reject_by(by.clone(), commit(ver("missing", "k", "x", "a")), nsb())
            .await;
        db.reject_by(by, delete_bucket("missing"), nsb()).await;
    }
    // The key is checked first: an unknown key learns nothing.
    db.reject_by(Some(key("mallory")), delete_bucket("missing"), denied())
        .await;
}

#[tokio::test]
async fn a_batch_judges_each_command_by_its_own_actor() {
    let mut db = world().await;
    let mut tx = Connection::begin(&mut *db.conn).await.expect("begin");
    let ours = Command::new("", NOW, commit(ver("abc", "a", "x", "a"))).by(key("alice"));
    let theirs = Command::new("", NOW, commit(ver("abc", "b", "x", "b"))).by(key("bob"));
    let batch = Command::new("", NOW, Op::Batch(vec![ours, theirs]));
    let r = hamster_meta::state::apply::apply_entry(&mut tx, 900, &batch)
        .await
        .expect("apply");
    tx.commit().await.expect("commit");
    let Response::Batch(rs) = r else {
        panic!("{r:?}")
    };
    assert!(matches!(rs[0], Response::Committed { .. }), "{rs:?}");
    assert!(
        matches!(&rs[1], Response::Err(MetaError::AccessDenied(_))),
        "{rs:?}"
    );
    assert!(db.latest("abc", "a").await.is_some());
    assert!(db.latest("abc", "b").await.is_none());
}

#[tokio::test]
async fn a_write_replayed_after_a_deny_is_refused() {
    let mut db = world().await;
    db.ok_by(admin(), allow("abc", "bob", false, true, false))
        .await;
    let write = |id: &str| Command::new(id, NOW, commit(ver("abc", "k", "x", "x"))).by(key("bob"));
    let first = db.apply_cmd(500, &write("w-1")).await;
    assert!(matches!(first, Response::Committed { .. }), "{first:?}");
    db.ok_by(admin(), deny("abc", "bob")).await;
    // The same id is the same write: answered as it was, nothing redone.
    let before = db.dump().await;
    assert_eq!(db.apply_cmd(501, &write("w-1")).await, first);
    assert_eq!(db.dump().await, before);
    // The same write under a new id (a replay, a forgery) meets the deny.
    let again = db.apply_cmd(502, &write("w-2")).await;
    assert!(
        matches!(&again, Response::Err(MetaError::AccessDenied(_))),
        "{again:?}"
    );
    let after = db.dump().await;
    let changed: Vec<_> = after
        .iter()
        .filter(|r| !before.contains(r) && !r.starts_with("applied_commands("))
        .collect();
    assert!(changed.is_empty(), "{changed:?}");
}
