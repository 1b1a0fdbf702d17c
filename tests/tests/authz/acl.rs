//! ACL calls answer instead of 501: Get*Acl show the owner with
//! FULL_CONTROL and each grant mapped plainly; Put*Acl and `x-amz-acl`
//! take `private` (or a body granting only the owner FULL_CONTROL), and
//! anything that would make data public or grant another account is 501
//! NotImplemented, changing nothing.

use std::collections::BTreeSet;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AccessControlPolicy, BucketCannedAcl, Grant, Grantee, ObjectCannedAcl, Owner, Permission, Type,
};
use hamster_tests::authz::{Tenant, within_cache_window};
use hamster_tests::s3::assert_s3_error;

use crate::World;
use crate::grants::{denied, doc_intact, head_bucket_fails, head_object_fails};

/// 501 NotImplemented.
#[track_caller]
fn not_implemented<T, E>(r: hamster_tests::s3::S3Result<T, E>)
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
{
    assert_s3_error(r, "NotImplemented", 501);
}

/// An ACL's grants as (grantee key id, permission), every grantee a
/// CanonicalUser.
fn grant_set(grants: &[Grant]) -> BTreeSet<(String, String)> {
    grants
        .iter()
        .map(|g| {
            let grantee = g.grantee().expect("a grantee");
            assert_eq!(grantee.r#type(), &Type::CanonicalUser, "{g:?}");
            (
                grantee.id().unwrap_or_default().to_string(),
                g.permission()
                    .map(|p| p.as_str())
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

/// What alice-data's ACL must say: alice FULL_CONTROL, bob READ and
/// WRITE, grace (granted owner) FULL_CONTROL.
fn expected(w: &World, grace: &Tenant) -> BTreeSet<(String, String)> {
    [
        (&w.alice.id, "FULL_CONTROL"),
        (&w.bob.id, "READ"),
        (&w.bob.id, "WRITE"),
        (&grace.id, "FULL_CONTROL"),
    ]
    .into_iter()
    .map(|(id, p)| (id.clone(), p.to_string()))
    .collect()
}

/// The grace key, an owner by grant of alice-data.
fn grace(w: &World) -> Tenant {
    let grace = w.s.tenant("grace", &[]);
    w.allow("alice-data", &grace, &["--owner"]);
    grace
}

pub async fn get(w: &World) {
    let b = &w.bob.s3;
    // No grant: 403 (bob's last grant here was denied before).
    denied(b.get_bucket_acl().bucket("alice-data").send().await);
    let grace = grace(w);
    w.allow("alice-data", &w.bob, &["--read", "--write"]);
    let a = &w.alice.s3;
    let acl = a
        .get_bucket_acl()
        .bucket("alice-data")
        .send()
        .await
        .expect("bucket ACL");
    let owner = acl.owner().expect("an owner");
    assert_eq!(
        (owner.id(), owner.display_name()),
        (Some(w.alice.id.as_str()), Some("alice"))
    );
    assert_eq!(grant_set(acl.grants()), expected(w, &grace));
    let acl = a
        .get_object_acl()
        .bucket("alice-data")
        .key("doc")
        .send()
        .await
        .expect("object ACL");
    assert_eq!(acl.owner().and_then(|o| o.id()), Some(w.alice.id.as_str()));
    assert_eq!(grant_set(acl.grants()), expected(w, &grace));
    let r = a
        .get_object_acl()
        .bucket("alice-data")
        .key("nothing")
        .send()
        .await;
    assert_s3_error(r, "NoSuchKey", 404);
    // Read is enough to see the ACL.
    within_cache_window("bob reads alice-data's ACL", || async {
        b.get_bucket_acl().bucket("alice-data").send().await.is_ok()
    })
    .await;
}

/// An AccessControlPolicy from alice (the owner) with `grants`.
fn policy(w: &World, grants: Vec<(&str, Permission)>) -> AccessControlPolicy {
    let owner = Owner::builder().id(&w.alice.id).build();
    let grants = grants
        .into_iter()
        .map(|(id, p)| {
            let grantee = Grantee::builder()
                .r#type(Type::CanonicalUser)
                .id(id)
                .build()
                .expect("grantee");
            Grant::builder().grantee(grantee).permission(p).build()
        })
        .collect();
    AccessControlPolicy::builder()
        .owner(owner)
        .set_grants(Some(grants))
        .build()
}

pub async fn put(w: &World) {
    let a = &w.alice.s3;
    let before = a
        .get_bucket_acl()
        .bucket("alice-data")
        .send()
        .await
        .expect("ACL");
    // private, and a body that says only what is true: accepted.
    a.put_bucket_acl()
        .bucket("alice-data")
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .expect("private bucket ACL");
    for canned in [
        ObjectCannedAcl::Private,
        ObjectCannedAcl::BucketOwnerFullControl,
    ] {
        a.put_object_acl()
            .bucket("alice-data")
            .key("doc")
            .acl(canned)
            .send()
            .await
            .expect("private object ACL");
    }
    let only_owner = policy(w, vec![(&w.alice.id, Permission::FullControl)]);
    a.put_bucket_acl()
        .bucket("alice-data")
        .access_control_policy(only_owner.clone())
        .send()
        .await
        .expect("owner-only body");
    a.put_object_acl()
        .bucket("alice-data")
        .key("doc")
        .access_control_policy(only_owner)
        .send()
        .await
        .expect("owner-only body");

    // Public or another account: 501, never ignored.
    let more = policy(
        w,
        vec![
            (&w.alice.id, Permission::FullControl),
            (&w.bob.id, Permission::Read),
        ],
    );
    not_implemented(
        a.put_bucket_acl()
            .bucket("alice-data")
            .access_control_policy(more)
            .send()
            .await,
    );
    for canned in [
        BucketCannedAcl::PublicRead,
        BucketCannedAcl::AuthenticatedRead,
    ] {
        not_implemented(
            a.put_bucket_acl()
                .bucket("alice-data")
                .acl(canned)
                .send()
                .await,
        );
    }
    let all_users = "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"";
    not_implemented(
        a.put_bucket_acl()
            .bucket("alice-data")
            .grant_read(all_users)
            .send()
            .await,
    );
    not_implemented(
        a.put_bucket_acl()
            .bucket("alice-data")
            .grant_full_control(format!("id=\"{}\"", w.bob.id))
            .send()
            .await,
    );
    not_implemented(
        a.put_object_acl()
            .bucket("alice-data")
            .key("doc")
            .acl(ObjectCannedAcl::PublicRead)
            .send()
            .await,
    );
    canned_on_writes(w).await;

    // A non-owner may not set even `private`.
    denied(
        w.bob
            .s3
            .put_bucket_acl()
            .bucket("alice-data")
            .acl(BucketCannedAcl::Private)
            .send()
            .await,
    );
    let after = a
        .get_bucket_acl()
        .bucket("alice-data")
        .send()
        .await
        .expect("ACL");
    assert_eq!(grant_set(after.grants()), grant_set(before.grants()));
    doc_intact(w).await;
    w.deny("alice-data", &w.bob);
}

/// `x-amz-acl` on PUT, copy, multipart and CreateBucket: private and
/// bucket-owner-full-control are fine; public-read is 501 and writes
/// nothing.
async fn canned_on_writes(w: &World) {
    let a = &w.alice.s3;
    let put = |key: &str, acl: ObjectCannedAcl, body: &'static [u8]| {
        a.put_object()
            .bucket("alice-data")
            .key(key)
            .acl(acl)
            .body(ByteStream::from_static(body))
            .send()
    };
    put("private-put", ObjectCannedAcl::Private, b"p")
        .await
        .expect("private PUT");
    put("bofc-put", ObjectCannedAcl::BucketOwnerFullControl, b"b")
        .await
        .expect("bucket-owner-full-control PUT");
    not_implemented(put("doc", ObjectCannedAcl::PublicRead, b"public now").await);
    not_implemented(put("public", ObjectCannedAcl::PublicReadWrite, b"public").await);
    not_implemented(
        a.put_object()
            .bucket("alice-data")
            .key("public")
            .grant_read("uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"")
            .body(ByteStream::from_static(b"public"))
            .send()
            .await,
    );
    head_object_fails(a, "alice-data", "public", 404).await;
    not_implemented(
        a.copy_object()
            .bucket("alice-data")
            .key("public-copy")
            .copy_source("alice-data/doc")
            .acl(ObjectCannedAcl::PublicRead)
            .send()
            .await,
    );
    not_implemented(
        a.create_multipart_upload()
            .bucket("alice-data")
            .key("public-mp")
            .acl(ObjectCannedAcl::PublicRead)
            .send()
            .await,
    );
    not_implemented(
        a.create_bucket()
            .bucket("public-bucket")
            .acl(BucketCannedAcl::PublicRead)
            .send()
            .await,
    );
    head_bucket_fails(a, "public-bucket", 404).await;
}
