//! Freeing shards on blob-servers for the gateway's calls (ADR 0029). A
//! gateway never deletes a shard: what a commit, a delete, a completion or
//! an abort leaves named by nothing is freed by the meta-server that
//! handled the call, once the command applied; what a failed write left
//! behind a gateway hands over with `Meta.FreeShards`. Each blob-server
//! deletes only what the meta tier confirms no version, part or upload
//! names (`Registry.ConfirmFree`), so a free that names a live shard — a
//! stolen gateway certificate's, or a bug's — deletes nothing.
//!
//! Best effort and in the background: a meta-server that dies before
//! freeing, a blob-server down, a job dropped because too many are queued
//! — the sweep deletes those orphans later.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hamster_proto::transport::Pool;
use hamster_proto::{Role, pb};
use sqlx::SqliteConnection;

use super::errors::ServiceError;
use crate::cluster::{CallError, Meta};
use crate::repair::exec::free_addresses;
use crate::state::access::{self, Need};
use crate::state::commands::Actor;
use crate::state::model::ShardMap;
use crate::state::outcome::ApplyError;
use crate::state::reads as q;

/// Most ids one ConfirmFree may ask about (blob-servers send at most
/// this many; the read is one query per id).
pub const MAX_CONFIRM_IDS: usize = 1000;
/// Most shard maps one FreeShards may carry (a failed PUT or part has one).
pub const MAX_FREE_MAPS: usize = 64;
/// Most locations one map in a FreeShards may carry (k+m is far below).
pub const MAX_FREE_SHARDS_PER_MAP: usize = 256;
/// Locations queued or being freed at once on this node; beyond, a job
/// is dropped (logged) and the sweep collects its shards. Counted in
/// locations, not jobs: a job may carry one location or 16,384 (a full
/// FreeShards), and the queue must stay a bounded amount of memory.
const MAX_QUEUED: usize = 1 << 20;
/// Per DeleteShard call.
const DELETE_TIMEOUT: Duration = Duration::from_secs(10);
/// Free jobs running at once (each runs its deletes concurrently too).
const RUNNING: usize = 4;

/// (blob id, shard id) pairs to delete.
pub type Locations = Vec<(String, String)>;

#[derive(Clone)]
pub struct Frees {
    meta: Arc<Meta>,
    pool: Pool,
    /// Locations in jobs queued or running.
    queued: Arc<AtomicUsize>,
    running: Arc<tokio::sync::Semaphore>,
}

impl Frees {
    pub fn new(meta: Arc<Meta>) -> Self {
        let pool = Pool::new(meta.tls.clone(), &[Role::Blob]);
        Self {
            meta,
            pool,
            queued: Arc::default(),
            running: Arc::new(tokio::sync::Semaphore::new(RUNNING)),
        }
    }

    /// Locations the queue takes now: the most a caller should collect
    /// for one [`Self::free_later`] (a bigger job would be dropped whole).
    pub fn room(&self) -> usize {
        MAX_QUEUED.saturating_sub(self.queued.load(Ordering::Acquire))
    }

    /// The shards of `bucket`'s open uploads' parts, read (linearizably)
    /// before `by`'s DeleteBucket is proposed, as many as the queue takes
    /// ([`bucket_upload_shards`]). Hand them to [`Self::free_later`] once
    /// the delete applied.
    ///
    /// Also whether the bucket has any open upload: only then does the
    /// DeleteBucket carry `abort_uploads`, a command format 3 (ADR 0034)
    /// that meta-servers not yet upgraded refuse; any other delete stays
    /// the command every version reads. An upload begun after this read
    /// makes that delete answer BucketNotEmpty, as before issue 21.
    pub async fn of_bucket_uploads(
        &self,
        by: &Actor,
        bucket: &str,
    ) -> Result<(bool, Locations), CallError> {
        let cap = self.room();
        self.meta
            .read(async |c| {
                let any = !q::upload_ids(c, bucket, "", 1).await?.is_empty();
                let shards = bucket_upload_shards(c, by, bucket, cap).await?;
                Ok::<_, sqlx::Error>((any, shards))
            })
            .await
    }

