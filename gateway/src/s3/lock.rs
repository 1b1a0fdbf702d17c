//! Object lock: the bucket's lock configuration, each version's retention
//! and legal hold, and the lock headers of writes and reads.
//!
//! The gateway only translates (and answers early what it can: a lock on
//! a bucket without one, a retention beyond the bucket's maximum).
//! Whether a change is allowed — shortening, removing, bypassing, by
//! whom — is decided by the meta tier where the command is applied, at
//! the command's time (meta-server `state::object_lock`, `state::access`).

use hamster_proto::pb;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::access::key_id;
use super::fields::timestamp;
use super::get::resolve;
use crate::meta_call;

const GOVERNANCE: &str = ObjectLockRetentionMode::GOVERNANCE;
const COMPLIANCE: &str = ObjectLockRetentionMode::COMPLIANCE;

/// Unix milliseconds of an S3 timestamp.
pub fn millis(t: &Timestamp) -> i64 {
    let t = time::OffsetDateTime::from(t.clone());
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// A lock mode: from a header, an unknown one is 400 InvalidArgument;
/// from an XML body it is 400 MalformedXML (the schema names the two
/// modes), as AWS answers each.
fn retention_mode(mode: &str, in_xml: bool) -> S3Result<String> {
    match mode {
        GOVERNANCE | COMPLIANCE => Ok(mode.to_string()),
        _ if in_xml => Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        )),
        _ => Err(s3_error!(
            InvalidArgument,
            "the object lock mode must be GOVERNANCE or COMPLIANCE"
        )),
    }
}

/// A legal hold status, as [`retention_mode`] (header or XML body).
fn legal_hold_on(status: &str, in_xml: bool) -> S3Result<bool> {
    match status {
        ObjectLockLegalHoldStatus::ON => Ok(true),
        ObjectLockLegalHoldStatus::OFF => Ok(false),
        _ if in_xml => Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        )),
        _ => Err(s3_error!(
            InvalidArgument,
            "the legal hold status must be ON or OFF"
        )),
    }
}

/// A default retention's period: exactly one of Days and Years (both is
/// 400 MalformedXML, as AWS), positive (else 400 InvalidRetentionPeriod).
fn retention_period(days: Option<i32>, years: Option<i32>) -> S3Result<(u32, u32)> {
    let positive = |n: i32| {
        u32::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
            let mut e = S3Error::with_message(
                S3ErrorCode::Custom("InvalidRetentionPeriod".into()),
                "Default retention period must be a positive integer value.",
            );
            e.set_status_code(http::StatusCode::BAD_REQUEST);
            e
        })
    };
    match (days, years) {
        (Some(d), None) => Ok((positive(d)?, 0)),
        (None, Some(y)) => Ok((0, positive(y)?)),
        _ => Err(s3_error!(
            MalformedXML,
            "a DefaultRetention needs exactly one of Days and Years"
        )),
    }
}

/// The lock headers of a write (PutObject, CopyObject,
/// CreateMultipartUpload), set on the version it will commit.
pub fn apply_requested(
    template: &mut pb::ObjectVersion,
    mode: Option<&ObjectLockMode>,
    until: Option<&Timestamp>,
    hold: Option<&ObjectLockLegalHoldStatus>,
) -> S3Result<()> {
    match (mode, until) {
        (Some(m), Some(u)) => {
            template.lock_mode = retention_mode(m.as_str(), false)?;
            template.retain_until_ms = millis(u);
        }
        (None, None) => {}
        _ => {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-object-lock-mode and x-amz-object-lock-retain-until-date must both be supplied"
            ));
        }
    }
    if let Some(h) = hold {
        template.legal_hold = legal_hold_on(h.as_str(), false)?;
    }
    Ok(())
}

/// Lock settings on a write to a bucket without object lock, or a
/// retention beyond the bucket's maximum: 400 InvalidRequest, as S3
/// answers, before any shard is written.
pub fn check_bucket(bucket: &pb::Bucket, template: &pb::ObjectVersion) -> S3Result<()> {
    let locked = !template.lock_mode.is_empty() || template.legal_hold;
    if locked && !bucket.object_lock_enabled {
        return Err(s3_error!(
            InvalidRequest,
            "Bucket is missing Object Lock Configuration"
        ));
    }
    if !template.lock_mode.is_empty() {
        check_max_retention(bucket, template.retain_until_ms, crate::now_ms())?;
    }
    Ok(())
}

