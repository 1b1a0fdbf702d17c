//! The blob-server lifecycle (ADR 0025) as apply decides it: a drain is
//! refused when too few servers would be left for the maps on it, and
//! onto a server that takes no shards; a drain finishes only when no map
//! names the server, and from then on no commit may name it; a removal
//! is refused while maps name the server (naming the count) unless
//! forced, and then its shards count as lost; a removed server is refused
//! for good. And the mover's compare-and-set (MoveShards).

mod common;

use common::*;

const B: &str = "bkt";

fn drain(id: &str, to: &str) -> Op {
    Op::DrainBlob {
        id: id.into(),
        to: to.into(),
    }
}

fn undrain(id: &str) -> Op {
    Op::UndrainBlob { id: id.into() }
}

fn finish(id: &str) -> Op {
    Op::FinishDrain { id: id.into() }
}

fn remove(id: &str, force: bool) -> Op {
    Op::RemoveBlob {
        id: id.into(),
        force,
    }
}

fn down(id: &str) -> Op {
    Op::MarkBlobDown {
        id: id.into(),
        silent_since_ms: NOW + 1_000_000,
    }
}

fn heartbeat(id: &str) -> Op {
    Op::BlobHeartbeat {
        id: id.into(),
        capacity_bytes: 1000,
        free_bytes: 500,
        shards_stored: 3,
        bytes_stored: 300,
    }
}

fn loc(index: u32, blob_id: &str, shard_id: &str) -> ShardLocation {
    ShardLocation {
        index,
        blob_id: blob_id.into(),
        shard_id: shard_id.into(),
        checksum: vec![index as u8, 0xee],
    }
}

/// Moves index `index` of `tag`'s unit from its shard to `new` on `blob`.
fn mv(unit: Unit, tag: &str, index: u32, blob: &str, new: &str) -> Op {
    let old = format!("{tag}-shard-{index}");
    Op::MoveShards {
        unit,
        swaps: vec![ShardSwap {
            index,
            old_shard_id: old.clone(),
            new: loc(index, blob, new),
        }],
        sources: vec![old],
    }
}

/// `tag`'s map holding only the shard at `index` (what a move frees).
fn only(tag: &str, index: usize) -> ShardMap {
    let mut m = shards(tag);
    m.shards = vec![m.shards[index].clone()];
    m
}

/// `tag`'s map (blob-0, blob-1, blob-2) with index `index` on `blob`.
fn moved(tag: &str, index: usize, blob: &str) -> ShardMap {
    let mut m = shards(tag);
    m.shards[index].blob_id = blob.into();
    m
}

async fn server(db: &mut Db, id: &str) -> BlobServer {
    db.blob_servers()
        .await
        .into_iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no server {id}"))
}

async fn named_on(db: &mut Db, id: &str) -> u64 {
    q::shards_named_on_count(db.c(), id).await.expect("count")
}

/// Moves every shard `blob` holds onto `to`, page by page, as the mover
/// does: what lets its drain finish.
async fn move_all_off(db: &mut Db, blob: &str, to: &str) {
    let mut n = 0;
    loop {
        let page = q::units_on_blob(db.c(), blob, None, 2)
            .await
            .expect("units");
        if page.is_empty() {
            break;
        }
        for u in page {
            n += 1;
            let r = db
                .run(Op::MoveShards {
                    unit: u.unit.clone(),
                    swaps: vec![ShardSwap {
                        index: u.index,
                        old_shard_id: u.shard_id.clone(),
                        new: loc(u.index, to, &format!("moved-{n}")),
                    }],
                    sources: vec![u.shard_id.clone()],
                })
                .await;
            assert!(matches!(r, Response::Swapped { .. }), "{r:?}");
        }
    }
    assert_eq!(named_on(db, blob).await, 0);
}

