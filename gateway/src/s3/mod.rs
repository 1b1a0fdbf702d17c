//! The S3 protocol layer. s3s does routing, XML and SigV4 (including
//! aws-chunked bodies and their trailers); this module is what each
//! operation means here, one file per S3 topic:
//!
//! - [`bucket`]: CreateBucket, DeleteBucket, HeadBucket, ListBuckets.
//! - [`ingest`]: a body to uncommitted shards, with the checks the client asked for.
//! - [`put`]: PutObject (the commit itself is `pipeline/commit.rs`).
//! - [`multipart`]: the multipart upload calls; each part its own unit.
//! - [`get`]: GetObject (Range, partNumber), HeadObject.
//! - [`attributes`]: GetObjectAttributes (ETag, checksum, parts paged, size).
//! - [`copy`]: CopyObject (read, re-encrypt, write: shards never shared).
//! - [`checksums`]: the flexible checksum a version or part keeps, shown back.
//! - [`conditions`]: If-Match and friends, on reads and copy sources.
//! - [`delete`]: DeleteObject and DeleteObjects.
//! - [`versioning`]: PutBucketVersioning, GetBucketVersioning.
//! - [`sse`]: the encryption every object answer states (SSE-S3), and
//!   the SSE-C and SSE-KMS request headers refused.
//! - [`lock`]: object lock — configuration, retention, legal hold, headers.
//! - [`list`]: ListObjects V1 and V2, ListObjectVersions, GetBucketLocation.
//! - [`bucket_config`]: the bucket's default encryption (always SSE-S3:
//!   Get/Put/DeleteBucketEncryption) and PublicAccessBlock (stored).
//! - [`acl`]: Get/Put Bucket and Object ACLs, and `x-amz-acl` on writes:
//!   the owner and grants shown, only "private" accepted (else 501).
//! - [`auth`]: access keys from the meta tier — the SigV4 secret and the
//!   key's rights, cached together.
//! - [`access`]: who may do what — the one place that maps each
//!   operation to the right it needs (read, write, owner), checked
//!   before any work (ADR 0027).
//! - [`error`]: the one place errors become S3 error codes.
//! - [`fields`]: what several topics answer alike: timestamps, the
//!   version id header, the key length limit, stored headers.
//!
//! Any operation not implemented here answers 501 NotImplemented (the
//! s3s default), never a wrong success. Every operation implemented here
//! has its right in [`access`] (a unit test there fails if one has not).

pub mod access;
pub mod acl;
pub mod attributes;
pub mod auth;
pub mod bucket;
pub mod bucket_config;
pub mod checksums;
pub mod conditions;
pub mod copy;
pub mod delete;
pub mod error;
pub mod fields;
pub mod get;
pub mod ingest;
pub mod list;
pub mod lock;
pub mod multipart;
pub mod put;
pub mod sse;
pub mod versioning;

use std::sync::Arc;
use std::time::Duration;

use hamster_proto::keyring::Keyring;
use hamster_proto::transport::Pool;
use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result};

use crate::cluster::ClusterView;
use crate::meta::MetaTier;
use crate::pipeline::commit::Committer;

/// Everything an S3 request needs; no state of its own beyond caches.
pub struct Gateway {
    pub meta: Arc<MetaTier>,
    pub cluster: Arc<ClusterView>,
    /// Channels to blob-servers.
    pub pool: Pool,
    /// The master keys this gateway holds (current, and next in a rotation).
    pub keys: Arc<Keyring>,
    pub hedge_after: Duration,
}

impl Gateway {
    /// The commit stage, over this gateway's tiers, for a request signed
    /// with `access_key_id` (`access::key_id`).
    pub fn committer<'a>(&'a self, access_key_id: &'a str) -> Committer<'a> {
        Committer {
            meta: &self.meta,
            cluster: &self.cluster,
            keys: &self.keys,
            access_key_id,
        }
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

    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        acl::get_bucket_acl(self, req).await
    }

    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        acl::get_object_acl(self, req).await
    }

    async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        acl::put_bucket_acl(self, req).await
    }

    async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        acl::put_object_acl(self, req).await
    }

    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        attributes::get(self, req).await
    }

    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        bucket_config::get_encryption(self, req).await
    }

    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        bucket_config::put_encryption(self, req).await
    }

    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        bucket_config::delete_encryption(self, req).await
    }

    async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        bucket_config::get_public_access_block(self, req).await
    }

    async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        bucket_config::put_public_access_block(self, req).await
    }

    async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        bucket_config::delete_public_access_block(self, req).await
    }
}
