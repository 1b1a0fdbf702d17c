//! An attack on a COMPLIANCE-locked version through every route there is
//! (S3, the admin CLI and its certificate, a gateway certificate on the
//! Meta service, a meta certificate forwarding a forged Raft command), in
//! named steps over one cluster; after it the version's bytes are intact
//! and its lock unchanged.

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    ObjectLockConfiguration, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
};
use hamster_meta::cluster::{ForwardError, ForwardRequest};
use hamster_meta::raft::codec;
use hamster_meta::state::commands::{Actor, Command, MetaError, Op, Response};
use hamster_meta::state::model::LockMode;
use hamster_proto::pb;
use hamster_proto::pb::meta_client::MetaClient;
use hamster_tests::Steps;
use hamster_tests::lock::{
    DAY, create_lock_bucket, get_retention, lock_config, now_secs, put_lock_config, put_retention,
    retention,
};
use hamster_tests::s3::{
    S3Cluster, assert_s3_error, delete_version, delete_versions, get_version, read_body,
    set_versioning, versioning,
};
use tonic::transport::Channel;

type Client = aws_sdk_s3::Client;

/// The locked version under attack.
struct Vault {
    /// Its version id.
    v: String,
    /// Its retain-until date, in seconds.
    until: i64,
    secret: Vec<u8>,
    /// Shard files on the blob-servers once it was written.
    shards_before: usize,
}

/// Every route that exists, against one COMPLIANCE-locked version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attack_on_a_compliance_locked_version_changes_nothing() {
    let s = S3Cluster::start(1, 3).await;
    let c = s.client();
    let now = now_secs();
    let mut steps = Steps::new("attack_on_a_compliance_locked_version_changes_nothing");
    let vault = steps
        .require(
            "a COMPLIANCE-locked version is written",
            locked_version(&s, &c, now),
        )
        .await;
    let vault = &vault;
    steps
        .run(
            "S3 deletes of the version are denied",
            s3_deletes(&c, vault),
        )
        .await;
    steps
        .run(
            "S3 cannot weaken or remove the retention",
            s3_retention(&c, vault, now),
        )
        .await;
    steps
        .run(
            "the bucket keeps object lock and its versions",
            s3_bucket(&c),
        )
        .await;
    steps
        .run(
            "a delete marker hides the key but destroys nothing",
            marker(&c),
        )
        .await;
    steps
        .run(
            "the admin CLI and certificate are refused",
            admin(&s, vault),
        )
        .await;
    steps
        .run(
            "a gateway certificate on the Meta service is refused",
            rogue_gateway(&s, vault),
        )
        .await;
    steps
        .run(
            "forged Raft commands from a meta certificate are refused",
            forged(&s, vault),
        )
        .await;
    steps
        .run(
            "the version is intact: bytes, lock, shards",
            intact(&s, &c, vault),
        )
        .await;
    steps
        .run("lengthening is the one change allowed", lengthen(&c, vault))
        .await;
    steps.finish();
}

async fn locked_version(s: &S3Cluster, c: &Client, now: i64) -> anyhow::Result<Vault> {
    let until = now + 30 * DAY;
    let secret: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    create_lock_bucket(c, "vault").await;
    let v = c
        .put_object()
        .bucket("vault")
        .key("doc")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(DateTime::from_secs(until))
        .body(ByteStream::from(secret.clone()))
        .send()
        .await
        .expect("put locked")
        .version_id()
        .expect("id")
        .to_string();
    let shards_before = s.shard_file_count();
    Ok(Vault {
        v,
        until,
        secret,
        shards_before,
    })
}

/// By id, with the bypass, and in a batch: denied.
async fn s3_deletes(c: &Client, vault: &Vault) {
    let v = &vault.v;
    for bypass in [false, true] {
        let r = delete_version(c, "vault", "doc", Some(v), bypass).await;
        assert_s3_error(r, "AccessDenied", 403);
    }
    for bypass in [false, true] {
        let r = delete_versions(c, "vault", &[("doc", v)], Some(bypass))
            .await
            .expect("delete objects answers per key");
        assert!(r.deleted().is_empty(), "{r:?}");
        assert_eq!(
            r.errors().first().and_then(|e| e.code()),
            Some("AccessDenied")
        );
    }
}

async fn s3_retention(c: &Client, vault: &Vault, now: i64) {
    let (v, until) = (&vault.v, vault.until);
    for (mode, to, bypass) in [
        (ObjectLockRetentionMode::Compliance, now + DAY, false),
        (ObjectLockRetentionMode::Compliance, now + DAY, true),
        (ObjectLockRetentionMode::Governance, until, false),
        (ObjectLockRetentionMode::Governance, until + DAY, true),
    ] {
        eprintln!("weaken retention: {mode:?} bypass={bypass}");
        let weaker = retention(mode.clone(), to);
        let r = put_retention(c, "vault", "doc", Some(v), weaker, Some(bypass)).await;
        assert_s3_error(r, "AccessDenied", 403);
    }
    let none = ObjectLockRetention::builder().build();
    let r = put_retention(c, "vault", "doc", Some(v), none, Some(true)).await;
    assert_s3_error(r, "AccessDenied", 403);
}