    /// Deletes `shards` in the background, best effort.
    pub fn free_later(&self, shards: Locations) {
        if shards.is_empty() {
            return;
        }
        let n = shards.len();
        if self.queued.fetch_add(n, Ordering::AcqRel) + n > MAX_QUEUED {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            tracing::warn!(
                shards = shards.len(),
                "too many frees queued; leaving these shards to the sweep"
            );
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            if let Ok(_running) = me.running.acquire().await {
                me.free_now(shards).await;
            }
            me.queued.fetch_sub(n, Ordering::AcqRel);
        });
    }

    async fn free_now(&self, shards: Locations) {
        // Addresses as this node's state has them: a server registered
        // since the commit is there already (it registered before its
        // shards could be written).
        let servers = match self.meta.read(async |c| q::blob_servers(c).await).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(shards = shards.len(), error = %e, "frees: no blob-server list; the sweep will");
                return;
            }
        };
        let addresses = free_addresses(&servers);
        let n = shards.len();
        let located: Vec<(String, String)> = shards
            .into_iter()
            .filter_map(|(blob, id)| Some((addresses.get(&blob)?.clone(), id)))
            .collect();
        let deleted = hamster_proto::free::delete_shards(&self.pool, located, DELETE_TIMEOUT).await;
        if deleted < n {
            tracing::info!(
                freed = deleted,
                left = n - deleted,
                "frees: some shards not deleted now; the sweep will"
            );
        }
    }
}

/// Those of `ids` that no version, completed part or open upload's part
/// names (`shard_refs`, ADR 0023) and that no restore holds unreleased
/// (`held_orphans`, ADR 0026): what a blob-server may delete.
pub async fn unnamed(c: &mut SqliteConnection, ids: &[String]) -> Result<Vec<String>, sqlx::Error> {
    let mut free = Vec::new();
    for id in ids {
        let kept: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM shard_refs WHERE shard_id = ?1) \
             OR EXISTS (SELECT 1 FROM held_orphans WHERE shard_id = ?1 AND released = 0)",
        )
        .bind(id)
        .fetch_one(&mut *c)
        .await?;
        if !kept {
            free.push(id.clone());
        }
    }
    Ok(free)
}

/// The shards of the parts of `bucket`'s open uploads, read before a
/// DeleteBucket that aborts them is proposed: its answer names none (ADR
/// 0031: an answer never grows with the part count). At most `cap`
/// locations; a part uploaded after this read, or one past the cap, is
/// an orphan for the sweep. Freeing what was read is safe whatever the
/// command then does: a blob-server deletes only what ConfirmFree finds
/// unnamed (ADR 0029). Nothing is read for a delete that will be refused
/// anyway (a caller without the owner right, a bucket a version keeps).
pub async fn bucket_upload_shards(
    c: &mut SqliteConnection,
    by: &Actor,
    bucket: &str,
    cap: usize,
) -> Result<Locations, sqlx::Error> {
    match access::require(c, Some(by), bucket, Need::Owner).await {
        Ok(()) => {}
        Err(ApplyError::Rejected(_)) => return Ok(Vec::new()),
        Err(ApplyError::Storage(e)) => return Err(e),
    }
    if cap == 0 || q::bucket_has_versions(c, bucket).await? {
        return Ok(Vec::new());
    }
    let mut out = Locations::new();
    let mut after = String::new();
    'uploads: loop {
        let ids = q::upload_ids(c, bucket, &after, q::MAX_PAGE).await?;
        let Some(last) = ids.last() else { break };
        after = last.clone();
        for id in &ids {
            let mut marker = 0;
            loop {
                let page = q::upload_parts_page(c, id, marker, q::MAX_PAGE).await?;
                for m in page.parts.iter().filter_map(|p| p.shard_map.as_ref()) {
                    out.extend(locations(std::slice::from_ref(m)));
                }
                if out.len() >= cap {
                    out.truncate(cap);
                    break 'uploads;
                }
                match page.parts.last() {
                    Some(p) if page.is_truncated => marker = p.part_number,
                    _ => break,
                }
            }
        }
    }
    Ok(out)
}

