//! Sample answers: one per `Response` and `MetaError` variant, in order.

use super::*;

/// Position of each `MetaError` variant in [`errors`].
pub fn error_slot(e: &MetaError) -> usize {
    match e {
        MetaError::NoSuchBucket(_) => 0,
        MetaError::BucketAlreadyExists(_) => 1,
        MetaError::BucketNotEmpty(_) => 2,
        MetaError::NoSuchKey(_) => 3,
        MetaError::NoSuchVersion(_) => 4,
        MetaError::NoSuchUpload(_) => 5,
        MetaError::InvalidPart(_) => 6,
        MetaError::InvalidPartOrder => 7,
        MetaError::EntityTooSmall(_) => 8,
        MetaError::AccessDenied(_) => 9,
        MetaError::InvalidArgument(_) => 10,
        MetaError::NoSuchAccessKey(_) => 11,
        MetaError::NoSuchBlobServer(_) => 12,
        MetaError::InvalidRequest(_) => 13,
        MetaError::InvalidBucketState(_) => 14,
        MetaError::MethodNotAllowed(_) => 15,
        MetaError::RotationRefused(_) => 16,
        MetaError::WrongMasterKey(_) => 17,
        MetaError::ShardMapChanged(_) => 18,
        MetaError::BlobServerInUse(..) => 19,
        MetaError::BlobServerRemoved(_) => 20,
        MetaError::BlobServerRetired(_) => 21,
        MetaError::NotEnoughBlobServers(_) => 22,
        MetaError::BucketAlreadyOwnedByYou(_) => 23,
        MetaError::ConditionalRequestConflict(_) => 24,
    }
}
pub const ERROR_VARIANTS: usize = 25;

pub fn errors() -> Vec<MetaError> {
    vec![
        MetaError::NoSuchBucket("photos".into()),
        MetaError::BucketAlreadyExists("photos".into()),
        MetaError::BucketNotEmpty("photos".into()),
        MetaError::NoSuchKey("2024/cat.jpg".into()),
        MetaError::NoSuchVersion("0000000000000042-a1b2c3".into()),
        MetaError::NoSuchUpload("upload-7f3e".into()),
        MetaError::InvalidPart("part 2: etag mismatch".into()),
        MetaError::InvalidPartOrder,
        MetaError::EntityTooSmall(3),
        MetaError::AccessDenied("object is under COMPLIANCE retention".into()),
        MetaError::InvalidArgument("retain until is in the past".into()),
        MetaError::NoSuchAccessKey("AKIAEXAMPLE".into()),
        MetaError::NoSuchBlobServer("blob-9".into()),
        MetaError::InvalidRequest("bucket is not a lock bucket".into()),
        MetaError::InvalidBucketState("a lock bucket cannot be suspended".into()),
        MetaError::MethodNotAllowed("delete marker".into()),
        MetaError::RotationRefused("gw-1 does not hold kek-fp-2024".into()),
        MetaError::WrongMasterKey("written under kek-fp-2023".into()),
        MetaError::ShardMapChanged("index 1 holds shard 0b01".into()),
        MetaError::BlobServerInUse("blob-3".into(), 1234),
        MetaError::BlobServerRemoved("blob-3".into()),
        MetaError::BlobServerRetired("blob-4".into()),
        MetaError::NotEnoughBlobServers(
            "draining blob-3 leaves 2 servers in service; maps on it need 3 distinct servers"
                .into(),
        ),
        MetaError::BucketAlreadyOwnedByYou("photos".into()),
        MetaError::ConditionalRequestConflict("the object changed meanwhile".into()),
    ]
}

/// Position of each `Response` variant in [`responses`].
pub fn response_slot(r: &Response) -> usize {
    match r {
        Response::Ok => 0,
        Response::Bucket(_) => 1,
        Response::Committed { .. } => 2,
        Response::Deleted { .. } => 3,
        Response::Upload(_) => 4,
        Response::PartStored { .. } => 5,
        Response::Completed { .. } => 6,
        Response::RotationStarted { .. } => 7,
        Response::Rewrapped { .. } => 8,
        Response::Locked { .. } => 9,
        Response::Aborted { .. } => 10,
        Response::CaRotation { .. } => 11,
        Response::Batch(_) => 12,
        Response::Err(_) => 13,
        Response::Swapped { .. } => 14,
        Response::Orphans { .. } => 15,
        Response::Grant(_) => 16,
        Response::Defaults { .. } => 17,
        Response::Adopted { .. } => 18,
    }
}
pub const RESPONSE_VARIANTS: usize = 19;

pub fn responses() -> Vec<Response> {
    vec![
        Response::Ok,
        Response::Bucket(bucket()),
        Response::Committed {
            version: version(),
            freed: vec![shard_map(1), shard_map(2)],
            versioned: true,
        },
        Response::Deleted {
            version_id: "0000000000000043-d00d".into(),
            delete_marker: true,
            freed: vec![shard_map(3)],
        },
        Response::Upload(upload()),
        Response::PartStored {
            replaced: Some(shard_map(4)),
        },
        Response::Completed {
            version: version(),
            freed: vec![shard_map(5)],
            versioned: true,
        },
        Response::RotationStarted { to_rewrap: 1234 },
        Response::Rewrapped { moved: 500 },
        Response::Locked {
            version_id: "0000000000000042-a1b2c3".into(),
        },
        Response::Aborted {
            freed: vec![shard_map(6), shard_map(8)],
        },
        Response::CaRotation {
            generation: 3,
            rotation: Some(ca_rotation()),
        },
        Response::Batch(vec![
            Response::Bucket(bucket()),
            Response::Err(MetaError::BucketNotEmpty("tmp".into())),
        ]),
        Response::Err(MetaError::NoSuchBucket("photos".into())),
        Response::Swapped {
            freed: vec![shard_map(10)],
        },
        Response::Orphans { rows: 17 },
        Response::Grant(grant()),
        Response::Defaults {
            max_retention_days: 36_500,
        },
        Response::Adopted {
            owner: "AKIAEXAMPLE".into(),
            buckets: vec!["logs".into(), "photos".into()],
        },
    ]
}
