//! The last write stage: the commit, the one moment an object (or a part)
//! exists, and the shard bookkeeping around it.
//!
//! - A version or part is committed under the cluster's write key; if a
//!   rotation opened since this gateway last looked, the data key is
//!   rewrapped once for the new key (ADR 0018).
//! - The shards of a write the meta tier refused are handed back to it to
//!   free (Meta.FreeShards), and the cluster view refreshed if a server it
//!   named has retired. A gateway never deletes a shard (ADR 0029).
//! - Shards a commit, a completion, an abort or a delete leaves named by
//!   nothing are freed by the meta-server that applied it, in the
//!   background; the gateway is not told which (answers stay small).
//! - Every call names its S3 request: a request id and the version id it
//!   may create are chosen once, before the first attempt, and sent
//!   again by every retry, so a retry whose first answer was lost gets
//!   the first outcome instead of a second version (ADR 0024).
//! - Every call names the access key the request was signed with: the
//!   meta tier decides at apply whether that key may write (ADR 0027).
//! - A conditional write (If-Match, If-None-Match: *) carries its
//!   condition to the meta tier, which decides it where the write
//!   applies: of two racing writes at most one wins (issue 21).
//!
//! Times are the meta tier's: the leader stamps a version with the time
//! of the batch that commits it, so one write has one clock (the gateway
//! sends none).

use std::sync::Arc;

use hamster_proto::keyring::Keyring;
use hamster_proto::pb;
use hamster_proto::secrets::MasterKey;
use hamster_proto::{ErrorCode, envelope, ids};

use super::write::Stored;
use crate::cluster::ClusterView;
use crate::meta::{MetaError, MetaTier};
use crate::meta_call;

/// This gateway does not hold the master key the cluster writes with.
#[derive(Debug, thiserror::Error)]
#[error("this gateway does not hold the cluster's write key {0}")]
pub struct SplitKey(pub String);

/// The request id of the re-commit after a WrongMasterKey refusal: a new
/// proposal, since the refusal is remembered under the first id.
fn second_proposal(request_id: &str) -> String {
    format!("{request_id}-r")
}

/// A conditional write's condition, decided by the meta tier at apply.
#[derive(Clone, Debug, Default)]
pub struct Precondition {
    /// The current object's ETag must be this ("" no condition).
    pub if_match: String,
    /// There must be no current object.
    pub if_none_match: bool,
}

/// What a commit talks to.
pub struct Committer<'a> {
    pub meta: &'a MetaTier,
    pub cluster: &'a ClusterView,
    /// The master keys this gateway holds.
    pub keys: &'a Keyring,
    /// The S3 access key the request was signed with (every call names it).
    pub access_key_id: &'a str,
}

/// The key new data keys are wrapped with: the cluster's write key,
/// which this gateway must hold. A gateway without it refuses writes
/// rather than wrap keys the cluster would not take.
pub fn write_key(cluster: &ClusterView, keys: &Keyring) -> Result<Arc<MasterKey>, SplitKey> {
    let fp = cluster.write_key();
    keys.for_write(&fp).ok_or_else(|| {
        tracing::error!(cluster_write_key = %fp, this_gateway = %keys.describe(),
            "split key: refusing a write; this gateway does not hold the cluster's write key");
        SplitKey(fp)
    })
}

