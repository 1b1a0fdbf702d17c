//! The repair's compare-and-set (SwapShards): a swap rewrites only the
//! unit's map, its references and faults, and answers the replaced shards
//! as freed; a swap planned on a map that moved on is refused and changes
//! nothing. And the rule every freeing command follows: a shard another
//! row still names is never answered as freed.

mod common;

use common::*;

const B: &str = "bkt";

/// A versioned bucket and four blob-servers (see `common::versioned_with_blobs`).
async fn cluster() -> Db {
    versioned_with_blobs(B, 4).await
}

fn loc(index: u32, blob_id: &str, shard_id: &str) -> ShardLocation {
    ShardLocation {
        index,
        blob_id: blob_id.into(),
        shard_id: shard_id.into(),
        checksum: vec![index as u8, 0xee],
    }
}

fn swap(index: u32, old: &str, new: ShardLocation) -> ShardSwap {
    ShardSwap {
        index,
        old_shard_id: old.into(),
        new,
    }
}

fn swap_op(unit: Unit, swaps: Vec<ShardSwap>, sources: &[&str]) -> Op {
    Op::SwapShards {
        unit,
        swaps,
        sources: sources.iter().map(|s| s.to_string()).collect(),
    }
}

fn fault(blob_id: &str, shard_id: &str) -> Op {
    Op::RecordScrub {
        blob_id: blob_id.into(),
        bad: vec![BadShard {
            shard_id: shard_id.into(),
            reason: "checksum mismatch".into(),
        }],
        pass_finished_ms: 0,
    }
}

/// `tag`'s map holding only the shard at `index` (what a swap frees).
fn only(tag: &str, index: usize) -> ShardMap {
    let mut m = shards(tag);
    m.shards = vec![m.shards[index].clone()];
    m
}

fn swapped(freed: Vec<ShardMap>) -> Response {
    Response::Swapped { freed }
}

async fn named(db: &mut Db) -> BTreeSet<String> {
    q::referenced_shards(db.c())
        .await
        .expect("refs")
        .into_iter()
        .collect()
}

#[tokio::test]
async fn a_swap_replaces_a_bad_shard_and_frees_the_old_one() {
    let mut db = cluster().await;
    db.ok(commit(ver(B, "a", "v1", "a"))).await;
    let (before, seq) = db.version(B, "a", "v1").await.expect("v1");
    db.ok(fault("blob-1", "a-shard-1")).await;

    let new = loc(1, "blob-3", "a-new-1");
    let unit = Unit::version(B, "a", "v1", 0);
    let r = db
        .run(swap_op(
            unit,
            vec![swap(1, "a-shard-1", new.clone())],
            &["a-shard-0"],
        ))
        .await;
    assert_eq!(r, swapped(vec![only("a", 1)]));

    // Only the map changed: one entry, in index order.
    let mut map = shards("a");
    map.shards[1] = new;
    let want = Version {
        shard_map: Some(map),
        ..before
    };
    assert_eq!(db.version(B, "a", "v1").await, Some((want, seq)));
    assert_eq!(
        named(&mut db).await,
        BTreeSet::from(["a-shard-0", "a-new-1", "a-shard-2"].map(String::from))
    );
    let dump = db.dump().await;
    assert_eq!(rows_of(&dump, "shard_faults"), Vec::<&String>::new());
    assert!(
        rows_of(&dump, "shard_refs")
            .iter()
            .any(|r| r.starts_with("shard_refs('a-new-1','blob-3',1,'bkt','a','v1','',0,2,3,0)")),
        "{dump:?}"
    );
    let summary = db.summary().await;
    assert_eq!((summary.under_replicated, summary.shards_repaired), (0, 1));
}

