//! A restore with nothing older to accept: every member's data dir holds
//! the backup's state at its index, seeded as the start of the new
//! cluster; refusals (a used data dir, a missing master key) write
//! nothing.

use std::path::Path;

use hamster_meta::backup::reseed;
use hamster_meta::backup::restore::{RestoreError, restore};
use hamster_meta::raft::log_store::LogStore;
use hamster_meta::raft::state_machine::StateMachine;
use hamster_meta::raft::{LogId, StoredMembership};
use hamster_meta::state::model::{ORPHAN_HOLD, OrphanHold, TrustBundle};
use hamster_meta::state::reads;
use hamster_proto::envelope::open_secret;
use hamster_proto::secrets::MasterKey;
use openraft::storage::{RaftLogStorage, RaftStateMachine};

use super::common::*;
use super::fixture::*;

/// What a seeded data dir holds.
pub struct Seeded {
    pub db: Arc<StateDb>,
    pub last: Option<LogId>,
    pub membership: StoredMembership,
}

pub async fn open_seeded(dir: &Path) -> Seeded {
    let db = StateDb::open(dir).await.expect("open seeded state");
    let (last, membership) = StateMachine::new(db.clone())
        .applied_state()
        .await
        .expect("applied state");
    Seeded {
        db,
        last,
        membership,
    }
}

/// Rows that a restore does not change (it sets membership, the trust
/// generation and the orphan hold).
fn unchanged_rows(dump: Vec<String>) -> Vec<String> {
    dump.into_iter()
        .filter(|r| {
            !r.starts_with("sm_meta(")
                && !r.starts_with("settings('trust'")
                && !r.starts_with("settings('orphan_hold'")
        })
        .collect()
}

#[tokio::test]
async fn restore_rebuilds_every_member_at_the_backup_index() {
    let mut b = backup().await;
    let (key, pki, header) = (&b.key, &b.pki, b.header.clone());
    let at_backup = unchanged_rows(b.src.dump().await);
    // Written after the backup: not in the restored state.
    b.src
        .ok(commit(Version {
            kek_fingerprint: key.fingerprint(),
            ..ver("plain", "after", "v-after", "after")
        }))
        .await;

    let root = b.dir.path().join("dev");
    let plan = dev_plan(&b.path, &root, false);
    let node = NodeFiles::new(key, None, pki);
    let report = restore(&plan, &node.facts()).await.expect("restore");
    assert_eq!(report.header, header);
    assert!(report.accepted_older.is_empty());
    assert_eq!(report.rewrapped, 0);
    // Only the three data dirs: no temp DB left beside them.
    let top: Vec<String> = files_under(&root)
        .into_iter()
        .filter(|f| !f.contains('/'))
        .collect();
    assert_eq!(top, vec!["meta-1", "meta-2", "meta-3"]);

    let last = log_id(TERM, header.raft_index);
    for (id, dir) in &plan.seed {
        let s = open_seeded(dir).await;
        assert_eq!(s.last, Some(last), "{}", dir.display());
        assert_eq!(s.membership.log_id(), &Some(last));
        let voters: Vec<u64> = s.membership.membership().voter_ids().collect();
        assert_eq!(voters, vec![1, 2, 3]);
        let names: Vec<String> = s
            .membership
            .membership()
            .nodes()
            .map(|(_, n)| n.name.clone())
            .collect();
        assert_eq!(names, vec!["meta-1", "meta-2", "meta-3"]);

        let mut c = s.db.acquire().await.expect("conn");
        assert_eq!(unchanged_rows(dump(&mut c).await), at_backup);
        assert!(
            q::version(&mut c, "plain", "after", "v-after")
                .await
                .expect("read")
                .is_none()
        );
        let (kept, _) = q::version(&mut c, "locked", "kept", "vk1")
            .await
            .expect("read")
            .expect("the locked version");
        assert_eq!(kept.lock_mode, LockMode::Compliance);
        let held = q::version(&mut c, "locked", "held", "vh1")
            .await
            .expect("read");
        assert!(held.expect("the held version").0.legal_hold);
        let marker = q::latest(&mut c, "plain", "gone").await.expect("read");
        assert!(marker.expect("the delete marker").delete_marker);
        let ak = q::access_key(&mut c, "AK1")
            .await
            .expect("read")
            .expect("key");
        let secret = open_secret(key, "AK1", &ak.sealed_secret).expect("opens");
        assert_eq!(secret.as_str(), SECRET);

        let hold: OrphanHold = reads::setting_json(&mut c, ORPHAN_HOLD)
            .await
            .expect("read")
            .expect("the orphan hold");
        assert_eq!(
            hold,
            OrphanHold {
                restored_at_ms: report.restored_at_ms,
                backup_index: header.raft_index,
                backup_created_ms: header.created_ms,
            }
        );
        let trust: TrustBundle = reads::setting_json(&mut c, "trust")
            .await
            .expect("read")
            .expect("trust");
        assert!(trust.generation >= report.restored_at_ms as u64);
        assert_eq!(trust.issuing, pki.fingerprint());

        // A COMPLIANCE-locked version stays undeletable.
        drop(c);
        let mut sm = StateMachine::new(s.db.clone());
        let gone = Op::DeleteObject {
            bucket: "locked".into(),
            key: "kept".into(),
            version_id: Some("vk1".into()),
            marker_version_id: "m".into(),
            bypass_governance: true,
        };
        let r = sm
            .apply(vec![entry(header.raft_index + 1, gone)])
            .await
            .expect("apply");
        assert!(matches!(r[0], Response::Err(_)), "deleted: {r:?}");
        s.db.close().await;

        let mut log = LogStore::open(&dir.join(reseed::RAFT_LOG_DB))
            .await
            .expect("log");
        let st = log.get_log_state().await.expect("log state");
        assert_eq!(
            (st.last_purged_log_id, st.last_log_id),
            (Some(last), Some(last))
        );
        assert_eq!(log.read_committed().await.expect("committed"), Some(last));
        let vote = log.read_vote().await.expect("vote").expect("a vote");
        assert_eq!(vote.leader_id().term, TERM + 1);
        assert_eq!(vote.leader_id().node_id, *id);
        assert!(!vote.is_committed());
        log.close().await;
    }
}

