//! A backup older than what the nodes hold: a master-key rotation, a CA
//! rotation, a blob-server removal since. Each is refused without
//! `--accept-older` (naming it, writing nothing) and, with it, the
//! restored state is brought up to the nodes.

use hamster_meta::backup::restore::{Report, RestoreError, restore};
use hamster_meta::backup::take;
use hamster_meta::state::model::TrustBundle;
use hamster_meta::state::{ca_rotation, key_rotation, reads};
use hamster_proto::envelope::{open_secret, unwrap_dek};
use hamster_proto::secrets::MasterKey;

use super::common::*;
use super::fixture::*;
use super::restore::{Seeded, open_seeded};

struct Case {
    _src: Source,
    work: TempDir,
    key: MasterKey,
    pki: Pki,
}

impl Case {
    async fn new() -> Case {
        let key = MasterKey::generate();
        let pki = Pki::new("ca-1");
        let src = Source::populated(&key, &pki).await;
        Case::of(src, key, pki).await
    }

    /// A backup of `src`, whose keys are under `key`.
    async fn of(src: Source, key: MasterKey, pki: Pki) -> Case {
        let work = tempfile::tempdir().expect("tempdir");
        take::write_file(&src.db, 1, &work.path().join("meta.hbk"))
            .await
            .expect("backup");
        Case {
            _src: src,
            work,
            key,
            pki,
        }
    }

    /// Refused without --accept-older, naming `why`, writing nothing;
    /// then restored with it.
    async fn refused_then_accepted(&self, node: &NodeFiles, why: &[&str]) -> (Report, Seeded) {
        let file = self.work.path().join("meta.hbk");
        let root = self.work.path().join("dev");
        let e = restore(&dev_plan(&file, &root, false), &node.facts())
            .await
            .expect_err("refused without --accept-older");
        let RestoreError::Older(reasons) = &e else {
            panic!("expected Older, got {e}");
        };
        assert_eq!(reasons.len(), why.len(), "{reasons:?}");
        for (r, w) in reasons.iter().zip(why) {
            assert!(r.contains(w), "{r:?} should say {w:?}");
        }
        assert!(e.to_string().contains("--accept-older"));
        assert!(!root.exists(), "nothing is written on a refusal");

        let report = restore(&dev_plan(&file, &root, true), &node.facts())
            .await
            .expect("restored with --accept-older");
        assert_eq!(&report.accepted_older, reasons);
        (report, open_seeded(&root.join("meta-2")).await)
    }
}

#[tokio::test]
async fn a_backup_from_before_a_key_rotation_is_rewrapped_to_the_current_key() {
    let c = Case::new().await;
    // The node rotated to `new`; the old key is given as its next key so
    // the restore can open what the backup holds.
    let new = MasterKey::generate();
    let node = NodeFiles::new(&new, Some(&c.key), &c.pki);
    let (report, s) = c
        .refused_then_accepted(&node, &["master-key rotation"])
        .await;
    // 5 versions, 2 parts of the completed upload, 1 open part, 1 secret.
    assert_eq!(report.rewrapped, 9);
    all_on_the_new_key(&s, &c.key, &new).await;
}

/// Every key of the restored state is under `new` (and opens with it,
/// not with `old`), which is the write key, with no rotation open.
async fn all_on_the_new_key(s: &Seeded, old: &MasterKey, new: &MasterKey) {
    let mut db = s.db.acquire().await.expect("conn");
    let (old_fp, new_fp) = (old.fingerprint(), new.fingerprint());
    assert_eq!(
        key_rotation::count_on(&mut db, &old_fp)
            .await
            .expect("count"),
        0
    );
    assert_eq!(
        key_rotation::count_on(&mut db, &new_fp)
            .await
            .expect("count"),
        9
    );
    assert_eq!(
        key_rotation::write_key(&mut db).await.expect("read"),
        new_fp
    );
    assert!(
        key_rotation::rotation(&mut db)
            .await
            .expect("read")
            .is_none()
    );
    assert_eq!(
        take::key_fingerprints(&mut db, &new_fp)
            .await
            .expect("read"),
        vec![new_fp.clone()]
    );
    // Every key opens with the new master key, none with the old.
    for (target, wrapped) in reads::wrapped_by(&mut db, &new_fp, 100)
        .await
        .expect("read")
    {
        match &target {
            hamster_meta::state::model::RewrapTarget::AccessKey { id } => {
                let secret = open_secret(new, id, &wrapped).expect("opens with the new key");
                assert_eq!(secret.as_str(), SECRET);
                assert!(open_secret(old, id, &wrapped).is_err());
            }
            _ => {
                unwrap_dek(new, &wrapped).expect("unwraps with the new key");
                assert!(unwrap_dek(old, &wrapped).is_err(), "{target:?}");
            }
        }
    }
}

/// The source after `hamster key rotate` started from `key` to `next`:
/// the write key is `next`, every key still under `key`.
async fn rotating(key: &MasterKey, next: &MasterKey, pki: &Pki) -> Source {
    let mut src = Source::populated(key, pki).await;
    src.ok(hamster_meta::state::commands::Op::KeyHolderSeen {
        id: "meta-1".into(),
        role: hamster_meta::state::model::Role::Meta,
        current: key.fingerprint(),
        next: next.fingerprint(),
    })
    .await;
    src.ok(hamster_meta::state::commands::Op::StartKeyRotation {
        old: key.fingerprint(),
        new: next.fingerprint(),
    })
    .await;
    src
}

