//! CreateBucket, DeleteBucket (must be empty), HeadBucket, ListBuckets,
//! and the bucket lookup other topics check first.

use hamster_proto::pb;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::fields::timestamp;
use crate::meta_call;

impl Gateway {
    /// The bucket, or NoSuchBucket.
    pub async fn bucket(&self, name: &str) -> S3Result<pb::Bucket> {
        let r = meta_call!(
            self.meta,
            head_bucket,
            pb::HeadBucketRequest {
                name: name.to_string(),
            }
        )
        .await?;
        r.bucket.ok_or_else(|| s3_error!(NoSuchBucket))
    }
}

pub async fn create(
    gw: &Gateway,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let name = req.input.bucket;
    let lock = req.input.object_lock_enabled_for_bucket.unwrap_or(false);
    meta_call!(
        gw.meta,
        create_bucket,
        pb::CreateBucketRequest {
            name: name.clone(),
            object_lock_enabled: lock,
        }
    )
    .await?;
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{name}")),
    }))
}

pub async fn delete(
    gw: &Gateway,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let name = req.input.bucket;
    meta_call!(gw.meta, delete_bucket, pb::DeleteBucketRequest { name }).await?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub async fn head(
    gw: &Gateway,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    gw.bucket(&req.input.bucket).await?;
    Ok(S3Response::new(HeadBucketOutput::default()))
}

pub async fn list(
    gw: &Gateway,
    _req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let r = meta_call!(gw.meta, list_buckets, pb::ListBucketsRequest {}).await?;
    let buckets = r
        .buckets
        .into_iter()
        .map(|b| Bucket {
            creation_date: Some(timestamp(b.created_at_ms)),
            name: Some(b.name),
            bucket_region: None,
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(Owner {
            display_name: Some("hamster".into()),
            id: Some("hamster".into()),
        }),
        ..Default::default()
    }))
}