#[tokio::test]
async fn one_node_restore_starts_a_cluster_of_one() {
    let (_backup, dir) = restored_alone(7, "10.0.0.7:7400").await;
    let s = open_seeded(&dir).await;
    let nodes: Vec<(u64, String)> = s
        .membership
        .membership()
        .nodes()
        .map(|(id, n)| (*id, n.addr.clone()))
        .collect();
    assert_eq!(nodes, vec![(7, "10.0.0.7:7400".to_string())]);
}

#[tokio::test]
async fn a_used_data_dir_or_a_missing_key_is_refused_and_nothing_is_written() {
    let b = backup().await;
    let (key, pki, work) = (&b.key, &b.pki, &b.dir);

    let root = work.path().join("dev");
    std::fs::create_dir_all(root.join("meta-2")).expect("mkdir");
    std::fs::write(root.join("meta-2/raft-log.db"), b"old").expect("write");
    let plan = dev_plan(&b.path, &root, true);
    let e = restore(&plan, &NodeFiles::new(key, None, pki).facts())
        .await
        .expect_err("refused");
    assert!(
        matches!(&e, RestoreError::DataDirInUse(d) if d.ends_with("meta-2")),
        "{e}"
    );
    assert_eq!(files_under(&root), vec!["meta-2", "meta-2/raft-log.db"]);
    std::fs::remove_dir_all(&root).expect("clean");

    // The node holds another key only: refused, naming the one needed.
    let other = MasterKey::generate();
    let e = restore(&plan, &NodeFiles::new(&other, None, pki).facts())
        .await
        .expect_err("refused");
    match &e {
        RestoreError::MissingMasterKey { needed, held } => {
            assert_eq!(needed, &key.fingerprint());
            assert_eq!(held, &vec![other.fingerprint()]);
        }
        other => panic!("expected a missing key, got {other}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("does not hold master key {}", key.fingerprint())),
        "{msg}"
    );
    // --accept-older does not override it; nothing was written.
    assert_eq!(files_under(work.path()), vec!["meta.hbk"]);
}

/// `--data-dir /data` (compose): the parent may be another filesystem,
/// read-only. The verified DB is made inside the data dir itself, leaves
/// nothing beside it, and a temp copy a crashed restore left there
/// neither makes the dir look in use nor survives. A refusal leaves a
/// data dir that was there as it was, and removes one it created.
#[tokio::test]
async fn restore_works_inside_the_data_dir_alone() {
    let b = backup().await;
    let (key, pki, work) = (&b.key, &b.pki, &b.dir);
    let dir = work.path().join("data");
    let plan = |dir: &Path| one_member_plan(&b.path, 1, "10.0.0.1:7400", dir);

    // Refused (another key): the existing empty dir stays, empty.
    std::fs::create_dir(&dir).expect("mkdir");
    let other = NodeFiles::new(&MasterKey::generate(), None, pki);
    restore(&plan(&dir), &other.facts())
        .await
        .expect_err("refused");
    assert_eq!(files_under(work.path()), vec!["data", "meta.hbk"]);
    // Refused into a dir it had to create: that dir goes again.
    let deep = work.path().join("new/deeper/data");
    restore(&plan(&deep), &other.facts())
        .await
        .expect_err("refused");
    assert_eq!(files_under(work.path()), vec!["data", "meta.hbk"]);

    // A crashed restore's leftover copy, garbage: not "in use", removed.
    std::fs::write(dir.join(".restore-0badc0de.db"), b"x").expect("write");
    let node = NodeFiles::new(key, None, pki);
    restore(&plan(&dir), &node.facts()).await.expect("restore");
    assert_eq!(files_under(work.path()), {
        let mut want: Vec<String> = files_under(&dir)
            .into_iter()
            .map(|f| format!("data/{f}"))
            .collect();
        want.extend(["data".to_string(), "meta.hbk".to_string()]);
        want.sort();
        want
    });
    let left = files_under(&dir);
    assert!(
        left.iter().all(|f| !f.contains("restore")),
        "temp copies left: {left:?}"
    );
    assert!(left.contains(&"state.db".to_string()), "{left:?}");
    let s = open_seeded(&dir).await;
    assert!(s.last.is_some());
}