const DAY_MS: i64 = 86_400_000;

/// Slack on the early maximum-retention check. The meta tier measures
/// from the command's time on the leader, a little later than this
/// gateway's now and on another clock, so a retention at exactly the
/// maximum must not be refused here alone: only beyond it by more than
/// this, and the meta tier decides the rest exactly at apply.
const MAX_RETENTION_SLACK_MS: i64 = 10 * 60 * 1000;

/// A retention until `until_ms` must end within the bucket's maximum
/// retention of now (ADR 0027). The early answer only, with
/// [`MAX_RETENTION_SLACK_MS`]: the meta tier decides at apply, with its
/// own clock. 0 days: no limit known here.
pub fn check_max_retention(bucket: &pb::Bucket, until_ms: i64, now_ms: i64) -> S3Result<()> {
    let days = bucket.max_retention_days;
    if days == 0 {
        return Ok(());
    }
    let limit = now_ms
        .saturating_add(i64::from(days).saturating_mul(DAY_MS))
        .saturating_add(MAX_RETENTION_SLACK_MS);
    if until_ms > limit {
        return Err(s3_error!(
            InvalidRequest,
            "retention beyond the bucket's maximum of {days} days"
        ));
    }
    Ok(())
}

/// The lock headers a GET or HEAD answers with.
pub struct Shown {
    pub mode: Option<ObjectLockMode>,
    pub until: Option<Timestamp>,
    pub legal_hold: Option<ObjectLockLegalHoldStatus>,
}

pub fn shown(v: &pb::ObjectVersion) -> Shown {
    let set = !v.lock_mode.is_empty();
    Shown {
        mode: set.then(|| ObjectLockMode::from(v.lock_mode.clone())),
        until: set.then(|| timestamp(v.retain_until_ms)),
        legal_hold: v
            .legal_hold
            .then(|| ObjectLockLegalHoldStatus::from_static(ObjectLockLegalHoldStatus::ON)),
    }
}

pub async fn put_configuration(
    gw: &Gateway,
    req: S3Request<PutObjectLockConfigurationInput>,
) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
    let by = key_id(&req);
    let i = req.input;
    let config = i
        .object_lock_configuration
        .ok_or_else(|| s3_error!(MalformedXML, "no ObjectLockConfiguration"))?;
    if config
        .object_lock_enabled
        .as_ref()
        .map(ObjectLockEnabled::as_str)
        != Some(ObjectLockEnabled::ENABLED)
    {
        return Err(s3_error!(
            MalformedXML,
            "ObjectLockEnabled must be Enabled: object lock cannot be turned off"
        ));
    }
    // ObjectLockEnabled=Enabled also turns object lock on for a
    // versioning-enabled bucket made without it, as AWS allows since 2023
    // (the meta tier refuses an unversioned bucket: 409
    // InvalidBucketState); on a lock bucket it changes nothing.
    let mut call = pb::PutObjectLockConfigurationRequest {
        bucket: i.bucket,
        access_key_id: by,
        enable: true,
        ..Default::default()
    };
    if let Some(d) = config.rule.and_then(|r| r.default_retention) {
        let mode = d
            .mode
            .ok_or_else(|| s3_error!(MalformedXML, "a DefaultRetention needs a Mode"))?;
        call.default_mode = retention_mode(mode.as_str(), true)?;
        (call.default_days, call.default_years) = retention_period(d.days, d.years)?;
    }
    meta_call!(gw.meta, put_object_lock_configuration, call).await?;
    Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
}

pub async fn get_configuration(
    gw: &Gateway,
    req: S3Request<GetObjectLockConfigurationInput>,
) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
    let b = gw.bucket(&req.input.bucket).await?;
    if !b.object_lock_enabled {
        return Err(s3_error!(
            ObjectLockConfigurationNotFoundError,
            "Object Lock configuration does not exist for this bucket"
        ));
    }
    let positive = |n: u32| (n > 0).then(|| i32::try_from(n).unwrap_or(i32::MAX));
    let rule = (!b.default_lock_mode.is_empty()).then(|| ObjectLockRule {
        default_retention: Some(DefaultRetention {
            mode: Some(ObjectLockRetentionMode::from(b.default_lock_mode.clone())),
            days: positive(b.default_lock_days),
            years: positive(b.default_lock_years),
        }),
    });
    Ok(S3Response::new(GetObjectLockConfigurationOutput {
        object_lock_configuration: Some(ObjectLockConfiguration {
            object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
            rule,
        }),
    }))
}

