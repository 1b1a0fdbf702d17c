//! Object lock (WORM) through aws-sdk-s3 against real processes, one
//! cluster, in named steps: lock buckets, default retention, retention and
//! legal hold with their exact status codes, the lock headers of PUT echoed
//! on GET and HEAD, and the admin CLI's view of lock buckets. The attack on
//! a COMPLIANCE-locked version is in s3_lock_attack.rs.

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketVersioningStatus, ObjectLockEnabled, ObjectLockLegalHoldStatus, ObjectLockMode,
    ObjectLockRetentionMode,
};
use hamster_tests::Steps;
use hamster_tests::lock::{
    DAY, create_lock_bucket, default_rule, get_lock_config, get_retention, legal_hold_status,
    lock_config, now_secs, put, put_legal_hold, put_lock_config, put_retention, retention,
};
use hamster_tests::s3::{
    S3Cluster, assert_s3_error, delete_version, error_status, get_version, head_version, read_body,
    set_versioning, versioning, versioning_status,
};

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
/// configuration read; 409 for enabling lock, unversioned), and lock
/// headers on PUT too.
async fn plain_bucket(c: &Client, now: i64) {
    c.create_bucket().bucket("plain").send().await.expect("mb");
    c.put_object()
        .bucket("plain")
        .key("k")
        .body(ByteStream::from_static(b"plain"))
        .send()
        .await
        .expect("put plain");
    let r = get_lock_config(c, "plain").await;
    assert_s3_error(r, "ObjectLockConfigurationNotFoundError", 404);
    // Enabling lock needs versioning on first (issue 21), as AWS answers.
    let r = put_lock_config(c, "plain", lock_config(None)).await;
    assert_s3_error(r, "InvalidBucketState", 409);
    let gov = retention(ObjectLockRetentionMode::Governance, now + DAY);
    let r = put_retention(c, "plain", "k", None, gov, None).await;
    assert_s3_error(r, "InvalidRequest", 400);
    let r = put_legal_hold(c, "plain", "k", true).await;
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
    create_lock_bucket(c, "lock").await;
    assert_eq!(
        versioning_status(c, "lock").await,
        Some(BucketVersioningStatus::Enabled)
    );
    let r = set_versioning(c, "lock", versioning("Suspended")).await;
    assert_s3_error(r, "InvalidBucketState", 409);
    let cfg = get_lock_config(c, "lock").await.expect("lock config");
    let cfg = cfg.object_lock_configuration().expect("config");
    assert_eq!(cfg.object_lock_enabled(), Some(&ObjectLockEnabled::Enabled));
    assert!(cfg.rule().is_none());
}

/// Default retention: Days or Years, not both.
async fn default_retention(c: &Client) {
    let gov = |days, years| {
        lock_config(Some(default_rule(
            ObjectLockRetentionMode::Governance,
            days,
            years,
        )))
    };
    let r = put_lock_config(c, "lock", gov(Some(1), Some(1))).await;
    assert_s3_error(r, "MalformedXML", 400);
    put_lock_config(c, "lock", gov(Some(2), None))
        .await
        .expect("default retention");
    let cfg = get_lock_config(c, "lock").await.expect("lock config");
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
    let h = head_version(c, "lock", "gov", None).await.expect("head");
    assert_eq!(h.object_lock_mode(), Some(&ObjectLockMode::Governance));
    let until = h.object_lock_retain_until_date().expect("until").secs();
    assert!(
        (until - (now + 2 * DAY)).abs() < 120,
        "until {until}, now {now}"
    );
    let r = get_retention(c, "lock", "gov", None)
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
    let gov = |days| retention(ObjectLockRetentionMode::Governance, now + days * DAY);
    let r = delete_version(c, "lock", "gov", Some(gv), false).await;
    assert_s3_error(r, "AccessDenied", 403);
    let r = put_retention(c, "lock", "gov", Some(gv), gov(1), None).await;
    assert_s3_error(r, "AccessDenied", 403);
    put_retention(c, "lock", "gov", Some(gv), gov(3), None)
        .await
        .expect("lengthen without bypass");
    put_retention(c, "lock", "gov", Some(gv), gov(1), Some(true))
        .await
        .expect("shorten with bypass");
    let d = delete_version(c, "lock", "gov", Some(gv), true)
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
    let g = get_version(c, "lock", "held", None).await.expect("get");
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
    assert_eq!(
        legal_hold_status(c, "lock", "held", None).await,
        Some(ObjectLockLegalHoldStatus::On)
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
    put_lock_config(c, "lock", lock_config(None))
        .await
        .expect("drop default");
    let holdable = put(c, "lock", "plainver", b"p").await;
    let r = get_retention(c, "lock", "plainver", None).await;
    assert_s3_error(r, "NoSuchObjectLockConfiguration", 404);
    put_legal_hold(c, "lock", "plainver", true)
        .await
        .expect("hold on");
    let r = delete_version(c, "lock", "plainver", Some(&holdable), true).await;
    assert_s3_error(r, "AccessDenied", 403);
    put_legal_hold(c, "lock", "plainver", false)
        .await
        .expect("hold off");
    delete_version(c, "lock", "plainver", Some(&holdable), false)
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
    let h = head_version(c, "lock", "mp", None).await.expect("head mp");
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
    let still = head_version(c, "lock", "held", Some(hv))
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
