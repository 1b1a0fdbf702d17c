//! A bucket's S3 PublicAccessBlock (issue 21). Stored as the owner sets
//! it and shown back; it changes no decision, because nothing in Hamster
//! is ever public: every request is signed by a key with a right on the
//! bucket (ADR 0027). Who may set it (the owner) is [`super::access`]'s.

use sqlx::SqliteConnection;

use super::commands::{MetaError, Response};
use super::model::PublicAccessBlock;
use super::outcome::{Outcome, reject};
use super::{reads, writes};

/// Sets (Some) or deletes (None) the bucket's PublicAccessBlock. Deleting
/// one that was never set succeeds, as S3's DeletePublicAccessBlock does.
pub async fn put_public_access_block(
    c: &mut SqliteConnection,
    bucket: &str,
    config: Option<&PublicAccessBlock>,
) -> Outcome {
    if reads::bucket(c, bucket).await?.is_none() {
        return reject(MetaError::NoSuchBucket(bucket.into()));
    }
    writes::set_public_access_block(c, bucket, config).await?;
    Ok(Response::Ok)
}