/// A backup taken during a rotation from A to B (write key B, keys still
/// on A), restored on nodes that finished it (current B; A given as the
/// next key only so the restore can open the keys): older. Accepted,
/// every key moves to B and no rotation is left open.
#[tokio::test]
async fn a_backup_taken_during_a_rotation_the_nodes_finished_is_older() {
    let (a, b) = (MasterKey::generate(), MasterKey::generate());
    let pki = Pki::new("ca-1");
    let c = Case::of(rotating(&a, &b, &pki).await, a, pki).await;
    let node = NodeFiles::new(&b, Some(&c.key), &c.pki);
    let (report, s) = c
        .refused_then_accepted(&node, &["master-key rotation"])
        .await;
    assert!(
        report.accepted_older[0].contains(&c.key.fingerprint()),
        "names the key the backup's keys are under: {:?}",
        report.accepted_older
    );
    assert_eq!(report.rewrapped, 9);
    all_on_the_new_key(&s, &c.key, &b).await;
}

#[tokio::test]
async fn a_backup_from_before_a_ca_rotation_takes_the_nodes_trust() {
    let c = Case::new().await;
    let pki2 = Pki::new("ca-2");
    let node = NodeFiles::new(&c.key, None, &pki2);
    let (report, s) = c.refused_then_accepted(&node, &["CA rotation"]).await;
    assert_eq!(report.rewrapped, 0);
    let mut db = s.db.acquire().await.expect("conn");
    let b: TrustBundle = ca_rotation::bundle(&mut db)
        .await
        .expect("read")
        .expect("a bundle");
    let fps: Vec<String> = b
        .cas
        .iter()
        .filter_map(|p| ca_rotation::ca_fingerprint(p))
        .collect();
    assert_eq!(fps, vec![pki2.fingerprint()]);
    assert_eq!(b.issuing, pki2.fingerprint());
    assert!(b.generation >= report.restored_at_ms as u64);
    // The cluster keeps its id.
    assert_eq!(
        ca_rotation::cluster_id(&mut db).await.expect("read"),
        c.pki.fingerprint()
    );
}

#[tokio::test]
async fn blob_servers_removed_after_the_backup_are_removed_again() {
    let c = Case::new().await;
    let node = NodeFiles::new(&c.key, None, &c.pki);
    // blob-3 was removed before the backup: not older. blob-1 after it;
    // blob-9 joined and was removed after it. A gateway is no blob-server.
    node.revoke(&[
        "hamster://blob/blob-1",
        "hamster://blob/blob-3",
        "hamster://blob/blob-9",
        "hamster://gateway/gw-1",
    ]);
    let (_, s) = c
        .refused_then_accepted(&node, &["blob-servers blob-1, blob-9 were removed"])
        .await;
    let mut db = s.db.acquire().await.expect("conn");
    assert_eq!(
        reads::revoked_identities(&mut db).await.expect("read"),
        vec![
            "hamster://blob/blob-1",
            "hamster://blob/blob-3",
            "hamster://blob/blob-9"
        ]
    );
    let b1 = reads::blob_server(&mut db, "blob-1")
        .await
        .expect("read")
        .expect("blob-1");
    assert_eq!(b1.lifecycle, Lifecycle::Removed);
    assert_eq!(b1.state, BlobState::Down);
}

#[tokio::test]
async fn every_older_finding_is_named_at_once() {
    let c = Case::new().await;
    let new = MasterKey::generate();
    let node = NodeFiles::new(&new, Some(&c.key), &Pki::new("ca-2"));
    node.revoke(&["hamster://blob/blob-0"]);
    c.refused_then_accepted(
        &node,
        &["master-key rotation", "CA rotation", "blob-servers blob-0"],
    )
    .await;
}

/// A backup taken during a master-key rotation, restored on nodes that
/// still have the same rotation open (old key current, new key next): not
/// older. The restored rotation stays open for the rewrapper to finish.
#[tokio::test]
async fn a_backup_taken_during_a_rotation_still_open_on_the_node_is_not_older() {
    let key = MasterKey::generate();
    let next = MasterKey::generate();
    let pki = Pki::new("ca-1");
    let src = rotating(&key, &next, &pki).await;
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("meta.hbk");
    take::write_file(&src.db, 1, &file).await.expect("backup");
    let root = work.path().join("dev");
    let node = NodeFiles::new(&key, Some(&next), &pki);
    let report = restore(&dev_plan(&file, &root, false), &node.facts())
        .await
        .expect("restored without --accept-older");
    assert!(report.accepted_older.is_empty());
    assert_eq!(report.rewrapped, 0);
    let s = open_seeded(&root.join("meta-2")).await;
    let mut db = s.db.acquire().await.expect("conn");
    let open = key_rotation::rotation(&mut db).await.expect("read");
    assert_eq!(open.map(|r| r.new), Some(next.fingerprint()));
    assert_eq!(
        key_rotation::write_key(&mut db).await.expect("read"),
        next.fingerprint()
    );
}
