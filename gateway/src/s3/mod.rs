//! The S3 protocol layer. s3s does routing, XML and SigV4 (including
//! aws-chunked bodies and their trailers); this module is what each
//! operation means here, one file per S3 topic:
//!
//! - [`bucket`]: CreateBucket, DeleteBucket, HeadBucket, ListBuckets.
//! - [`ingest`]: a body to uncommitted shards, with the checks the client asked for.
//! - [`put`]: PutObject and its commit.
//! - [`multipart`]: the multipart upload calls; each part its own unit.
//! - [`get`]: GetObject (Range), HeadObject.
//! - [`copy`]: CopyObject (read, re-encrypt, write: shards never shared).
//! - [`conditions`]: If-Match and friends, on reads and copy sources.
//! - [`delete`]: DeleteObject and DeleteObjects, freeing shards.
//! - [`versioning`]: PutBucketVersioning, GetBucketVersioning.
//! - [`lock`]: object lock — configuration, retention, legal hold, headers.
//! - [`list`]: ListObjects V1 and V2, ListObjectVersions, GetBucketLocation.
//! - [`auth`]: SigV4 secrets from the meta tier.
//! - [`error`]: the one place errors become S3 error codes.
//!
//! Any operation not implemented here answers 501 NotImplemented (the
//! s3s default), never a wrong success.

pub mod auth;
pub mod bucket;
pub mod conditions;
pub mod copy;
pub mod delete;
pub mod error;
pub mod get;
pub mod ingest;
pub mod list;
pub mod lock;
pub mod multipart;
pub mod put;
pub mod versioning;

use std::sync::Arc;
use std::time::Duration;

use hamster_proto::keyring::Keyring;
use hamster_proto::pb;
use hamster_proto::secrets::MasterKey;
use hamster_proto::transport::Pool;
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};

use crate::blobs::Blobs;
use crate::meta::MetaTier;
use crate::pipeline::fanout::delete_shards;
use crate::pipeline::placement::Candidate;
use crate::pipeline::profile::default_profile;

/// Everything an S3 request needs; no state of its own beyond caches.
pub struct Gateway {
    pub meta: Arc<MetaTier>,
    pub blobs: Arc<Blobs>,
    /// Channels to blob-servers.
    pub pool: Pool,
    /// The master keys this gateway holds (current, and next in a rotation).
    pub keys: Arc<Keyring>,
    pub hedge_after: Duration,
}

/// Unix milliseconds as an S3 timestamp.
pub fn timestamp(ms: i64) -> Timestamp {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

/// The x-amz-version-id a response carries: none on a bucket that was
/// never versioned, "null" for the null version of one that was.
pub fn version_header(v: &pb::ObjectVersion) -> Option<String> {
    let shown = !v.version_id.is_empty() && (v.version_id != "null" || v.bucket_versioned);
    shown.then(|| v.version_id.clone())
}

/// S3's limit on key length, in bytes of UTF-8.
pub const MAX_KEY_LEN: usize = 1024;

/// KeyTooLongError for a key S3 would refuse.
pub fn check_key(key: &str) -> S3Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(s3_error!(KeyTooLongError, "keys are at most 1024 bytes"));
    }
    Ok(())
}

impl Gateway {
    /// The bucket, or NoSuchBucket.
    pub async fn bucket(&self, name: &str) -> S3Result<pb::Bucket> {
        let r = crate::meta_call!(
            self.meta,
            head_bucket,
            pb::HeadBucketRequest {
                name: name.to_string(),
            }
        )
        .await?;
        r.bucket.ok_or_else(|| s3_error!(NoSuchBucket))
    }

    /// The key new data keys are wrapped with: the cluster's write key,
    /// which this gateway must hold. A gateway without it refuses writes
    /// (503) rather than wrap keys the cluster would not take.
    pub fn write_key(&self) -> S3Result<Arc<MasterKey>> {
        let fp = self.blobs.write_key();
        if fp.is_empty() {
            return Ok(self.keys.current());
        }
        self.keys.get(&fp).ok_or_else(|| {
            tracing::error!(cluster_write_key = %fp, this_gateway = %self.keys.describe(),
                "split key: refusing a write; this gateway does not hold the cluster's write key");
            s3_error!(
                ServiceUnavailable,
                "this gateway does not hold the cluster's current master key"
            )
        })
    }