#[tokio::test]
async fn a_swap_fills_the_index_a_degraded_commit_left_out() {
    let mut db = cluster().await;
    let mut v = ver(B, "a", "v1", "a");
    let full = v.shard_map.clone().expect("map");
    if let Some(m) = v.shard_map.as_mut() {
        m.shards.retain(|s| s.index != 1);
    }
    db.ok(commit(v)).await;
    assert_eq!(db.summary().await.repair_queue, 1);

    // Without the shards it was rebuilt from, a swap into a missing
    // index cannot tell the map is still the one it was planned on.
    let unit = Unit::version(B, "a", "v1", 0);
    let fill = vec![swap(1, "", loc(1, "blob-3", "a-new-1"))];
    db.reject(swap_op(unit.clone(), fill.clone(), &[]), invalid())
        .await;

    let r = db
        .run(swap_op(unit, fill, &["a-shard-0", "a-shard-2"]))
        .await;
    assert_eq!(r, swapped(vec![]));
    let mut map = full;
    map.shards[1] = loc(1, "blob-3", "a-new-1");
    let (v, _) = db.version(B, "a", "v1").await.expect("v1");
    assert_eq!(v.shard_map, Some(map));
    assert_eq!(db.summary().await.under_replicated, 0);
    assert_eq!(db.summary().await.shards_repaired, 1);
}

#[tokio::test]
async fn a_swap_planned_on_a_map_that_moved_on_is_refused_and_changes_nothing() {
    let mut db = cluster().await;
    db.ok(commit(ver(B, "a", "v1", "a"))).await;
    db.ok(commit(ver(B, "b", "v2", "b"))).await;
    let unit = Unit::version(B, "a", "v1", 0);
    let new = || loc(1, "blob-3", "a-new-1");
    let changed = || MetaError::ShardMapChanged(String::new());

    // Another shard at the index now (repaired already, overwritten).
    let op = swap_op(unit.clone(), vec![swap(1, "a-old-1", new())], &[]);
    db.reject(op, changed()).await;
    // The index is filled, but the swap expected it missing.
    let op = swap_op(unit.clone(), vec![swap(1, "", new())], &["a-shard-0"]);
    db.reject(op, changed()).await;
    // A source that is no longer in the map.
    let op = swap_op(unit.clone(), vec![swap(1, "a-shard-1", new())], &["gone"]);
    db.reject(op, changed()).await;
    // The new id is already named (by another version).
    let taken = loc(1, "blob-3", "b-shard-0");
    let op = swap_op(unit.clone(), vec![swap(1, "a-shard-1", taken)], &[]);
    db.reject(op, changed()).await;
    // Malformed swaps.
    let wrong_index = swap(2, "a-shard-2", new());
    db.reject(swap_op(unit.clone(), vec![wrong_index], &[]), invalid())
        .await;
    let beyond = swap(3, "", loc(3, "blob-3", "x"));
    db.reject(
        swap_op(unit.clone(), vec![beyond], &["a-shard-0"]),
        invalid(),
    )
    .await;
    db.reject(swap_op(unit.clone(), vec![], &[]), invalid())
        .await;
    let twice = vec![
        swap(1, "a-shard-1", new()),
        swap(2, "a-shard-2", loc(2, "blob-3", "a-new-1")),
    ];
    db.reject(swap_op(unit.clone(), twice, &[]), invalid())
        .await;
    let both = Unit {
        upload_id: "u1".into(),
        ..unit.clone()
    };
    db.reject(
        swap_op(both, vec![swap(1, "a-shard-1", new())], &[]),
        invalid(),
    )
    .await;
    let nowhere = loc(1, "blob-9", "a-new-1");
    db.reject(
        swap_op(unit.clone(), vec![swap(1, "a-shard-1", nowhere)], &[]),
        MetaError::NoSuchBlobServer("blob-9".into()),
    )
    .await;

    // The version is gone.
    db.ok(del(B, "a", Some("v1"), "")).await;
    let op = swap_op(unit, vec![swap(1, "a-shard-1", new())], &["a-shard-0"]);
    db.reject(op, changed()).await;
    assert_eq!(db.summary().await.shards_repaired, 0);
}

