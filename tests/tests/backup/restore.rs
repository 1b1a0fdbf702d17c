//! Step 6: every meta-server SIGKILLed and its data destroyed; meta-1
//! restored from the backup with `hamster restore --data-dir`, started
//! alone, and grown back to three with `hamster member add` (the others
//! wiped, under new Raft ids 4 and 5, as the runbook says); then every
//! object, version, delete marker, retention and legal hold acknowledged
//! before the backup is back, nothing written after it is, the
//! COMPLIANCE version cannot be deleted, and writes resume.

use aws_sdk_s3::types::ObjectLockLegalHoldStatus;
use hamster_tests::lock::{get_retention, legal_hold_status};
use hamster_tests::path_str;
use hamster_tests::s3::{assert_s3_error, delete_version, error_status, get_version, pattern};

use crate::*;

pub async fn wipe_restore_grow(w: &mut World) {
    let b = w.backup.as_ref().expect("a backup");
    let (file, index) = (b.file.clone(), b.raft_index);
    let metas = w.s.metas.clone();
    w.s.c.kill_all(&metas);
    for &m in &metas {
        w.s.c.destroy_meta_data(m);
    }

    let first = metas[0];
    let data = w.s.c.meta_data_dir(first);
    let mut args = vec!["restore", "--from", path_str(&file), "--json"];
    let target = w.s.c.restore_target(first, &data);
    args.extend(target.iter().map(String::as_str));
    let started = Instant::now();
    let run = w.s.c.cli(&args);
    let took = started.elapsed();
    assert!(run.ok(), "hamster restore: {run}");
    eprintln!("restore took {took:.2?}: {}", run.stdout.trim());
    let json = run.json().expect("restore --json");
    assert_eq!(json["raft_index"].as_u64(), Some(index), "{json}");

    // Alone: without --initial-members (a restored node ignores them, but
    // the runbook starts it as what it is, a one-node cluster).
    w.s.c.set_arg(first, "--initial-members", None);
    w.s.c.restart(first);
    w.s.c.wait_healthy(first).await;
    wait_members(w, &[first], 1).await;
    let st = w.s.c.status(first).await.expect("status");
    assert!(
        st.applied_index >= index as i64,
        "applied {} < the backup's index {index}",
        st.applied_index
    );

    for (node, raft_id) in [(metas[1], 4), (metas[2], 5)] {
        w.s.c.as_new_member(node, raft_id);
        let run = w.s.c.add_member(node).await;
        assert!(run.ok(), "member add {raft_id}: {run}");
    }
    wait_members(w, &metas, 3).await;
    // The gateway finds the new leader by itself.
    let (key, data) = &w.objects[2];
    assert_eq!(&wait_readable(w, "data", key).await, data);
}

/// Every object and load write acknowledged before the backup, every
/// version of the lock bucket, the delete marker; none of the writes
/// acknowledged after the backup answered.
pub async fn everything_reads(w: &World) {
    read_all(w, "after the restore").await;
    let l = &w.locked;
    assert_eq!(
        setup::listing(&w.c, "locked").await,
        l.listing,
        "the lock bucket's versions differ from before the backup"
    );
    for (key, id, data) in &l.versions {
        let out = get_version(&w.c, "locked", key, Some(id))
            .await
            .unwrap_or_else(|e| panic!("GET {key}@{id}: {e:?}"));
        let got = out.body.collect().await.expect("body").into_bytes();
        assert!(got.as_ref() == data.as_slice(), "{key}@{id} differs");
    }
    let gone = get_version(&w.c, "locked", "gone", None).await;
    assert_s3_error(gone, "NoSuchKey", 404);
    for (key, id, mode, until) in &l.retained {
        let r = get_retention(&w.c, "locked", key, Some(id))
            .await
            .unwrap_or_else(|e| panic!("retention of {key}: {e:?}"));
        let r = r.retention().expect("a retention");
        assert_eq!(r.mode().map(|m| m.as_str()), Some(mode.as_str()), "{key}");
        assert_eq!(
            r.retain_until_date().map(|d| d.secs()),
            Some(*until),
            "{key}"
        );
    }
    let (key, id) = &l.held;
    assert_eq!(
        legal_hold_status(&w.c, "locked", key, Some(id)).await,
        Some(ObjectLockLegalHoldStatus::On)
    );
    for a in &w.during {
        match get_version(&w.c, "load", &a.key, None).await {
            Ok(out) => {
                let got = out.body.collect().await.expect("body").into_bytes();
                assert!(got.as_ref() == a.data.as_slice(), "{} differs", a.key);
            }
            Err(e) => assert_eq!(
                error_status(&e),
                (Some("NoSuchKey".into()), Some(404)),
                "{}: {e:?}",
                a.key
            ),
        }
    }
    for a in &w.after {
        let r = get_version(&w.c, "load", &a.key, None).await;
        assert_s3_error(r, "NoSuchKey", 404);
    }
}

/// The locked versions refuse deletion as before the backup (COMPLIANCE
/// even with the bypass header); a new PUT reads back.
pub async fn locks_hold_and_writes_resume(w: &World) {
    let l = &w.locked;
    let (key, id) = &l.compliance;
    for bypass in [false, true] {
        let r = delete_version(&w.c, "locked", key, Some(id), bypass).await;
        assert_s3_error(r, "AccessDenied", 403);
    }
    let (key, id) = &l.governance;
    let r = delete_version(&w.c, "locked", key, Some(id), false).await;
    assert_s3_error(r, "AccessDenied", 403);
    let (key, id) = &l.held;
    let r = delete_version(&w.c, "locked", key, Some(id), true).await;
    assert_s3_error(r, "AccessDenied", 403);

    let data = pattern(150_000, 77);
    put_when_writable(w, "data", "after-restore", &data).await;
    assert_eq!(get_bytes(&w.c, "data", "after-restore").await, Ok(data));
}
