//! The commit-retry hole (ADR 0024): a gateway request retried after its
//! answer was lost is proposed again under the same command id, the one
//! `grpc::meta::command_id` derives from the caller's identity and its
//! request id, and with the ids the gateway chose before the first
//! attempt. Each retry here is a second proposal: a later log entry (or a
//! slot in a batch) with the leader's later time stamped on it.

mod common;

use common::*;
use hamster_meta::grpc::errors::ServiceError;
use hamster_meta::grpc::meta::{command_id, version_id_or_new};
use hamster_meta::state::apply::{apply_entry, seq_of};
use hamster_proto::{PeerIdentity, ids};

fn gateway(name: &str) -> PeerIdentity {
    PeerIdentity::new(hamster_proto::Role::Gateway, name).expect("a valid node id")
}

/// The command a gateway's request becomes, as the leader stamps it.
fn proposal(gw: &str, request_id: &str, at: i64, op: Op) -> Command {
    let id = command_id(Some(&gateway(gw)), request_id)
        .expect("a valid request id")
        .expect("a named request");
    let mut cmd = Command::new(id, 0, op);
    hamster_meta::batch::stamp(&mut cmd, at);
    cmd
}

/// Applies `cmd` as the next log entry.
async fn propose(db: &mut Db, cmd: &Command) -> Response {
    db.seq += 1;
    let seq = db.seq;
    db.apply_cmd(seq, cmd).await
}

/// Every shard id named by freed maps in `r`.
fn freed_ids(r: &Response) -> Vec<String> {
    let maps = match r {
        Response::Committed { freed, .. }
        | Response::Completed { freed, .. }
        | Response::Deleted { freed, .. }
        | Response::Aborted { freed } => freed.clone(),
        Response::PartStored { replaced } => replaced.iter().cloned().collect(),
        _ => Vec::new(),
    };
    maps.iter()
        .flat_map(|m| &m.shards)
        .map(|s| s.shard_id.clone())
        .collect()
}

