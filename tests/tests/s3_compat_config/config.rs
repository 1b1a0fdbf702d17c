//! Object lock answers, bucket encryption, PublicAccessBlock and the
//! rights they need (issue 21, points 14 and 15).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    DefaultRetention, ObjectAttributes, ObjectLockConfiguration, ObjectLockEnabled,
    ObjectLockRetentionMode, ObjectLockRule, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use hamster_tests::s3::{S3Cluster, assert_s3_error, set_versioning, versioning};
use hamster_tests::sigv4::{Signer, sha256_hex};

use crate::{B, Client};

/// A hand-signed PUT of an XML body to `path?query`: (status, S3 code).
async fn put_xml(s: &Signer, path: &str, query: &str, xml: &str) -> (u16, String) {
    let body = xml.as_bytes().to_vec();
    let r = s.sign("PUT", path, query, &[], &sha256_hex(&body), body);
    let (status, text) = s.send(&r).await;
    (status, hamster_tests::sigv4::error_code(&text))
}

fn lock_xml(retention: &str) -> String {
    format!(
        "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled>\
         <Rule><DefaultRetention>{retention}</DefaultRetention></Rule></ObjectLockConfiguration>"
    )
}

pub async fn lock_values_refused_as_aws(c: &Client, s: &Signer) {
    c.create_bucket()
        .bucket("cfg-lock")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("lock bucket");
    c.put_object()
        .bucket("cfg-lock")
        .key("o")
        .body(ByteStream::from_static(b"o"))
        .send()
        .await
        .expect("put");
    let cases = [
        ("<Mode>FOREVER</Mode><Days>1</Days>", 400, "MalformedXML"),
        (
            "<Mode>GOVERNANCE</Mode><Days>1</Days><Years>1</Years>",
            400,
            "MalformedXML",
        ),
        (
            "<Mode>GOVERNANCE</Mode><Days>0</Days>",
            400,
            "InvalidRetentionPeriod",
        ),
        (
            "<Mode>COMPLIANCE</Mode><Years>-1</Years>",
            400,
            "InvalidRetentionPeriod",
        ),
    ];
    for (retention, status, code) in cases {
        let got = put_xml(s, "/cfg-lock", "object-lock=", &lock_xml(retention)).await;
        assert_eq!(got, (status, code.to_string()), "{retention}");
    }
    let got = put_xml(
        s,
        "/cfg-lock/o",
        "retention=",
        "<Retention><Mode>FOREVER</Mode>\
         <RetainUntilDate>2099-01-01T00:00:00Z</RetainUntilDate></Retention>",
    )
    .await;
    assert_eq!(got, (400, "MalformedXML".into()));
    let got = put_xml(
        s,
        "/cfg-lock/o",
        "legal-hold=",
        "<LegalHold><Status>MAYBE</Status></LegalHold>",
    )
    .await;
    assert_eq!(got, (400, "MalformedXML".into()));
    // Nothing changed: no default retention, no retention, no hold.
    let conf = c
        .get_object_lock_configuration()
        .bucket("cfg-lock")
        .send()
        .await
        .expect("lock configuration");
    let conf = conf.object_lock_configuration().expect("configuration");
    assert!(conf.rule().is_none(), "{conf:?}");
    let hold = c
        .get_object_legal_hold()
        .bucket("cfg-lock")
        .key("o")
        .send()
        .await
        .expect("legal hold");
    assert_eq!(
        hold.legal_hold()
            .and_then(|h| h.status())
            .map(|s| s.as_str()),
        Some("OFF")
    );
}

fn enabled_lock() -> ObjectLockConfiguration {
    ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(
            ObjectLockRule::builder()
                .default_retention(
                    DefaultRetention::builder()
                        .mode(ObjectLockRetentionMode::Governance)
                        .days(1)
                        .build(),
                )
                .build(),
        )
        .build()
}

pub async fn lock_enabled_on_an_existing_versioned_bucket(c: &Client) {
    for b in ["cfg-later", "cfg-unversioned"] {
        c.create_bucket().bucket(b).send().await.expect("bucket");
    }
    assert_s3_error(
        c.put_object_lock_configuration()
            .bucket("cfg-unversioned")
            .object_lock_configuration(enabled_lock())
            .send()
            .await,
        "InvalidBucketState",
        409,
    );
    set_versioning(c, "cfg-later", versioning("Enabled"))
        .await
        .expect("versioning");
    c.put_object_lock_configuration()
        .bucket("cfg-later")
        .object_lock_configuration(enabled_lock())
        .send()
        .await
        .expect("lock enabled on a versioned bucket");
    let conf = c
        .get_object_lock_configuration()
        .bucket("cfg-later")
        .send()
        .await
        .expect("configuration");
    let conf = conf.object_lock_configuration().expect("configuration");
    assert_eq!(
        conf.object_lock_enabled().map(|e| e.as_str()),
        Some("Enabled")
    );
    let d = conf
        .rule()
        .and_then(|r| r.default_retention())
        .expect("rule");
    assert_eq!(
        (d.mode().map(|m| m.as_str()), d.days()),
        (Some("GOVERNANCE"), Some(1))
    );
    // New versions now get the default retention.
    c.put_object()
        .bucket("cfg-later")
        .key("k")
        .body(ByteStream::from_static(b"k"))
        .send()
        .await
        .expect("put");
    let h = c
        .head_object()
        .bucket("cfg-later")
        .key("k")
        .send()
        .await
        .expect("head");
    assert_eq!(h.object_lock_mode().map(|m| m.as_str()), Some("GOVERNANCE"));
}