#[tokio::test]
async fn a_swap_never_lands_in_an_overwrite_missing_the_same_index() {
    let mut db = Db::new().await;
    db.ok(create("plain", false)).await;
    db.ok(Op::RegisterBlob {
        server: blob("blob-0", "a:1"),
    })
    .await;
    let degraded = |tag: &str| {
        let mut v = ver("plain", "k", "ignored", tag);
        if let Some(m) = v.shard_map.as_mut() {
            m.shards.retain(|s| s.index != 2);
        }
        v
    };
    db.ok(commit(degraded("one"))).await;
    // Planned on "one"; then "two" replaces the null version, missing
    // the same index: the rebuilt shard is of "one"'s bytes.
    db.ok(commit(degraded("two"))).await;
    let unit = Unit::version("plain", "k", "null", 0);
    let fill = vec![swap(2, "", loc(2, "blob-0", "one-new-2"))];
    db.reject(
        swap_op(unit, fill, &["one-shard-0", "one-shard-1"]),
        MetaError::ShardMapChanged(String::new()),
    )
    .await;
}

#[tokio::test]
async fn a_compliance_locked_version_is_repaired_with_its_lock_untouched() {
    let mut db = cluster().await;
    db.ok(create("vault", true)).await;
    let v = Version {
        lock_mode: LockMode::Compliance,
        retain_until_ms: NOW + 86_400_000,
        legal_hold: true,
        ..ver("vault", "deed", "v1", "deed")
    };
    db.ok(commit(v)).await;
    let (before, seq) = db.version("vault", "deed", "v1").await.expect("v1");
    let unit = Unit::version("vault", "deed", "v1", 0);
    let new = loc(0, "blob-3", "deed-new-0");
    let r = db
        .run(swap_op(
            unit,
            vec![swap(0, "deed-shard-0", new.clone())],
            &[],
        ))
        .await;
    assert_eq!(r, swapped(vec![only("deed", 0)]));
    let (after, after_seq) = db.version("vault", "deed", "v1").await.expect("v1");
    assert_eq!(after_seq, seq);
    assert_eq!(
        (&after.lock_mode, after.retain_until_ms, after.legal_hold),
        (&LockMode::Compliance, NOW + 86_400_000, true)
    );
    assert_eq!(
        (&after.wrapped_dek, &after.etag, after.size),
        (&before.wrapped_dek, &before.etag, before.size)
    );
    assert_eq!(after.shard_map.expect("map").shards[0], new);
    // Still locked: a delete is refused.
    db.reject(del_bypass("vault", "deed", "v1"), denied()).await;
}

#[tokio::test]
async fn parts_of_uploads_and_of_completed_versions_are_swapped_in_place() {
    let mut db = cluster().await;
    db.ok(begin(B, "mp", "u1")).await;
    db.ok(put_part(B, "mp", "u1", part(1, MIN_PART_SIZE, "p1")))
        .await;
    db.ok(put_part(B, "mp", "u1", part(2, 10, "p2"))).await;

    let upload_unit = Unit::upload_part(B, "mp", "u1", 1);
    let r = db
        .run(swap_op(
            upload_unit.clone(),
            vec![swap(0, "p1-shard-0", loc(0, "blob-3", "p1-new-0"))],
            &[],
        ))
        .await;
    assert_eq!(r, swapped(vec![only("p1", 0)]));
    let parts = db.parts("u1").await;
    let p1 = parts[0].shard_map.clone().expect("map");
    assert_eq!(p1.shards[0], loc(0, "blob-3", "p1-new-0"));
    assert_eq!(parts[1], part(2, 10, "p2"));
    // An upload's part is named by its own bucket and key only.
    let elsewhere = Unit::upload_part(B, "other", "u1", 1);
    let op = swap_op(
        elsewhere,
        vec![swap(1, "p1-shard-1", loc(1, "blob-3", "x"))],
        &[],
    );
    db.reject(op, MetaError::ShardMapChanged(String::new()))
        .await;

    let listed = [(1, md5_hex(b"p1")), (2, md5_hex(b"p2"))];
    let listed: Vec<(u32, &str)> = listed.iter().map(|(n, e)| (*n, e.as_str())).collect();
    db.ok(complete(B, "mp", "u1", &listed, "mpv")).await;
    // The upload is gone: its unit with it.
    let op = swap_op(
        upload_unit,
        vec![swap(1, "p1-shard-1", loc(1, "blob-3", "y"))],
        &[],
    );
    db.reject(op, MetaError::ShardMapChanged(String::new()))
        .await;

    let unit = Unit::version(B, "mp", "mpv", 2);
    let r = db
        .run(swap_op(
            unit,
            vec![swap(2, "p2-shard-2", loc(2, "blob-3", "p2-new-2"))],
            &[],
        ))
        .await;
    assert_eq!(r, swapped(vec![only("p2", 2)]));
    let (v, _) = db.version(B, "mp", "mpv").await.expect("mpv");
    assert_eq!(v.parts[0].shard_map, Some(p1));
    let p2 = v.parts[1].shard_map.clone().expect("map");
    assert_eq!(p2.shards[2], loc(2, "blob-3", "p2-new-2"));
    assert_eq!(
        (&v.parts[1].wrapped_dek, &v.parts[1].etag),
        (&part(2, 10, "p2").wrapped_dek, &part(2, 10, "p2").etag)
    );
    assert_eq!(db.summary().await.shards_repaired, 2);
    assert_eq!(named(&mut db).await.len(), 6);
}