    /// Commits with `call(wrapped data key, its fingerprint)`. If the meta
    /// tier refuses the key because a rotation opened since this gateway
    /// last looked, the data key is rewrapped for the cluster's write key
    /// (this gateway holds both) and committed once more.
    pub async fn commit_under_write_key<T, Fut>(
        &self,
        wrapped: &[u8],
        fingerprint: &str,
        call: impl Fn(Vec<u8>, String) -> Fut,
    ) -> Result<T, crate::meta::MetaError>
    where
        Fut: std::future::Future<Output = Result<T, crate::meta::MetaError>>,
    {
        let first = call(wrapped.to_vec(), fingerprint.to_string()).await;
        if !matches!(&first, Err(e) if e.code() == Some("WrongMasterKey")) {
            return first;
        }
        if let Err(e) = self.blobs.refresh().await {
            tracing::debug!(error = %e, "registry refresh after a key refusal failed");
            return first;
        }
        let write = self.blobs.write_key();
        let (Some(from), Some(to)) = (self.keys.get(fingerprint), self.keys.get(&write)) else {
            return first;
        };
        match hamster_proto::envelope::rewrap_dek(&from, &to, wrapped) {
            Ok(rewrapped) if write != fingerprint => call(rewrapped, write).await,
            _ => first,
        }
    }

    /// k+m for a new object, from this gateway's view of the registry.
    fn profile(&self) -> Option<(usize, usize)> {
        self.blobs
            .cluster_profile()
            .or_else(|| default_profile(self.blobs.registered()))
    }

    /// k+m for a new object and its placement candidates. The registry is
    /// asked again first if the view looks short: no blob-server seen yet
    /// (just started), or fewer active than k+m.
    pub async fn placement(&self) -> S3Result<((usize, usize), Vec<Candidate>)> {
        let short = |c: &[Candidate], p: Option<(usize, usize)>| {
            p.is_none_or(|(k, m)| c.iter().filter(|c| c.active).count() < k + m)
        };
        let mut c = self.blobs.candidates();
        if short(&c, self.profile()) {
            if let Err(e) = self.blobs.refresh().await {
                tracing::debug!(error = %e, "registry refresh before placement failed");
            }
            c = self.blobs.candidates();
        }
        let profile = self
            .profile()
            .ok_or_else(|| s3_error!(SlowDown, "no blob-server is registered yet"))?;
        Ok((profile, c))
    }

    /// Deletes, in the background, shards no version refers to any more.
    /// What fails here is left to the sweep.
    pub fn free(&self, maps: Vec<pb::ShardMap>) {
        let addresses = self.blobs.addresses();
        let shards: Vec<(String, String)> = maps
            .iter()
            .flat_map(|m| &m.shards)
            .filter_map(|loc| Some((addresses.get(&loc.blob_id)?.clone(), loc.shard_id.clone())))
            .collect();
        if shards.is_empty() {
            return;
        }
        let pool = self.pool.clone();
        tokio::spawn(async move { delete_shards(&pool, shards).await });
    }
}

#[async_trait::async_trait]
impl S3 for Gateway {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        bucket::create(self, req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        bucket::delete(self, req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        bucket::head(self, req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        bucket::list(self, req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        put::put(self, req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        get::get(self, req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        get::head(self, req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        delete::delete(self, req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        list::list_v2(self, req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        copy::copy(self, req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create(self, req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(self, req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        multipart::upload_part_copy(self, req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete(self, req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort(self, req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_uploads(self, req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(self, req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        list::list_v1(self, req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        list::location(self, req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        delete::delete_many(self, req).await
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        list::list_versions(self, req).await
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        versioning::put(self, req).await
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        versioning::get(self, req).await
    }

    async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        lock::put_configuration(self, req).await
    }

    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        lock::get_configuration(self, req).await
    }

    async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        lock::put_retention(self, req).await
    }

    async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        lock::get_retention(self, req).await
    }

    async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        lock::put_legal_hold(self, req).await
    }

    async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        lock::get_legal_hold(self, req).await
    }
}
