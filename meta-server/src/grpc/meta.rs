//! The `Meta` service: what gateways read and commit. Writes become
//! commands (stamped and given their ids here, before proposing); reads
//! are linearizable. A write whose caller named its request (`request_id`)
//! is proposed under an id scoped by the caller's certificate, so its
//! retries on any node are one command with one outcome (ADR 0024).
//! Every write acts for the access key the gateway authenticated
//! (`access_key_id`), whose rights apply checks (ADR 0027).
//! No answer grows with an object's part count: versions go out with
//! `parts_count`, never `parts`, and parts are paged (the `parts`
//! submodule, ADR 0031). `listing` turns markers into where a page
//! starts; `sums` checks the checksums a completion lists.

use std::sync::Arc;

use hamster_proto::{PeerIdentity, ids, pb, shard_id, transport};
use rand::Rng;
use tonic::{Request, Response, Status};

use super::buckets::{self, answer_bucket, answered, bucket_of, grant_pb};
use super::errors::{ServiceError, expect_ok, unexpected};
use super::frees::{self, Frees};
use crate::cluster::{CallError, Meta, now_ms};
use crate::state::commands::{Actor, MetaError, Op, Response as R};
use crate::state::model::{DefaultRetention, PublicAccessBlock, Upload, Version, Versioning};
use crate::state::outcome::reject;
use crate::state::reads::{self as q, Entry, Walk};

mod listing;
mod parts;
mod sums;

use listing::{after_marker, list_bucket, versions_cursor};
use sums::listed_checksums_match;

pub struct MetaService {
    meta: Arc<Meta>,
    /// Deletes what the calls this node handled left unnamed (ADR 0029).
    frees: Frees,
}

impl MetaService {
    pub fn new(meta: Arc<Meta>) -> Self {
        let frees = Frees::new(meta.clone());
        Self { meta, frees }
    }

    /// Proposes `op` for `by` under the caller's command id, or a fresh one.
    async fn propose(&self, by: Actor, id: Option<String>, op: Op) -> Result<R, CallError> {
        self.meta.write_for(by, id, op).await
    }
}

/// Who a gateway's call acts for: the access key it authenticated. No
/// key is an older gateway's call, refused rather than let through
/// unchecked (ADR 0027).
pub fn key_actor(access_key_id: &str) -> Result<Actor, ServiceError> {
    if access_key_id.is_empty() {
        return Err(ServiceError::AccessDenied(
            "no access key id: the gateway is older than the meta tier; upgrade it".into(),
        ));
    }
    Ok(Actor::Key(access_key_id.to_string()))
}

/// The command id a write proposes under: `req:ROLE:NODE_ID:REQUEST_ID`
/// if the caller named its request, so one caller's ids never meet
/// another's; None (a fresh id) if it did not.
pub fn command_id(
    peer: Option<&PeerIdentity>,
    request_id: &str,
) -> Result<Option<String>, ServiceError> {
    if request_id.is_empty() {
        return Ok(None);
    }
    if !ids::is_request_id(request_id) {
        return Err(ServiceError::InvalidArgument(
            "request_id must be 1 to 64 of [A-Za-z0-9_-]".into(),
        ));
    }
    let p = peer.ok_or(ServiceError::Unauthenticated)?;
    Ok(Some(format!("req:{}:{}:{request_id}", p.role, p.node_id)))
}

/// A write request's body and the command id it proposes under: its
/// caller's `request_id`, scoped by [`command_id`].
fn named<T>(
    req: Request<T>,
    request_id: impl FnOnce(&T) -> &str,
) -> Result<(T, Option<String>), ServiceError> {
    let id = command_id(transport::peer(&req), request_id(req.get_ref()))?;
    Ok((req.into_inner(), id))
}

/// The version id a caller chose for what its request creates, or a new
/// one if it chose none.
pub fn version_id_or_new(chosen: String) -> Result<String, ServiceError> {
    if chosen.is_empty() {
        Ok(ids::new_version_id(now_ms()))
    } else if ids::is_version_id(&chosen) {
        Ok(chosen)
    } else {
        Err(ServiceError::InvalidArgument(format!(
            "version id {chosen:?} is not 32 lowercase hex digits"
        )))
    }
}

fn new_upload_id() -> String {
    let r: u128 = rand::rng().random();
    format!("{r:032x}")
}

