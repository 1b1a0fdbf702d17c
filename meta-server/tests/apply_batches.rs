//! How the state machine applies: batches (a rejection undoes only its
//! own command), determinism (the same history builds the same state), and
//! command ids (a retried command is applied once, ids are forgotten after
//! the window).

mod common;

use common::*;

#[tokio::test]
async fn a_rejection_inside_a_batch_keeps_the_rest_of_the_batch() {
    // The state machine applies a batch in one transaction: a rejected
    // command must undo only itself.
    let mut db = Db::new().await;
    let out = db
        .batch(vec![
            (NOW, create("one", false)),
            (NOW, commit(ver("one", "k", "x", "a"))),
            (NOW, create("one", false)),
            (NOW, commit(ver("nope", "k", "x", "a"))),
            (NOW, begin("one", "k", "u")),
            (NOW, put_part("one", "k", "u", part(0, 1, "zero"))),
            (NOW, create("two", true)),
        ])
        .await;
    let errs: Vec<usize> = out
        .iter()
        .enumerate()
        .filter(|(_, (_, r))| matches!(r, Response::Err(_)))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(errs, vec![2, 3, 5], "{out:?}");
    assert!(db.bucket("one").await.is_some());
    assert!(db.bucket("two").await.is_some());
    assert!(db.latest("one", "k").await.is_some());
    assert!(db.upload("u").await.is_some());
    assert!(db.parts("u").await.is_empty());
    assert_eq!(db.buckets().await.len(), 2);
}

/// A mixed history, rejections included, with ids and times in the
/// commands as the proposer makes them.
fn history() -> Vec<(i64, Op)> {
    let mut ops = vec![
        (NOW, create("plain", false)),
        (NOW + 1, create("vers", true)),
        (NOW + 2, create("plain", false)),
        (
            NOW + 3,
            Op::PutAccessKey {
                key: access_key("AK1"),
            },
        ),
        (
            NOW + 4,
            Op::RegisterBlob {
                server: blob("b1", "h:1"),
            },
        ),
        (
            NOW + 5,
            Op::RegisterBlob {
                server: blob("b2", "h:2"),
            },
        ),
    ];
    for i in 0..20 {
        let at = NOW + 10 + i;
        ops.push((
            at,
            commit(ver("plain", &format!("k{}", i % 4), "x", &format!("p{i}"))),
        ));
        ops.push((
            at,
            commit(ver(
                "vers",
                &format!("k{}", i % 3),
                &format!("v{i}"),
                &format!("v{i}"),
            )),
        ));
        if i % 5 == 0 {
            ops.push((
                at,
                del("vers", &format!("k{}", i % 3), None, &format!("dm{i}")),
            ));
            ops.push((at, del("plain", &format!("k{}", i % 4), None, "")));
        }
    }
    ops.extend([
        (NOW + 40, del("vers", "k0", Some("v3"), "")),
        (NOW + 41, del("vers", "k0", Some("nope"), "")),
        (NOW + 42, begin("plain", "mp", "u1")),
        (
            NOW + 43,
            put_part("plain", "mp", "u1", part(1, MIN_PART_SIZE, "m1")),
        ),
        (NOW + 44, put_part("plain", "mp", "u1", part(2, 3, "m2"))),
        (NOW + 45, put_part("plain", "mp", "u1", part(2, 4, "m2b"))),
        (NOW + 46, put_part("plain", "mp", "u1", part(3, 4, "m3"))),
        (
            NOW + 47,
            complete("plain", "mp", "u1", &[(2, &md5_hex(b"m2b")), (1, "x")], ""),
        ),
        (
            NOW + 48,
            complete(
                "plain",
                "mp",
                "u1",
                &[(1, &md5_hex(b"m1")), (2, &md5_hex(b"m2b"))],
                "",
            ),
        ),
        (NOW + 49, begin("vers", "mp", "u2")),
        (NOW + 50, put_part("vers", "mp", "u2", part(1, 1, "n1"))),
        (NOW + 51, begin("vers", "mp2", "u3")),
        (NOW + 52, abort("vers", "mp", "u2")),
        (
            NOW + 53,
            Op::BlobHeartbeat {
                id: "b1".into(),
                capacity_bytes: 9,
                free_bytes: 8,
                shards_stored: 0,
                bytes_stored: 0,
            },
        ),
        (
            NOW + 54,
            Op::BlobHeartbeat {
                id: "zz".into(),
                capacity_bytes: 9,
                free_bytes: 8,
                shards_stored: 0,
                bytes_stored: 0,
            },
        ),
        (NOW + 55, Op::DeleteAccessKey { id: "AK1".into() }),
        (
            NOW + 56,
            Op::PutAccessKey {
                key: access_key("AK2"),
            },
        ),
        (NOW + 57, delete_bucket("vers")),
        (NOW + 58, create("gone", false)),
        (NOW + 59, delete_bucket("gone")),
    ]);
    ops
}

