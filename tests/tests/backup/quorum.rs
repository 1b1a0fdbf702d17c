//! Step 8: two of three meta-servers SIGKILLed and their data destroyed;
//! the survivor restarted with --force-new-cluster leads alone with its
//! committed state; two new members are added; every object reads and a
//! PUT works; started again with the flag still set, it refuses (the
//! marker), and starts without it.

use hamster_tests::s3::{pattern, put_version};

use crate::*;

pub async fn force_new_cluster(w: &mut World) {
    let metas = w.s.metas.clone();
    let leader = wait_members(w, &metas, 3).await;
    let mut written = Vec::new();
    for i in 0..3 {
        let (key, data) = (format!("before-loss-{i}"), pattern(40_000 + i, 90));
        put_version(&w.c, "data", &key, &data).await;
        written.push((key, data));
    }
    let survivor = metas[0];
    let applied = w.s.c.status(leader).await.expect("status").applied_index;
    // What the survivor has applied is what it keeps; have it all.
    w.s.c.wait_applied(survivor, applied).await;

    let (lost, survivor_raft) = (&metas[1..], w.s.c.node(survivor).raft_id);
    w.s.c.kill_all(lost);
    for &m in lost {
        w.s.c.destroy_meta_data(m);
    }
    w.s.c.kill(survivor);
    w.s.c.add_args(survivor, &["--force-new-cluster"]);
    w.s.c.restart(survivor);
    w.s.c.wait_healthy(survivor).await;
    let alone = wait_members(w, &[survivor], 1).await;
    assert_eq!(w.s.c.node(alone).raft_id, survivor_raft);
    let st = w.s.c.status(survivor).await.expect("status");
    assert!(
        st.applied_index >= applied,
        "{} < {applied}",
        st.applied_index
    );
    let marker = w.s.c.meta_data_dir(survivor).join("force-new-cluster.done");
    assert!(marker.exists(), "no {} after the force", marker.display());

    for (node, raft_id) in [(lost[0], 6), (lost[1], 7)] {
        w.s.c.as_new_member(node, raft_id);
        let run = w.s.c.add_member(node).await;
        assert!(run.ok(), "member add {raft_id}: {run}");
    }
    wait_members(w, &metas, 3).await;
    let (key, data) = &written[0];
    assert_eq!(&wait_readable(w, "data", key).await, data);
    read_all(w, "after --force-new-cluster").await;
    assert_read_back(&w.c, "data", &written, "after --force-new-cluster").await;
    let data = pattern(123_456, 91);
    put_when_writable(w, "data", "after-force", &data).await;
    assert_eq!(get_bytes(&w.c, "data", "after-force").await, Ok(data));

    // The flag left in place must not split the grown cluster again.
    w.s.c.kill(survivor);
    w.s.c.restart(survivor);
    let exit = w.s.c.wait_exit(survivor, SETTLE).await;
    let log = w.s.c.log(survivor);
    let tail: Vec<&str> = log.lines().rev().take(5).collect();
    assert!(
        exit.is_some_and(|s| !s.success()),
        "started with the flag again: {exit:?}; log ends {tail:?}"
    );
    assert!(
        log.contains("force-new-cluster.done"),
        "the refusal does not name the marker; log ends {tail:?}"
    );
    w.s.c.remove_flag(survivor, "--force-new-cluster");
    w.s.c.restart(survivor);
    w.s.c.wait_healthy(survivor).await;
    wait_members(w, &metas, 3).await;
    let data = pattern(2_000, 92);
    put_when_writable(w, "data", "after-rejoin", &data).await;
    assert_eq!(get_bytes(&w.c, "data", "after-rejoin").await, Ok(data));
}