pub(super) fn page_size(max: u32) -> u32 {
    if max == 0 {
        q::MAX_PAGE
    } else {
        max.min(q::MAX_PAGE)
    }
}

type Reply<T> = Result<Response<T>, Status>;

/// A version as answered to a gateway: with whether its bucket was ever
/// versioned, which decides how the gateway shows a "null" version id.
/// Its parts stay behind (the conversion counts them, ADR 0031).
fn answer(v: Version, bucket_versioned: bool) -> pb::ObjectVersion {
    pb::ObjectVersion {
        bucket_versioned,
        ..v.into()
    }
}

/// A version read without its parts, as answered to a gateway.
fn answer_head(h: q::Head, bucket_versioned: bool) -> pb::ObjectVersion {
    pb::ObjectVersion {
        parts_count: h.parts_count,
        ..answer(h.version, bucket_versioned)
    }
}

/// Parts enter a version only through CompleteMultipart, which checks
/// them; a version or template sent with parts is refused.
fn no_parts(v: &pb::ObjectVersion) -> Result<(), ServiceError> {
    if v.parts.is_empty() && v.parts_count == 0 {
        Ok(())
    } else {
        Err(ServiceError::Malformed(
            "a version's parts come only from CompleteMultipart".into(),
        ))
    }
}

/// The version id a retention or legal-hold command answers with.
fn locked(r: R) -> Result<String, ServiceError> {
    match r {
        R::Locked { version_id } => Ok(version_id),
        other => Err(unexpected(other)),
    }
}

/// Refuses shards created before the write window: the sweep may already
/// have judged them orphans (see `sweep`). Not the retry of a command
/// already applied: it changes nothing and must get its first answer (a
/// refusal would make the gateway discard the shards it committed).
async fn check_fresh(
    meta: &Meta,
    id: Option<&str>,
    map: Option<&pb::ShardMap>,
) -> Result<(), ServiceError> {
    let window = i64::try_from(meta.write_window.as_millis()).unwrap_or(i64::MAX);
    let oldest = now_ms().saturating_sub(window);
    let stale = map
        .into_iter()
        .flat_map(|m| &m.shards)
        .filter_map(|s| shard_id::created_ms(&s.shard_id))
        .any(|t| t < oldest);
    if !stale {
        return Ok(());
    }
    if let Some(id) = id
        && meta
            .read(async |c| q::answer_of(c, id).await)
            .await?
            .is_some()
    {
        return Ok(());
    }
    Err(ServiceError::RequestTimeout)
}

#[tonic::async_trait]
impl pb::meta_server::Meta for MetaService {
    async fn create_bucket(
        &self,
        req: Request<pb::CreateBucketRequest>,
    ) -> Reply<pb::CreateBucketResponse> {
        let r = req.into_inner();
        let by = key_actor(&r.access_key_id)?;
        let op = Op::CreateBucket {
            name: r.name,
            object_lock_enabled: r.object_lock_enabled,
            owner: None,
        };
        let b = bucket_of(self.propose(by, None, op).await?)?;
        Ok(Response::new(pb::CreateBucketResponse {
            bucket: Some(answered(&self.meta, b).await?),
        }))
    }

    async fn delete_bucket(
        &self,
        req: Request<pb::DeleteBucketRequest>,
    ) -> Reply<pb::DeleteBucketResponse> {
        let r = req.into_inner();
        let by = key_actor(&r.access_key_id)?;
        // The shards of the open uploads it aborts (issue 21), read first:
        // the answer carries none (frees::bucket_upload_shards).
        let (abort_uploads, shards) = self.frees.of_bucket_uploads(&by, &r.name).await?;
        let op = Op::DeleteBucket {
            name: r.name,
            abort_uploads,
        };
        expect_ok(self.propose(by, None, op).await?)?;
        self.frees.free_later(shards);
        Ok(Response::new(pb::DeleteBucketResponse {}))
    }

    async fn head_bucket(
        &self,
        req: Request<pb::HeadBucketRequest>,
    ) -> Reply<pb::HeadBucketResponse> {
        let name = req.into_inner().name;
        let b = self
            .meta
            .read_or_refuse(async |c| match q::bucket(c, &name).await? {
                Some(b) => Ok(answer_bucket(c, b).await?),
                None => reject(MetaError::NoSuchBucket(name.clone())),
            })
            .await??;
        Ok(Response::new(pb::HeadBucketResponse { bucket: Some(b) }))
    }

