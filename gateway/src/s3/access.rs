//! Who may do what, at the S3 edge (ADR 0027): the one place that says,
//! per S3 operation, which right it needs on which bucket, checked after
//! SigV4 and before any work (s3s calls it with the parsed input, before
//! a body is read). The meta tier checks every write again where it
//! applies it, so this is the early answer for writes and the only check
//! for reads.
//!
//! - read: GET, HEAD, the listings, the lock and versioning reads, the
//!   ACL reads; and the source of CopyObject / UploadPartCopy.
//! - write: PutObject, CopyObject (destination), the multipart calls,
//!   DeleteObject(s); owner too when they ask to bypass GOVERNANCE.
//! - owner: bucket configuration (versioning, lock, encryption, public
//!   access block), retention and legal hold changes, DeleteBucket, Put*Acl.
//! - CreateBucket: the key's can_create_bucket. ListBuckets: any key
//!   (the meta tier lists only the key's buckets).
//!
//! A key's rights come from the cache it was authenticated from
//! (`auth.rs`, at most `TTL` old); a right the cache lacks is looked up
//! once more before refusing (a bucket created or a grant given a moment
//! ago), at most once a second per key, and always when the bucket turns
//! out to be the key's own. Refused: 403 AccessDenied for a bucket that
//! exists, 404 NoSuchBucket for one that does not, as AWS answers; an
//! anonymous request is answered alike (it has no rights at all), from
//! a short cache and within a cap on lookups (`access/anonymous.rs`).
//! Operations not implemented by the gateway keep s3s' defaults and
//! answer 501 (403 to an anonymous request).

use std::sync::Arc;

use hamster_proto::{ErrorCode, pb};
use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::*;
use s3s::path::S3Path;
use s3s::{S3Error, S3Request, S3Result, s3_error};

use super::acl;
use super::auth::{KeyInfo, Keys};
use crate::meta::MetaTier;
use crate::meta_call;
use crate::observe;
use anonymous::Anonymous;

mod anonymous;

/// A right a request needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    Read(String),
    Write(String),
    Owner(String),
    CreateBucket,
}

impl Need {
    fn met_by(&self, k: &KeyInfo) -> bool {
        match self {
            Need::Read(b) => k.on(b).can_read(),
            Need::Write(b) => k.on(b).can_write(),
            Need::Owner(b) => k.on(b).owner,
            Need::CreateBucket => k.can_create_bucket,
        }
    }

    fn bucket(&self) -> Option<&str> {
        match self {
            Need::Read(b) | Need::Write(b) | Need::Owner(b) => Some(b),
            Need::CreateBucket => None,
        }
    }

    fn denied(&self, key: &str) -> S3Error {
        match self {
            Need::Read(b) => s3_error!(AccessDenied, "key {key} may not read bucket {b}"),
            Need::Write(b) => s3_error!(AccessDenied, "key {key} may not write to bucket {b}"),
            Need::Owner(b) => s3_error!(
                AccessDenied,
                "only the owner of bucket {b} may do this (key {key} is not)"
            ),
            Need::CreateBucket => s3_error!(AccessDenied, "key {key} may not create buckets"),
        }
    }
}

/// What a request needs, from its parsed input alone; an ACL it asks
/// for that cannot be honoured is refused here too (501, `acl.rs`).
pub trait Guarded {
    fn needs(&self) -> S3Result<Vec<Need>>;
}

/// Operations that need one right on their own bucket.
macro_rules! on_bucket {
    ($need:ident: $($input:ty),* $(,)?) => {$(
        impl Guarded for $input {
            fn needs(&self) -> S3Result<Vec<Need>> {
                Ok(vec![Need::$need(self.bucket.clone())])
            }
        }
    )*};
}

on_bucket!(Read:
    HeadBucketInput, GetObjectInput, HeadObjectInput, ListObjectsInput, ListObjectsV2Input,
    ListObjectVersionsInput, ListMultipartUploadsInput, ListPartsInput, GetBucketLocationInput,
    GetBucketVersioningInput, GetObjectLockConfigurationInput, GetObjectRetentionInput,
    GetObjectLegalHoldInput, GetBucketAclInput, GetObjectAclInput, GetObjectAttributesInput,
    GetBucketEncryptionInput, GetPublicAccessBlockInput,
);
on_bucket!(Write: UploadPartInput, CompleteMultipartUploadInput, AbortMultipartUploadInput);
on_bucket!(Owner:
    DeleteBucketInput, PutBucketVersioningInput, PutObjectLockConfigurationInput,
    PutObjectRetentionInput, PutObjectLegalHoldInput, PutBucketAclInput, PutObjectAclInput,
    PutBucketEncryptionInput, DeleteBucketEncryptionInput, PutPublicAccessBlockInput,
    DeletePublicAccessBlockInput,
);

