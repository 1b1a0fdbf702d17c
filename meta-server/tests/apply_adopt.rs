//! AdoptBuckets at the state machine (ADR 0027): migration 10 leaves the
//! buckets made before owners existed ownerless, and this admin command,
//! in the log, gives them one.

mod common;

use common::*;

fn adopt(owner: Option<&str>) -> Op {
    Op::AdoptBuckets {
        owner: owner.map(Into::into),
    }
}

fn adopted(owner: &str, buckets: &[&str]) -> Response {
    Response::Adopted {
        owner: owner.into(),
        buckets: buckets.iter().map(|b| b.to_string()).collect(),
    }
}

async fn owner_of(db: &mut Db, bucket: &str) -> String {
    db.bucket(bucket).await.expect("bucket").owner
}

#[tokio::test]
async fn the_only_key_adopts_every_ownerless_bucket() {
    let mut db = Db::new().await;
    db.ok_by(admin(), create("zeta", false)).await;
    db.ok_by(admin(), create("alpha", true)).await;
    // No key: nobody to give them to.
    db.reject_by(
        Some(admin()),
        adopt(None),
        MetaError::InvalidRequest(String::new()),
    )
    .await;
    db.ok(Op::PutAccessKey {
        key: access_key("solo"),
    })
    .await;
    let r = db.ok_by(admin(), adopt(None)).await;
    assert_eq!(r, adopted("solo", &["alpha", "zeta"]));
    for b in ["alpha", "zeta"] {
        assert_eq!(owner_of(&mut db, b).await, "solo");
        assert_eq!(db.rights("solo", b).await, Rights::ALL);
    }
    // Nothing left ownerless: an empty answer, nothing changed.
    let before = db.dump().await;
    assert_eq!(db.ok_by(admin(), adopt(None)).await, adopted("solo", &[]));
    assert_eq!(db.dump().await, before);
}

#[tokio::test]
async fn with_several_keys_the_admin_names_the_owner() {
    let mut db = Db::new().await;
    for k in ["alice", "bob"] {
        db.ok(Op::PutAccessKey { key: access_key(k) }).await;
    }
    db.ok_by(admin(), create("aaa", false)).await;
    db.ok_by(admin(), create("zzz", false)).await;
    db.ok_by(Actor::Key("alice".into()), create("alices", false))
        .await;
    // bob had a read grant on "aaa": ownership includes it, the row goes.
    let grant = Op::AllowBucket {
        bucket: "aaa".into(),
        key_id: "bob".into(),
        read: true,
        write: false,
        owner: false,
    };
    db.ok_by(admin(), grant).await;

    let several = MetaError::InvalidRequest(String::new());
    db.reject_by(Some(admin()), adopt(None), several).await;
    db.reject_by(
        Some(admin()),
        adopt(Some("nobody")),
        MetaError::NoSuchAccessKey("nobody".into()),
    )
    .await;
    db.reject_by(Some(admin()), adopt(Some("")), invalid())
        .await;
    // An admin's only: no old log holds it, and no key may take buckets.
    for by in [None, Some(Actor::Key("bob".into()))] {
        db.reject_by(by, adopt(Some("bob")), denied()).await;
    }

    let r = db.ok_by(admin(), adopt(Some("bob"))).await;
    assert_eq!(r, adopted("bob", &["aaa", "zzz"]));
    assert_eq!(owner_of(&mut db, "aaa").await, "bob");
    assert_eq!(owner_of(&mut db, "zzz").await, "bob");
    assert_eq!(
        owner_of(&mut db, "alices").await,
        "alice",
        "owned: untouched"
    );
    assert_eq!(q::grant(db.c(), "aaa", "bob").await.expect("g"), None);
    assert_eq!(db.rights("bob", "aaa").await, Rights::ALL);
    assert_eq!(db.rights("bob", "alices").await, Rights::NONE);
}