    /// The buckets the key owns or is granted on, a page at a time.
    async fn list_buckets(
        &self,
        req: Request<pb::ListBucketsRequest>,
    ) -> Reply<pb::ListBucketsResponse> {
        let r = req.into_inner();
        // Refused like a write: with no key every bucket would be listed.
        key_actor(&r.access_key_id)?;
        let key = Some(r.access_key_id.as_str());
        Ok(Response::new(buckets::list(&self.meta, key, &r).await?))
    }

    async fn commit_version(
        &self,
        req: Request<pb::CommitVersionRequest>,
    ) -> Reply<pb::CommitVersionResponse> {
        let (r, id) = named(req, |r| &r.request_id)?;
        let by = key_actor(&r.access_key_id)?;
        let v = r
            .version
            .ok_or_else(|| ServiceError::Malformed("version is required".into()))?;
        no_parts(&v)?;
        check_fresh(&self.meta, id.as_deref(), v.shard_map.as_ref()).await?;
        let mut version = Version::try_from(v)?;
        // The leader's batcher sets the version's time (batch::stamp);
        // a clock (the gateway's, else this node's) only seeds the id.
        version.version_id = version_id_or_new(std::mem::take(&mut version.version_id))?;
        let op = Op::CommitVersion {
            version,
            if_match: (!r.if_match.is_empty()).then_some(r.if_match),
            if_none_match: r.if_none_match,
        };
        match self.propose(by, id, op).await? {
            R::Committed {
                version,
                freed,
                versioned,
            } => {
                // Freed here, not by the gateway (ADR 0029): `freed` stays
                // empty on the wire.
                self.frees.free_later(frees::locations(&freed));
                Ok(Response::new(pb::CommitVersionResponse {
                    version: Some(answer(version, versioned)),
                    freed: Vec::new(),
                }))
            }
            other => Err(unexpected(other).into()),
        }
    }

    async fn get_version(
        &self,
        req: Request<pb::GetVersionRequest>,
    ) -> Reply<pb::GetVersionResponse> {
        let r = req.into_inner();
        let (found, versioned) = self
            .meta
            .read_or_refuse(async |c| {
                let Some(bucket) = q::bucket(c, &r.bucket).await? else {
                    return reject(MetaError::NoSuchBucket(r.bucket.clone()));
                };
                let versioned = bucket.versioning != Versioning::Unversioned;
                let id = (!r.version_id.is_empty()).then_some(r.version_id.as_str());
                let found = q::version_head(c, &r.bucket, &r.key, id).await?;
                let found = found.ok_or_else(|| match id {
                    None => MetaError::NoSuchKey(r.key.clone()),
                    Some(id) => MetaError::NoSuchVersion(id.to_string()),
                });
                Ok((found?, versioned))
            })
            .await??;
        Ok(Response::new(pb::GetVersionResponse {
            version: Some(answer_head(found, versioned)),
        }))
    }

    async fn list_objects(
        &self,
        req: Request<pb::ListObjectsRequest>,
    ) -> Reply<pb::ListObjectsResponse> {
        let r = req.into_inner();
        let cursor = if !r.continuation_token.is_empty() {
            q::decode_token(&r.continuation_token)
                .ok_or_else(|| ServiceError::InvalidArgument("invalid continuation token".into()))?
        } else {
            after_marker(&r.start_after, &r.prefix, &r.delimiter)
        };
        let max = page_size(r.max_keys);
        let page = self
            .meta
            .read_or_refuse(async |c| {
                list_bucket(
                    c,
                    &r.bucket,
                    &r.prefix,
                    &r.delimiter,
                    cursor,
                    max,
                    Walk::Latest,
                )
                .await
            })
            .await??;
        let mut out = pb::ListObjectsResponse {
            is_truncated: page.is_truncated,
            ..Default::default()
        };
        for e in page.entries {
            match e {
                Entry::Version { version, .. } => out.objects.push(version.into()),
                Entry::Prefix(p) => out.common_prefixes.push(p),
            }
        }
        if page.is_truncated {
            out.next_continuation_token =
                page.next.as_ref().map(q::encode_token).unwrap_or_default();
        }
        Ok(Response::new(out))
    }