/// Read on the bucket a copy reads from.
fn source(s: &CopySource) -> S3Result<Need> {
    match s {
        CopySource::Bucket { bucket, .. } => Ok(Need::Read(bucket.to_string())),
        _ => Err(s3_error!(NotImplemented, "access point copy sources")),
    }
}

/// Write, and owner too if the request asks to bypass GOVERNANCE (even
/// where the bypass would not matter, as the meta tier decides).
fn delete(bucket: &str, bypass: Option<bool>) -> Vec<Need> {
    let mut needs = vec![Need::Write(bucket.to_string())];
    if bypass == Some(true) {
        needs.push(Need::Owner(bucket.to_string()));
    }
    needs
}

impl Guarded for ListBucketsInput {
    fn needs(&self) -> S3Result<Vec<Need>> {
        Ok(Vec::new())
    }
}

impl Guarded for CreateBucketInput {
    fn needs(&self) -> S3Result<Vec<Need>> {
        acl::check_requested(
            self.acl.as_ref().map(BucketCannedACL::as_str),
            &acl::grant_headers!(self),
        )?;
        Ok(vec![Need::CreateBucket])
    }
}

/// The ACL headers of an object write (all three inputs name them alike).
macro_rules! object_acl {
    ($i:expr) => {
        acl::check_requested(
            $i.acl.as_ref().map(ObjectCannedACL::as_str),
            &[
                &$i.grant_full_control,
                &$i.grant_read,
                &$i.grant_read_acp,
                &$i.grant_write_acp,
            ],
        )
    };
}

impl Guarded for PutObjectInput {
    fn needs(&self) -> S3Result<Vec<Need>> {
        object_acl!(self)?;
        Ok(vec![Need::Write(self.bucket.clone())])
    }
}

impl Guarded for CreateMultipartUploadInput {
    fn needs(&self) -> S3Result<Vec<Need>> {
        object_acl!(self)?;
        Ok(vec![Need::Write(self.bucket.clone())])
    }
}

impl Guarded for CopyObjectInput {
    fn needs(&self) -> S3Result<Vec<Need>> {
        object_acl!(self)?;
        Ok(vec![
            Need::Write(self.bucket.clone()),
            source(&self.copy_source)?,
        ])
    }
}

impl Guarded for UploadPartCopyInput {
    fn needs(&self) -> S3Result<Vec<Need>> {
        Ok(vec![
            Need::Write(self.bucket.clone()),
            source(&self.copy_source)?,
        ])
    }
}

impl Guarded for DeleteObjectInput {
    fn needs(&self) -> S3Result<Vec<Need>> {
        Ok(delete(&self.bucket, self.bypass_governance_retention))
    }
}

impl Guarded for DeleteObjectsInput {
    fn needs(&self) -> S3Result<Vec<Need>> {
        Ok(delete(&self.bucket, self.bypass_governance_retention))
    }
}

/// The key a request was signed with, as the access check found it; in
/// the request's extensions for the handlers (e.g. ListBuckets' Owner).
#[derive(Clone)]
pub struct Caller(pub Arc<KeyInfo>);

/// The access key id a request was signed with ("" if none: the meta
/// tier refuses a write that names no key).
pub fn key_id<T>(req: &S3Request<T>) -> String {
    req.credentials
        .as_ref()
        .map(|c| c.access_key.clone())
        .unwrap_or_default()
}

/// The S3 access check, registered with `builder.set_access`.
pub struct Access {
    keys: Arc<Keys>,
    meta: Arc<MetaTier>,
    anonymous: Anonymous,
}

impl Access {
    pub fn new(keys: Arc<Keys>, meta: Arc<MetaTier>) -> Self {
        Self {
            keys,
            meta,
            anonymous: Anonymous::default(),
        }
    }

    /// Lets the request through if its key has every right it needs.
    async fn allow<T: Guarded>(&self, req: &mut S3Request<T>) -> S3Result<()> {
        let needs = req.input.needs()?;
        let Some(creds) = &req.credentials else {
            // `check` has answered an unsigned request already (a
            // CreateBucket names no bucket here: 403 without a lookup).
            let bucket = needs.iter().find_map(Need::bucket);
            return Err(self.anonymous.answer(&self.meta, bucket).await);
        };
        let id = creds.access_key.clone();
        let (mut key, mut current) = self.keys.lookup(&id).await?;
        if !met(&needs, &key) {
            if current {
                // Looked up just now: that was this second's recheck.
                self.keys.rechecked(&id);
            } else if let Some(k) = self.keys.recheck(&id).await? {
                // The cache may predate a bucket this key created or a
                // grant: looked up again, at most once a second per key.
                (key, current) = (k, true);
            }
        }
        if !met(&needs, &key) {
            key = self.refuse(&id, &needs, key, current).await?;
        }
        req.extensions.insert(Caller(key));
        Ok(())
    }

