//! Object lock (WORM) through aws-sdk-s3 against real processes: lock
//! buckets, default retention, retention and legal hold with their exact
//! status codes, the lock headers of PUT echoed on GET and HEAD — and an
//! attack on a COMPLIANCE-locked version through every route there is
//! (S3, the admin CLI and its certificate, a gateway certificate on the
//! Meta service, a meta certificate forwarding a forged Raft command),
//! after which its bytes are intact and its lock unchanged.

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketVersioningStatus, DefaultRetention, Delete, ObjectIdentifier, ObjectLockConfiguration,
    ObjectLockEnabled, ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode,
    ObjectLockRetention, ObjectLockRetentionMode, ObjectLockRule, VersioningConfiguration,
};
use hamster_meta::cluster::{ForwardError, ForwardRequest};
use hamster_meta::raft::codec;
use hamster_meta::state::commands::{Command, MetaError, Op, Response};
use hamster_proto::pb;
use hamster_tests::s3::{S3Cluster, error_status, read_body};

const DAY: i64 = 86_400;

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn lock_config(rule: Option<ObjectLockRule>) -> ObjectLockConfiguration {
    ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .set_rule(rule)
        .build()
}

fn default_rule(
    mode: ObjectLockRetentionMode,
    days: Option<i32>,
    years: Option<i32>,
) -> ObjectLockRule {
    ObjectLockRule::builder()
        .default_retention(
            DefaultRetention::builder()
                .mode(mode)
                .set_days(days)
                .set_years(years)
                .build(),
        )
        .build()
}

fn retention(mode: ObjectLockRetentionMode, until_secs: i64) -> ObjectLockRetention {
    ObjectLockRetention::builder()
        .mode(mode)
        .retain_until_date(DateTime::from_secs(until_secs))
        .build()
}

fn hold(on: bool) -> ObjectLockLegalHold {
    let status = if on {
        ObjectLockLegalHoldStatus::On
    } else {
        ObjectLockLegalHoldStatus::Off
    };
    ObjectLockLegalHold::builder().status(status).build()
}