#[tokio::test]
async fn a_drain_is_refused_when_too_few_servers_would_be_left() {
    // Maps of width 3 on blob-0..2: draining one of three leaves two.
    let mut db = versioned_with_blobs(B, 3).await;
    db.ok(commit(ver(B, "a", "v1", "a"))).await;
    db.reject(
        drain("blob-0", ""),
        MetaError::NotEnoughBlobServers(String::new()),
    )
    .await;
    let r = db.run(drain("blob-0", "")).await;
    let Response::Err(MetaError::NotEnoughBlobServers(why)) = r else {
        panic!("{r:?}");
    };
    assert_eq!(
        why,
        "draining blob-0 leaves 2 servers in service; maps on it need 3 distinct servers"
    );

    // A fourth server, even one down for a moment, makes room.
    db.ok(Op::RegisterBlob {
        server: blob("blob-3", "10.0.0.3:7000"),
    })
    .await;
    db.ok(down("blob-3")).await;
    assert_eq!(db.run(drain("blob-0", "")).await, Response::Ok);
    let s = server(&mut db, "blob-0").await;
    assert_eq!(
        (s.lifecycle, s.display_state()),
        (Lifecycle::Draining, "draining")
    );
    assert!(!s.usable());

    // A second drain: the first no longer counts as in service.
    db.reject(
        drain("blob-1", ""),
        MetaError::NotEnoughBlobServers(String::new()),
    )
    .await;
    // A server no map names may always be drained.
    db.ok(Op::RegisterBlob {
        server: blob("blob-4", "10.0.0.4:7000"),
    })
    .await;
    db.ok(undrain("blob-0")).await;
    assert_eq!(db.run(drain("blob-4", "")).await, Response::Ok);
}

#[tokio::test]
async fn a_drain_needs_a_known_server_and_a_target_that_takes_shards() {
    let mut db = versioned_with_blobs(B, 6).await;
    db.reject(
        drain("blob-9", ""),
        MetaError::NoSuchBlobServer("blob-9".into()),
    )
    .await;
    db.reject(drain("blob-0", "blob-0"), invalid()).await;
    db.reject(drain("blob-0", "blob-9"), invalid()).await;
    db.ok(drain("blob-1", "")).await;
    db.reject(drain("blob-0", "blob-1"), invalid()).await;
    db.ok(down("blob-2")).await;
    db.reject(drain("blob-0", "blob-2"), invalid()).await;
    db.ok(remove("blob-3", false)).await;
    db.reject(drain("blob-0", "blob-3"), invalid()).await;
    db.reject(
        drain("blob-3", ""),
        MetaError::BlobServerRemoved("blob-3".into()),
    )
    .await;

    let r = db.run(drain("blob-0", "blob-1")).await;
    let Response::Err(MetaError::InvalidArgument(why)) = r else {
        panic!("{r:?}");
    };
    assert_eq!(why, "cannot drain blob-0 onto blob-1: blob-1 is draining");

    // Onto a named server, then retargeted while draining.
    db.ok(drain("blob-0", "blob-4")).await;
    let s = server(&mut db, "blob-0").await;
    assert_eq!(
        (s.lifecycle, s.drain_to.as_str()),
        (Lifecycle::Draining, "blob-4")
    );
    db.ok(drain("blob-0", "blob-5")).await;
    assert_eq!(server(&mut db, "blob-0").await.drain_to, "blob-5");
    db.ok(drain("blob-0", "")).await;
    assert_eq!(server(&mut db, "blob-0").await.drain_to, "");
}