/// Every location in the state's `maps`.
pub fn locations(maps: &[ShardMap]) -> Locations {
    maps.iter()
        .flat_map(|m| &m.shards)
        .map(|l| (l.blob_id.clone(), l.shard_id.clone()))
        .collect()
}

/// The locations a FreeShards names, refused beyond the bounds.
pub fn requested(req: &pb::FreeShardsRequest) -> Result<Locations, ServiceError> {
    if req.shards.len() > MAX_FREE_MAPS {
        return Err(ServiceError::InvalidArgument(format!(
            "FreeShards carries at most {MAX_FREE_MAPS} shard maps, not {}",
            req.shards.len()
        )));
    }
    if let Some(m) = req
        .shards
        .iter()
        .find(|m| m.shards.len() > MAX_FREE_SHARDS_PER_MAP)
    {
        return Err(ServiceError::InvalidArgument(format!(
            "a shard map names at most {MAX_FREE_SHARDS_PER_MAP} shards, not {}",
            m.shards.len()
        )));
    }
    Ok(req
        .shards
        .iter()
        .flat_map(|m| &m.shards)
        .filter(|l| !l.blob_id.is_empty() && !l.shard_id.is_empty())
        .map(|l| (l.blob_id.clone(), l.shard_id.clone()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a blob-server may delete: nothing a version, an upload's part
    /// or an unreleased restore hold names.
    #[tokio::test]
    async fn unnamed_leaves_out_named_and_held_shards() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = crate::raft::state_machine::StateDb::open(dir.path())
            .await
            .expect("db");
        let mut c = db.acquire().await.expect("conn");
        let row = |id: &str, version: &str, upload: &str| {
            format!(
                "INSERT INTO shard_refs (shard_id, blob_id, idx, bucket, key, version_id, \
                 upload_id, part_number, k, width, missing) \
                 VALUES ('{id}', 'b1', 0, 'bk', 'k', '{version}', '{upload}', 0, 2, 3, 0)"
            )
        };
        for sql in [
            row("of-a-version", "v1", ""),
            row("of-an-upload-part", "", "u1"),
            "INSERT INTO held_orphans (blob_id, shard_id, bytes, modified_ms, found_ms, released) \
             VALUES ('b1', 'held', 1, 1, 1, 0), ('b1', 'released', 1, 1, 1, 1)"
                .to_string(),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .execute(&mut *c)
                .await
                .expect("insert");
        }
        let ids: Vec<String> = [
            "of-a-version",
            "of-an-upload-part",
            "held",
            "released",
            "free",
        ]
        .map(String::from)
        .into();
        let free = unnamed(&mut c, &ids).await.expect("read");
        assert_eq!(free, ["released", "free"]);
    }

    fn map(n: usize) -> pb::ShardMap {
        pb::ShardMap {
            shards: (0..n)
                .map(|i| pb::ShardLocation {
                    index: i as u32,
                    blob_id: format!("blob-{i}"),
                    shard_id: format!("s-{i}"),
                    checksum: Vec::new(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn free_requests_are_bounded() {
        let ok = pb::FreeShardsRequest {
            shards: vec![map(6); MAX_FREE_MAPS],
        };
        assert_eq!(requested(&ok).expect("ok").len(), 6 * MAX_FREE_MAPS);
        let too_many = pb::FreeShardsRequest {
            shards: vec![map(1); MAX_FREE_MAPS + 1],
        };
        assert!(matches!(
            requested(&too_many),
            Err(ServiceError::InvalidArgument(_))
        ));
        let too_wide = pb::FreeShardsRequest {
            shards: vec![map(MAX_FREE_SHARDS_PER_MAP + 1)],
        };
        assert!(matches!(
            requested(&too_wide),
            Err(ServiceError::InvalidArgument(_))
        ));
        // A location without its server or id names nothing to delete.
        let mut holes = map(2);
        holes.shards[0].blob_id.clear();
        let got = requested(&pb::FreeShardsRequest {
            shards: vec![holes],
        })
        .expect("ok");
        assert_eq!(got, [("blob-1".to_string(), "s-1".to_string())]);
    }
}