#[tokio::test]
async fn the_same_history_builds_the_same_state() {
    let ops = history();
    let mut a = Db::new().await;
    let mut ra = Vec::new();
    for (at, op) in ops.clone() {
        ra.push(a.run_at(at, op).await);
    }
    let mut b = Db::new().await;
    let mut rb = Vec::new();
    for (at, op) in ops.clone() {
        rb.push(b.run_at(at, op).await);
    }
    // The same history applied as one batch, as the state machine does.
    let mut c = Db::new().await;
    let rc: Vec<Response> = c
        .batch(ops.clone())
        .await
        .into_iter()
        .map(|(_, r)| r)
        .collect();

    assert_eq!(ra, rb);
    assert_eq!(ra, rc);
    let (da, db_, dc) = (a.dump().await, b.dump().await, c.dump().await);
    assert_eq!(da, db_);
    assert_eq!(da, dc);
    // The history did something of each kind, and rejected some.
    for t in [
        "buckets",
        "versions",
        "uploads",
        "access_keys",
        "blob_servers",
    ] {
        assert!(!rows_of(&da, t).is_empty(), "no {t} rows: {da:#?}");
    }
    let rejected = ra.iter().filter(|r| matches!(r, Response::Err(_))).count();
    assert!(rejected >= 5, "{rejected} rejections");
    assert!(ra.iter().any(|r| matches!(r, Response::Completed { .. })));
}

/// Applies `op` under command id `id` at log index `seq`.
async fn apply_with_id(db: &mut Db, id: &str, seq: u64, at: i64, op: Op) -> Response {
    db.apply_cmd(seq, &Command::new(id, at, op)).await
}

#[tokio::test]
async fn a_retried_command_id_is_applied_once_even_after_an_overwrite() {
    // A proposal whose answer was lost is re-proposed (same id). If another
    // writer overwrote the object in between, re-applying the first commit
    // would bring back a version whose shards were already freed.
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    let first = apply_with_id(
        &mut db,
        "cmd-a",
        100,
        NOW,
        commit(ver("bkt", "k", "", "one")),
    )
    .await;
    let second = apply_with_id(
        &mut db,
        "cmd-b",
        101,
        NOW + 1,
        commit(ver("bkt", "k", "", "two")),
    )
    .await;
    match &second {
        Response::Committed { freed, .. } => assert_eq!(freed, &vec![shards("one")]),
        other => panic!("{other:?}"),
    }
    let before = db.dump().await;
    let retried = apply_with_id(
        &mut db,
        "cmd-a",
        102,
        NOW,
        commit(ver("bkt", "k", "", "one")),
    )
    .await;
    assert_eq!(
        retried, first,
        "the retry answers what the first apply answered"
    );
    assert_eq!(db.dump().await, before, "and changes nothing");
}

