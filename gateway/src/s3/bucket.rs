//! CreateBucket, DeleteBucket (must be empty), HeadBucket, ListBuckets
//! (the key's own buckets, paged), and the bucket lookup other topics
//! check first. The meta tier decides, with the key each call names,
//! whether the key may (ADR 0027).

use hamster_proto::pb;
use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::access::{Caller, key_id};
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

    /// The bucket (for its owner: a listing's Owner and Initiator) and
    /// `call`'s answer, asked at once.
    pub async fn bucket_and<T, E: Into<S3Error>>(
        &self,
        name: &str,
        call: impl Future<Output = Result<T, E>>,
    ) -> S3Result<(pb::Bucket, T)> {
        futures::try_join!(self.bucket(name), async { call.await.map_err(Into::into) })
    }
}

pub async fn create(
    gw: &Gateway,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let by = key_id(&req);
    super::fields::check_location(req.input.create_bucket_configuration.as_ref())?;
    let name = req.input.bucket;
    let lock = req.input.object_lock_enabled_for_bucket.unwrap_or(false);
    meta_call!(
        gw.meta,
        create_bucket,
        pb::CreateBucketRequest {
            name: name.clone(),
            object_lock_enabled: lock,
            access_key_id: by,
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
    let access_key_id = key_id(&req);
    let name = req.input.bucket;
    meta_call!(
        gw.meta,
        delete_bucket,
        pb::DeleteBucketRequest {
            name,
            access_key_id
        }
    )
    .await?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub async fn head(
    gw: &Gateway,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    gw.bucket(&req.input.bucket).await?;
    Ok(S3Response::new(HeadBucketOutput::default()))
}

/// S3's limit on max-buckets (and the meta tier's page).
const MAX_BUCKETS: i32 = 10_000;

/// max-buckets: 1 to 10000; absent, the meta tier's default page.
fn max_buckets(m: Option<i32>) -> S3Result<u32> {
    match m {
        None => Ok(0),
        Some(n @ 1..=MAX_BUCKETS) => Ok(n.unsigned_abs()),
        Some(_) => Err(s3_error!(
            InvalidArgument,
            "max-buckets must be between 1 and 10000"
        )),
    }
}

/// ListBuckets: the buckets the key owns or has a grant on (the meta
/// tier filters), paged by name; Owner is the requesting key.
pub async fn list(
    gw: &Gateway,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let access_key_id = key_id(&req);
    let display_name = req
        .extensions
        .get::<Caller>()
        .map_or_else(|| access_key_id.clone(), |c| c.0.display_name.clone());
    let i = req.input;
    let r = meta_call!(
        gw.meta,
        list_buckets,
        pb::ListBucketsRequest {
            access_key_id: access_key_id.clone(),
            prefix: i.prefix.clone().unwrap_or_default(),
            continuation_token: i.continuation_token.clone().unwrap_or_default(),
            max_buckets: max_buckets(i.max_buckets)?,
        }
    )
    .await?;
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
            display_name: Some(display_name),
            id: Some(access_key_id),
        }),
        continuation_token: (!r.next_continuation_token.is_empty())
            .then_some(r.next_continuation_token),
        prefix: i.prefix,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_buckets_is_1_to_10000() {
        assert_eq!(max_buckets(None).ok(), Some(0));
        assert_eq!(max_buckets(Some(1)).ok(), Some(1));
        assert_eq!(max_buckets(Some(10_000)).ok(), Some(10_000));
        for bad in [0, -1, 10_001, i32::MAX, i32::MIN] {
            let e = max_buckets(Some(bad))
                .err()
                .map(|e| e.code().as_str().to_string());
            assert_eq!(e.as_deref(), Some("InvalidArgument"), "{bad}");
        }
    }
}
