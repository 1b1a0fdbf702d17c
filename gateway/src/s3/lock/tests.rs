use super::*;

#[test]
fn lock_xml_values_are_refused_as_aws_refuses_them() {
    let code = |r: S3Result<(u32, u32)>| r.expect_err("refused").code().as_str().to_string();
    assert_eq!(retention_period(Some(3), None).ok(), Some((3, 0)));
    assert_eq!(retention_period(None, Some(2)).ok(), Some((0, 2)));
    assert_eq!(code(retention_period(Some(1), Some(1))), "MalformedXML");
    assert_eq!(code(retention_period(None, None)), "MalformedXML");
    assert_eq!(
        code(retention_period(Some(0), None)),
        "InvalidRetentionPeriod"
    );
    assert_eq!(
        code(retention_period(None, Some(-1))),
        "InvalidRetentionPeriod"
    );
    let e = retention_period(Some(-5), None).expect_err("negative");
    assert_eq!(e.status_code().map(|s| s.as_u16()), Some(400));
    let xml = retention_mode("FOREVER", true).expect_err("bad mode");
    assert_eq!(xml.code().as_str(), "MalformedXML");
    let header = retention_mode("FOREVER", false).expect_err("bad mode");
    assert_eq!(header.code().as_str(), "InvalidArgument");
    assert_eq!(
        legal_hold_on("MAYBE", true)
            .expect_err("bad")
            .code()
            .as_str(),
        "MalformedXML"
    );
    assert!(legal_hold_on("ON", true).expect("on"));
}

#[test]
fn a_retention_beyond_the_bucket_maximum_is_refused_early() {
    let now = 1_700_000_000_000;
    let b = pb::Bucket {
        object_lock_enabled: true,
        max_retention_days: 30,
        ..Default::default()
    };
    // Exactly at the maximum, and a little beyond it by this gateway's
    // clock (the leader's command time is later): the meta tier decides.
    assert!(check_max_retention(&b, now + 30 * DAY_MS, now).is_ok());
    let edge = now + 30 * DAY_MS + MAX_RETENTION_SLACK_MS;
    assert!(check_max_retention(&b, edge, now).is_ok());
    assert!(check_max_retention(&b, now + 30 * DAY_MS, now - 9 * 60 * 1000).is_ok());
    let e = check_max_retention(&b, edge + 1, now).expect_err("beyond");
    assert_eq!(e.code().as_str(), "InvalidRequest");
    assert_eq!(
        e.message(),
        Some("retention beyond the bucket's maximum of 30 days")
    );
    assert!(check_max_retention(&b, now + 31 * DAY_MS, now).is_err());
    // 0: an older meta tier that does not say; the meta tier decides.
    let unknown = pb::Bucket {
        max_retention_days: 0,
        ..b.clone()
    };
    assert!(check_max_retention(&unknown, i64::MAX, now).is_ok());
    // Through a write's lock headers, and only with a retention.
    let mut t = pb::ObjectVersion {
        lock_mode: COMPLIANCE.into(),
        retain_until_ms: crate::now_ms() + 31 * DAY_MS,
        ..Default::default()
    };
    assert!(check_bucket(&b, &t).is_err());
    t.retain_until_ms = crate::now_ms() + 29 * DAY_MS;
    assert!(check_bucket(&b, &t).is_ok());
    let hold_only = pb::ObjectVersion {
        legal_hold: true,
        ..Default::default()
    };
    assert!(check_bucket(&b, &hold_only).is_ok());
}
