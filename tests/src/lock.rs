//! Builders for the object-lock tests (S3 lock configurations, retention,
//! legal hold) and the wall clock they are relative to.

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::get_object_lock_configuration::{
    GetObjectLockConfigurationError, GetObjectLockConfigurationOutput,
};
use aws_sdk_s3::operation::get_object_retention::{
    GetObjectRetentionError, GetObjectRetentionOutput,
};
use aws_sdk_s3::operation::put_object_legal_hold::{
    PutObjectLegalHoldError, PutObjectLegalHoldOutput,
};
use aws_sdk_s3::operation::put_object_lock_configuration::{
    PutObjectLockConfigurationError, PutObjectLockConfigurationOutput,
};
use aws_sdk_s3::operation::put_object_retention::{
    PutObjectRetentionError, PutObjectRetentionOutput,
};
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{
    DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockLegalHold,
    ObjectLockLegalHoldStatus, ObjectLockRetention, ObjectLockRetentionMode, ObjectLockRule,
};

use crate::s3::{S3Result, put_version};

pub const DAY: i64 = 86_400;

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

pub fn lock_config(rule: Option<ObjectLockRule>) -> ObjectLockConfiguration {
    ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .set_rule(rule)
        .build()
}

pub fn default_rule(
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

pub fn retention(mode: ObjectLockRetentionMode, until_secs: i64) -> ObjectLockRetention {
    ObjectLockRetention::builder()
        .mode(mode)
        .retain_until_date(DateTime::from_secs(until_secs))
        .build()
}

pub fn hold(on: bool) -> ObjectLockLegalHold {
    let status = if on {
        ObjectLockLegalHoldStatus::On
    } else {
        ObjectLockLegalHoldStatus::Off
    };
    ObjectLockLegalHold::builder().status(status).build()
}

/// PUTs `data` to a versioned bucket; answers the new version's id.
pub async fn put(c: &Client, bucket: &str, key: &str, data: &[u8]) -> String {
    put_version(c, bucket, key, data).await.expect("version id")
}

/// CreateBucket with object lock (and so versioning) enabled.
pub async fn create_lock_bucket(c: &Client, bucket: &str) {
    c.create_bucket()
        .bucket(bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("mb lock");
}

/// PutObjectLockConfiguration.
pub async fn put_lock_config(
    c: &Client,
    bucket: &str,
    config: ObjectLockConfiguration,
) -> S3Result<PutObjectLockConfigurationOutput, PutObjectLockConfigurationError> {
    c.put_object_lock_configuration()
        .bucket(bucket)
        .object_lock_configuration(config)
        .send()
        .await
}

/// GetObjectLockConfiguration.
pub async fn get_lock_config(
    c: &Client,
    bucket: &str,
) -> S3Result<GetObjectLockConfigurationOutput, GetObjectLockConfigurationError> {
    c.get_object_lock_configuration()
        .bucket(bucket)
        .send()
        .await
}

/// PutObjectRetention of `key` (version `id` if given); `bypass` is the
/// x-amz-bypass-governance-retention header's value (None: no header).
pub async fn put_retention(
    c: &Client,
    bucket: &str,
    key: &str,
    id: Option<&str>,
    r: ObjectLockRetention,
    bypass: Option<bool>,
) -> S3Result<PutObjectRetentionOutput, PutObjectRetentionError> {
    c.put_object_retention()
        .bucket(bucket)
        .key(key)
        .set_version_id(id.map(str::to_string))
        .set_bypass_governance_retention(bypass)
        .retention(r)
        .send()
        .await
}

/// GetObjectRetention of `key` (version `id` if given).
pub async fn get_retention(
    c: &Client,
    bucket: &str,
    key: &str,
    id: Option<&str>,
) -> S3Result<GetObjectRetentionOutput, GetObjectRetentionError> {
    c.get_object_retention()
        .bucket(bucket)
        .key(key)
        .set_version_id(id.map(str::to_string))
        .send()
        .await
}

/// GetObjectLegalHold of `key` (version `id`, or the latest): the hold's
/// status, None if it has none; panics if the call fails.
pub async fn legal_hold_status(
    c: &Client,
    bucket: &str,
    key: &str,
    id: Option<&str>,
) -> Option<ObjectLockLegalHoldStatus> {
    let out = c
        .get_object_legal_hold()
        .bucket(bucket)
        .key(key)
        .set_version_id(id.map(str::to_string))
        .send()
        .await
        .expect("legal hold");
    out.legal_hold().and_then(|h| h.status()).cloned()
}

/// PutObjectLegalHold of `key`'s latest version, on or off.
pub async fn put_legal_hold(
    c: &Client,
    bucket: &str,
    key: &str,
    on: bool,
) -> S3Result<PutObjectLegalHoldOutput, PutObjectLegalHoldError> {
    c.put_object_legal_hold()
        .bucket(bucket)
        .key(key)
        .legal_hold(hold(on))
        .send()
        .await
}
