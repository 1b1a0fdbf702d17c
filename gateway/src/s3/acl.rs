//! ACLs, as far as they mean anything here (ADR 0027): a bucket is private
//! to its owner and the keys granted on it, and objects are the bucket
//! owner's (S3's BucketOwnerEnforced), so there is nothing per object to
//! store. Get*Acl shows the owner and the grants; Put*Acl and `x-amz-acl`
//! accept only what changes nothing (`private`, the owner's FULL_CONTROL)
//! and refuse everything else with 501, never silently ignoring it.

use hamster_proto::pb;
use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::fields::owner;
use super::get::resolve;
use crate::meta_call;

fn not_supported() -> S3Error {
    s3_error!(
        NotImplemented,
        "public and cross-account ACLs are not supported: a bucket is private to its owner \
         and the keys granted on it (hamster bucket allow)"
    )
}

/// The five `x-amz-grant-*` headers of an input that takes them all
/// (CreateBucket, Put{Bucket,Object}Acl), for [`check_requested`] and
/// [`check_put`]. Object writes take four (no `x-amz-grant-write`).
macro_rules! grant_headers {
    ($i:expr) => {
        [
            &$i.grant_full_control,
            &$i.grant_read,
            &$i.grant_read_acp,
            &$i.grant_write,
            &$i.grant_write_acp,
        ]
    };
}
pub(crate) use grant_headers;

/// The canned ACLs that mean "the bucket owner only". On a bucket,
/// `bucket-owner-full-control` means nothing, so only a write takes it.
fn owner_only_canned(acl: &str, object: bool) -> bool {
    acl == ObjectCannedACL::PRIVATE || (object && acl == ObjectCannedACL::BUCKET_OWNER_FULL_CONTROL)
}

/// `x-amz-acl` and `x-amz-grant-*` on PutObject, CopyObject,
/// CreateMultipartUpload and CreateBucket (checked by `access.rs` before
/// any work): absent, `private` or `bucket-owner-full-control`, else 501.
pub fn check_requested(canned: Option<&str>, grant_headers: &[&Option<String>]) -> S3Result<()> {
    if grant_headers.iter().any(|g| g.is_some()) {
        return Err(not_supported());
    }
    match canned {
        Some(a) if !owner_only_canned(a, true) => Err(not_supported()),
        _ => Ok(()),
    }
}

/// A Put{Bucket,Object}Acl request, for a bucket owned by `owner` ("":
/// none): a canned `private` (or `bucket-owner-full-control` on an
/// object), or a policy whose only grant is FULL_CONTROL to the owner.
pub fn check_put(
    canned: Option<&str>,
    grant_headers: &[&Option<String>],
    policy: Option<&AccessControlPolicy>,
    owner: &str,
    object: bool,
) -> S3Result<()> {
    if grant_headers.iter().any(|g| g.is_some()) {
        return Err(not_supported());
    }
    if canned.is_none() && policy.is_none() {
        return Err(s3_error!(MalformedACLError, "the request names no ACL"));
    }
    if let Some(a) = canned
        && !owner_only_canned(a, object)
    {
        return Err(not_supported());
    }
    match policy {
        Some(p) if !grants_owner_only(p, owner) => Err(not_supported()),
        _ => Ok(()),
    }
}

/// Whether a policy names the bucket's owner (if it names one) and
/// grants FULL_CONTROL to that owner and nothing to anyone else.
fn grants_owner_only(p: &AccessControlPolicy, owner: &str) -> bool {
    if owner.is_empty() {
        return false;
    }
    if let Some(id) = p.owner.as_ref().and_then(|o| o.id.as_deref())
        && id != owner
    {
        return false;
    }
    let grants = p.grants.as_deref().unwrap_or_default();
    !grants.is_empty()
        && grants.iter().all(|g| {
            let to_owner = g.grantee.as_ref().is_some_and(|e| {
                e.type_.as_str() == Type::CANONICAL_USER
                    && e.id.as_deref() == Some(owner)
                    && e.uri.is_none()
                    && e.email_address.is_none()
            });
            let full =
                g.permission.as_ref().map(Permission::as_str) == Some(Permission::FULL_CONTROL);
            to_owner && full
        })
}