#[tokio::test]
async fn a_shard_another_version_names_is_never_freed() {
    let mut db = cluster().await;
    // Two versions on one shard set: what a retried commit made before
    // request ids.
    let first = ver(B, "k", "v1", "x");
    let second = Version {
        version_id: "v2".into(),
        ..first.clone()
    };
    db.ok(commit(first)).await;
    db.ok(commit(second)).await;
    assert_eq!(
        db.run(del(B, "k", Some("v1"), "")).await,
        deleted("v1", false, vec![])
    );
    assert_eq!(
        db.run(del(B, "k", Some("v2"), "")).await,
        deleted("v2", false, vec![shards("x")])
    );

    // A repair of one of two sharing versions frees nothing the other
    // names; each shard is freed once, by whoever drops the last name.
    let third = ver(B, "k", "v3", "y");
    let fourth = Version {
        version_id: "v4".into(),
        ..third.clone()
    };
    db.ok(commit(third)).await;
    db.ok(commit(fourth)).await;
    let unit = Unit::version(B, "k", "v3", 0);
    let r = db
        .run(swap_op(
            unit,
            vec![swap(0, "y-shard-0", loc(0, "blob-3", "y-new-0"))],
            &[],
        ))
        .await;
    assert_eq!(r, swapped(vec![]));
    assert_eq!(
        db.run(del(B, "k", Some("v4"), "")).await,
        deleted("v4", false, vec![only("y", 0)])
    );
    let mut rest = shards("y");
    rest.shards[0] = loc(0, "blob-3", "y-new-0");
    assert_eq!(
        db.run(del(B, "k", Some("v3"), "")).await,
        deleted("v3", false, vec![rest])
    );
}

#[tokio::test]
async fn an_overwrite_frees_only_the_shards_the_new_version_does_not_name() {
    let mut db = Db::new().await;
    db.ok(create("plain", false)).await;
    db.ok(commit(ver("plain", "k", "x", "one"))).await;
    let mut two = ver("plain", "k", "x", "two");
    if let Some(m) = two.shard_map.as_mut() {
        m.shards[0].shard_id = "one-shard-0".into();
    }
    let Response::Committed { freed, .. } = db.ok(commit(two)).await else {
        panic!("not a commit");
    };
    let mut rest = shards("one");
    rest.shards.remove(0);
    assert_eq!(freed, vec![rest]);
}

#[tokio::test]
async fn a_part_replaced_by_its_shared_twin_is_not_freed() {
    let mut db = cluster().await;
    db.ok(begin(B, "mp", "u1")).await;
    db.ok(begin(B, "mp", "u2")).await;
    db.ok(put_part(B, "mp", "u1", part(1, 10, "p"))).await;
    db.ok(put_part(B, "mp", "u2", part(1, 10, "p"))).await;
    // u1's part 1 replaced: its old shards are still u2's part 1.
    let r = db.run(put_part(B, "mp", "u1", part(1, 10, "q"))).await;
    assert_eq!(r, Response::PartStored { replaced: None });
    // Aborting u2 frees them: nothing names them any more.
    assert_eq!(
        db.run(abort(B, "mp", "u2")).await,
        Response::Aborted {
            freed: vec![shards("p")]
        }
    );
}