#[tokio::test]
async fn a_retried_complete_multipart_answers_completed() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    db.ok(begin("bkt", "big", "up-1")).await;
    db.ok(put_part("bkt", "big", "up-1", part(1, 10, "p1")))
        .await;
    let etag = md5_hex(b"p1");
    let op = complete("bkt", "big", "up-1", &[(1, etag.as_str())], "v1");
    let first = apply_with_id(&mut db, "cmd-c", 200, NOW, op.clone()).await;
    assert!(matches!(first, Response::Completed { .. }), "{first:?}");
    let before = db.dump().await;
    let retried = apply_with_id(&mut db, "cmd-c", 201, NOW, op).await;
    assert_eq!(retried, first);
    assert_eq!(db.dump().await, before);
}

#[tokio::test]
async fn command_ids_are_forgotten_after_the_window_by_command_time() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    apply_with_id(&mut db, "old", 10, NOW, commit(ver("bkt", "a", "", "a"))).await;
    let count = async |db: &mut Db| -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM applied_commands")
            .fetch_one(db.c())
            .await
            .expect("count")
    };
    assert_eq!(count(&mut db).await, 1);
    let later = NOW + hamster_meta::state::apply::DEDUP_WINDOW_MS + 1;
    apply_with_id(&mut db, "new", 11, later, commit(ver("bkt", "b", "", "b"))).await;
    assert_eq!(
        count(&mut db).await,
        1,
        "the old id was pruned, the new one kept"
    );
}

fn cmd_with_id(id: &str, op: Op) -> Command {
    Command::new(id, NOW, op)
}

#[tokio::test]
async fn a_batch_entry_applies_each_command_in_order_and_alone() {
    let mut db = Db::new().await;
    db.ok(create("vbk", true)).await;
    let batch = Command::new(
        "",
        NOW,
        Op::Batch(vec![
            cmd_with_id("b1", commit(ver("vbk", "k", "v1", "one"))),
            cmd_with_id("b2", create("BAD NAME", false)),
            cmd_with_id("b3", commit(ver("vbk", "k", "v2", "two"))),
            cmd_with_id("b4", Op::Batch(vec![])),
        ]),
    );
    let r = hamster_meta::state::apply::apply_entry(db.c(), 500, &batch)
        .await
        .expect("apply");
    let Response::Batch(answers) = r else {
        panic!("{r:?}")
    };
    assert_eq!(answers.len(), 4);
    assert!(
        matches!(answers[0], Response::Committed { .. }),
        "{:?}",
        answers[0]
    );
    assert!(
        matches!(answers[1], Response::Err(MetaError::InvalidArgument(_))),
        "{:?}",
        answers[1]
    );
    assert!(
        matches!(answers[2], Response::Committed { .. }),
        "{:?}",
        answers[2]
    );
    assert!(
        matches!(answers[3], Response::Err(MetaError::InvalidArgument(_))),
        "nested batch: {:?}",
        answers[3]
    );
    // Both versions exist, in batch order, with distinct seqs in this entry.
    let latest = db.latest("vbk", "k").await.expect("latest");
    assert_eq!(latest.version_id, "v2");
    let s1 = db.version_seq("vbk", "k", "v1").await.expect("v1");
    let s2 = db.version_seq("vbk", "k", "v2").await.expect("v2");
    use hamster_meta::state::apply::seq_of;
    assert_eq!((s1 as u64, s2 as u64), (seq_of(500, 0), seq_of(500, 2)));
    assert!(s2 > s1 && (s1 as u64) > seq_of(499, 65535));
    // The rejected bucket was not created; the batch's commands were recorded once.
    assert!(db.bucket("BAD NAME").await.is_none());
    let before = db.dump().await;
    let again = hamster_meta::state::apply::apply_entry(db.c(), 501, &batch)
        .await
        .expect("apply");
    assert_eq!(
        again,
        Response::Batch(answers),
        "a re-proposed batch answers the same"
    );
    assert_eq!(db.dump().await, before, "and changes nothing");
}
