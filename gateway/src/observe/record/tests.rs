use super::*;
use http::HeaderValue;

const SIG: &str = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in pairs {
        h.append(*n, HeaderValue::from_str(v).expect("ascii"));
    }
    h
}

fn ok(status: u16) -> Outcome {
    Outcome {
        time: Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123)),
        status,
        request_id: "0123456789ABCDEF".into(),
        ..Outcome::default()
    }
}

#[test]
fn a_record_built_from_signed_headers_and_a_presigned_query_holds_no_secret() {
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature={SIG}"
    );
    let h = headers(&[
        ("authorization", &auth),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ("x-amz-security-token", SECRET),
    ]);
    let query = format!(
        "versionId=v1&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature={SIG}"
    );
    let rec = Record {
        op: Some("GetObject".into()),
        access_key_id: "AKIDEXAMPLE".into(),
        bucket: "b".into(),
        key: "k".into(),
        version_id: super::super::version_param(Some(&query)),
        lock: Lock::from_headers(&h),
        ..Record::default()
    };
    let line = rec.to_json(&ok(200)).to_string();
    for bad in [
        SIG,
        SECRET,
        "Signature",
        "Credential",
        "aws4_request",
        "X-Amz",
    ] {
        assert!(!line.contains(bad), "{bad} in {line}");
    }
    let v: Value = serde_json::from_str(&line).expect("json");
    assert_eq!(v["version_id"], "v1");
    assert_eq!(v["access_key_id"], "AKIDEXAMPLE");
    assert_eq!(v["op"], "GetObject");
    assert_eq!(v["time"], "2023-11-14T22:13:20.123Z");
    assert_eq!(v["request_id"], "0123456789ABCDEF");
    // A plain GET is no lock action: no lock fields.
    assert!(v.get("lock_mode").is_none(), "{line}");
}

#[test]
fn lock_fields_come_from_the_lock_headers() {
    let h = headers(&[
        ("x-amz-object-lock-mode", "GOVERNANCE"),
        (
            "x-amz-object-lock-retain-until-date",
            "2030-01-01T00:00:00Z",
        ),
        ("x-amz-object-lock-legal-hold", "ON"),
    ]);
    let rec = Record {
        op: Some("PutObject".into()),
        lock: Lock::from_headers(&h),
        ..Record::default()
    };
    let v = rec.to_json(&ok(200));
    assert_eq!(v["lock_mode"], "GOVERNANCE");
    assert_eq!(v["retain_until"], "2030-01-01T00:00:00Z");
    assert_eq!(v["legal_hold"], "ON");
    assert_eq!(v["bypass_governance"], false);
}

#[test]
fn bypass_is_true_only_when_asked_allowed_and_done() {
    let asked = Lock::from_headers(&headers(&[("x-amz-bypass-governance-retention", "True")]));
    assert!(asked.bypass_requested);
    let line = |lock: &Lock, status| {
        Record {
            op: Some("DeleteObject".into()),
            version_id: "v1".into(),
            lock: lock.clone(),
            ..Record::default()
        }
        .to_json(&ok(status))["bypass_governance"]
            .clone()
    };
    // Asked, but the key may not (access check refused it).
    assert_eq!(line(&asked, 403), false);
    let allowed = Lock {
        bypass_allowed: true,
        ..asked.clone()
    };
    assert_eq!(line(&allowed, 204), true);
    // Allowed, but the delete failed (COMPLIANCE, say).
    assert_eq!(line(&allowed, 403), false);
    // Not asked ("false" is no request).
    let no = Lock::from_headers(&headers(&[("x-amz-bypass-governance-retention", "false")]));
    assert!(!no.bypass_requested);
    let v = Record {
        op: Some("DeleteObject".into()),
        lock: no,
        ..Record::default()
    }
    .to_json(&ok(204));
    assert!(v.get("bypass_governance").is_none(), "{v}");
}

#[test]
fn retention_and_legal_hold_are_lock_actions_without_headers() {
    for op in ["PutObjectRetention", "PutObjectLegalHold"] {
        let v = Record {
            op: Some(op.into()),
            ..Record::default()
        }
        .to_json(&ok(200));
        assert_eq!(v["bypass_governance"], false, "{op}");
        assert!(v["lock_mode"].is_null(), "{op}");
    }
}

#[test]
fn an_unrouted_request_is_unknown() {
    let v = Record::default().to_json(&Outcome {
        status: 403,
        error_code: "SignatureDoesNotMatch".into(),
        ..ok(403)
    });
    assert_eq!(v["op"], "Unknown");
    assert_eq!(v["access_key_id"], "");
    assert_eq!(v["error_code"], "SignatureDoesNotMatch");
}

#[test]
fn error_codes_are_read_from_error_bodies_only_when_plain() {
    let xml = b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>m</Message></Error>";
    assert_eq!(error_code(xml).as_deref(), Some("NoSuchKey"));
    assert_eq!(error_code(b"<Error><Code>a b</Code></Error>"), None);
    assert_eq!(error_code(b"<Error><Code></Code></Error>"), None);
    assert_eq!(error_code(b"not xml"), None);
    let long = format!("<Code>{}</Code>", "A".repeat(100));
    assert_eq!(error_code(long.as_bytes()), None);
}

#[test]
fn header_values_are_clipped() {
    let long = "G".repeat(1000);
    let l = Lock::from_headers(&headers(&[("x-amz-object-lock-mode", &long)]));
    assert_eq!(l.mode.map(|m| m.len()), Some(MAX_VALUE));
    assert_eq!(rfc3339_from_millis(0), "1970-01-01T00:00:00.000Z");
}