pub async fn put_retention(
    gw: &Gateway,
    req: S3Request<PutObjectRetentionInput>,
) -> S3Result<S3Response<PutObjectRetentionOutput>> {
    let by = key_id(&req);
    let i = req.input;
    let r = i.retention.unwrap_or_default();
    // An empty Retention removes it (GOVERNANCE with the bypass only).
    let (mode, until) = match (r.mode, r.retain_until_date) {
        (Some(m), Some(u)) => (retention_mode(m.as_str(), true)?, millis(&u)),
        (None, None) => (String::new(), 0),
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "a Retention needs both Mode and RetainUntilDate"
            ));
        }
    };
    if !mode.is_empty() {
        check_max_retention(&gw.bucket(&i.bucket).await?, until, crate::now_ms())?;
    }
    let call = pb::PutObjectRetentionRequest {
        bucket: i.bucket,
        key: i.key,
        version_id: i.version_id.unwrap_or_default(),
        mode,
        retain_until_ms: until,
        bypass_governance: i.bypass_governance_retention.unwrap_or(false),
        access_key_id: by,
    };
    meta_call!(gw.meta, put_object_retention, call).await?;
    Ok(S3Response::new(PutObjectRetentionOutput::default()))
}

/// A version of a lock bucket, for the retention and legal-hold reads.
async fn lockable(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<pb::ObjectVersion> {
    if !gw.bucket(bucket).await?.object_lock_enabled {
        return Err(s3_error!(
            InvalidRequest,
            "the bucket has no object lock configuration"
        ));
    }
    resolve(gw, bucket, key, version_id).await
}

pub async fn get_retention(
    gw: &Gateway,
    req: S3Request<GetObjectRetentionInput>,
) -> S3Result<S3Response<GetObjectRetentionOutput>> {
    let i = &req.input;
    let v = lockable(gw, &i.bucket, &i.key, i.version_id.as_deref()).await?;
    if v.lock_mode.is_empty() {
        return Err(s3_error!(
            NoSuchObjectLockConfiguration,
            "the object has no retention"
        ));
    }
    Ok(S3Response::new(GetObjectRetentionOutput {
        retention: Some(ObjectLockRetention {
            mode: Some(ObjectLockRetentionMode::from(v.lock_mode.clone())),
            retain_until_date: Some(timestamp(v.retain_until_ms)),
        }),
    }))
}

pub async fn put_legal_hold(
    gw: &Gateway,
    req: S3Request<PutObjectLegalHoldInput>,
) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
    let by = key_id(&req);
    let i = req.input;
    let status = i
        .legal_hold
        .and_then(|h| h.status)
        .ok_or_else(|| s3_error!(MalformedXML, "a LegalHold needs a Status"))?;
    let call = pb::PutObjectLegalHoldRequest {
        bucket: i.bucket,
        key: i.key,
        version_id: i.version_id.unwrap_or_default(),
        on: legal_hold_on(status.as_str(), true)?,
        access_key_id: by,
    };
    meta_call!(gw.meta, put_object_legal_hold, call).await?;
    Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
}

pub async fn get_legal_hold(
    gw: &Gateway,
    req: S3Request<GetObjectLegalHoldInput>,
) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
    let i = &req.input;
    let v = lockable(gw, &i.bucket, &i.key, i.version_id.as_deref()).await?;
    let status = if v.legal_hold {
        ObjectLockLegalHoldStatus::ON
    } else {
        ObjectLockLegalHoldStatus::OFF
    };
    Ok(S3Response::new(GetObjectLegalHoldOutput {
        legal_hold: Some(ObjectLockLegalHold {
            status: Some(ObjectLockLegalHoldStatus::from_static(status)),
        }),
    }))
}

#[cfg(test)]
mod tests;