#[tokio::test]
async fn a_drain_finishes_only_when_no_map_names_the_server() {
    let mut db = versioned_with_blobs(B, 4).await;
    db.ok(commit(ver(B, "a", "v1", "a"))).await;
    db.ok(commit(ver(B, "b", "v1", "b"))).await;

    db.reject(finish("blob-0"), MetaError::InvalidRequest(String::new()))
        .await;
    db.reject(
        finish("blob-9"),
        MetaError::NoSuchBlobServer("blob-9".into()),
    )
    .await;
    db.ok(drain("blob-0", "blob-3")).await;
    db.reject(
        finish("blob-0"),
        MetaError::BlobServerInUse("blob-0".into(), 2),
    )
    .await;

    move_all_off(&mut db, "blob-0", "blob-3").await;
    assert_eq!(db.run(finish("blob-0")).await, Response::Ok);
    let s = server(&mut db, "blob-0").await;
    assert_eq!(
        (s.lifecycle, s.display_state(), s.drain_to.as_str()),
        (Lifecycle::Drained, "drained", "blob-3")
    );
    // Finishing again changes nothing.
    let before = db.dump().await;
    assert_eq!(db.run(finish("blob-0")).await, Response::Ok);
    assert_eq!(db.dump().await, before);

    // Draining a drained server again (an operator re-running the
    // command to watch it) changes nothing: the write fence stays up
    // under the cleanup.
    let before = db.dump().await;
    db.ok(drain("blob-0", "")).await;
    assert_eq!(db.dump().await, before);
    db.ok(undrain("blob-0")).await;
    let s = server(&mut db, "blob-0").await;
    assert_eq!(
        (s.lifecycle, s.display_state(), s.drain_to.as_str()),
        (Lifecycle::In, "active", "")
    );
    let before = db.dump().await;
    assert_eq!(db.run(undrain("blob-0")).await, Response::Ok);
    assert_eq!(db.dump().await, before);
    db.reject(
        undrain("blob-9"),
        MetaError::NoSuchBlobServer("blob-9".into()),
    )
    .await;
}

#[tokio::test]
async fn a_remove_is_refused_while_maps_name_the_server_unless_forced() {
    let mut db = versioned_with_blobs(B, 4).await;
    db.ok(commit(ver(B, "a", "v1", "a"))).await;
    db.ok(commit(ver(B, "b", "v1", "b"))).await;
    db.ok(drain("blob-2", "blob-1")).await;

    db.reject(
        remove("blob-1", false),
        MetaError::BlobServerInUse("blob-1".into(), 2),
    )
    .await;
    db.reject(
        remove("blob-9", true),
        MetaError::NoSuchBlobServer("blob-9".into()),
    )
    .await;
    assert_eq!(db.summary().await.under_replicated, 0);

    db.ok(Op::MemberSeen {
        id: "blob-1".into(),
        role: Role::Blob,
        generation: 1,
        cert_ca: "ca".into(),
    })
    .await;
    assert_eq!(
        db.run_at(NOW + 5, remove("blob-1", true)).await,
        Response::Ok
    );
    let s = server(&mut db, "blob-1").await;
    assert_eq!(
        (s.lifecycle, s.state, s.display_state()),
        (Lifecycle::Removed, BlobState::Down, "removed")
    );
    // Its shards count as lost: both units are one short, for repair.
    let summary = db.summary().await;
    assert_eq!((summary.under_replicated, summary.unrecoverable), (2, 0));
    let degraded = db.degraded(10).await;
    assert_eq!(degraded.len(), 2);
    assert!(
        degraded.iter().all(|d| d.good == vec![0, 2]),
        "{degraded:?}"
    );
    // No drain targets it any more, and the CA rotation's gates forget it.
    assert_eq!(server(&mut db, "blob-2").await.drain_to, "");
    let dump = db.dump().await;
    assert!(
        rows_of(&dump, "blob_servers")
            .iter()
            .any(|r| r.starts_with("blob_servers('blob-1',")
                && r.ends_with(",'removed','',0,0,1600000000005,0)")),
        "{dump:?}"
    );
    assert_eq!(rows_of(&dump, "tls_members"), Vec::<&String>::new());

    // Removing again changes nothing.
    assert_eq!(db.run(remove("blob-1", false)).await, Response::Ok);
    assert_eq!(db.dump().await, dump);

    // A server no map names goes without --force.
    assert_eq!(db.run(remove("blob-3", false)).await, Response::Ok);
    assert_eq!(
        q::revoked_identities(db.c()).await.expect("revoked"),
        vec!["hamster://blob/blob-1", "hamster://blob/blob-3"]
    );
}