/// The configuration can lose its default rule, never object lock
/// itself; versioning cannot be suspended; the bucket cannot go.
async fn s3_bucket(c: &Client) {
    put_lock_config(c, "vault", lock_config(None))
        .await
        .expect("a configuration without default retention");
    let r = put_lock_config(c, "vault", ObjectLockConfiguration::builder().build()).await;
    assert_s3_error(r, "MalformedXML", 400);
    let r = set_versioning(c, "vault", versioning("Suspended")).await;
    assert_s3_error(r, "InvalidBucketState", 409);
    let r = c.delete_bucket().bucket("vault").send().await;
    assert_s3_error(r, "BucketNotEmpty", 409);
}

async fn marker(c: &Client) {
    let d = delete_version(c, "vault", "doc", None, false)
        .await
        .expect("marker");
    assert_eq!(d.delete_marker(), Some(true));
}

/// The admin CLI cannot delete the bucket; the admin certificate is not
/// admitted to the Meta service.
async fn admin(s: &S3Cluster, vault: &Vault) {
    let mut args = vec!["bucket", "delete", "vault"];
    let flags = s.c.admin_flags();
    args.extend(flags.iter().map(String::as_str));
    let (ok, out) = s.c.hamster_status(&args);
    assert!(!ok && out.contains("not empty"), "{out}");
    let admin = s.c.admin_tls();
    let mut as_admin = s.c.meta_client(s.metas[0], &admin);
    meta_delete_denied(&mut as_admin, s, vault, "admin on Meta").await;
}

/// DeleteObject of the version, with the bypass, straight to the Meta
/// service as `meta`'s certificate, acting for the bucket's owner (whose
/// rights include the bypass): PermissionDenied.
async fn meta_delete_denied(
    meta: &mut MetaClient<Channel>,
    s: &S3Cluster,
    vault: &Vault,
    who: &str,
) {
    let e = meta
        .delete_object(pb::DeleteObjectRequest {
            bucket: "vault".into(),
            key: "doc".into(),
            version_id: vault.v.clone(),
            bypass_governance: true,
            access_key_id: s.access_key_id.clone(),
            ..Default::default()
        })
        .await
        .expect_err(who);
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
}

/// A gateway certificate on the Meta service, past the S3 layer.
async fn rogue_gateway(s: &S3Cluster, vault: &Vault) {
    let gw = s.c.gateway_identity("rogue-gw");
    let mut as_gw = s.c.meta_client(s.metas[0], &gw);
    meta_delete_denied(&mut as_gw, s, vault, "gateway delete").await;
    let e = as_gw
        .put_object_retention(pb::PutObjectRetentionRequest {
            bucket: "vault".into(),
            key: "doc".into(),
            version_id: vault.v.clone(),
            mode: String::new(),
            retain_until_ms: 0,
            bypass_governance: true,
            access_key_id: s.access_key_id.clone(),
        })
        .await
        .expect_err("gateway retention removal");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
}

/// A meta certificate forwarding commands stamped far in the future, for
/// the bucket's owner and for an admin: the leader stamps its own time,
/// so the retention still holds, and no actor lifts COMPLIANCE.
async fn forged(s: &S3Cluster, vault: &Vault) {
    let v = &vault.v;
    let meta_tls = s.c.identity(&s.c.node(s.metas[0]).dir);
    let mut raft = pb::raft_client::RaftClient::new(s.c.channel(s.metas[0], &meta_tls));
    let forged = [
        Op::DeleteObject {
            bucket: "vault".into(),
            key: "doc".into(),
            version_id: Some(v.clone()),
            marker_version_id: String::new(),
            bypass_governance: true,
        },
        Op::PutRetention {
            bucket: "vault".into(),
            key: "doc".into(),
            version_id: v.clone(),
            mode: LockMode::None,
            retain_until_ms: 0,
            bypass_governance: true,
        },
    ];
    let actors = [
        Actor::Key(s.access_key_id.clone()),
        Actor::Admin("forged-admin".into()),
    ];
    for (op, by) in forged
        .iter()
        .flat_map(|op| actors.iter().map(move |by| (op, by)))
    {
        let cmd = Command::new(
            format!("forged-{}-{by:?}", op.name()),
            (vault.until + 365 * DAY) * 1000,
            op.clone(),
        )
        .by(by.clone());
        let payload = codec::encode(&ForwardRequest::Write(Box::new(cmd))).expect("encode");
        let answer = raft.forward(payload).await.expect("forward").into_inner();
        let r: Result<Response, ForwardError> = codec::decode(&answer).expect("decode");
        assert!(
            matches!(r, Ok(Response::Err(MetaError::AccessDenied(_)))),
            "{by:?}: {r:?}"
        );
    }
}

async fn intact(s: &S3Cluster, c: &Client, vault: &Vault) {
    let (v, until) = (&vault.v, vault.until);
    let g = get_version(c, "vault", "doc", Some(v))
        .await
        .expect("get locked version");
    assert_eq!(g.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    assert_eq!(
        g.object_lock_retain_until_date().map(DateTime::secs),
        Some(until)
    );
    assert_eq!(read_body(g).await, vault.secret);
    let r = get_retention(c, "vault", "doc", Some(v))
        .await
        .expect("retention");
    let r = r.retention().expect("retention");
    assert_eq!(r.mode(), Some(&ObjectLockRetentionMode::Compliance));
    assert_eq!(r.retain_until_date().map(DateTime::secs), Some(until));
    assert_eq!(s.shard_file_count(), vault.shards_before);
}

async fn lengthen(c: &Client, vault: &Vault) {
    let longer = retention(ObjectLockRetentionMode::Compliance, vault.until + DAY);
    put_retention(c, "vault", "doc", Some(&vault.v), longer, None)
        .await
        .expect("lengthen");
}