async fn put(c: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &[u8]) -> String {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .expect("put")
        .version_id()
        .expect("version id")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_buckets_retention_and_legal_hold() {
    let s = S3Cluster::start(1, 3).await;
    let c = s.client();
    let now = now_secs();

    // A plain bucket: every lock call is 400 InvalidRequest (404 for the
    // configuration read), and lock headers on PUT too.
    c.create_bucket().bucket("plain").send().await.expect("mb");
    put_plain(&c).await;
    let e = c
        .get_object_lock_configuration()
        .bucket("plain")
        .send()
        .await
        .expect_err("no lock");
    assert_eq!(
        error_status(&e),
        (
            Some("ObjectLockConfigurationNotFoundError".into()),
            Some(404)
        )
    );
    let e = c
        .put_object_lock_configuration()
        .bucket("plain")
        .object_lock_configuration(lock_config(None))
        .send()
        .await
        .expect_err("no lock");
    assert_eq!(error_status(&e), (Some("InvalidRequest".into()), Some(400)));
    let e = c
        .put_object_retention()
        .bucket("plain")
        .key("k")
        .retention(retention(ObjectLockRetentionMode::Governance, now + DAY))
        .send()
        .await
        .expect_err("no lock");
    assert_eq!(error_status(&e), (Some("InvalidRequest".into()), Some(400)));
    let e = c
        .put_object_legal_hold()
        .bucket("plain")
        .key("k")
        .legal_hold(hold(true))
        .send()
        .await
        .expect_err("no lock");
    assert_eq!(error_status(&e), (Some("InvalidRequest".into()), Some(400)));
    let e = c
        .put_object()
        .bucket("plain")
        .key("k2")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(DateTime::from_secs(now + DAY))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("no lock");
    assert_eq!(error_status(&e), (Some("InvalidRequest".into()), Some(400)));

    // A lock bucket is versioned, for good.
    c.create_bucket()
        .bucket("lock")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("mb lock");
    let v = c
        .get_bucket_versioning()
        .bucket("lock")
        .send()
        .await
        .expect("versioning");
    assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled));
    let e = c
        .put_bucket_versioning()
        .bucket("lock")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .expect_err("suspend");
    assert_eq!(
        error_status(&e),
        (Some("InvalidBucketState".into()), Some(409))
    );
    let cfg = c
        .get_object_lock_configuration()
        .bucket("lock")
        .send()
        .await
        .expect("lock config");
    let cfg = cfg.object_lock_configuration().expect("config");
    assert_eq!(cfg.object_lock_enabled(), Some(&ObjectLockEnabled::Enabled));
    assert!(cfg.rule().is_none());

    // Default retention: Days or Years, not both.
    let e = c
        .put_object_lock_configuration()
        .bucket("lock")
        .object_lock_configuration(lock_config(Some(default_rule(
            ObjectLockRetentionMode::Governance,
            Some(1),
            Some(1),
        ))))
        .send()
        .await
        .expect_err("both");
    assert_eq!(
        error_status(&e),
        (Some("InvalidArgument".into()), Some(400))
    );
    c.put_object_lock_configuration()
        .bucket("lock")
        .object_lock_configuration(lock_config(Some(default_rule(
            ObjectLockRetentionMode::Governance,
            Some(2),
            None,
        ))))
        .send()
        .await
        .expect("default retention");
    let cfg = c
        .get_object_lock_configuration()
        .bucket("lock")
        .send()
        .await
        .expect("lock config");
    let d = cfg
        .object_lock_configuration()
        .and_then(|c| c.rule())
        .and_then(|r| r.default_retention())
        .expect("default retention");
    assert_eq!(
        (d.mode(), d.days(), d.years()),
        (Some(&ObjectLockRetentionMode::Governance), Some(2), None)
    );

    // A version with no lock headers gets the default, shown on HEAD/GET.
    let gv = put(&c, "lock", "gov", b"governed").await;
    let h = c
        .head_object()
        .bucket("lock")
        .key("gov")
        .send()
        .await
        .expect("head");
    assert_eq!(h.object_lock_mode(), Some(&ObjectLockMode::Governance));
    let until = h.object_lock_retain_until_date().expect("until").secs();
    assert!(
        (until - (now + 2 * DAY)).abs() < 120,
        "until {until}, now {now}"
    );
    let r = c
        .get_object_retention()
        .bucket("lock")
        .key("gov")
        .send()
        .await
        .expect("retention");
    assert_eq!(
        r.retention().and_then(|r| r.mode()),
        Some(&ObjectLockRetentionMode::Governance)
    );

    // GOVERNANCE: deleting the version needs the bypass; so does shortening.
    let e = c
        .delete_object()
        .bucket("lock")
        .key("gov")
        .version_id(&gv)
        .send()
        .await
        .expect_err("governance");
    assert_eq!(error_status(&e), (Some("AccessDenied".into()), Some(403)));
    let e = c
        .put_object_retention()
        .bucket("lock")
        .key("gov")
        .version_id(&gv)
        .retention(retention(ObjectLockRetentionMode::Governance, now + DAY))
        .send()
        .await
        .expect_err("shorten");
    assert_eq!(error_status(&e), (Some("AccessDenied".into()), Some(403)));
    c.put_object_retention()
        .bucket("lock")
        .key("gov")
        .version_id(&gv)
        .retention(retention(
            ObjectLockRetentionMode::Governance,
            now + 3 * DAY,
        ))
        .send()
        .await
        .expect("lengthen without bypass");
    c.put_object_retention()
        .bucket("lock")
        .key("gov")
        .version_id(&gv)
        .bypass_governance_retention(true)
        .retention(retention(ObjectLockRetentionMode::Governance, now + DAY))
        .send()
        .await
        .expect("shorten with bypass");
    let d = c
        .delete_object()
        .bucket("lock")
        .key("gov")
        .version_id(&gv)
        .bypass_governance_retention(true)
        .send()
        .await
        .expect("delete with bypass");
    assert_eq!(d.version_id(), Some(gv.as_str()));

    // Explicit headers win over the default and are echoed.
    let until = now + 5 * DAY;
    let put_locked = c
        .put_object()
        .bucket("lock")
        .key("held")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(DateTime::from_secs(until))
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(ByteStream::from_static(b"held bytes"))
        .send()
        .await
        .expect("put locked");
    let hv = put_locked.version_id().expect("id").to_string();
    let g = c
        .get_object()
        .bucket("lock")
        .key("held")
        .send()
        .await
        .expect("get");
    assert_eq!(g.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    assert_eq!(
        g.object_lock_retain_until_date().map(DateTime::secs),
        Some(until)
    );
    assert_eq!(
        g.object_lock_legal_hold_status(),
        Some(&ObjectLockLegalHoldStatus::On)
    );
    assert_eq!(read_body(g).await, b"held bytes");
    let lh = c
        .get_object_legal_hold()
        .bucket("lock")
        .key("held")
        .send()
        .await
        .expect("legal hold");
    assert_eq!(
        lh.legal_hold().and_then(|h| h.status()),
        Some(&ObjectLockLegalHoldStatus::On)
    );

    // Lock headers that do not make sense: 400 InvalidArgument.
    for (mode, date) in [
        (Some(ObjectLockMode::Governance), None),
        (None, Some(DateTime::from_secs(now + DAY))),
        (
            Some(ObjectLockMode::Governance),
            Some(DateTime::from_secs(now - DAY)),
        ),
    ] {
        let e = c
            .put_object()
            .bucket("lock")
            .key("bad")
            .set_object_lock_mode(mode)
            .set_object_lock_retain_until_date(date)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .expect_err("bad lock headers");
        assert_eq!(
            error_status(&e),
            (Some("InvalidArgument".into()), Some(400))
        );
    }

    // A legal hold blocks deletion; lifting it leaves the retention.
    let holdable = {
        c.put_object_lock_configuration()
            .bucket("lock")
            .object_lock_configuration(lock_config(None))
            .send()
            .await
            .expect("drop default");
        put(&c, "lock", "plainver", b"p").await
    };
    let e = c
        .get_object_retention()
        .bucket("lock")
        .key("plainver")
        .send()
        .await
        .expect_err("no retention");
    assert_eq!(
        error_status(&e),
        (Some("NoSuchObjectLockConfiguration".into()), Some(404))
    );
    c.put_object_legal_hold()
        .bucket("lock")
        .key("plainver")
        .legal_hold(hold(true))
        .send()
        .await
        .expect("hold on");
    let e = c
        .delete_object()
        .bucket("lock")
        .key("plainver")
        .version_id(&holdable)
        .bypass_governance_retention(true)
        .send()
        .await
        .expect_err("held");
    assert_eq!(error_status(&e), (Some("AccessDenied".into()), Some(403)));
    c.put_object_legal_hold()
        .bucket("lock")
        .key("plainver")
        .legal_hold(hold(false))
        .send()
        .await
        .expect("hold off");
    c.delete_object()
        .bucket("lock")
        .key("plainver")
        .version_id(&holdable)
        .send()
        .await
        .expect("delete after hold lifted");

    // Multipart uploads carry their lock headers to the completed version.
    let up = c
        .create_multipart_upload()
        .bucket("lock")
        .key("mp")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(DateTime::from_secs(now + DAY))
        .send()
        .await
        .expect("create upload");
    let id = up.upload_id().expect("upload id");
    let p = c
        .upload_part()
        .bucket("lock")
        .key("mp")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"part one"))
        .send()
        .await
        .expect("part");
    let done = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(1)
                .e_tag(p.e_tag().expect("etag"))
                .build(),
        )
        .build();
    c.complete_multipart_upload()
        .bucket("lock")
        .key("mp")
        .upload_id(id)
        .multipart_upload(done)
        .send()
        .await
        .expect("complete");
    let h = c
        .head_object()
        .bucket("lock")
        .key("mp")
        .send()
        .await
        .expect("head mp");
    assert_eq!(h.object_lock_mode(), Some(&ObjectLockMode::Governance));
    assert_eq!(
        h.object_lock_retain_until_date().map(DateTime::secs),
        Some(now + DAY)
    );

    // A bucket holding locked versions cannot be deleted.
    let e = c
        .delete_bucket()
        .bucket("lock")
        .send()
        .await
        .expect_err("not empty");
    assert_eq!(error_status(&e), (Some("BucketNotEmpty".into()), Some(409)));
    let still = c
        .head_object()
        .bucket("lock")
        .key("held")
        .version_id(&hv)
        .send()
        .await
        .expect("held version");
    assert_eq!(still.object_lock_mode(), Some(&ObjectLockMode::Compliance));

    // The admin CLI sees the same buckets, and deletes only empty ones.
    let flags = s.c.admin_flags();
    let with_flags = |args: &[&'static str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(flags.iter().map(String::as_str));
        all
    };
    let listed = s.c.hamster(&with_flags(&["bucket", "list", "--json"]));
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("json");
    let lock = listed
        .as_array()
        .and_then(|a| a.iter().find(|b| b["name"] == "lock"))
        .expect("lock bucket listed");
    assert_eq!(
        (lock["versioning"].as_str(), lock["object_lock"].as_bool()),
        (Some("Enabled"), Some(true))
    );
    c.create_bucket()
        .bucket("empty")
        .send()
        .await
        .expect("mb empty");
    s.c.hamster(&with_flags(&["bucket", "delete", "empty"]));
    let e = c
        .head_bucket()
        .bucket("empty")
        .send()
        .await
        .expect_err("deleted");
    assert_eq!(error_status(&e).1, Some(404));
}