    async fn list_versions(
        &self,
        req: Request<pb::ListVersionsRequest>,
    ) -> Reply<pb::ListVersionsResponse> {
        let r = req.into_inner();
        let max = page_size(r.max_keys);
        let page = self
            .meta
            .read_or_refuse(async |c| {
                let cursor = versions_cursor(c, &r).await?;
                let walk = Walk::AllVersions;
                list_bucket(c, &r.bucket, &r.prefix, &r.delimiter, cursor, max, walk).await
            })
            .await??;
        let mut out = pb::ListVersionsResponse {
            is_truncated: page.is_truncated,
            ..Default::default()
        };
        let mut last = None;
        for e in page.entries {
            match e {
                Entry::Version { version, is_latest } => {
                    last = Some((version.key.clone(), version.version_id.clone()));
                    let mut v = pb::ObjectVersion::from(version);
                    v.is_latest = is_latest;
                    out.versions.push(v);
                }
                Entry::Prefix(p) => {
                    last = Some((p.clone(), String::new()));
                    out.common_prefixes.push(p);
                }
            }
        }
        if page.is_truncated
            && let Some((k, v)) = last
        {
            out.next_key_marker = k;
            out.next_version_id_marker = v;
        }
        Ok(Response::new(out))
    }

    async fn delete_object(
        &self,
        req: Request<pb::DeleteObjectRequest>,
    ) -> Reply<pb::DeleteObjectResponse> {
        let (r, id) = named(req, |r| &r.request_id)?;
        let by = key_actor(&r.access_key_id)?;
        let op = Op::DeleteObject {
            bucket: r.bucket,
            key: r.key,
            version_id: (!r.version_id.is_empty()).then_some(r.version_id),
            marker_version_id: version_id_or_new(r.marker_version_id)?,
            bypass_governance: r.bypass_governance,
        };
        match self.propose(by, id, op).await? {
            R::Deleted {
                version_id,
                delete_marker,
                freed,
            } => {
                self.frees.free_later(frees::locations(&freed));
                Ok(Response::new(pb::DeleteObjectResponse {
                    version_id,
                    delete_marker,
                    freed: Vec::new(),
                }))
            }
            other => Err(unexpected(other).into()),
        }
    }

    async fn put_bucket_versioning(
        &self,
        req: Request<pb::PutBucketVersioningRequest>,
    ) -> Reply<pb::PutBucketVersioningResponse> {
        let r = req.into_inner();
        let by = key_actor(&r.access_key_id)?;
        let op = Op::PutBucketVersioning {
            bucket: r.bucket,
            status: r.status.parse()?,
        };
        expect_ok(self.propose(by, None, op).await?)?;
        Ok(Response::new(pb::PutBucketVersioningResponse {}))
    }

    async fn put_object_lock_configuration(
        &self,
        req: Request<pb::PutObjectLockConfigurationRequest>,
    ) -> Reply<pb::PutObjectLockConfigurationResponse> {
        let r = req.into_inner();
        let by = key_actor(&r.access_key_id)?;
        let default_retention = (!r.default_mode.is_empty()).then_some(DefaultRetention {
            mode: r.default_mode.parse()?,
            days: r.default_days,
            years: r.default_years,
        });
        let op = Op::PutLockConfiguration {
            bucket: r.bucket,
            default_retention,
            enable: r.enable,
        };
        expect_ok(self.propose(by, None, op).await?)?;
        Ok(Response::new(pb::PutObjectLockConfigurationResponse {}))
    }

    async fn put_object_retention(
        &self,
        req: Request<pb::PutObjectRetentionRequest>,
    ) -> Reply<pb::PutObjectRetentionResponse> {
        let r = req.into_inner();
        let by = key_actor(&r.access_key_id)?;
        let op = Op::PutRetention {
            bucket: r.bucket,
            key: r.key,
            version_id: r.version_id,
            mode: r.mode.parse()?,
            retain_until_ms: r.retain_until_ms,
            bypass_governance: r.bypass_governance,
        };
        let version_id = locked(self.propose(by, None, op).await?)?;
        Ok(Response::new(pb::PutObjectRetentionResponse { version_id }))
    }

    async fn put_object_legal_hold(
        &self,
        req: Request<pb::PutObjectLegalHoldRequest>,
    ) -> Reply<pb::PutObjectLegalHoldResponse> {
        let r = req.into_inner();
        let by = key_actor(&r.access_key_id)?;
        let op = Op::PutLegalHold {
            bucket: r.bucket,
            key: r.key,
            version_id: r.version_id,
            on: r.on,
        };
        let version_id = locked(self.propose(by, None, op).await?)?;
        Ok(Response::new(pb::PutObjectLegalHoldResponse { version_id }))
    }

