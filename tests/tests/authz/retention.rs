//! A bucket's maximum retention (`hamster bucket set --max-retention-days`)
//! and the cluster default (`hamster bucket defaults`): a retention
//! beyond it, on a PUT, an upload, a PutObjectRetention or a default
//! rule, is 400 InvalidRequest.

use aws_sdk_s3::operation::create_multipart_upload::{
    CreateMultipartUploadError, CreateMultipartUploadOutput,
};
use aws_sdk_s3::operation::put_object::{PutObjectError, PutObjectOutput};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ObjectLockMode, ObjectLockRetentionMode};
use hamster_tests::lock::{
    DAY, create_lock_bucket, default_rule, lock_config, now_secs, put_lock_config, put_retention,
    retention,
};
use hamster_tests::s3::{S3Result, assert_s3_error};

use crate::World;

type Client = aws_sdk_s3::Client;

/// 400 InvalidRequest.
#[track_caller]
fn too_long<T, E>(r: S3Result<T, E>)
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
{
    assert_s3_error(r, "InvalidRequest", 400);
}

/// A PUT with a GOVERNANCE retention `days` from now.
async fn put_for(
    c: &Client,
    bucket: &str,
    key: &str,
    days: i64,
) -> S3Result<PutObjectOutput, PutObjectError> {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(DateTime::from_secs(now_secs() + days * DAY))
        .body(ByteStream::from_static(b"retained"))
        .send()
        .await
}

/// An upload with a GOVERNANCE retention `days` from now.
async fn upload_for(
    c: &Client,
    bucket: &str,
    days: i64,
) -> S3Result<CreateMultipartUploadOutput, CreateMultipartUploadError> {
    c.create_multipart_upload()
        .bucket(bucket)
        .key("mp")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(DateTime::from_secs(now_secs() + days * DAY))
        .send()
        .await
}

/// A default GOVERNANCE rule of `days` (or `years`) on `bucket`.
async fn default_for(
    c: &Client,
    bucket: &str,
    days: Option<i32>,
    years: Option<i32>,
) -> S3Result<
    (),
    aws_sdk_s3::operation::put_object_lock_configuration::PutObjectLockConfigurationError,
> {
    let rule = default_rule(ObjectLockRetentionMode::Governance, days, years);
    put_lock_config(c, bucket, lock_config(Some(rule)))
        .await
        .map(drop)
}

/// `hamster bucket info BUCKET --json`'s (own limit, effective limit).
fn limits(w: &World, bucket: &str) -> (Option<u64>, Option<u64>) {
    let info = w.s.admin_json(&["bucket", "info", bucket]);
    (
        info["own_max_retention_days"].as_u64(),
        info["max_retention_days"].as_u64(),
    )
}

pub async fn bucket_limit(w: &World) {
    let a = &w.alice.s3;
    create_lock_bucket(a, "alice-max").await;
    w.s.admin(&["bucket", "set", "alice-max", "--max-retention-days", "10"]);
    assert_eq!(limits(w, "alice-max"), (Some(10), Some(10)));

    too_long(put_for(a, "alice-max", "k", 11).await);
    let v = put_for(a, "alice-max", "k", 9)
        .await
        .expect("within the limit");
    let v = v.version_id().expect("version id");
    let longer = retention(ObjectLockRetentionMode::Governance, now_secs() + 11 * DAY);
    too_long(put_retention(a, "alice-max", "k", Some(v), longer, None).await);
    too_long(upload_for(a, "alice-max", 11).await);
    too_long(default_for(a, "alice-max", Some(11), None).await);
    too_long(default_for(a, "alice-max", None, Some(1)).await);
    default_for(a, "alice-max", Some(10), None)
        .await
        .expect("a default at the limit");
    // The limit cannot drop below the default rule in force.
    let run =
        w.s.admin_refused(&["bucket", "set", "alice-max", "--max-retention-days", "5"]);
    assert!(
        run.stderr.contains("alice-max") || run.stdout.contains("alice-max"),
        "{run}"
    );
    assert_eq!(limits(w, "alice-max"), (Some(10), Some(10)));

    // 0: back to the cluster default (36500 days unless set).
    w.s.admin(&["bucket", "set", "alice-max", "--max-retention-days", "0"]);
    assert_eq!(limits(w, "alice-max"), (None, Some(36_500)));
    put_for(a, "alice-max", "k", 11)
        .await
        .expect("the cluster default allows it");
}

pub async fn cluster_default(w: &World) {
    let a = &w.alice.s3;
    create_lock_bucket(a, "alice-dflt").await;
    w.s.admin(&["bucket", "defaults", "--max-retention-days", "20"]);
    let shown = w.s.admin_json(&["bucket", "defaults"]);
    assert_eq!(shown["max_retention_days"].as_u64(), Some(20), "{shown}");
    assert_eq!(limits(w, "alice-dflt"), (None, Some(20)));
    too_long(put_for(a, "alice-dflt", "k", 21).await);
    put_for(a, "alice-dflt", "k", 19)
        .await
        .expect("within the cluster default");

    // A bucket's own limit wins over the default.
    w.s.admin(&["bucket", "set", "alice-dflt", "--max-retention-days", "30"]);
    put_for(a, "alice-dflt", "k", 25)
        .await
        .expect("within the bucket's own limit");
    // alice-max (no limit of its own) has a 10-day default rule: a
    // cluster default below it is refused, naming the bucket.
    let run =
        w.s.admin_refused(&["bucket", "defaults", "--max-retention-days", "5"]);
    assert!(
        run.stderr.contains("alice-max") || run.stdout.contains("alice-max"),
        "{run}"
    );
    let shown = w.s.admin_json(&["bucket", "defaults"]);
    assert_eq!(shown["max_retention_days"].as_u64(), Some(20), "{shown}");

    w.s.admin(&["bucket", "defaults", "--max-retention-days", "36500"]);
    assert_eq!(limits(w, "alice-dflt"), (Some(30), Some(30)));
}