fn grant(id: &str, display_name: Option<String>, permission: &'static str) -> Grant {
    Grant {
        grantee: Some(Grantee {
            display_name,
            email_address: None,
            id: Some(id.to_string()),
            type_: Type::from_static(Type::CANONICAL_USER),
            uri: None,
        }),
        permission: Some(Permission::from_static(permission)),
    }
}

/// What Get{Bucket,Object}Acl answer: the owner with FULL_CONTROL first,
/// then each grant plainly (owner: FULL_CONTROL; read: READ; write:
/// WRITE; read and write: both).
pub fn shown(bucket: &pb::Bucket, grants: &[pb::BucketGrant]) -> (Option<Owner>, Vec<Grant>) {
    let o = owner(bucket);
    let mut out = Vec::new();
    if let Some(o) = &o {
        out.push(grant(
            &bucket.owner,
            o.display_name.clone(),
            Permission::FULL_CONTROL,
        ));
    }
    for g in grants {
        let id = &g.access_key_id;
        if g.owner {
            out.push(grant(id, None, Permission::FULL_CONTROL));
            continue;
        }
        if g.read {
            out.push(grant(id, None, Permission::READ));
        }
        if g.write {
            out.push(grant(id, None, Permission::WRITE));
        }
    }
    (o, out)
}

async fn bucket_acl(gw: &Gateway, bucket: &str) -> S3Result<(Option<Owner>, Vec<Grant>)> {
    let r = meta_call!(
        gw.meta,
        bucket_grants,
        pb::BucketGrantsRequest {
            bucket: bucket.to_string(),
        }
    )
    .await?;
    let b = r.bucket.ok_or_else(|| s3_error!(NoSuchBucket))?;
    Ok(shown(&b, &r.grants))
}

pub async fn get_bucket_acl(
    gw: &Gateway,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let (owner, grants) = bucket_acl(gw, &req.input.bucket).await?;
    Ok(S3Response::new(GetBucketAclOutput {
        owner,
        grants: Some(grants),
    }))
}

pub async fn get_object_acl(
    gw: &Gateway,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let i = &req.input;
    // The object must exist (NoSuchKey); its ACL is its bucket's.
    resolve(gw, &i.bucket, &i.key, i.version_id.as_deref()).await?;
    let (owner, grants) = bucket_acl(gw, &i.bucket).await?;
    Ok(S3Response::new(GetObjectAclOutput {
        owner,
        grants: Some(grants),
        ..Default::default()
    }))
}

pub async fn put_bucket_acl(
    gw: &Gateway,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let i = &req.input;
    let b = gw.bucket(&i.bucket).await?;
    check_put(
        i.acl.as_ref().map(BucketCannedACL::as_str),
        &grant_headers!(i),
        i.access_control_policy.as_ref(),
        &b.owner,
        false,
    )?;
    Ok(S3Response::new(PutBucketAclOutput::default()))
}