#[tokio::test]
async fn a_removed_server_is_refused_for_good() {
    let mut db = versioned_with_blobs(B, 4).await;
    db.ok(commit(ver(B, "a", "v1", "a"))).await;
    db.ok(remove("blob-1", true)).await;
    let gone = || MetaError::BlobServerRemoved("blob-1".into());

    db.reject(heartbeat("blob-1"), gone()).await;
    db.reject(
        Op::RegisterBlob {
            server: blob("blob-1", "10.0.0.1:7000"),
        },
        gone(),
    )
    .await;
    db.reject(
        Op::RecordScrub {
            blob_id: "blob-1".into(),
            bad: vec![BadShard {
                shard_id: "a-shard-1".into(),
                reason: "bad".into(),
            }],
            pass_finished_ms: NOW,
        },
        gone(),
    )
    .await;
    db.reject(
        Op::MemberSeen {
            id: "blob-1".into(),
            role: Role::Blob,
            generation: 1,
            cert_ca: "ca".into(),
        },
        gone(),
    )
    .await;
    db.reject(
        Op::KeyHolderSeen {
            id: "blob-1".into(),
            role: Role::Blob,
            current: "kek-a".into(),
            next: String::new(),
        },
        gone(),
    )
    .await;
    db.reject(drain("blob-1", ""), gone()).await;
    db.reject(undrain("blob-1"), gone()).await;
    db.reject(finish("blob-1"), MetaError::InvalidRequest(String::new()))
        .await;
    // Another role with the same id is another member.
    db.ok(Op::MemberSeen {
        id: "blob-1".into(),
        role: Role::Gateway,
        generation: 1,
        cert_ca: "ca".into(),
    })
    .await;
    // Judged down again: still removed, still down.
    db.ok(down("blob-1")).await;
    let s = server(&mut db, "blob-1").await;
    assert_eq!(
        (s.lifecycle, s.state),
        (Lifecycle::Removed, BlobState::Down)
    );
}

#[tokio::test]
async fn heartbeats_record_the_store_and_registering_again_keeps_the_lifecycle() {
    let mut db = versioned_with_blobs(B, 5).await;
    db.ok(drain("blob-0", "blob-4")).await;
    db.ok(down("blob-0")).await;
    db.ok(Op::RegisterBlob {
        server: blob("blob-0", "10.0.0.99:7000"),
    })
    .await;
    let s = server(&mut db, "blob-0").await;
    assert_eq!(
        (
            s.lifecycle,
            s.drain_to.as_str(),
            s.state,
            s.address.as_str()
        ),
        (
            Lifecycle::Draining,
            "blob-4",
            BlobState::Active,
            "10.0.0.99:7000"
        )
    );
    db.ok(down("blob-0")).await;
    db.ok(heartbeat("blob-0")).await;
    let s = server(&mut db, "blob-0").await;
    assert_eq!(
        (s.state, s.lifecycle, s.shards_stored, s.bytes_stored),
        (BlobState::Active, Lifecycle::Draining, 3, 300)
    );
}