fn sse(alg: ServerSideEncryption) -> ServerSideEncryptionConfiguration {
    ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(alg)
                        .build()
                        .expect("rule"),
                )
                .build(),
        )
        .build()
        .expect("configuration")
}

async fn algorithm(c: &Client, bucket: &str) -> Option<String> {
    let r = c
        .get_bucket_encryption()
        .bucket(bucket)
        .send()
        .await
        .expect("get encryption");
    r.server_side_encryption_configuration()?
        .rules()
        .first()?
        .apply_server_side_encryption_by_default()
        .map(|d| d.sse_algorithm().as_str().to_string())
}

pub async fn encryption_is_always_sse_s3(c: &Client, s: &Signer) {
    assert_eq!(algorithm(c, B).await.as_deref(), Some("AES256"));
    let put = |alg| {
        c.put_bucket_encryption()
            .bucket(B)
            .server_side_encryption_configuration(sse(alg))
            .send()
    };
    put(ServerSideEncryption::Aes256)
        .await
        .expect("AES256 accepted");
    assert_s3_error(
        put(ServerSideEncryption::AwsKms).await,
        "NotImplemented",
        501,
    );
    assert_s3_error(
        put(ServerSideEncryption::AwsKmsDsse).await,
        "NotImplemented",
        501,
    );
    assert_s3_error(
        put(ServerSideEncryption::from("ROT13")).await,
        "MalformedXML",
        400,
    );
    // 204, as AWS: and SSE-S3 stays on.
    let r = s.sign(
        "DELETE",
        &format!("/{B}"),
        "encryption=",
        &[],
        &sha256_hex(b""),
        vec![],
    );
    s.expect(&r, 204, "").await;
    assert_eq!(algorithm(c, B).await.as_deref(), Some("AES256"));
    assert_s3_error(
        c.get_bucket_encryption().bucket("cfg-nowhere").send().await,
        "NoSuchBucket",
        404,
    );
}

pub async fn public_access_block_is_stored(c: &Client) {
    let get = || c.get_public_access_block().bucket(B).send();
    assert_s3_error(get().await, "NoSuchPublicAccessBlockConfiguration", 404);
    let set = PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(false)
        .block_public_policy(true)
        .restrict_public_buckets(false)
        .build();
    c.put_public_access_block()
        .bucket(B)
        .public_access_block_configuration(set.clone())
        .send()
        .await
        .expect("put");
    let got = get().await.expect("get");
    assert_eq!(got.public_access_block_configuration(), Some(&set));
    c.delete_public_access_block()
        .bucket(B)
        .send()
        .await
        .expect("delete");
    assert_s3_error(get().await, "NoSuchPublicAccessBlockConfiguration", 404);
}

/// Owner for changes, read for the reads.
pub async fn rights(s: &S3Cluster) {
    let reader = s.tenant("reader", &[]);
    s.admin(&["bucket", "allow", B, "--key", &reader.id, "--read"]);
    let r = &reader.s3;
    assert_eq!(algorithm(r, B).await.as_deref(), Some("AES256"));
    assert_s3_error(
        r.get_public_access_block().bucket(B).send().await,
        "NoSuchPublicAccessBlockConfiguration",
        404,
    );
    assert_s3_error(
        r.put_bucket_encryption()
            .bucket(B)
            .server_side_encryption_configuration(sse(ServerSideEncryption::Aes256))
            .send()
            .await,
        "AccessDenied",
        403,
    );
    assert_s3_error(
        r.put_public_access_block()
            .bucket(B)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .build(),
            )
            .send()
            .await,
        "AccessDenied",
        403,
    );
    assert_s3_error(
        r.delete_public_access_block().bucket(B).send().await,
        "AccessDenied",
        403,
    );
    let a = r
        .get_object_attributes()
        .bucket(B)
        .key("plain")
        .object_attributes(ObjectAttributes::ObjectSize)
        .send()
        .await
        .expect("a reader reads attributes");
    assert_eq!(a.object_size(), Some(19));
}
