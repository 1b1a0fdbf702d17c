use std::collections::{BTreeSet, HashMap};

use s3s::auth::SecretKey;

use super::*;
use crate::s3::auth::Rights;
use crate::s3::error::code_of;

/// The `async fn` names in the impl block that starts with `header`.
fn fns_in(src: &str, header: &str) -> BTreeSet<String> {
    let body = src.split_once(header).map(|(_, b)| b).unwrap_or_default();
    // The impl ends at the first line that is a lone closing brace.
    let body = body.split("\n}\n").next().unwrap_or_default();
    body.lines()
        .filter_map(|l| l.trim().strip_prefix("async fn "))
        .filter_map(|l| l.split('(').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_implemented_operation_is_checked() {
    let implemented = fns_in(include_str!("../mod.rs"), "impl S3 for Gateway {");
    let checked = fns_in(include_str!("../access.rs"), "impl S3Access for Access {");
    // Sanity: the parse found the operations (33 when this was written).
    assert!(implemented.len() >= 33, "{implemented:?}");
    let unchecked: Vec<_> = implemented.difference(&checked).collect();
    assert!(
        unchecked.is_empty(),
        "operations with no access check in access.rs: {unchecked:?}"
    );
    // And no check for an operation that is not there (a typo would
    // leave the real one unchecked); `check` is every request's first
    // (the unsigned ones' answer), not an operation's.
    let stray: Vec<_> = checked
        .difference(&implemented)
        .filter(|f| *f != "check")
        .collect();
    assert!(stray.is_empty(), "checks for no operation: {stray:?}");
}

fn read(b: &str) -> Need {
    Need::Read(b.into())
}
fn write(b: &str) -> Need {
    Need::Write(b.into())
}
fn owner(b: &str) -> Need {
    Need::Owner(b.into())
}

fn needs(g: &dyn Guarded) -> Vec<Need> {
    g.needs().expect("needs")
}

fn copy_source(bucket: &str) -> CopySource {
    CopySource::Bucket {
        bucket: bucket.into(),
        key: "src".into(),
        version_id: None,
    }
}

#[test]
fn reads_need_read() {
    let b = || "b".to_string();
    let k = || "k".to_string();
    let u = || "u".to_string();
    let inputs: Vec<Box<dyn Guarded>> = vec![
        Box::new(
            HeadBucketInput::builder()
                .bucket(b())
                .build()
                .expect("input"),
        ),
        Box::new(
            GetObjectInput::builder()
                .bucket(b())
                .key(k())
                .build()
                .expect("input"),
        ),
        Box::new(
            HeadObjectInput::builder()
                .bucket(b())
                .key(k())
                .build()
                .expect("input"),
        ),
        Box::new(
            ListObjectsInput::builder()
                .bucket(b())
                .build()
                .expect("input"),
        ),
        Box::new(
            ListObjectsV2Input::builder()
                .bucket(b())
                .build()
                .expect("input"),
        ),
        Box::new(
            ListObjectVersionsInput::builder()
                .bucket(b())
                .build()
                .expect("input"),
        ),
        Box::new(
            ListMultipartUploadsInput::builder()
                .bucket(b())
                .build()
                .expect("input"),
        ),
        Box::new(
            ListPartsInput::builder()
                .bucket(b())
                .key(k())
                .upload_id(u())
                .build()
                .expect("input"),
        ),
        Box::new(
            GetBucketLocationInput::builder()
                .bucket(b())
                .build()
                .expect("input"),
        ),
        Box::new(
            GetBucketVersioningInput::builder()
                .bucket(b())
                .build()
                .expect("input"),
        ),
        Box::new(
            GetObjectLockConfigurationInput::builder()
                .bucket(b())
                .build()
                .expect("input"),
        ),
        Box::new(
            GetObjectRetentionInput::builder()
                .bucket(b())
                .key(k())
                .build()
                .expect("input"),
        ),
        Box::new(
            GetObjectLegalHoldInput::builder()
                .bucket(b())
                .key(k())
                .build()
                .expect("input"),
        ),
        Box::new(
            GetBucketAclInput::builder()
                .bucket(b())
                .build()
                .expect("input"),
        ),
        Box::new(
            GetObjectAclInput::builder()
                .bucket(b())
                .key(k())
                .build()
                .expect("input"),
        ),
    ];
    for i in inputs {
        assert_eq!(needs(&*i), vec![read("b")]);
    }
}

#[test]
fn writes_need_write_and_copies_read_their_source() {
    let put = PutObjectInput {
        bucket: "b".into(),
        key: "k".into(),
        ..Default::default()
    };
    assert_eq!(needs(&put), vec![write("b")]);
    let create = CreateMultipartUploadInput::builder()
        .bucket("b".into())
        .key("k".into())
        .build()
        .expect("input");
    assert_eq!(needs(&create), vec![write("b")]);
    let part = UploadPartInput {
        bucket: "b".into(),
        key: "k".into(),
        upload_id: "u".into(),
        part_number: 1,
        ..Default::default()
    };
    assert_eq!(needs(&part), vec![write("b")]);
    let complete = CompleteMultipartUploadInput::builder()
        .bucket("b".into())
        .key("k".into())
        .upload_id("u".into())
        .build()
        .expect("input");
    assert_eq!(needs(&complete), vec![write("b")]);
    let abort = AbortMultipartUploadInput::builder()
        .bucket("b".into())
        .key("k".into())
        .upload_id("u".into())
        .build()
        .expect("input");
    assert_eq!(needs(&abort), vec![write("b")]);

    let copy = CopyObjectInput::builder()
        .bucket("dst".into())
        .key("k".into())
        .copy_source(copy_source("src"))
        .build()
        .expect("input");
    assert_eq!(needs(&copy), vec![write("dst"), read("src")]);
    let part_copy = UploadPartCopyInput::builder()
        .bucket("dst".into())
        .key("k".into())
        .upload_id("u".into())
        .part_number(1)
        .copy_source(copy_source("src"))
        .build()
        .expect("input");
    assert_eq!(needs(&part_copy), vec![write("dst"), read("src")]);
}

#[test]
fn deletes_need_write_and_owner_to_bypass_governance() {
    let one = |bypass| {
        DeleteObjectInput::builder()
            .bucket("b".into())
            .key("k".into())
            .bypass_governance_retention(bypass)
            .build()
            .expect("input")
    };
    assert_eq!(needs(&one(None)), vec![write("b")]);
    assert_eq!(needs(&one(Some(false))), vec![write("b")]);
    assert_eq!(needs(&one(Some(true))), vec![write("b"), owner("b")]);
    let many = |bypass| {
        DeleteObjectsInput::builder()
            .bucket("b".into())
            .delete(Delete {
                objects: vec![],
                quiet: None,
            })
            .bypass_governance_retention(bypass)
            .build()
            .expect("input")
    };
    assert_eq!(needs(&many(None)), vec![write("b")]);
    assert_eq!(needs(&many(Some(true))), vec![write("b"), owner("b")]);
}

#[test]
fn configuration_locks_and_acls_need_owner() {
    let b = || "b".to_string();
    let k = || "k".to_string();
    let inputs: Vec<Box<dyn Guarded>> = vec![
        Box::new(
            DeleteBucketInput::builder()
                .bucket(b())
                .build()
                .expect("input"),
        ),
        Box::new(
            PutBucketVersioningInput::builder()
                .bucket(b())
                .versioning_configuration(VersioningConfiguration::default())
                .build()
                .expect("input"),
        ),
        Box::new(
            PutObjectLockConfigurationInput::builder()
                .bucket(b())
                .build()
                .expect("input"),
        ),
        Box::new(
            PutObjectRetentionInput::builder()
                .bucket(b())
                .key(k())
                .build()
                .expect("input"),
        ),
        Box::new(
            PutObjectLegalHoldInput::builder()
                .bucket(b())
                .key(k())
                .build()
                .expect("input"),
        ),
        Box::new(
            PutBucketAclInput::builder()
                .bucket(b())
                .build()
                .expect("input"),
        ),
        Box::new(
            PutObjectAclInput::builder()
                .bucket(b())
                .key(k())
                .build()
                .expect("input"),
        ),
    ];
    for i in inputs {
        assert_eq!(needs(&*i), vec![owner("b")]);
    }
}

#[test]
fn bucket_creation_and_listing() {
    let create = CreateBucketInput::builder()
        .bucket("b".into())
        .build()
        .expect("input");
    assert_eq!(needs(&create), vec![Need::CreateBucket]);
    assert_eq!(needs(&ListBucketsInput::default()), vec![]);
}

#[test]
fn public_acl_headers_are_refused_before_any_right_is_looked_at() {
    let code = |g: &dyn Guarded| code_of(g.needs());
    let put = |acl: &str| PutObjectInput {
        bucket: "b".into(),
        key: "k".into(),
        acl: Some(ObjectCannedACL::from(acl.to_string())),
        ..Default::default()
    };
    assert_eq!(code(&put("private")), "");
    assert_eq!(code(&put("bucket-owner-full-control")), "");
    assert_eq!(code(&put("public-read")), "NotImplemented");
    let create = |acl: &str| {
        CreateBucketInput::builder()
            .bucket("b".into())
            .acl(Some(BucketCannedACL::from(acl.to_string())))
            .build()
            .expect("input")
    };
    assert_eq!(code(&create("private")), "");
    assert_eq!(code(&create("public-read-write")), "NotImplemented");
    let granted = CopyObjectInput::builder()
        .bucket("dst".into())
        .key("k".into())
        .copy_source(copy_source("src"))
        .grant_read(Some(
            "uri=http://acs.amazonaws.com/groups/global/AllUsers".into(),
        ))
        .build()
        .expect("input");
    assert_eq!(code(&granted), "NotImplemented");
    let upload = CreateMultipartUploadInput::builder()
        .bucket("b".into())
        .key("k".into())
        .acl(Some(ObjectCannedACL::from(
            "authenticated-read".to_string(),
        )))
        .build()
        .expect("input");
    assert_eq!(code(&upload), "NotImplemented");
}

fn key(grants: &[(&str, Rights)], can_create_bucket: bool) -> KeyInfo {
    KeyInfo {
        id: "AK".into(),
        display_name: "AK".into(),
        secret: SecretKey::from("s"),
        can_create_bucket,
        grants: grants
            .iter()
            .map(|(b, r)| (b.to_string(), *r))
            .collect::<HashMap<_, _>>(),
    }
}

#[test]
fn a_grant_opens_exactly_its_operations() {
    let r = Rights {
        read: true,
        ..Default::default()
    };
    let w = Rights {
        write: true,
        ..Default::default()
    };
    let o = Rights {
        owner: true,
        ..Default::default()
    };
    let k = key(&[("ro", r), ("wo", w), ("mine", o)], false);
    assert!(read("ro").met_by(&k) && !write("ro").met_by(&k) && !owner("ro").met_by(&k));
    assert!(!read("wo").met_by(&k) && write("wo").met_by(&k) && !owner("wo").met_by(&k));
    assert!(read("mine").met_by(&k) && write("mine").met_by(&k) && owner("mine").met_by(&k));
    // Another key's bucket, and creating one without the right.
    assert!(!read("theirs").met_by(&k) && !write("theirs").met_by(&k));
    assert!(!Need::CreateBucket.met_by(&k));
    assert!(Need::CreateBucket.met_by(&key(&[], true)));
    // A fresh key sees nothing.
    let fresh = key(&[], true);
    assert!(!read("ro").met_by(&fresh) && !write("wo").met_by(&fresh));
}

#[test]
fn refusals_are_access_denied() {
    for n in [read("b"), write("b"), owner("b"), Need::CreateBucket] {
        let e = n.denied("AK");
        assert_eq!(e.code().as_str(), "AccessDenied", "{n:?}");
        assert_eq!(
            e.code().status_code().map(|s| s.as_u16()),
            Some(403),
            "{n:?}"
        );
    }
}

/// Issue 21: the bucket configuration that answers truthfully (owner to
/// change it, read to see it) and GetObjectAttributes (read).
#[test]
fn encryption_public_access_block_and_attributes() {
    let b = || "b".to_string();
    let owned: Vec<Box<dyn Guarded>> = vec![
        Box::new(
            PutBucketEncryptionInput::builder()
                .bucket(b())
                .server_side_encryption_configuration(Default::default())
                .build()
                .expect("input"),
        ),
        Box::new(
            DeleteBucketEncryptionInput::builder()
                .bucket(b())
                .build()
                .expect("input"),
        ),
        Box::new(
            PutPublicAccessBlockInput::builder()
                .bucket(b())
                .public_access_block_configuration(Default::default())
                .build()
                .expect("input"),
        ),
        Box::new(
            DeletePublicAccessBlockInput::builder()
                .bucket(b())
                .build()
                .expect("input"),
        ),
    ];
    for i in owned {
        assert_eq!(needs(&*i), vec![owner("b")]);
    }
    let read_only: Vec<Box<dyn Guarded>> = vec![
        Box::new(
            GetBucketEncryptionInput::builder()
                .bucket(b())
                .build()
                .expect("input"),
        ),
        Box::new(
            GetPublicAccessBlockInput::builder()
                .bucket(b())
                .build()
                .expect("input"),
        ),
        Box::new(
            GetObjectAttributesInput::builder()
                .bucket(b())
                .key("k".into())
                .build()
                .expect("input"),
        ),
    ];
    for i in read_only {
        assert_eq!(needs(&*i), vec![read("b")]);
    }
}