pub async fn put_object_acl(
    gw: &Gateway,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let i = &req.input;
    let b = gw.bucket(&i.bucket).await?;
    resolve(gw, &i.bucket, &i.key, i.version_id.as_deref()).await?;
    check_put(
        i.acl.as_ref().map(ObjectCannedACL::as_str),
        &grant_headers!(i),
        i.access_control_policy.as_ref(),
        &b.owner,
        true,
    )?;
    Ok(S3Response::new(PutObjectAclOutput::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::error::code_of as code;

    const OWNER: &str = "AKOWNER";

    fn policy(grants: Vec<Grant>, owner_id: Option<&str>) -> AccessControlPolicy {
        AccessControlPolicy {
            grants: Some(grants),
            owner: owner_id.map(|id| Owner {
                display_name: None,
                id: Some(id.into()),
            }),
        }
    }

    #[test]
    fn writes_take_private_and_bucket_owner_full_control_only() {
        assert_eq!(code(check_requested(None, &[])), "");
        assert_eq!(code(check_requested(Some("private"), &[])), "");
        assert_eq!(
            code(check_requested(Some("bucket-owner-full-control"), &[])),
            ""
        );
        for public in [
            "public-read",
            "public-read-write",
            "authenticated-read",
            "aws-exec-read",
            "bucket-owner-read",
        ] {
            assert_eq!(
                code(check_requested(Some(public), &[])),
                "NotImplemented",
                "{public}"
            );
        }
        let grant_header = Some("id=someone-else".to_string());
        assert_eq!(
            code(check_requested(Some("private"), &[&None, &grant_header])),
            "NotImplemented"
        );
    }

    #[test]
    fn put_acl_accepts_only_what_changes_nothing() {
        let put = |canned: Option<&str>, p: Option<&AccessControlPolicy>, object: bool| {
            code(check_put(canned, &[&None], p, OWNER, object))
        };
        assert_eq!(put(Some("private"), None, false), "");
        assert_eq!(put(Some("private"), None, true), "");
        // bucket-owner-full-control is an object ACL.
        assert_eq!(put(Some("bucket-owner-full-control"), None, true), "");
        assert_eq!(
            put(Some("bucket-owner-full-control"), None, false),
            "NotImplemented"
        );
        assert_eq!(put(Some("public-read"), None, false), "NotImplemented");
        assert_eq!(
            put(Some("authenticated-read"), None, true),
            "NotImplemented"
        );
        assert_eq!(put(None, None, false), "MalformedACLError");

        // A body granting only the owner FULL_CONTROL.
        let owner_full = grant(OWNER, None, Permission::FULL_CONTROL);
        let ok = policy(vec![owner_full.clone()], Some(OWNER));
        assert_eq!(put(None, Some(&ok), false), "");
        assert_eq!(put(None, Some(&ok), true), "");
        assert_eq!(
            put(None, Some(&policy(vec![owner_full.clone()], None)), false),
            ""
        );
        // Anything more, less or else: 501.
        let other = grant("AKOTHER", None, Permission::FULL_CONTROL);
        let read_to_owner = grant(OWNER, None, Permission::READ);
        let mut everyone = grant("", None, Permission::READ);
        if let Some(g) = everyone.grantee.as_mut() {
            g.id = None;
            g.type_ = Type::from_static(Type::GROUP);
            g.uri = Some("http://acs.amazonaws.com/groups/global/AllUsers".into());
        }
        for (what, p) in [
            (
                "another id",
                policy(vec![owner_full.clone(), other], Some(OWNER)),
            ),
            ("not full control", policy(vec![read_to_owner], Some(OWNER))),
            (
                "public",
                policy(vec![owner_full.clone(), everyone], Some(OWNER)),
            ),
            ("no grant", policy(vec![], Some(OWNER))),
            (
                "another owner",
                policy(vec![owner_full.clone()], Some("AKOTHER")),
            ),
        ] {
            assert_eq!(put(None, Some(&p), false), "NotImplemented", "{what}");
        }
        // An ownerless bucket has no owner to grant to.
        assert_eq!(
            code(check_put(None, &[], Some(&ok), "", false)),
            "NotImplemented"
        );
        // x-amz-grant-* headers, even beside `private`: 501.
        let h = Some(format!("id={OWNER}"));
        assert_eq!(
            code(check_put(Some("private"), &[&h], None, OWNER, false)),
            "NotImplemented"
        );
    }

    #[test]
    fn get_acl_shows_the_owner_then_each_grant_plainly() {
        let b = pb::Bucket {
            name: "b".into(),
            owner: OWNER.into(),
            owner_name: "alice".into(),
            ..Default::default()
        };
        let g = |id: &str, read, write, owner| pb::BucketGrant {
            bucket: "b".into(),
            access_key_id: id.into(),
            read,
            write,
            owner,
        };
        let (o, grants) = shown(
            &b,
            &[
                g("AKR", true, false, false),
                g("AKRW", true, true, false),
                g("AKO", false, false, true),
            ],
        );
        let o = o.expect("an owner");
        assert_eq!(o.id.as_deref(), Some(OWNER));
        assert_eq!(o.display_name.as_deref(), Some("alice"));
        let flat: Vec<(String, String)> = grants
            .iter()
            .map(|g| {
                let e = g.grantee.as_ref().expect("grantee");
                assert_eq!(e.type_.as_str(), Type::CANONICAL_USER);
                (
                    e.id.clone().unwrap_or_default(),
                    g.permission
                        .as_ref()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect();
        let want = [
            (OWNER, "FULL_CONTROL"),
            ("AKR", "READ"),
            ("AKRW", "READ"),
            ("AKRW", "WRITE"),
            ("AKO", "FULL_CONTROL"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(flat, want);
        // An ownerless bucket: no Owner, only the grants.
        let (o, grants) = shown(&pb::Bucket::default(), &[g("AKR", true, false, false)]);
        assert!(o.is_none());
        assert_eq!(grants.len(), 1);
    }
}
