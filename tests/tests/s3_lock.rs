//! Object lock (WORM) through aws-sdk-s3 against real processes, one
//! cluster, in named steps: lock buckets, default retention, retention and
//! legal hold with their exact status codes, the lock headers of PUT echoed
//! on GET and HEAD, and the admin CLI's view of lock buckets. The attack on
//! a COMPLIANCE-locked version is in s3_lock_attack.rs.

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketVersioningStatus, ObjectLockEnabled, ObjectLockLegalHoldStatus, ObjectLockMode,
    ObjectLockRetentionMode, VersioningConfiguration,
};
use hamster_tests::Steps;
use hamster_tests::lock::{DAY, default_rule, hold, lock_config, now_secs, put, retention};
use hamster_tests::s3::{S3Cluster, assert_s3_error, error_status, read_body};

type Client = aws_sdk_s3::Client;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_buckets_retention_and_legal_hold() {
    let s = S3Cluster::start(1, 3).await;
    let c = s.client();
    let now = now_secs();
    let mut steps = Steps::new("lock_buckets_retention_and_legal_hold");
    steps
        .run(
            "a plain bucket refuses every lock call",
            plain_bucket(&c, now),
        )
        .await;
    steps
        .require("a lock bucket is versioned for good", lock_bucket(&c))
        .await;
    steps
        .run(
            "default retention: days or years, not both",
            default_retention(&c),
        )
        .await;
    let gv = steps
        .require(
            "a version without lock headers gets the default",
            defaulted_version(&c, now),
        )
        .await;
    steps
        .run(
            "governance needs the bypass to delete or shorten",
            governance(&c, &gv, now),
        )
        .await;
    let hv = steps
        .require(
            "explicit lock headers win and are echoed",
            explicit_headers(&c, now),
        )
        .await;
    steps
        .run(
            "nonsense lock headers are refused",
            bad_lock_headers(&c, now),
        )
        .await;
    steps
        .run("a legal hold blocks deletion until lifted", legal_hold(&c))
        .await;
    steps
        .run(
            "multipart uploads carry their lock headers",
            multipart_lock(&c, now),
        )
        .await;
    steps
        .run(
            "a bucket of locked versions cannot be deleted",
            locked_bucket_stays(&c, &hv),
        )
        .await;
    steps
        .run(
            "the admin CLI lists lock buckets, deletes only empty ones",
            admin_cli(&s, &c),
        )
        .await;
    steps.finish();
}

/// A plain bucket: every lock call is 400 InvalidRequest (404 for the
/// configuration read), and lock headers on PUT too.
async fn plain_bucket(c: &Client, now: i64) {
    c.create_bucket().bucket("plain").send().await.expect("mb");
    c.put_object()
        .bucket("plain")
        .key("k")
        .body(ByteStream::from_static(b"plain"))
        .send()
        .await
        .expect("put plain");
    let r = c
        .get_object_lock_configuration()
        .bucket("plain")
        .send()
        .await;
    assert_s3_error(r, "ObjectLockConfigurationNotFoundError", 404);
    let r = c
        .put_object_lock_configuration()
        .bucket("plain")
        .object_lock_configuration(lock_config(None))
        .send()
        .await;
    assert_s3_error(r, "InvalidRequest", 400);
    let r = c
        .put_object_retention()
        .bucket("plain")
        .key("k")
        .retention(retention(ObjectLockRetentionMode::Governance, now + DAY))
        .send()
        .await;
    assert_s3_error(r, "InvalidRequest", 400);
    let r = c
        .put_object_legal_hold()
        .bucket("plain")
        .key("k")
        .legal_hold(hold(true))
        .send()
        .await;
    assert_s3_error(r, "InvalidRequest", 400);
    let r = c
        .put_object()
        .bucket("plain")
        .key("k2")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(DateTime::from_secs(now + DAY))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_s3_error(r, "InvalidRequest", 400);
}

/// A lock bucket is versioned, for good.
async fn lock_bucket(c: &Client) {
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
    let r = c
        .put_bucket_versioning()
        .bucket("lock")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await;
    assert_s3_error(r, "InvalidBucketState", 409);
    let cfg = c
        .get_object_lock_configuration()
        .bucket("lock")
        .send()
        .await
        .expect("lock config");
    let cfg = cfg.object_lock_configuration().expect("config");
    assert_eq!(cfg.object_lock_enabled(), Some(&ObjectLockEnabled::Enabled));
    assert!(cfg.rule().is_none());
}

