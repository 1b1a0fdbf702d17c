//! Revocation and membership at the state machine (ADR 0030): the deny
//! list (ForgetMember, DenyMember, removed blob-servers), what it refuses
//! at apply, and RegisterBlob's one-address-per-live-server rule, judged
//! at the command's time.

mod common;

use common::*;
use hamster_meta::state::deny;
use hamster_meta::state::registry::{ADDRESS_HELD_MS, address_holder};

fn seen(id: &str, role: Role) -> Op {
    Op::MemberSeen {
        id: id.into(),
        role,
        generation: 1,
        cert_ca: "ca".into(),
    }
}

fn denied() -> MetaError {
    MetaError::AccessDenied(String::new())
}

async fn revoked(db: &mut Db) -> Vec<String> {
    deny::revoked_identities(db.c()).await.expect("read")
}

#[tokio::test]
async fn forgetting_a_member_denies_its_id_for_good() {
    let mut db = Db::new().await;
    db.ok(seen("gw-1", Role::Gateway)).await;
    db.ok(seen("gw-2", Role::Gateway)).await;
    db.ok(seen("gw-3", Role::Gateway)).await;
    assert!(revoked(&mut db).await.is_empty());
    // The old op applies as it always did: the record goes, nothing is
    // denied, and a later report makes it a member again (old logs replay
    // to the same state, ADR 0020).
    db.ok(Op::ForgetMember {
        role: Role::Gateway,
        id: "gw-3".into(),
    })
    .await;
    assert!(revoked(&mut db).await.is_empty());
    db.ok(seen("gw-3", Role::Gateway)).await;
    // The admin's forget writes DenyMember.
    db.ok(Op::DenyMember {
        role: Role::Gateway,
        id: "gw-1".into(),
    })
    .await;
    assert_eq!(revoked(&mut db).await, vec!["hamster://gateway/gw-1"]);
    assert!(
        deny::is_denied(db.c(), Role::Gateway, "gw-1")
            .await
            .expect("read")
    );
    // Another role under the same id is another identity.
    assert!(
        !deny::is_denied(db.c(), Role::Meta, "gw-1")
            .await
            .expect("read")
    );
    // Reporting again (a report a follower forwarded before it learnt of
    // the forget) does not make it a member again.
    db.reject(seen("gw-1", Role::Gateway), denied()).await;
    db.ok(seen("gw-2", Role::Gateway)).await;
    // The member record went with the deny: forgetting again finds none.
    db.reject(
        Op::ForgetMember {
            role: Role::Gateway,
            id: "gw-1".into(),
        },
        invalid(),
    )
    .await;
    assert_eq!(revoked(&mut db).await, vec!["hamster://gateway/gw-1"]);
}

#[tokio::test]
async fn a_removed_meta_server_is_denied_and_removed_blob_servers_are_folded_in() {
    let mut db = Db::new().await;
    db.ok(seen("meta-3", Role::Meta)).await;
    db.ok(Op::DenyMember {
        role: Role::Meta,
        id: "meta-3".into(),
    })
    .await;
    // Denying drops its record too: it holds no rotation gate.
    let members = q::members(db.c()).await.expect("members");
    assert!(members.iter().all(|m| m.id != "meta-3"), "{members:?}");
    // Twice is the same list.
    db.ok(Op::DenyMember {
        role: Role::Meta,
        id: "meta-3".into(),
    })
    .await;
    // An id no certificate can carry is refused.
    db.reject(
        Op::DenyMember {
            role: Role::Meta,
            id: "bad/id".into(),
        },
        invalid(),
    )
    .await;
    // A removed blob-server is on the list with no row of its own (state
    // from before the deny list keeps refusing it).
    db.ok(Op::RegisterBlob {
        server: blob("b1", "10.0.0.1:7000"),
    })
    .await;
    db.ok(Op::RemoveBlob {
        id: "b1".into(),
        force: true,
    })
    .await;
    assert_eq!(
        revoked(&mut db).await,
        vec!["hamster://blob/b1", "hamster://meta/meta-3"]
    );
    // A registered blob-server is not denied by a forget, it is removed.
    db.ok(Op::RegisterBlob {
        server: blob("b2", "10.0.0.2:7000"),
    })
    .await;
    db.ok(seen("b2", Role::Blob)).await;
    db.reject(
        Op::DenyMember {
            role: Role::Blob,
            id: "b2".into(),
        },
        invalid(),
    )
    .await;
}

#[tokio::test]
async fn a_forgotten_blob_server_cannot_register_again() {
    let mut db = Db::new().await;
    // Synced (a member), never registered, then forgotten.
    db.ok(seen("b9", Role::Blob)).await;
    db.ok(Op::DenyMember {
        role: Role::Blob,
        id: "b9".into(),
    })
    .await;
    db.reject(
        Op::RegisterBlob {
            server: blob("b9", "10.0.0.9:7000"),
        },
        MetaError::BlobServerRemoved("b9".into()),
    )
    .await;
}

#[tokio::test]
async fn one_address_per_live_blob_server() {
    let mut db = Db::new().await;
    db.run_at(
        NOW,
        Op::RegisterBlob {
            server: blob("b1", "10.0.0.1:7000"),
        },
    )
    .await;
    let list = hamster_meta::state::reads::blob_servers(db.c())
        .await
        .expect("read");
    // Within the window after b1 was last heard from: held by b1.
    let held = address_holder(&list, "b2", "10.0.0.1:7000", NOW + ADDRESS_HELD_MS);
    assert_eq!(held.map(|o| o.id.as_str()), Some("b1"));
    // b1 itself at its own address, or b2 at another address: free.
    assert!(address_holder(&list, "b1", "10.0.0.1:7000", NOW).is_none());
    assert!(address_holder(&list, "b2", "10.0.0.2:7000", NOW).is_none());
    // Silent past the window: the address is free (a server moved away).
    assert!(address_holder(&list, "b2", "10.0.0.1:7000", NOW + ADDRESS_HELD_MS + 1).is_none());
    // A removed server holds no address, however recently heard from.
    db.run_at(
        NOW,
        Op::RemoveBlob {
            id: "b1".into(),
            force: true,
        },
    )
    .await;
    let list = hamster_meta::state::reads::blob_servers(db.c())
        .await
        .expect("read");
    assert!(address_holder(&list, "b2", "10.0.0.1:7000", NOW + 1).is_none());
}
