//! Builders for the object-lock tests (S3 lock configurations, retention,
//! legal hold) and the wall clock they are relative to.

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockLegalHold,
    ObjectLockLegalHoldStatus, ObjectLockRetention, ObjectLockRetentionMode, ObjectLockRule,
};

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
pub async fn put(c: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &[u8]) -> String {
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