async fn put_plain(c: &aws_sdk_s3::Client) {
    c.put_object()
        .bucket("plain")
        .key("k")
        .body(ByteStream::from_static(b"plain"))
        .send()
        .await
        .expect("put plain");
}

/// Every route that exists, against one COMPLIANCE-locked version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attack_on_a_compliance_locked_version_changes_nothing() {
    let s = S3Cluster::start(1, 3).await;
    let c = s.client();
    let now = now_secs();
    let until = now + 30 * DAY;
    let secret: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    c.create_bucket()
        .bucket("vault")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("mb");
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
    let denied = (Some("AccessDenied".to_string()), Some(403));

    // --- S3 ---
    let e = c
        .delete_object()
        .bucket("vault")
        .key("doc")
        .version_id(&v)
        .send()
        .await;
    assert_eq!(error_status(&e.expect_err("delete by id")), denied);
    let e = c
        .delete_object()
        .bucket("vault")
        .key("doc")
        .version_id(&v)
        .bypass_governance_retention(true)
        .send()
        .await;
    assert_eq!(error_status(&e.expect_err("delete with bypass")), denied);
    for bypass in [false, true] {
        let del = Delete::builder()
            .objects(
                ObjectIdentifier::builder()
                    .key("doc")
                    .version_id(&v)
                    .build()
                    .expect("id"),
            )
            .build()
            .expect("delete");
        let r = c
            .delete_objects()
            .bucket("vault")
            .delete(del)
            .bypass_governance_retention(bypass)
            .send()
            .await
            .expect("delete objects answers per key");
        assert!(r.deleted().is_empty(), "{r:?}");
        assert_eq!(
            r.errors().first().and_then(|e| e.code()),
            Some("AccessDenied")
        );
    }
    for (mode, to, bypass) in [
        (ObjectLockRetentionMode::Compliance, now + DAY, false),
        (ObjectLockRetentionMode::Compliance, now + DAY, true),
        (ObjectLockRetentionMode::Governance, until, false),
        (ObjectLockRetentionMode::Governance, until + DAY, true),
    ] {
        let e = c
            .put_object_retention()
            .bucket("vault")
            .key("doc")
            .version_id(&v)
            .bypass_governance_retention(bypass)
            .retention(retention(mode.clone(), to))
            .send()
            .await;
        assert_eq!(
            error_status(&e.expect_err("weaken retention")),
            denied,
            "{mode:?} {bypass}"
        );
    }
    let e = c
        .put_object_retention()
        .bucket("vault")
        .key("doc")
        .version_id(&v)
        .bypass_governance_retention(true)
        .retention(ObjectLockRetention::builder().build())
        .send()
        .await;
    assert_eq!(error_status(&e.expect_err("remove retention")), denied);
    // The configuration can lose its default rule, never object lock itself.
    c.put_object_lock_configuration()
        .bucket("vault")
        .object_lock_configuration(lock_config(None))
        .send()
        .await
        .expect("a configuration without default retention");
    let e = c
        .put_object_lock_configuration()
        .bucket("vault")
        .object_lock_configuration(ObjectLockConfiguration::builder().build())
        .send()
        .await;
    assert_eq!(
        error_status(&e.expect_err("disable lock")),
        (Some("MalformedXML".into()), Some(400))
    );
    let e = c
        .put_bucket_versioning()
        .bucket("vault")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await;
    assert_eq!(
        error_status(&e.expect_err("suspend")),
        (Some("InvalidBucketState".into()), Some(409))
    );
    let e = c.delete_bucket().bucket("vault").send().await;
    assert_eq!(
        error_status(&e.expect_err("delete bucket")),
        (Some("BucketNotEmpty".into()), Some(409))
    );
    // A delete marker hides the key but destroys nothing.
    let d = c
        .delete_object()
        .bucket("vault")
        .key("doc")
        .send()
        .await
        .expect("marker");
    assert_eq!(d.delete_marker(), Some(true));

    // --- the admin CLI and the admin certificate ---
    let mut args = vec!["bucket", "delete", "vault"];
    let flags = s.c.admin_flags();
    args.extend(flags.iter().map(String::as_str));
    let (ok, out) = s.c.hamster_status(&args);
    assert!(!ok && out.contains("not empty"), "{out}");
    let admin = s.c.admin_tls();
    let mut as_admin = s.c.meta_client(s.metas[0], &admin);
    let e = as_admin
        .delete_object(pb::DeleteObjectRequest {
            bucket: "vault".into(),
            key: "doc".into(),
            version_id: v.clone(),
            bypass_governance: true,
        })
        .await
        .expect_err("admin on Meta");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");

    // --- a gateway certificate on the Meta service, past the S3 layer ---
    let gw = s.c.gateway_identity("rogue-gw");
    let mut as_gw = s.c.meta_client(s.metas[0], &gw);
    let e = as_gw
        .delete_object(pb::DeleteObjectRequest {
            bucket: "vault".into(),
            key: "doc".into(),
            version_id: v.clone(),
            bypass_governance: true,
        })
        .await
        .expect_err("gateway delete");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let e = as_gw
        .put_object_retention(pb::PutObjectRetentionRequest {
            bucket: "vault".into(),
            key: "doc".into(),
            version_id: v.clone(),
            mode: String::new(),
            retain_until_ms: 0,
            bypass_governance: true,
        })
        .await
        .expect_err("gateway retention removal");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");

    // --- a meta certificate forwarding commands stamped far in the future:
    // the leader stamps its own time, so the retention still holds ---
    let meta_tls = s.c.identity(&s.c.nodes[s.metas[0]].dir);
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
            mode: String::new(),
            retain_until_ms: 0,
            bypass_governance: true,
        },
    ];
    for op in forged {
        let cmd = Command {
            id: format!("forged-{}", op.name()),
            at_ms: (until + 365 * DAY) * 1000,
            op,
        };
        let payload = codec::encode(&ForwardRequest::Write(Box::new(cmd))).expect("encode");
        let answer = raft.forward(payload).await.expect("forward").into_inner();
        let r: Result<Response, ForwardError> = codec::decode(&answer).expect("decode");
        assert!(
            matches!(r, Ok(Response::Err(MetaError::AccessDenied(_)))),
            "{r:?}"
        );
    }

    // The version is intact: bytes, lock, shards.
    let g = c
        .get_object()
        .bucket("vault")
        .key("doc")
        .version_id(&v)
        .send()
        .await
        .expect("get locked version");
    assert_eq!(g.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    assert_eq!(
        g.object_lock_retain_until_date().map(DateTime::secs),
        Some(until)
    );
    assert_eq!(read_body(g).await, secret);
    let r = c
        .get_object_retention()
        .bucket("vault")
        .key("doc")
        .version_id(&v)
        .send()
        .await
        .expect("retention");
    let r = r.retention().expect("retention");
    assert_eq!(r.mode(), Some(&ObjectLockRetentionMode::Compliance));
    assert_eq!(r.retain_until_date().map(DateTime::secs), Some(until));
    assert_eq!(s.shard_file_count(), shards_before);
    // Lengthening is the one change allowed.
    c.put_object_retention()
        .bucket("vault")
        .key("doc")
        .version_id(&v)
        .retention(retention(ObjectLockRetentionMode::Compliance, until + DAY))
        .send()
        .await
        .expect("lengthen");
}