    async fn begin_multipart(
        &self,
        req: Request<pb::BeginMultipartRequest>,
    ) -> Reply<pb::BeginMultipartResponse> {
        let (r, id) = named(req, |r| &r.request_id)?;
        let by = key_actor(&r.access_key_id)?;
        let u = r
            .upload
            .ok_or_else(|| ServiceError::Malformed("upload is required".into()))?;
        if let Some(t) = &r.template {
            no_parts(t)?;
        }
        let mut template = r
            .template
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        template.bucket = u.bucket.clone();
        template.key = u.key.clone();
        let upload = Upload {
            bucket: u.bucket,
            key: u.key,
            upload_id: new_upload_id(),
            initiated_at_ms: now_ms(),
            template,
        };
        match self.propose(by, id, Op::BeginMultipart { upload }).await? {
            R::Upload(u) => Ok(Response::new(pb::BeginMultipartResponse {
                upload: Some(u.into()),
            })),
            other => Err(unexpected(other).into()),
        }
    }

    async fn commit_part(
        &self,
        req: Request<pb::CommitPartRequest>,
    ) -> Reply<pb::CommitPartResponse> {
        let (r, id) = named(req, |r| &r.request_id)?;
        let by = key_actor(&r.access_key_id)?;
        let part = r
            .part
            .ok_or_else(|| ServiceError::Malformed("part is required".into()))?;
        check_fresh(&self.meta, id.as_deref(), part.shard_map.as_ref()).await?;
        let op = Op::CommitPart {
            bucket: r.bucket,
            key: r.key,
            upload_id: r.upload_id,
            part: part.into(),
        };
        match self.propose(by, id, op).await? {
            R::PartStored { replaced } => {
                let replaced: Vec<_> = replaced.into_iter().collect();
                self.frees.free_later(frees::locations(&replaced));
                Ok(Response::new(pb::CommitPartResponse { replaced: None }))
            }
            other => Err(unexpected(other).into()),
        }
    }

    async fn complete_multipart(
        &self,
        req: Request<pb::CompleteMultipartRequest>,
    ) -> Reply<pb::CompleteMultipartResponse> {
        let (r, id) = named(req, |r| &r.request_id)?;
        let by = key_actor(&r.access_key_id)?;
        listed_checksums_match(&self.meta, &r).await?;
        let op = Op::CompleteMultipart {
            bucket: r.bucket,
            key: r.key,
            upload_id: r.upload_id,
            parts: r
                .parts
                .into_iter()
                .map(|p| (p.part_number, p.etag))
                .collect(),
            version_id: version_id_or_new(r.version_id)?,
            if_match: (!r.if_match.is_empty()).then_some(r.if_match),
            if_none_match: r.if_none_match,
        };
        match self.propose(by, id, op).await? {
            R::Completed {
                version,
                freed,
                versioned,
            } => {
                self.frees.free_later(frees::locations(&freed));
                Ok(Response::new(pb::CompleteMultipartResponse {
                    version: Some(answer(version, versioned)),
                    freed: Vec::new(),
                }))
            }
            other => Err(unexpected(other).into()),
        }
    }

    async fn abort_multipart(
        &self,
        req: Request<pb::AbortMultipartRequest>,
    ) -> Reply<pb::AbortMultipartResponse> {
        let (r, id) = named(req, |r| &r.request_id)?;
        let by = key_actor(&r.access_key_id)?;
        let op = Op::AbortMultipart {
            bucket: r.bucket,
            key: r.key,
            upload_id: r.upload_id,
        };
        match self.propose(by, id, op).await? {
            R::Aborted { freed } => {
                self.frees.free_later(frees::locations(&freed));
                Ok(Response::new(pb::AbortMultipartResponse {
                    freed: Vec::new(),
                }))
            }
            other => Err(unexpected(other).into()),
        }
    }