#[test]
fn command_ids_are_scoped_by_the_callers_identity() {
    let rid = ids::new_request_id();
    let a = command_id(Some(&gateway("gw-a")), &rid).expect("ok");
    let b = command_id(Some(&gateway("gw-b")), &rid).expect("ok");
    assert_eq!(a, Some(format!("req:gateway:gw-a:{rid}")));
    assert_ne!(a, b, "two gateways never share a command id");
    let meta = PeerIdentity::new(hamster_proto::Role::Meta, "gw-a").expect("id");
    assert_ne!(command_id(Some(&meta), &rid).expect("ok"), a);
    // No request id: the old behaviour (a fresh id per proposal).
    assert_eq!(command_id(Some(&gateway("gw-a")), "").expect("ok"), None);
    assert_eq!(command_id(None, "").expect("ok"), None);
    for bad in ["a:b", "with space", "x/y", &"a".repeat(65)] {
        assert!(
            matches!(
                command_id(Some(&gateway("gw-a")), bad),
                Err(ServiceError::InvalidArgument(_))
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        command_id(None, &rid),
        Err(ServiceError::Unauthenticated)
    ));
}

#[test]
fn a_chosen_version_id_is_kept_if_well_formed() {
    let chosen = ids::new_version_id(NOW);
    assert_eq!(version_id_or_new(chosen.clone()).expect("ok"), chosen);
    let minted = version_id_or_new(String::new()).expect("ok");
    assert!(ids::is_version_id(&minted), "{minted}");
    for bad in ["null", "v1", &"A".repeat(32), &"a".repeat(31)] {
        assert!(
            matches!(
                version_id_or_new(bad.to_string()),
                Err(ServiceError::InvalidArgument(_))
            ),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn a_retried_versioned_commit_makes_one_version_and_answers_the_same() {
    let mut db = Db::new().await;
    db.ok(create("vbk", true)).await;
    let rid = ids::new_request_id();
    let vid = ids::new_version_id(NOW);
    let op = commit(ver("vbk", "k", &vid, "put"));

    let first = propose(&mut db, &proposal("gw", &rid, NOW, op.clone())).await;
    assert!(matches!(first, Response::Committed { .. }), "{first:?}");
    let after_first = db.dump().await;

    // The retry as its own later entry, and again in a later batch behind
    // another gateway's commit (same request id, other identity).
    let again = propose(&mut db, &proposal("gw", &rid, NOW + 900, op.clone())).await;
    assert_eq!(again, first);
    assert_eq!(db.dump().await, after_first, "the retry changed nothing");

    let other_vid = ids::new_version_id(NOW + 1);
    let batch = Command::new(
        "",
        NOW + 2000,
        Op::Batch(vec![
            proposal(
                "gw-2",
                &rid,
                NOW + 2000,
                commit(ver("vbk", "k", &other_vid, "other")),
            ),
            proposal("gw", &rid, NOW + 2000, op),
        ]),
    );
    let Response::Batch(answers) = apply_entry(db.c(), 1000, &batch).await.expect("apply") else {
        panic!("not a batch answer")
    };
    assert!(
        matches!(answers[0], Response::Committed { .. }),
        "{:?}",
        answers[0]
    );
    assert_eq!(
        answers[1], first,
        "the batched retry answers the first answer"
    );

    // Exactly one version of the PUT, at its first seq, with its first time.
    let ids_of_k: Vec<String> = db
        .all_versions_of("vbk", "k")
        .await
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(ids_of_k, vec![other_vid.clone(), vid.clone()]);
    let (stored, seq) = db.version("vbk", "k", &vid).await.expect("the PUT");
    assert_eq!(seq, 2);
    assert_eq!(stored.created_at_ms, NOW);
    assert_eq!(
        db.version_seq("vbk", "k", &other_vid).await,
        Some(seq_of(1000, 0) as i64)
    );
}

#[tokio::test]
async fn a_late_retry_never_undoes_an_overwrite_on_an_unversioned_bucket() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    let (rid_a, rid_b) = (ids::new_request_id(), ids::new_request_id());
    let op_a = commit(ver("bkt", "k", &ids::new_version_id(NOW), "A"));
    let op_b = commit(ver("bkt", "k", &ids::new_version_id(NOW), "B"));

    let a = propose(&mut db, &proposal("gw-1", &rid_a, NOW, op_a.clone())).await;
    assert!(
        matches!(&a, Response::Committed { freed, .. } if freed.is_empty()),
        "{a:?}"
    );
    // B overwrites A (another gateway) and frees A's shards...
    let b = propose(&mut db, &proposal("gw-2", &rid_b, NOW + 10, op_b)).await;
    let Response::Committed {
        version: b_version, ..
    } = &b
    else {
        panic!("{b:?}")
    };
    assert_eq!(freed_ids(&b), freed_ids_of(&shards("A")));
    let after_b = db.dump().await;

    // ...then A's answer-lost retry lands (through another meta-server).
    let retry = propose(&mut db, &proposal("gw-1", &rid_a, NOW + 20, op_a)).await;
    assert_eq!(retry, a, "answered with A's first outcome");
    assert!(
        freed_ids(&retry).iter().all(|s| !s.starts_with("B-shard")),
        "B's shards freed: {retry:?}"
    );
    assert_eq!(db.latest("bkt", "k").await.as_ref(), Some(b_version));
    assert_eq!(db.dump().await, after_b, "the retry changed nothing");
}

fn freed_ids_of(map: &ShardMap) -> Vec<String> {
    map.shards.iter().map(|s| s.shard_id.clone()).collect()
}

#[tokio::test]
async fn a_retried_delete_lays_one_marker() {
    let mut db = Db::new().await;
    db.ok(create("vbk", true)).await;
    let vid = ids::new_version_id(NOW);
    db.ok(commit(ver("vbk", "k", &vid, "put"))).await;

    let rid = ids::new_request_id();
    let marker = ids::new_version_id(NOW + 5);
    let first = propose(
        &mut db,
        &proposal("gw", &rid, NOW + 5, del("vbk", "k", None, &marker)),
    )
    .await;
    assert_eq!(first, deleted(&marker, true, vec![]));
    // The retry (even one whose marker id an older meta-server minted
    // afresh) is the same command: no second marker.
    let other_marker = ids::new_version_id(NOW + 50);
    for (at, m) in [(NOW + 50, &marker), (NOW + 60, &other_marker)] {
        let again = propose(&mut db, &proposal("gw", &rid, at, del("vbk", "k", None, m))).await;
        assert_eq!(again, first);
    }
    let all = db.all_versions_of("vbk", "k").await;
    assert_eq!(
        all,
        vec![(marker.clone(), true, true), (vid.clone(), false, false)]
    );
}

#[tokio::test]
async fn a_retried_part_commit_never_brings_back_a_replaced_part() {
    let mut db = Db::new().await;
    db.ok(create("bkt", false)).await;
    db.ok(begin("bkt", "k", "up-1")).await;
    let rid_1 = ids::new_request_id();
    let first_op = put_part("bkt", "k", "up-1", part(1, 10, "P1"));
    let first = propose(&mut db, &proposal("gw", &rid_1, NOW, first_op.clone())).await;
    assert_eq!(first, Response::PartStored { replaced: None });
    // The client uploads part 1 again; it replaces P1.
    let second = propose(
        &mut db,
        &proposal(
            "gw",
            &ids::new_request_id(),
            NOW + 5,
            put_part("bkt", "k", "up-1", part(1, 10, "P2")),
        ),
    )
    .await;
    assert_eq!(
        second,
        Response::PartStored {
            replaced: Some(shards("P1"))
        }
    );
    // P1's retry: answered, not stored over P2 (whose shards it would free).
    let retry = propose(&mut db, &proposal("gw", &rid_1, NOW + 9, first_op)).await;
    assert_eq!(retry, first);
    let parts = db.parts("up-1").await;
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].shard_map, Some(shards("P2")));
}

#[tokio::test]
async fn retried_multipart_calls_answer_their_first_outcome() {
    let mut db = Db::new().await;
    db.ok(create("vbk", true)).await;

    // BeginMultipart: each attempt minted its own upload id; one upload.
    let rid = ids::new_request_id();
    let begun = propose(
        &mut db,
        &proposal("gw", &rid, NOW, begin("vbk", "k", "up-a")),
    )
    .await;
    let again = propose(
        &mut db,
        &proposal("gw", &rid, NOW + 1, begin("vbk", "k", "up-b")),
    )
    .await;
    assert_eq!(again, begun);
    assert!(db.upload("up-b").await.is_none());
    let (open, _) = db.uploads("vbk", "", "", "", 100).await;
    assert_eq!(open.len(), 1);

    db.ok(put_part("vbk", "k", "up-a", part(1, 10, "only")))
        .await;
    let etag = md5_hex(b"only");
    let rid = ids::new_request_id();
    let vid = ids::new_version_id(NOW);
    let op = complete("vbk", "k", "up-a", &[(1, &etag)], &vid);
    let done = propose(&mut db, &proposal("gw", &rid, NOW + 3, op.clone())).await;
    assert!(matches!(done, Response::Completed { .. }), "{done:?}");
    // The upload is gone; the retry is answered, not refused NoSuchUpload.
    let again = propose(&mut db, &proposal("gw", &rid, NOW + 4, op)).await;
    assert_eq!(again, done);
    assert_eq!(
        db.all_versions_of("vbk", "k").await,
        vec![(vid, false, true)]
    );

    // AbortMultipart: the retry answers what the abort freed.
    db.ok(begin("vbk", "k2", "up-c")).await;
    db.ok(put_part("vbk", "k2", "up-c", part(1, 10, "gone")))
        .await;
    let rid = ids::new_request_id();
    let aborted = propose(
        &mut db,
        &proposal("gw", &rid, NOW + 5, abort("vbk", "k2", "up-c")),
    )
    .await;
    assert_eq!(freed_ids(&aborted), freed_ids_of(&shards("gone")));
    let again = propose(
        &mut db,
        &proposal("gw", &rid, NOW + 6, abort("vbk", "k2", "up-c")),
    )
    .await;
    assert_eq!(again, aborted);
}