#[tokio::test]
async fn a_move_swaps_a_shard_onto_an_active_server_and_counts_as_moved() {
    let mut db = versioned_with_blobs(B, 6).await;
    db.ok(commit(ver(B, "a", "v1", "a"))).await;
    let (before, seq) = db.version(B, "a", "v1").await.expect("v1");
    db.ok(drain("blob-0", "")).await;
    let unit = Unit::version(B, "a", "v1", 0);

    let r = db
        .run(mv(unit.clone(), "a", 0, "blob-3", "a-moved-0"))
        .await;
    assert_eq!(
        r,
        Response::Swapped {
            freed: vec![only("a", 0)]
        }
    );
    let mut map = shards("a");
    map.shards[0] = loc(0, "blob-3", "a-moved-0");
    let want = Version {
        shard_map: Some(map),
        ..before
    };
    assert_eq!(db.version(B, "a", "v1").await, Some((want, seq)));
    assert_eq!(q::shards_moved(db.c()).await.expect("moved"), 1);
    assert_eq!(db.summary().await.shards_repaired, 0);
    assert_eq!(named_on(&mut db, "blob-0").await, 0);

    // The same move again: the map moved on.
    db.reject(
        mv(unit.clone(), "a", 0, "blob-4", "a-moved-0b"),
        MetaError::ShardMapChanged(String::new()),
    )
    .await;
    // Onto servers that take no new shards.
    let retired = |id: &str| MetaError::BlobServerRetired(id.into());
    db.reject(mv(unit.clone(), "a", 1, "blob-0", "x1"), retired("blob-0"))
        .await;
    db.ok(down("blob-4")).await;
    db.reject(mv(unit.clone(), "a", 1, "blob-4", "x2"), retired("blob-4"))
        .await;
    db.ok(remove("blob-5", false)).await;
    db.reject(mv(unit.clone(), "a", 1, "blob-5", "x3"), retired("blob-5"))
        .await;
    db.reject(
        mv(unit.clone(), "a", 1, "blob-9", "x4"),
        MetaError::NoSuchBlobServer("blob-9".into()),
    )
    .await;
    // A move never puts two shards of a unit on one server (a deposed
    // leader's mover may propose beside the new leader's).
    let map = q::unit_map(db.c(), &unit)
        .await
        .expect("read")
        .expect("map");
    let holder = map
        .shards
        .iter()
        .find(|l| l.index == 0)
        .expect("index 0")
        .blob_id
        .clone();
    db.reject(
        mv(unit.clone(), "a", 1, &holder, "x6"),
        MetaError::ShardMapChanged(String::new()),
    )
    .await;
    // A repair's swap keeps the rule SwapShards was written with (ADR
    // 0020: an existing command means what it meant): the new home need
    // only be registered. The repair planner never picks a draining one.
    db.ok(Op::SwapShards {
        unit: unit.clone(),
        swaps: vec![ShardSwap {
            index: 1,
            old_shard_id: "a-shard-1".into(),
            new: loc(1, "blob-0", "x5"),
        }],
        sources: vec!["a-shard-2".into()],
    })
    .await;
    assert_eq!(q::shards_moved(db.c()).await.expect("moved"), 1);
}

#[tokio::test]
async fn commits_may_name_a_draining_server_but_not_a_drained_or_removed_one() {
    let mut db = versioned_with_blobs(B, 5).await;
    db.ok(drain("blob-0", "")).await;
    // A gateway's view of the registry may be seconds old.
    db.ok(commit(ver(B, "a", "v1", "a"))).await;
    db.ok(begin(B, "mp", "u1")).await;
    db.ok(put_part(B, "mp", "u1", part(1, MIN_PART_SIZE, "p1")))
        .await;

    move_all_off(&mut db, "blob-0", "blob-3").await;
    db.ok(finish("blob-0")).await;
    let retired = MetaError::BlobServerRetired("blob-0".into());
    db.reject(commit(ver(B, "b", "v1", "b")), retired.clone())
        .await;
    db.reject(put_part(B, "mp", "u1", part(2, 1, "p2")), retired.clone())
        .await;

    // Removed: refused the same way; other servers still take commits.
    db.ok(remove("blob-1", true)).await;
    db.reject(
        commit(ver(B, "c", "v1", "c")),
        MetaError::BlobServerRetired("blob-0".into()),
    )
    .await;
    let mut v = ver(B, "d", "v1", "d");
    v.shard_map = Some(moved("d", 0, "blob-4"));
    db.reject(
        commit(v.clone()),
        MetaError::BlobServerRetired("blob-1".into()),
    )
    .await;
    if let Some(m) = v.shard_map.as_mut() {
        m.shards[1].blob_id = "blob-3".into();
    }
    db.ok(commit(v)).await;
}

