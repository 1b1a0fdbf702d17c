//! Commands forwarded over Raft with a meta certificate, past the gateway
//! and the Meta service: apply decides with the leader's state, so a
//! command naming a key without the right, one naming no key, and one
//! replayed after the key lost its grant are all refused and change
//! nothing.

use hamster_meta::cluster::{ForwardError, ForwardRequest};
use hamster_meta::raft::codec;
use hamster_meta::state::commands::{Actor, Command, MetaError, Op, Response};
use hamster_meta::state::model::{Version, Versioning};
use hamster_proto::pb::raft_client::RaftClient;
use hamster_tests::meta::test_version;
use hamster_tests::s3::versioning_status;
use tonic::transport::Channel;

use crate::World;
use crate::grants::{bucket_names, doc_intact, exists, head_bucket_fails, put};

/// Forwards `op` acting for `by`, under a fresh command id, as another
/// meta node would: the leader's answer.
async fn send(
    raft: &mut RaftClient<Channel>,
    op: &Op,
    by: Option<&Actor>,
) -> Result<Response, ForwardError> {
    let id = format!("forged-{:016x}", rand::random::<u64>());
    let now_ms = hamster_tests::sigv4::now() * 1000;
    let mut cmd = Command::new(id, now_ms, op.clone());
    cmd.by = by.cloned();
    let payload = codec::encode(&ForwardRequest::Write(Box::new(cmd))).expect("encode");
    let answer = raft.forward(payload).await.expect("forward").into_inner();
    codec::decode(&answer).expect("decode")
}

/// `op` for `by` is refused AccessDenied.
async fn refused(raft: &mut RaftClient<Channel>, op: &Op, by: Option<&Actor>) {
    let r = send(raft, op, by).await;
    assert!(
        matches!(r, Ok(Response::Err(MetaError::AccessDenied(_)))),
        "{} by {by:?}: {r:?}",
        op.name()
    );
}

fn delete(key: &str) -> Op {
    Op::DeleteObject {
        bucket: "alice-data".into(),
        key: key.into(),
        version_id: None,
        marker_version_id: String::new(),
        bypass_governance: false,
    }
}

pub async fn forward(w: &World) {
    let s = &w.s;
    let meta_tls = s.c.identity(&s.c.node(s.metas[0]).dir);
    let mut raft = RaftClient::new(s.c.channel(s.metas[0], &meta_tls));
    let raft = &mut raft;
    let bob = Actor::Key(w.bob.id.clone());
    let a = &w.alice.s3;

    // While bob may write, a forwarded delete for him is applied: the
    // route works, so the refusals below are the rights'.
    put(a, "alice-data", "target", b"target")
        .await
        .expect("put");
    w.allow("alice-data", &w.bob, &["--write"]);
    let r = send(raft, &delete("target"), Some(&bob)).await;
    assert!(matches!(r, Ok(Response::Deleted { .. })), "{r:?}");
    assert!(!exists(&w.alice, "alice-data", "target").await);

    // Denied since: the same command again (a new id, as a replay past
    // the de-duplication window would come) is refused at apply.
    w.deny("alice-data", &w.bob);
    put(a, "alice-data", "target", b"target")
        .await
        .expect("put");
    refused(raft, &delete("target"), Some(&bob)).await;
    assert!(
        exists(&w.alice, "alice-data", "target").await,
        "a replayed delete applied"
    );

    // Naming bob, with no grant at all: data, configuration, rights.
    let kek = s.c.kek_fingerprint();
    let mut forged =
        Version::try_from(test_version(&kek, "alice-data", "forged", 1)).expect("a version");
    forged.version_id = "null".into();
    let commit = Op::commit_version(forged);
    let ops = [
        commit.clone(),
        delete("doc"),
        Op::PutBucketVersioning {
            bucket: "alice-data".into(),
            status: Versioning::Enabled,
        },
        Op::DeleteBucket {
            name: "alice-data".into(),
            abort_uploads: true,
        },
        Op::AllowBucket {
            bucket: "alice-data".into(),
            key_id: w.bob.id.clone(),
            read: true,
            write: true,
            owner: true,
        },
        Op::SetBucket {
            bucket: "alice-data".into(),
            owner: Some(w.bob.id.clone()),
            max_retention_days: None,
        },
    ];
    for op in &ops {
        refused(raft, op, Some(&bob)).await;
    }
    // Naming no one: refused where forwarded commands come in (None is
    // for an old log's commands only), the old ops and the new alike.
    let create = Op::CreateBucket {
        name: "forged-bucket".into(),
        object_lock_enabled: false,
        owner: Some(w.bob.id.clone()),
    };
    for op in ops.iter().chain([&create]) {
        refused(raft, op, None).await;
    }

    assert!(!exists(&w.alice, "alice-data", "forged").await);
    doc_intact(w).await;
    assert_eq!(versioning_status(a, "alice-data").await, None);
    let names = bucket_names(&w.bob).await;
    assert!(!names.iter().any(|n| n == "alice-data"), "{names:?}");
    head_bucket_fails(a, "forged-bucket", 404).await;
}