impl Committer<'_> {
    /// Commits stored shards as a new version of `template` (bucket, key,
    /// metadata, lock, checksum): the one moment the object exists, if
    /// `pre` holds then. Shards of the version it replaced are freed by
    /// the meta tier; a refused commit hands the new shards back to it.
    /// The answer carries the version's id and time.
    pub async fn version(
        &self,
        stored: Stored,
        template: pb::ObjectVersion,
        pre: &Precondition,
    ) -> Result<pb::ObjectVersion, MetaError> {
        let version = pb::ObjectVersion {
            size: stored.size,
            etag: stored.md5.clone(),
            shard_map: Some(stored.shard_map.clone()),
            // Used only if the bucket is versioning-enabled ("null" else).
            version_id: ids::new_version_id(crate::now_ms()),
            // Stamped by the meta tier at apply.
            created_at_ms: 0,
            ..template
        };
        let committed = self
            .under_write_key(
                &stored.wrapped_dek,
                &stored.kek_fingerprint,
                |request_id, wrapped_dek, kek_fingerprint| {
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
                            request_id,
                            access_key_id: self.access_key_id.to_string(),
                            if_match: pre.if_match.clone(),
                            if_none_match: pre.if_none_match,
                        }
                    )
                },
            )
            .await;
        match committed {
            Ok(c) => Ok(c.version.unwrap_or_default()),
            Err(e) => {
                self.discard_after(stored, &e).await;
                Err(e)
            }
        }
    }

    /// Commits stored shards as part `number` of an upload (the meta tier
    /// frees a part it replaces); a refused commit hands the new shards
    /// back. `checksum` is the part's, in the upload's algorithm ("" none).
    /// Answers the part's ETag.
    pub async fn part(
        &self,
        (bucket, key, upload_id): (&str, &str, &str),
        number: u32,
        stored: Stored,
        checksum: String,
    ) -> Result<String, MetaError> {
        let part = pb::Part {
            part_number: number,
            size: stored.size,
            etag: stored.md5.clone(),
            shard_map: Some(stored.shard_map.clone()),
            checksum_value: checksum,
            ..Default::default()
        };
        let committed = self
            .under_write_key(
                &stored.wrapped_dek,
                &stored.kek_fingerprint,
                |request_id, wrapped_dek, kek_fingerprint| {
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
                            request_id,
                            access_key_id: self.access_key_id.to_string(),
                        }
                    )
                },
            )
            .await;
        match committed {
            Ok(_) => Ok(stored.md5),
            Err(e) => {
                self.discard_after(stored, &e).await;
                Err(e)
            }
        }
    }

    /// Completes a multipart upload (the meta tier checks the parts, and
    /// frees the shards of parts the object does not use). Names the
    /// request and the object's version id unless the caller did.
    pub async fn complete(
        &self,
        mut req: pb::CompleteMultipartRequest,
    ) -> Result<pb::ObjectVersion, MetaError> {
        name_request(&mut req.request_id);
        req.access_key_id = self.access_key_id.to_string();
        if req.version_id.is_empty() {
            req.version_id = ids::new_version_id(crate::now_ms());
        }
        let r = meta_call!(self.meta, complete_multipart, req).await?;
        Ok(r.version.unwrap_or_default())
    }

    /// Aborts a multipart upload (the meta tier frees its parts' shards).
    pub async fn abort(&self, mut req: pb::AbortMultipartRequest) -> Result<(), MetaError> {
        name_request(&mut req.request_id);
        req.access_key_id = self.access_key_id.to_string();
        meta_call!(self.meta, abort_multipart, req).await?;
        Ok(())
    }

    /// Deletes a key or a version (or lays a delete marker); the meta tier
    /// frees the shards no version names any more. Names the request and
    /// the marker's version id unless the caller did.
    pub async fn delete(
        &self,
        mut req: pb::DeleteObjectRequest,
    ) -> Result<pb::DeleteObjectResponse, MetaError> {
        name_request(&mut req.request_id);
        req.access_key_id = self.access_key_id.to_string();
        if req.version_id.is_empty() && req.marker_version_id.is_empty() {
            req.marker_version_id = ids::new_version_id(crate::now_ms());
        }
        meta_call!(self.meta, delete_object, req).await
    }

    /// Commits with `call(request id, wrapped data key, its fingerprint)`,
    /// under one request id for every retry. If the meta tier refuses the
    /// key because a rotation opened since this gateway last looked, the
    /// data key is rewrapped for the cluster's write key (this gateway
    /// holds both) and committed once more, as a new proposal.
    async fn under_write_key<T, Fut>(
        &self,
        wrapped: &[u8],
        fingerprint: &str,
        call: impl Fn(String, Vec<u8>, String) -> Fut,
    ) -> Result<T, MetaError>
    where
        Fut: Future<Output = Result<T, MetaError>>,
    {
        let request_id = ids::new_request_id();
        let first = call(
            request_id.clone(),
            wrapped.to_vec(),
            fingerprint.to_string(),
        )
        .await;
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
            Ok(rewrapped) if write != fingerprint => {
                call(second_proposal(&request_id), rewrapped, write).await
            }
            _ => first,
        }
    }

    /// A failed commit: the shards are handed back to the meta tier to
    /// free, unless it may yet have committed (it was unreachable
    /// mid-call); those the sweep judges later.
    /// Refused for naming a server drained or removed since this gateway
    /// last looked, the view is refreshed at once, so the client's retry
    /// (answered 503 SlowDown) is placed on servers that take shards.
    async fn discard_after(&self, stored: Stored, e: &MetaError) {
        if matches!(e, MetaError::Refused { .. }) {
            stored.discard(self.meta).await;
        }
        if e.code() == Some(ErrorCode::BlobServerRetired)
            && let Err(e) = self.cluster.refresh().await
        {
            tracing::debug!(error = %e, "registry refresh after a retired-server refusal failed");
        }
    }
}

/// Gives a request an id of its own, unless its caller already did.
pub fn name_request(request_id: &mut String) {
    if request_id.is_empty() {
        *request_id = ids::new_request_id();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_proposal_has_a_distinct_valid_id() {
        let first = ids::new_request_id();
        let second = second_proposal(&first);
        assert_ne!(first, second);
        assert!(ids::is_request_id(&second), "{second}");
    }

    #[test]
    fn a_named_request_keeps_its_name() {
        let mut id = String::new();
        name_request(&mut id);
        assert!(ids::is_request_id(&id));
        let named = id.clone();
        name_request(&mut id);
        assert_eq!(id, named);
    }
}
