//! Master-key rotation's batch apply and the rewrapper's walk, at scale:
//! a batch moves in a few bulk statements exactly what moving its keys
//! one by one would, stale keys and keys named twice included; the walk
//! pages every key once and starts over from the beginning.

mod common;

use common::*;
use hamster_meta::state::model::{RewrapTarget, Rewrapped};
use hamster_meta::state::reads::{self, RewrapCursor};
use hamster_meta::state::writes::{REWRAP_CHUNK, bulk_statements};

const OLD: &str = "kek-a";
const NEW: &str = "kek-b";

fn seen(id: &str, role: &str) -> Op {
    Op::KeyHolderSeen {
        id: id.into(),
        role: role.parse().expect("a role"),
        current: OLD.into(),
        next: NEW.into(),
    }
}

/// `n` plain versions (more than a bulk statement takes), a completed
/// two-part object, an open upload's part, two access keys; the rotation
/// open.
async fn populated(n: usize) -> Db {
    let mut db = Db::new().await;
    db.ok(seen("meta-1", "meta")).await;
    db.ok(create("bkt", false)).await;
    for i in 0..n {
        db.ok(commit(ver(
            "bkt",
            &format!("k{i:05}"),
            "v1",
            &format!("t{i}"),
        )))
        .await;
    }
    db.multipart_pair().await;
    for id in ["AK1", "AK2"] {
        db.ok(Op::PutAccessKey {
            key: access_key(id),
        })
        .await;
    }
    db.ok(Op::StartKeyRotation {
        old: OLD.into(),
        new: NEW.into(),
    })
    .await;
    db
}

/// Every wrapped key, its fingerprint and bytes, in a fixed order.
async fn dump(db: &mut Db) -> Vec<(String, String, Vec<u8>)> {
    let mut out: Vec<(String, String, Vec<u8>)> = sqlx::query_as(
        "SELECT bucket || '/' || key || '/' || version_id, kek_fingerprint, wrapped_dek \
         FROM versions UNION ALL \
         SELECT 'upload ' || upload_id || '/' || part_number, kek_fingerprint, wrapped_dek \
         FROM parts UNION ALL \
         SELECT 'secret ' || id, kek_fingerprint, sealed_secret FROM access_keys \
         UNION ALL SELECT 'parts ' || bucket || '/' || key, parts, x'' FROM versions \
         WHERE parts <> '[]'",
    )
    .fetch_all(db.c())
    .await
    .expect("dump");
    out.sort();
    out
}

fn rewrapped(pending: Vec<(RewrapTarget, Vec<u8>)>) -> Vec<Rewrapped> {
    pending
        .into_iter()
        .map(|(target, old)| {
            let mut new = old.clone();
            new.push(0xbb);
            Rewrapped { target, old, new }
        })
        .collect()
}

fn rewrap(items: Vec<Rewrapped>) -> Op {
    Op::Rewrap {
        new: NEW.into(),
        items,
    }
}

#[tokio::test]
async fn a_bulk_batch_moves_what_one_by_one_would() {
    let n = REWRAP_CHUNK + 30;
    let (mut bulk, mut each) = (populated(n).await, populated(n).await);
    let all = reads::wrapped_by(bulk.c(), OLD, 10 * n)
        .await
        .expect("read");
    // n versions, 2 parts of "mp", the open upload's part, 2 secrets.
    assert_eq!(all.len(), n + 5);
    let mut items = rewrapped(all);
    // Stale items of every kind (the bytes changed since they were
    // read), and a key that no longer exists, do not move.
    let kinds = |t: &RewrapTarget| std::mem::discriminant(t);
    let mut stale_kinds = Vec::new();
    for item in items.iter_mut().rev() {
        if !stale_kinds.contains(&kinds(&item.target)) {
            stale_kinds.push(kinds(&item.target));
            item.old = vec![9, 9, 9];
        }
    }
    assert_eq!(stale_kinds.len(), 4, "one stale item of each kind");
    let mut ghost = items[0].clone();
    ghost.target = RewrapTarget::Version {
        bucket: "bkt".into(),
        key: "gone".into(),
        version_id: "v1".into(),
    };
    items.push(ghost);
    let fresh = (n + 5 - 4) as u64;

    let r = bulk.run(rewrap(items.clone())).await;
    assert_eq!(r, Response::Rewrapped { moved: fresh });
    // The same batch with its last item named twice (an exact copy) is
    // applied one by one, in order: the same keys move.
    let mut twice = items.clone();
    twice.push(items[items.len() - 2].clone());
    let r = each.run(rewrap(twice)).await;
    assert_eq!(r, Response::Rewrapped { moved: fresh });
    assert_eq!(dump(&mut bulk).await, dump(&mut each).await);

    // Moved keys hold the new bytes under the new key; stale ones stay.
    let left = reads::wrapped_by(bulk.c(), OLD, 10 * n)
        .await
        .expect("read");
    assert_eq!(left.len(), 4, "{left:?}");
    let on_new = reads::wrapped_by(bulk.c(), NEW, 10 * n)
        .await
        .expect("read");
    assert_eq!(on_new.len() as u64, fresh);
    assert!(on_new.iter().all(|(_, b)| b.last() == Some(&0xbb)));
    // Again: nothing moves twice.
    let r = bulk.run(rewrap(items)).await;
    assert_eq!(r, Response::Rewrapped { moved: 0 });
}