    /// The answer to unmet needs: 403 if one is on a bucket that exists
    /// (or not on a bucket), else 404 NoSuchBucket, as AWS answers. A
    /// bucket the meta tier says this key owns means a stale cache (the
    /// key created it a moment ago, through any gateway): the key is then
    /// looked up again whatever the recheck limit, and the request goes
    /// through (Ok) if that meets every need. A bucket found out of
    /// reach is remembered for `RECHECK_EVERY`, so hammering it asks the
    /// meta tier nothing more.
    async fn refuse(
        &self,
        id: &str,
        needs: &[Need],
        mut key: Arc<KeyInfo>,
        mut current: bool,
    ) -> S3Result<Arc<KeyInfo>> {
        'again: loop {
            for need in needs.iter().filter(|n| !n.met_by(&key)) {
                let Some(bucket) = need.bucket() else {
                    return Err(need.denied(id));
                };
                if self.keys.refused_recently(id, bucket) {
                    return Err(need.denied(id));
                }
                let found = meta_call!(
                    self.meta,
                    head_bucket,
                    pb::HeadBucketRequest {
                        name: bucket.to_string(),
                    }
                )
                .await;
                let owner = match found {
                    Err(e) if e.code() == Some(ErrorCode::NoSuchBucket) => continue,
                    Err(e) => return Err(e.into()),
                    Ok(r) => r.bucket.map(|b| b.owner).unwrap_or_default(),
                };
                if owner == id && !current {
                    key = self.keys.refresh(id).await?;
                    current = true;
                    if met(needs, &key) {
                        return Ok(key);
                    }
                    continue 'again;
                }
                if owner != id {
                    self.keys.remember_refused(id, bucket);
                }
                return Err(need.denied(id));
            }
            tracing::debug!(key = id, ?needs, "refused: no such bucket");
            return Err(s3_error!(NoSuchBucket));
        }
    }
}

/// For the access log: a bypass of GOVERNANCE the request asked for
/// passed the access check (the key may use it).
fn allowed_bypass<T>(req: &S3Request<T>, bypass: Option<bool>) {
    if bypass == Some(true) {
        observe::note_lock(&req.extensions, |l| l.bypass_allowed = true);
    }
}

fn met(needs: &[Need], key: &KeyInfo) -> bool {
    needs.iter().all(|n| n.met_by(key))
}