#[tokio::test]
async fn an_undrained_server_never_takes_maps_naming_shards_minted_before_it() {
    let mut db = versioned_with_blobs(B, 5).await;
    db.ok(drain("blob-0", "")).await;
    db.ok(finish("blob-0")).await;
    // The cleanup may be deleting what it listed when the undrain lands:
    // a late commit naming a shard minted earlier must not be acked.
    db.ok(undrain("blob-0")).await;
    db.reject(
        commit(ver(B, "a", "v1", "a")),
        MetaError::BlobServerRetired("blob-0".into()),
    )
    .await;
    let minted = |at: i64, i: usize| {
        hamster_proto::shard_id::shard(&hamster_proto::shard_id::new_object(at), i)
    };
    let mut v = ver(B, "a", "v1", "a");
    if let Some(m) = v.shard_map.as_mut() {
        for (i, l) in m.shards.iter_mut().enumerate() {
            l.shard_id = minted(NOW - 1, i);
        }
    }
    db.reject(
        commit(v.clone()),
        MetaError::BlobServerRetired("blob-0".into()),
    )
    .await;
    // Minted after the undrain: taken.
    if let Some(m) = v.shard_map.as_mut() {
        for (i, l) in m.shards.iter_mut().enumerate() {
            l.shard_id = minted(NOW + 1, i);
        }
    }
    db.ok(commit(v)).await;
    // A server never drained is not fenced at all.
    let mut w = ver(B, "b", "v1", "b");
    if let Some(m) = w.shard_map.as_mut() {
        for l in &mut m.shards {
            l.blob_id = if l.blob_id == "blob-0" {
                "blob-4".into()
            } else {
                l.blob_id.clone()
            };
        }
    }
    db.ok(commit(w)).await;
}

#[tokio::test]
async fn units_on_a_server_page_in_unit_order_with_their_whole_maps() {
    let mut db = versioned_with_blobs(B, 5).await;
    for key in ["c", "a", "b"] {
        db.ok(commit(ver(B, key, "v1", key))).await;
    }
    // One unit with two shards on blob-1 (a degraded placement).
    let mut v = ver(B, "d", "v1", "d");
    if let Some(m) = v.shard_map.as_mut() {
        m.shards[2].blob_id = "blob-1".into();
    }
    db.ok(commit(v)).await;
    // Not on blob-1 at all.
    let mut v = ver(B, "e", "v1", "e");
    v.shard_map = Some(moved("e", 1, "blob-4"));
    db.ok(commit(v)).await;
    // An open upload's part.
    db.ok(begin(B, "mp", "u1")).await;
    db.ok(put_part(B, "mp", "u1", part(1, MIN_PART_SIZE, "p1")))
        .await;

    let mut seen = Vec::new();
    let mut after: Option<Unit> = None;
    loop {
        let page = q::units_on_blob(db.c(), "blob-1", after.as_ref(), 2)
            .await
            .expect("page");
        let Some(last) = page.last() else { break };
        after = Some(last.unit.clone());
        for u in page {
            let map = q::unit_map(db.c(), &u.unit).await.expect("map");
            assert_eq!(Some(&u.map), map.as_ref());
            seen.push((
                u.unit.key.clone(),
                u.unit.upload_id.clone(),
                u.index,
                u.shard_id,
            ));
        }
    }
    let want = [
        ("a", "", 1, "a-shard-1"),
        ("b", "", 1, "b-shard-1"),
        ("c", "", 1, "c-shard-1"),
        ("d", "", 1, "d-shard-1"),
        ("d", "", 2, "d-shard-2"),
        ("mp", "u1", 1, "p1-shard-1"),
    ]
    .map(|(k, u, i, s)| (k.to_string(), u.to_string(), i, s.to_string()));
    assert_eq!(seen, want);

    let counts = q::shards_named_by_blob(db.c()).await.expect("counts");
    let want = [("blob-0", 6), ("blob-1", 6), ("blob-2", 5), ("blob-4", 1)]
        .map(|(b, n)| (b.to_string(), n));
    assert_eq!(counts, want.into_iter().collect());
    assert_eq!(named_on(&mut db, "blob-1").await, 6);
    assert_eq!(named_on(&mut db, "blob-3").await, 0);
    assert_eq!(q::widest_width_on(db.c(), "blob-1").await.expect("w"), 3);
    assert_eq!(q::widest_width_on(db.c(), "blob-3").await.expect("w"), 0);
}
