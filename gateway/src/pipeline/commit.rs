//! The last write stage: the commit, the one moment an object (or a part)
//! exists, and the shard bookkeeping around it.
//!
//! - A version or part is committed under the cluster's write key; if a
//!   rotation opened since this gateway last looked, the data key is
//!   rewrapped once for the new key (ADR 0018).
//! - The shards of a write the meta tier refused are discarded.
//! - Shards a commit, a completion, an abort or a delete answers as named
//!   by nothing any more are freed in the background; what fails there is
//!   left to the sweep.
//!
//! Times are the meta tier's: the leader stamps a version with the time
//! of the batch that commits it, so one write has one clock (the gateway
//! sends none).

use std::sync::Arc;

use hamster_proto::keyring::Keyring;
use hamster_proto::pb;
use hamster_proto::secrets::MasterKey;
use hamster_proto::transport::Pool;
use hamster_proto::{ErrorCode, envelope};

use super::fanout::delete_shards;
use super::write::Stored;
use crate::cluster::ClusterView;
use crate::meta::{MetaError, MetaTier};
use crate::meta_call;

/// This gateway does not hold the master key the cluster writes with.
#[derive(Debug, thiserror::Error)]
#[error("this gateway does not hold the cluster's write key {0}")]
pub struct SplitKey(pub String);

/// What a commit talks to.
pub struct Committer<'a> {
    pub meta: &'a MetaTier,
    pub cluster: &'a ClusterView,
    /// The master keys this gateway holds.
    pub keys: &'a Keyring,
    /// Channels to blob-servers, to discard and free shards.
    pub pool: &'a Pool,
}

impl Committer<'_> {
    /// The key new data keys are wrapped with: the cluster's write key,
    /// which this gateway must hold. A gateway without it refuses writes
    /// rather than wrap keys the cluster would not take.
    pub fn write_key(&self) -> Result<Arc<MasterKey>, SplitKey> {
        let fp = self.cluster.write_key();
        self.keys.for_write(&fp).ok_or_else(|| {
            tracing::error!(cluster_write_key = %fp, this_gateway = %self.keys.describe(),
                "split key: refusing a write; this gateway does not hold the cluster's write key");
            SplitKey(fp)
        })
    }

    /// Commits stored shards as a new version of `template` (bucket, key,
    /// metadata, lock): the one moment the object exists. Shards of the
    /// version it replaced are freed; a refused commit removes the new
    /// shards. The answer carries the version's id and time.
    pub async fn version(
        &self,
        stored: Stored,
        template: pb::ObjectVersion,
    ) -> Result<pb::ObjectVersion, MetaError> {
        let version = pb::ObjectVersion {
            size: stored.size,
            etag: stored.md5.clone(),
            shard_map: Some(stored.shard_map.clone()),
            // Stamped by the meta tier at apply.
            created_at_ms: 0,
            ..template
        };
        let committed = self
            .under_write_key(
                &stored.wrapped_dek,
                &stored.kek_fingerprint,
                |wrapped_dek, kek_fingerprint| {
                    let version = pb::ObjectVersion {
                        wrapped_dek,
                        kek_fingerprint,
                        ..version.clone()
                    };
                    meta_call!(
                        self.meta,
                        commit_version,
                        pb::CommitVersionRequest {
                            version: Some(version),
                        }
                    )
                },
            )
            .await;
        match committed {
            Ok(c) => {
                self.free(c.freed);
                Ok(c.version.unwrap_or_default())
            }
            Err(e) => {
                self.discard_after(stored, &e).await;
                Err(e)
            }
        }
    }

    /// Commits stored shards as part `number` of an upload; a part it
    /// replaces has its shards freed, a refused commit removes the new
    /// ones. Answers the part's ETag.
    pub async fn part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        stored: Stored,
    ) -> Result<String, MetaError> {
        let part = pb::Part {
            part_number: number,
            size: stored.size,
            etag: stored.md5.clone(),
            shard_map: Some(stored.shard_map.clone()),
            ..Default::default()
        };
        let committed = self
            .under_write_key(
                &stored.wrapped_dek,
                &stored.kek_fingerprint,
                |wrapped_dek, kek_fingerprint| {
                    let part = pb::Part {
                        wrapped_dek,
                        kek_fingerprint,
                        ..part.clone()
                    };
                    meta_call!(
                        self.meta,
                        commit_part,
                        pb::CommitPartRequest {
                            bucket: bucket.into(),
                            key: key.into(),
                            upload_id: upload_id.into(),
                            part: Some(part),
                        }
                    )
                },
            )
            .await;
        match committed {
            Ok(r) => {
                self.free(r.replaced.into_iter().collect());
                Ok(stored.md5)
            }
            Err(e) => {
                self.discard_after(stored, &e).await;
                Err(e)
            }
        }
    }

    /// Completes a multipart upload (the meta tier checks the parts);
    /// shards of parts the object does not use are freed.
    pub async fn complete(
        &self,
        req: pb::CompleteMultipartRequest,
    ) -> Result<pb::ObjectVersion, MetaError> {
        let r = meta_call!(self.meta, complete_multipart, req).await?;
        self.free(r.freed);
        Ok(r.version.unwrap_or_default())
    }

    /// Aborts a multipart upload and frees the shards of its parts.
    pub async fn abort(&self, req: pb::AbortMultipartRequest) -> Result<(), MetaError> {
        let r = meta_call!(self.meta, abort_multipart, req).await?;
        self.free(r.freed);
        Ok(())
    }

    /// Deletes a key or a version (or lays a delete marker) and frees the
    /// shards no version names any more.
    pub async fn delete(
        &self,
        req: pb::DeleteObjectRequest,
    ) -> Result<pb::DeleteObjectResponse, MetaError> {
        let mut r = meta_call!(self.meta, delete_object, req).await?;
        self.free(std::mem::take(&mut r.freed));
        Ok(r)
    }

    /// Commits with `call(wrapped data key, its fingerprint)`. If the meta
    /// tier refuses the key because a rotation opened since this gateway
    /// last looked, the data key is rewrapped for the cluster's write key
    /// (this gateway holds both) and committed once more.
    async fn under_write_key<T, Fut>(
        &self,
        wrapped: &[u8],
        fingerprint: &str,
        call: impl Fn(Vec<u8>, String) -> Fut,
    ) -> Result<T, MetaError>
    where
        Fut: Future<Output = Result<T, MetaError>>,
    {
        let first = call(wrapped.to_vec(), fingerprint.to_string()).await;
        if !matches!(&first, Err(e) if e.code() == Some(ErrorCode::WrongMasterKey)) {
            return first;
        }
        if let Err(e) = self.cluster.refresh().await {
            tracing::debug!(error = %e, "registry refresh after a key refusal failed");
            return first;
        }
        let write = self.cluster.write_key();
        let (Some(from), Some(to)) = (self.keys.get(fingerprint), self.keys.get(&write)) else {
            return first;
        };
        match envelope::rewrap_dek(&from, &to, wrapped) {
            Ok(rewrapped) if write != fingerprint => call(rewrapped, write).await,
            _ => first,
        }
    }

    /// A failed commit: the shards go, unless the meta tier may yet have
    /// committed (it was unreachable mid-call); those the sweep judges later.
    async fn discard_after(&self, stored: Stored, e: &MetaError) {
        if matches!(e, MetaError::Refused { .. }) {
            stored.discard(self.pool).await;
        }
    }

    /// Deletes, in the background, shards no version refers to any more.
    /// What fails here is left to the sweep.
    pub fn free(&self, maps: Vec<pb::ShardMap>) {
        let addresses = self.cluster.addresses();
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