#[tokio::test]
async fn a_key_named_twice_moves_once_the_first_current_item_winning() {
    let mut db = populated(3).await;
    let all = reads::wrapped_by(db.c(), OLD, 100).await.expect("read");
    let items = rewrapped(all);
    let first = items[0].clone();
    let second = Rewrapped {
        new: vec![7, 7, 7],
        ..first.clone()
    };
    let stale = Rewrapped {
        old: vec![1],
        new: vec![5],
        ..first.clone()
    };
    // A stale item then a current one: the current one moves.
    let r = db.run(rewrap(vec![stale, second.clone()])).await;
    assert_eq!(r, Response::Rewrapped { moved: 1 });
    let on_new = reads::wrapped_by(db.c(), NEW, 100).await.expect("read");
    assert_eq!(on_new, vec![(second.target.clone(), second.new.clone())]);

    // Two current items for one part of a completed object: the first.
    let part = items
        .iter()
        .find(|i| matches!(i.target, RewrapTarget::VersionPart { .. }))
        .expect("a part")
        .clone();
    let other = Rewrapped {
        new: vec![6, 6],
        ..part.clone()
    };
    let r = db.run(rewrap(vec![part.clone(), other])).await;
    assert_eq!(r, Response::Rewrapped { moved: 1 });
    let on_new = reads::wrapped_by(db.c(), NEW, 100).await.expect("read");
    assert!(on_new.contains(&(part.target.clone(), part.new.clone())));

    // An empty result anywhere refuses the whole batch.
    let mut bad = items[1..].to_vec();
    bad[0].new.clear();
    let before = dump(&mut db).await;
    db.reject(rewrap(bad), invalid()).await;
    assert_eq!(dump(&mut db).await, before);
}

#[tokio::test]
async fn the_walk_pages_every_key_once_and_starts_over() {
    let mut db = populated(40).await;
    let all = reads::wrapped_by(db.c(), OLD, 1000).await.expect("read");
    assert_eq!(all.len(), 45);
    // Pages of 7 cross from table to table; nothing moves meanwhile (the
    // batches are "in flight"), yet no key comes twice.
    let mut at = RewrapCursor::default();
    let mut walked = Vec::new();
    loop {
        let page = reads::wrapped_by_after(db.c(), OLD, &mut at, 7)
            .await
            .expect("page");
        assert!(page.len() <= 7);
        if page.is_empty() {
            break;
        }
        walked.extend(page);
    }
    assert!(!at.at_start());
    let key = |(t, b): &(RewrapTarget, Vec<u8>)| format!("{t:?} {b:?}");
    let mut a: Vec<String> = all.iter().map(key).collect();
    let mut w: Vec<String> = walked.iter().map(key).collect();
    a.sort();
    w.sort();
    assert_eq!(w, a);

    // Moving the first page and walking again from the start finds the
    // rest, and nothing once everything moved.
    let first = reads::wrapped_by(db.c(), OLD, 7).await.expect("read");
    let r = db.run(rewrap(rewrapped(first))).await;
    assert_eq!(r, Response::Rewrapped { moved: 7 });
    let mut at = RewrapCursor::default();
    let rest = reads::wrapped_by_after(db.c(), OLD, &mut at, 1000)
        .await
        .expect("rest");
    assert_eq!(rest.len(), 38);
    let r = db.run(rewrap(rewrapped(rest))).await;
    assert_eq!(r, Response::Rewrapped { moved: 38 });
    let none = reads::wrapped_by(db.c(), OLD, 1000).await.expect("read");
    assert!(none.is_empty(), "{none:?}");
    db.ok(Op::FinishKeyRotation).await;
}

/// A batch costs the same however many keys are left: SQLite reads each
/// of a bulk statement's rows by key, and never walks the keys still on
/// the old master key (which made a rotation slow down as tables grew).
#[tokio::test]
async fn a_bulk_statement_looks_each_row_up_by_key() {
    let mut db = populated(50).await;
    for sql in bulk_statements(REWRAP_CHUNK) {
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .fetch_all(db.c())
                .await
                .expect("a plan");
        let plan: Vec<String> = plan.into_iter().map(|(.., detail)| detail).collect();
        let table = sql.split_whitespace().nth(1).expect("a table");
        assert!(
            plan.iter()
                .any(|d| d.starts_with("SCAN") && d.contains("VALUES")),
            "{table}: the VALUES rows drive the statement: {plan:?}"
        );
        assert!(
            plan.iter()
                .any(|d| d.starts_with(&format!("SEARCH {table} USING")) && !d.contains("kek")),
            "{table}: each row is found by its key: {plan:?}"
        );
        assert!(
            !plan.iter().any(|d| d.contains("kek")),
            "{table}: the old key's index is never walked: {plan:?}"
        );
    }
}

/// The walk over completed objects' parts resumes inside its bucket by
/// rowid: a page never walks the bucket again from its first object.
#[tokio::test]
async fn the_parts_walk_resumes_at_its_rowid() {
    let mut db = populated(5).await;
    let [rest, later] = reads::VERSION_PARTS;
    for (sql, want) in [(rest, "(bucket=? AND rowid>?)"), (later, "(bucket>?)")] {
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .fetch_all(db.c())
                .await
                .expect("a plan");
        assert!(
            plan.iter()
                .any(|(.., d)| d.contains("versions_multipart") && d.ends_with(want)),
            "{sql}: {plan:?}"
        );
    }
}