/// Default retention: Days or Years, not both.
async fn default_retention(c: &Client) {
    let r = c
        .put_object_lock_configuration()
        .bucket("lock")
        .object_lock_configuration(lock_config(Some(default_rule(
            ObjectLockRetentionMode::Governance,
            Some(1),
            Some(1),
        ))))
        .send()
        .await;
    assert_s3_error(r, "InvalidArgument", 400);
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
}

/// A version with no lock headers gets the default, shown on HEAD/GET.
/// Answers its version id.
async fn defaulted_version(c: &Client, now: i64) -> anyhow::Result<String> {
    let gv = put(c, "lock", "gov", b"governed").await;
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
    Ok(gv)
}

/// GOVERNANCE: deleting the version needs the bypass; so does shortening.
async fn governance(c: &Client, gv: &str, now: i64) {
    let r = c
        .delete_object()
        .bucket("lock")
        .key("gov")
        .version_id(gv)
        .send()
        .await;
    assert_s3_error(r, "AccessDenied", 403);
    let r = c
        .put_object_retention()
        .bucket("lock")
        .key("gov")
        .version_id(gv)
        .retention(retention(ObjectLockRetentionMode::Governance, now + DAY))
        .send()
        .await;
    assert_s3_error(r, "AccessDenied", 403);
    c.put_object_retention()
        .bucket("lock")
        .key("gov")
        .version_id(gv)
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
        .version_id(gv)
        .bypass_governance_retention(true)
        .retention(retention(ObjectLockRetentionMode::Governance, now + DAY))
        .send()
        .await
        .expect("shorten with bypass");
    let d = c
        .delete_object()
        .bucket("lock")
        .key("gov")
        .version_id(gv)
        .bypass_governance_retention(true)
        .send()
        .await
        .expect("delete with bypass");
    assert_eq!(d.version_id(), Some(gv));
}

/// Explicit headers win over the default and are echoed. Answers the
/// held version's id.
async fn explicit_headers(c: &Client, now: i64) -> anyhow::Result<String> {
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
    Ok(hv)
}

/// Lock headers that do not make sense: 400 InvalidArgument.
async fn bad_lock_headers(c: &Client, now: i64) {
    for (mode, date) in [
        (Some(ObjectLockMode::Governance), None),
        (None, Some(DateTime::from_secs(now + DAY))),
        (
            Some(ObjectLockMode::Governance),
            Some(DateTime::from_secs(now - DAY)),
        ),
    ] {
        let r = c
            .put_object()
            .bucket("lock")
            .key("bad")
            .set_object_lock_mode(mode)
            .set_object_lock_retain_until_date(date)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await;
        assert_s3_error(r, "InvalidArgument", 400);
    }
}

/// A legal hold blocks deletion; lifting it leaves the retention.
async fn legal_hold(c: &Client) {
    c.put_object_lock_configuration()
        .bucket("lock")
        .object_lock_configuration(lock_config(None))
        .send()
        .await
        .expect("drop default");
    let holdable = put(c, "lock", "plainver", b"p").await;
    let r = c
        .get_object_retention()
        .bucket("lock")
        .key("plainver")
        .send()
        .await;
    assert_s3_error(r, "NoSuchObjectLockConfiguration", 404);
    c.put_object_legal_hold()
        .bucket("lock")
        .key("plainver")
        .legal_hold(hold(true))
        .send()
        .await
        .expect("hold on");
    let r = c
        .delete_object()
        .bucket("lock")
        .key("plainver")
        .version_id(&holdable)
        .bypass_governance_retention(true)
        .send()
        .await;
    assert_s3_error(r, "AccessDenied", 403);
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
}

/// Multipart uploads carry their lock headers to the completed version.
async fn multipart_lock(c: &Client, now: i64) {
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
}

/// A bucket holding locked versions cannot be deleted.
async fn locked_bucket_stays(c: &Client, hv: &str) {
    let r = c.delete_bucket().bucket("lock").send().await;
    assert_s3_error(r, "BucketNotEmpty", 409);
    let still = c
        .head_object()
        .bucket("lock")
        .key("held")
        .version_id(hv)
        .send()
        .await
        .expect("held version");
    assert_eq!(still.object_lock_mode(), Some(&ObjectLockMode::Compliance));
}

/// The admin CLI sees the same buckets, and deletes only empty ones.
async fn admin_cli(s: &S3Cluster, c: &Client) {
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