/// One method per operation `mod.rs` implements (a test fails if one is
/// missing); each says what it needs through [`Guarded`].
#[async_trait::async_trait]
impl S3Access for Access {
    /// Every request first (s3s' default refuses an unsigned one with a
    /// bare 403): an unsigned one gets AWS's answer from [`Anonymous`] —
    /// 403 without a lookup for the root and for CreateBucket (its
    /// bucket does not exist yet; AWS answers 403, not 404).
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        // The access log's operation, key id, bucket and key, as routed.
        let route = observe::Route::of(cx.s3_op().name(), cx.credentials(), cx.s3_path());
        route.note(cx.extensions_mut());
        if cx.credentials().is_some() {
            return Ok(());
        }
        let bucket = match cx.s3_path() {
            _ if cx.s3_op().name() == "CreateBucket" => None,
            S3Path::Root => None,
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(bucket.to_string()),
        };
        Err(self.anonymous.answer(&self.meta, bucket.as_deref()).await)
    }
    async fn create_bucket(&self, req: &mut S3Request<CreateBucketInput>) -> S3Result<()> {
        self.allow(req).await
    }
    async fn delete_bucket(&self, req: &mut S3Request<DeleteBucketInput>) -> S3Result<()> {
        self.allow(req).await
    }
    async fn head_bucket(&self, req: &mut S3Request<HeadBucketInput>) -> S3Result<()> {
        self.allow(req).await
    }
    async fn list_buckets(&self, req: &mut S3Request<ListBucketsInput>) -> S3Result<()> {
        self.allow(req).await
    }
    async fn put_object(&self, req: &mut S3Request<PutObjectInput>) -> S3Result<()> {
        self.allow(req).await
    }
    async fn get_object(&self, req: &mut S3Request<GetObjectInput>) -> S3Result<()> {
        self.allow(req).await
    }
    async fn head_object(&self, req: &mut S3Request<HeadObjectInput>) -> S3Result<()> {
        self.allow(req).await
    }
    async fn delete_object(&self, req: &mut S3Request<DeleteObjectInput>) -> S3Result<()> {
        self.allow(req).await?;
        allowed_bypass(req, req.input.bypass_governance_retention);
        Ok(())
    }
    async fn list_objects_v2(&self, req: &mut S3Request<ListObjectsV2Input>) -> S3Result<()> {
        self.allow(req).await
    }
    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        self.allow(req).await
    }
    async fn create_multipart_upload(
        &self,
        req: &mut S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<()> {
        self.allow(req).await
    }
    async fn upload_part(&self, req: &mut S3Request<UploadPartInput>) -> S3Result<()> {
        self.allow(req).await
    }
    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        self.allow(req).await
    }
    async fn complete_multipart_upload(
        &self,
        req: &mut S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<()> {
        self.allow(req).await
    }
    async fn abort_multipart_upload(
        &self,
        req: &mut S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<()> {
        self.allow(req).await
    }
    async fn list_multipart_uploads(
        &self,
        req: &mut S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<()> {
        self.allow(req).await
    }
    async fn list_parts(&self, req: &mut S3Request<ListPartsInput>) -> S3Result<()> {
        self.allow(req).await
    }
    async fn list_objects(&self, req: &mut S3Request<ListObjectsInput>) -> S3Result<()> {
        self.allow(req).await
    }
    async fn get_bucket_location(
        &self,
        req: &mut S3Request<GetBucketLocationInput>,
    ) -> S3Result<()> {
        self.allow(req).await
    }
    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        self.allow(req).await?;
        allowed_bypass(req, req.input.bypass_governance_retention);
        Ok(())
    }
    async fn list_object_versions(
        &self,
        req: &mut S3Request<ListObjectVersionsInput>,
    ) -> S3Result<()> {
        self.allow(req).await
    }
    async fn put_bucket_versioning(
        &self,
        req: &mut S3Request<PutBucketVersioningInput>,
    ) -> S3Result<()> {
        self.allow(req).await
    }
    async fn get_bucket_versioning(
        &self,
        req: &mut S3Request<GetBucketVersioningInput>,
    ) -> S3Result<()> {
        self.allow(req).await
    }
    async fn put_object_lock_configuration(
        &self,
        req: &mut S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<()> {
        self.allow(req).await
    }
    async fn get_object_lock_configuration(
        &self,
        req: &mut S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<()> {
        self.allow(req).await
    }
    async fn put_object_retention(
        &self,
        req: &mut S3Request<PutObjectRetentionInput>,
    ) -> S3Result<()> {
        let r = req.input.retention.as_ref();
        let mode = r
            .and_then(|r| r.mode.as_ref())
            .map(|m| m.as_str().to_string());
        let until = r
            .and_then(|r| r.retain_until_date.as_ref())
            .map(|t| observe::record::rfc3339_from_millis(super::lock::millis(t)));
        observe::note_lock(&req.extensions, |l| {
            l.mode = mode.map(|m| observe::record::clip(&m));
            l.retain_until = until;
        });
        self.allow(req).await?;
        allowed_bypass(req, req.input.bypass_governance_retention);
        Ok(())
    }
    async fn get_object_retention(
        &self,
        req: &mut S3Request<GetObjectRetentionInput>,
    ) -> S3Result<()> {
        self.allow(req).await
    }
    async fn put_object_legal_hold(
        &self,
        req: &mut S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<()> {
        let status = (req.input.legal_hold.as_ref())
            .and_then(|h| h.status.as_ref())
            .map(|s| observe::record::clip(s.as_str()));
        observe::note_lock(&req.extensions, |l| l.legal_hold = status);
        self.allow(req).await
    }
    async fn get_object_legal_hold(
        &self,
        req: &mut S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<()> {
        self.allow(req).await
    }
    async fn get_bucket_acl(&self, req: &mut S3Request<GetBucketAclInput>) -> S3Result<()> {
        self.allow(req).await
    }
    async fn get_object_acl(&self, req: &mut S3Request<GetObjectAclInput>) -> S3Result<()> {
        self.allow(req).await
    }
    async fn put_bucket_acl(&self, req: &mut S3Request<PutBucketAclInput>) -> S3Result<()> {
        self.allow(req).await
    }
    async fn put_object_acl(&self, req: &mut S3Request<PutObjectAclInput>) -> S3Result<()> {
        self.allow(req).await
    }
    async fn get_object_attributes(
        &self,
        req: &mut S3Request<GetObjectAttributesInput>,
    ) -> S3Result<()> {
        self.allow(req).await
    }
    async fn get_bucket_encryption(
        &self,
        req: &mut S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<()> {
        self.allow(req).await
    }
    async fn put_bucket_encryption(
        &self,
        req: &mut S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<()> {
        self.allow(req).await
    }
    async fn delete_bucket_encryption(
        &self,
        req: &mut S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<()> {
        self.allow(req).await
    }
    async fn get_public_access_block(
        &self,
        req: &mut S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<()> {
        self.allow(req).await
    }
    async fn put_public_access_block(
        &self,
        req: &mut S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<()> {
        self.allow(req).await
    }
    async fn delete_public_access_block(
        &self,
        req: &mut S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<()> {
        self.allow(req).await
    }
}

#[cfg(test)]
mod recheck;
#[cfg(test)]
mod tests;