    async fn list_uploads(
        &self,
        req: Request<pb::ListUploadsRequest>,
    ) -> Reply<pb::ListUploadsResponse> {
        let r = req.into_inner();
        let max = page_size(r.max_uploads);
        let (uploads, truncated) = self
            .meta
            .read_or_refuse(async |c| {
                if q::bucket(c, &r.bucket).await?.is_none() {
                    return reject(MetaError::NoSuchBucket(r.bucket.clone()));
                }
                let (bucket, prefix) = (&r.bucket, &r.prefix);
                let (key_marker, upload_marker) = (&r.key_marker, &r.upload_id_marker);
                Ok(q::uploads(c, bucket, prefix, key_marker, upload_marker, max).await?)
            })
            .await??;
        let (next_key_marker, next_upload_id_marker) = match (truncated, uploads.last()) {
            (true, Some(u)) => (u.key.clone(), u.upload_id.clone()),
            _ => Default::default(),
        };
        Ok(Response::new(pb::ListUploadsResponse {
            uploads: uploads.into_iter().map(Into::into).collect(),
            is_truncated: truncated,
            next_key_marker,
            next_upload_id_marker,
        }))
    }

    /// An open upload's parts, a page at a time (paged in SQL).
    async fn list_parts(&self, req: Request<pb::ListPartsRequest>) -> Reply<pb::ListPartsResponse> {
        Ok(Response::new(
            parts::list_parts(&self.meta, req.into_inner()).await?,
        ))
    }

    async fn lookup_access_key(
        &self,
        req: Request<pb::LookupAccessKeyRequest>,
    ) -> Reply<pb::LookupAccessKeyResponse> {
        let id = req.into_inner().access_key_id;
        let (key, grants) = self
            .meta
            .read_or_refuse(async |c| {
                let Some(key) = q::access_key(c, &id).await? else {
                    return reject(MetaError::NoSuchAccessKey(id.clone()));
                };
                Ok((key, q::key_grants(c, &id).await?))
            })
            .await??;
        Ok(Response::new(pb::LookupAccessKeyResponse {
            access_key_id: key.id,
            sealed_secret: key.sealed_secret,
            enabled: key.enabled,
            kek_fingerprint: key.kek_fingerprint,
            can_create_bucket: key.can_create_bucket,
            grants: grants.into_iter().map(grant_pb).collect(),
            name: key.name,
        }))
    }

    /// A bucket's owner and the grants on it: what Get*Acl show.
    async fn bucket_grants(
        &self,
        req: Request<pb::BucketGrantsRequest>,
    ) -> Reply<pb::BucketGrantsResponse> {
        let name = req.into_inner().bucket;
        let (bucket, grants) = self
            .meta
            .read_or_refuse(async |c| {
                let Some(b) = q::bucket(c, &name).await? else {
                    return reject(MetaError::NoSuchBucket(name.clone()));
                };
                let grants = buckets::grants_on(c, &b).await?;
                Ok((answer_bucket(c, b).await?, grants))
            })
            .await??;
        Ok(Response::new(pb::BucketGrantsResponse {
            bucket: Some(bucket),
            grants,
        }))
    }

    /// A completed multipart object's parts, a page at a time (ADR 0031).
    async fn get_parts(&self, req: Request<pb::GetPartsRequest>) -> Reply<pb::GetPartsResponse> {
        Ok(Response::new(
            parts::get_parts(&self.meta, req.into_inner()).await?,
        ))
    }

    /// Shards a gateway wrote and will not commit (ADR 0029): answered at
    /// once, deleted in the background, each only if nothing names it
    /// (the blob-server asks the meta tier before deleting).
    async fn free_shards(
        &self,
        req: Request<pb::FreeShardsRequest>,
    ) -> Reply<pb::FreeShardsResponse> {
        let shards = frees::requested(req.get_ref())?;
        self.frees.free_later(shards);
        Ok(Response::new(pb::FreeShardsResponse {}))
    }

    /// The bucket's PublicAccessBlock (issue 21): stored and shown only
    /// (HeadBucket answers it); no config deletes it. Owner only.
    async fn put_public_access_block(
        &self,
        req: Request<pb::PutPublicAccessBlockRequest>,
    ) -> Reply<pb::PutPublicAccessBlockResponse> {
        let r = req.into_inner();
        let by = key_actor(&r.access_key_id)?;
        let op = Op::PutPublicAccessBlock {
            bucket: r.bucket,
            config: r.config.map(|p| PublicAccessBlock {
                block_public_acls: p.block_public_acls,
                ignore_public_acls: p.ignore_public_acls,
                block_public_policy: p.block_public_policy,
                restrict_public_buckets: p.restrict_public_buckets,
            }),
        };
        expect_ok(self.propose(by, None, op).await?)?;
        Ok(Response::new(pb::PutPublicAccessBlockResponse {}))
    }
}
