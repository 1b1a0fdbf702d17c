//! Applies one command to the metadata DB, inside the batch transaction.
//!
//! Deterministic: everything comes from the command (its timestamp, its
//! ids) and the log index (`seq`), never from a clock or an RNG. Each
//! command runs under a savepoint: a rejection rolls back whatever it had
//! written and answers [`Response::Err`]; only a storage failure is an
//! `Err(sqlx::Error)`, which stops the state machine.

use md5::{Digest, Md5};
use sqlx::SqliteConnection;

use super::commands::{Command, MetaError, Op, Response};
use super::lock::{self, deletion_blocked};
use super::model::{AccessKey, BlobServer, JoinToken, Part, ShardMap, Upload, Version};
use super::queries as q;
use super::rotation;
use super::trust;

/// S3's minimum size of every part but the last.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// The version id of the "null" version (unversioned and suspended buckets).
pub const NULL_VERSION: &str = "null";

pub(crate) type Outcome = Result<Result<Response, MetaError>, sqlx::Error>;

/// How long a command id is remembered, in command time. Far longer than
/// any caller keeps retrying one proposal (`--call-wait-ms`).
pub const DEDUP_WINDOW_MS: i64 = 15 * 60 * 1000;

fn codec_err(e: serde_json::Error) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(e))
}

/// Bits of `seq` below the log index: a command's position in its batch.
pub const BATCH_BITS: u32 = 16;

/// The `seq` of the `pos`-th command of the entry at log index `index`:
/// unique, and in commit order.
pub fn seq_of(index: u64, pos: usize) -> u64 {
    (index << BATCH_BITS) | (pos as u64 & ((1 << BATCH_BITS) - 1))
}

/// Applies the command of the log entry at `index`: a batch command by
/// command, each at its own `seq`.
pub async fn apply_entry(
    conn: &mut SqliteConnection,
    index: u64,
    cmd: &Command,
) -> Result<Response, sqlx::Error> {
    match &cmd.op {
        Op::Batch(cmds) => {
            let mut out = Vec::with_capacity(cmds.len());
            for (pos, c) in cmds.iter().enumerate() {
                out.push(apply(conn, seq_of(index, pos), c).await?);
            }
            Ok(Response::Batch(out))
        }
        _ => apply(conn, seq_of(index, 0), cmd).await,
    }
}

/// Applies `cmd` as the command with sequence number `seq`.
pub async fn apply(
    conn: &mut SqliteConnection,
    seq: u64,
    cmd: &Command,
) -> Result<Response, sqlx::Error> {
    if !cmd.id.is_empty() {
        let seen: Option<String> =
            sqlx::query_scalar("SELECT response FROM applied_commands WHERE id = ?")
                .bind(&cmd.id)
                .fetch_optional(&mut *conn)
                .await?;
        if let Some(seen) = seen {
            return serde_json::from_str(&seen).map_err(codec_err);
        }
    }
    sqlx::query("SAVEPOINT cmd").execute(&mut *conn).await?;
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    let resp = match apply_op(conn, seq, cmd).await {
        Ok(Ok(resp)) => {
            sqlx::query("RELEASE cmd").execute(&mut *conn).await?;
            resp
        }
        Ok(Err(rejected)) => {
            sqlx::query("ROLLBACK TO cmd").execute(&mut *conn).await?;
            sqlx::query("RELEASE cmd").execute(&mut *conn).await?;
            Response::Err(rejected)
        }
        Err(e) => return Err(e),
    };
    if !cmd.id.is_empty() {
        let json = serde_json::to_string(&resp).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        sqlx::query("INSERT INTO applied_commands (id, at_ms, response) VALUES (?, ?, ?)")
            .bind(&cmd.id)
            .bind(cmd.at_ms)
            .bind(json)
            .execute(&mut *conn)
            .await?;
        // Forget old ids, by command time: the same on every replica.
        sqlx::query("DELETE FROM applied_commands WHERE at_ms < ?")
            .bind(cmd.at_ms.saturating_sub(DEDUP_WINDOW_MS))
            .execute(&mut *conn)
            .await?;
    }
    Ok(resp)
}

async fn apply_op(c: &mut SqliteConnection, seq: i64, cmd: &Command) -> Outcome {
    let at = cmd.at_ms;
    match &cmd.op {
        Op::CreateBucket {
            name,
            object_lock_enabled,
        } => create_bucket(c, at, name, *object_lock_enabled).await,
        Op::DeleteBucket { name } => delete_bucket(c, name).await,
        Op::CommitVersion { version } => commit_version(c, seq, at, version.clone()).await,
        Op::DeleteObject {
            bucket,
            key,
            version_id,
            marker_version_id,
            bypass_governance,
        } => {
            delete_object(
                c,
                seq,
                at,
                bucket,
                key,
                version_id.as_deref(),
                marker_version_id,
                *bypass_governance,
            )
            .await
        }
        Op::PutBucketVersioning { bucket, status } => {
            lock::put_bucket_versioning(c, bucket, status).await
        }
        Op::PutLockConfiguration {
            bucket,
            default_retention,
        } => lock::put_lock_configuration(c, bucket, default_retention.as_ref()).await,
        Op::PutRetention {
            bucket,
            key,
            version_id,
            mode,
            retain_until_ms,
            bypass_governance,
        } => {
            lock::put_retention(
                c,
                at,
                bucket,
                key,
                version_id,
                mode,
                *retain_until_ms,
                *bypass_governance,
            )
            .await
        }
        Op::PutLegalHold {
            bucket,
            key,
            version_id,
            on,
        } => lock::put_legal_hold(c, bucket, key, version_id, *on).await,
        Op::BeginMultipart { upload } => begin_multipart(c, at, upload).await,
        Op::CommitPart {
            bucket,
            key,
            upload_id,
            part,
        } => commit_part(c, bucket, key, upload_id, part).await,
        Op::CompleteMultipart {
            bucket,
            key,
            upload_id,
            parts,
            version_id,
        } => complete_multipart(c, seq, at, bucket, key, upload_id, parts, version_id).await,
        Op::AbortMultipart {
            bucket,
            key,
            upload_id,
        } => abort_multipart(c, bucket, key, upload_id).await,
        Op::PutAccessKey { key } => put_access_key(c, key).await,
        Op::DeleteAccessKey { id } => delete_access_key(c, id).await,
        Op::PutJoinToken { token } => put_join_token(c, token).await,
        Op::SetProfile {
            data_shards,
            parity_shards,
        } => set_profile(c, *data_shards, *parity_shards).await,
        Op::UseJoinToken {
            id,
            secret_hash,
            role,
        } => use_join_token(c, at, id, secret_hash, role).await,
        Op::RegisterBlob { server } => register_blob(c, at, server).await,
        Op::BlobHeartbeat {
            id,
            capacity_bytes,
            free_bytes,
        } => blob_heartbeat(c, at, id, *capacity_bytes, *free_bytes).await,
        Op::KeyHolderSeen {
            id,
            role,
            current,
            next,
        } => {
            let h = super::model::KeyHolder {
                id: id.clone(),
                role: role.clone(),
                current_fp: current.clone(),
                next_fp: next.clone(),
                last_seen_ms: at,
            };
            rotation::key_holder_seen(c, at, &h).await
        }
        Op::StartKeyRotation { old, new } => rotation::start(c, at, old, new).await,
        Op::Rewrap { new, items } => rotation::rewrap(c, new, items).await,
        Op::FinishKeyRotation => rotation::finish(c).await,
        Op::InitTrust {
            cas,
            issuing,
            issuer,
        } => trust::init(c, cas, issuing, issuer).await,
        Op::MemberSeen {
            id,
            role,
            generation,
            cert_ca,
        } => {
            let m = super::model::TlsMember {
                id: id.clone(),
                role: role.clone(),
                generation: *generation,
                cert_ca: cert_ca.clone(),
                last_seen_ms: at,
            };
            trust::member_seen(c, at, &m).await
        }
        Op::StartCaRotation {
            ca_pem,
            issuer,
            replace,
        } => trust::start(c, at, ca_pem, issuer, *replace).await,
        Op::ForgetMember { role, id } => trust::forget_member(c, role, id).await,
        Op::AdvanceCaRotation { from } => trust::advance(c, at, from).await,
        // Batches are unpacked by apply_entry; one inside a batch is refused.
        Op::Batch(_) => Ok(Err(MetaError::InvalidArgument(
            "a batch inside a batch".into(),
        ))),
    }
}

/// S3 bucket naming: 3-63 of [a-z0-9.-], starting and ending alphanumeric.
pub fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && !name.contains("..")
}

/// S3 keys: 1 to 1024 bytes of UTF-8 (a `String` is UTF-8 already).
pub fn valid_key(key: &str) -> bool {
    (1..=1024).contains(&key.len())
}

async fn create_bucket(c: &mut SqliteConnection, at: i64, name: &str, lock: bool) -> Outcome {
    if !valid_bucket_name(name) {
        return Ok(Err(MetaError::InvalidArgument(format!(
            "invalid bucket name {name:?}"
        ))));
    }
    if q::bucket(c, name).await?.is_some() {
        return Ok(Err(MetaError::BucketAlreadyExists(name.into())));
    }
    // Object lock needs versioning, so a lock bucket starts versioned.
    let versioning = if lock { "Enabled" } else { "" };
    sqlx::query("INSERT INTO buckets (name, created_at_ms, versioning, object_lock_enabled, lock_config) VALUES (?, ?, ?, ?, '')")
        .bind(name)
        .bind(at)
        .bind(versioning)
        .bind(lock)
        .execute(&mut *c)
        .await?;
    Ok(Ok(Response::Bucket(super::model::Bucket {
        name: name.into(),
        created_at_ms: at,
        versioning: versioning.into(),
        object_lock_enabled: lock,
        default_retention: None,
    })))
}

async fn delete_bucket(c: &mut SqliteConnection, name: &str) -> Outcome {
    if q::bucket(c, name).await?.is_none() {
        return Ok(Err(MetaError::NoSuchBucket(name.into())));
    }
    let versions: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM versions WHERE bucket = ? LIMIT 1)",
    )
    .bind(name)
    .fetch_one(&mut *c)
    .await?;
    let uploads: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM uploads WHERE bucket = ? LIMIT 1)")
            .bind(name)
            .fetch_one(&mut *c)
            .await?;
    if versions + uploads > 0 {
        return Ok(Err(MetaError::BucketNotEmpty(name.into())));
    }
    sqlx::query("DELETE FROM buckets WHERE name = ?")
        .bind(name)
        .execute(&mut *c)
        .await?;
    Ok(Ok(Response::Ok))
}

/// Shard maps a version holds: its own, or each of its parts'.
fn shards_of(v: &Version) -> Vec<ShardMap> {
    v.shard_map
        .iter()
        .cloned()
        .chain(v.parts.iter().filter_map(|p| p.shard_map.clone()))
        .collect()
}

/// Whether `new` is a retried proposal of the write that stored `old`.
/// Shard ids are fresh per write, so the same non-empty shards, size, ETag
/// and wrapped key mean the same upload. A retry is stamped anew, so its
/// timestamps (and a default retention counted from them) do not count.
fn same_write(old: &Version, new: &Version) -> bool {
    let shards = shards_of(old);
    !shards.is_empty()
        && shards == shards_of(new)
        && old.size == new.size
        && old.etag == new.etag
        && old.wrapped_dek == new.wrapped_dek
}

/// What storing a version answers: the version as stored, the shards of
/// the version it replaced, and whether the bucket was ever versioned.
type Stored = (Version, Vec<ShardMap>, bool);

/// Stores `v` at `seq`, with the bucket's default retention if it carries
/// none. On a bucket that is not versioning-enabled the version becomes
/// the "null" version and replaces the previous one.
async fn store_version(
    c: &mut SqliteConnection,
    seq: i64,
    at: i64,
    v: Version,
) -> Result<Result<Stored, MetaError>, sqlx::Error> {
    let Some(bucket) = q::bucket(c, &v.bucket).await? else {
        return Ok(Err(MetaError::NoSuchBucket(v.bucket)));
    };
    if !valid_key(&v.key) {
        return Ok(Err(MetaError::InvalidArgument(
            "key must be 1 to 1024 bytes".into(),
        )));
    }
    let mut v = lock::with_default(&bucket, v, at);
    let versioned = !bucket.versioning.is_empty();
    let mut freed = Vec::new();
    if bucket.versioning == lock::ENABLED {
        if v.version_id.is_empty() || v.version_id == NULL_VERSION {
            return Ok(Err(MetaError::InvalidArgument(
                "a versioned commit needs a version id".into(),
            )));
        }
        if let Some(existing) = q::version(c, &v.bucket, &v.key, &v.version_id).await? {
            // A retried proposal of the same commit is answered, not doubled.
            return if same_write(&existing.0, &v) {
                Ok(Ok((existing.0, Vec::new(), versioned)))
            } else {
                Ok(Err(MetaError::InvalidArgument(format!(
                    "version id {} already used",
                    v.version_id
                ))))
            };
        }
    } else {
        v.version_id = NULL_VERSION.into();
        if let Some((old, _)) = q::version(c, &v.bucket, &v.key, NULL_VERSION).await? {
            // A retried proposal is answered, not redone: redoing it would
            // answer the kept object's own shards as freed.
            if same_write(&old, &v) {
                return Ok(Ok((old, Vec::new(), versioned)));
            }
            // Replacing the null version destroys it: the lock rules apply.
            if let Some(why) = deletion_blocked(&old, at, false) {
                return Ok(Err(MetaError::AccessDenied(why)));
            }
            freed = shards_of(&old);
            q::delete_version(c, &v.bucket, &v.key, NULL_VERSION).await?;
        }
    }
    q::insert_version(c, seq, &v).await?;
    Ok(Ok((v, freed, versioned)))
}

async fn commit_version(c: &mut SqliteConnection, seq: i64, at: i64, v: Version) -> Outcome {
    if v.delete_marker {
        return Ok(Err(MetaError::InvalidArgument(
            "delete markers are made by DeleteObject".into(),
        )));
    }
    // Parts are chosen by CompleteMultipartUpload from what was uploaded;
    // a caller naming its own could point at another object's shards.
    if !v.parts.is_empty() {
        return Ok(Err(MetaError::InvalidArgument(
            "parts are committed by CompleteMultipartUpload".into(),
        )));
    }
    if let Some(b) = q::bucket(c, &v.bucket).await?
        && let Err(e) = lock::check_new_lock(&b, &v, at)
    {
        return Ok(Err(e));
    }
    if let Err(e) = rotation::check_write_key(c, &v.kek_fingerprint).await? {
        return Ok(Err(e));
    }
    Ok(store_version(c, seq, at, v)
        .await?
        .map(|(version, freed, versioned)| Response::Committed {
            version,
            freed,
            versioned,
        }))
}

#[allow(clippy::too_many_arguments)]
async fn delete_object(
    c: &mut SqliteConnection,
    seq: i64,
    at: i64,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    marker_version_id: &str,
    bypass: bool,
) -> Outcome {
    let Some(b) = q::bucket(c, bucket).await? else {
        return Ok(Err(MetaError::NoSuchBucket(bucket.into())));
    };
    if let Some(id) = version_id {
        let Some((v, _)) = q::version(c, bucket, key, id).await? else {
            return Ok(Err(MetaError::NoSuchVersion(id.into())));
        };
        if let Some(why) = deletion_blocked(&v, at, bypass) {
            return Ok(Err(MetaError::AccessDenied(why)));
        }
        q::delete_version(c, bucket, key, id).await?;
        return Ok(Ok(Response::Deleted {
            version_id: id.into(),
            delete_marker: v.delete_marker,
            freed: shards_of(&v),
        }));
    }
    let marker = |id: &str| Version {
        bucket: bucket.into(),
        key: key.into(),
        version_id: id.into(),
        created_at_ms: at,
        delete_marker: true,
        ..Version::default()
    };
    match b.versioning.as_str() {
        lock::ENABLED => {
            if marker_version_id.is_empty() || marker_version_id == NULL_VERSION {
                return Ok(Err(MetaError::InvalidArgument(
                    "a delete marker needs a version id".into(),
                )));
            }
            // The id may be taken: by this same marker (a retried proposal,
            // answered, not redone) or by another version (refused). The
            // insert would fail and stop the state machine.
            if let Some((existing, _)) = q::version(c, bucket, key, marker_version_id).await? {
                if existing != marker(marker_version_id) {
                    return Ok(Err(MetaError::InvalidArgument(format!(
                        "version id {marker_version_id} already used"
                    ))));
                }
                return Ok(Ok(Response::Deleted {
                    version_id: marker_version_id.into(),
                    delete_marker: true,
                    freed: Vec::new(),
                }));
            }
            q::insert_version(c, seq, &marker(marker_version_id)).await?;
            Ok(Ok(Response::Deleted {
                version_id: marker_version_id.into(),
                delete_marker: true,
                freed: Vec::new(),
            }))
        }
        lock::SUSPENDED => {
            // The null version gives way to a null delete marker.
            let mut freed = Vec::new();
            if let Some((old, _)) = q::version(c, bucket, key, NULL_VERSION).await? {
                if let Some(why) = deletion_blocked(&old, at, bypass) {
                    return Ok(Err(MetaError::AccessDenied(why)));
                }
                freed = shards_of(&old);
                q::delete_version(c, bucket, key, NULL_VERSION).await?;
            }
            q::insert_version(c, seq, &marker(NULL_VERSION)).await?;
            Ok(Ok(Response::Deleted {
                version_id: NULL_VERSION.into(),
                delete_marker: true,
                freed,
            }))
        }
        _ => {
            // Unversioned: remove the object if there is one; S3 answers
            // success either way.
            let mut freed = Vec::new();
            if let Some((old, _)) = q::version(c, bucket, key, NULL_VERSION).await? {
                freed = shards_of(&old);
                q::delete_version(c, bucket, key, NULL_VERSION).await?;
            }
            Ok(Ok(Response::Deleted {
                version_id: String::new(),
                delete_marker: false,
                freed,
            }))
        }
    }
}

async fn begin_multipart(c: &mut SqliteConnection, at: i64, u: &Upload) -> Outcome {
    let Some(bucket) = q::bucket(c, &u.bucket).await? else {
        return Ok(Err(MetaError::NoSuchBucket(u.bucket.clone())));
    };
    // The lock settings the completed object will carry, checked now.
    if let Err(e) = lock::check_new_lock(&bucket, &u.template, at) {
        return Ok(Err(e));
    }
    if !valid_key(&u.key) {
        return Ok(Err(MetaError::InvalidArgument(
            "key must be 1 to 1024 bytes".into(),
        )));
    }
    if u.upload_id.is_empty() || q::upload(c, &u.upload_id).await?.is_some() {
        return Ok(Err(MetaError::InvalidArgument(
            "upload id missing or already used".into(),
        )));
    }
    let template =
        serde_json::to_string(&u.template).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query("INSERT INTO uploads (upload_id, bucket, key, initiated_at_ms, template) VALUES (?, ?, ?, ?, ?)")
        .bind(&u.upload_id)
        .bind(&u.bucket)
        .bind(&u.key)
        .bind(u.initiated_at_ms)
        .bind(template)
        .execute(&mut *c)
        .await?;
    Ok(Ok(Response::Upload(u.clone())))
}

/// The upload, if it exists and belongs to bucket/key.
async fn upload_for(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<Result<Upload, MetaError>, sqlx::Error> {
    match q::upload(c, upload_id).await? {
        Some(u) if u.bucket == bucket && u.key == key => Ok(Ok(u)),
        _ => Ok(Err(MetaError::NoSuchUpload(upload_id.into()))),
    }
}

async fn commit_part(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
    upload_id: &str,
    part: &Part,
) -> Outcome {
    if let Err(e) = upload_for(c, bucket, key, upload_id).await? {
        return Ok(Err(e));
    }
    if let Err(e) = rotation::check_write_key(c, &part.kek_fingerprint).await? {
        return Ok(Err(e));
    }
    if !(1..=10_000).contains(&part.part_number) {
        return Ok(Err(MetaError::InvalidArgument(
            "part number must be 1 to 10000".into(),
        )));
    }
    let previous = q::parts(c, upload_id)
        .await?
        .into_iter()
        .find(|p| p.part_number == part.part_number);
    // A retried commit of the same part replaces nothing: answering its
    // own shards as replaced would get them deleted under the upload.
    let replaced = match previous {
        Some(p) if p.shard_map == part.shard_map => None,
        Some(p) => p.shard_map,
        None => None,
    };
    q::upsert_part(c, upload_id, part).await?;
    Ok(Ok(Response::PartStored { replaced }))
}

/// S3's multipart ETag: MD5 of the parts' binary MD5s, then "-N".
pub fn multipart_etag(part_etags: &[String]) -> Option<String> {
    let mut h = Md5::new();
    for e in part_etags {
        h.update(hex::decode(e.trim_matches('"')).ok()?);
    }
    Some(format!(
        "{}-{}",
        hex::encode(h.finalize()),
        part_etags.len()
    ))
}

#[allow(clippy::too_many_arguments)]
async fn complete_multipart(
    c: &mut SqliteConnection,
    seq: i64,
    at: i64,
    bucket: &str,
    key: &str,
    upload_id: &str,
    wanted: &[(u32, String)],
    version_id: &str,
) -> Outcome {
    let upload = match upload_for(c, bucket, key, upload_id).await? {
        Ok(u) => u,
        Err(e) => return Ok(Err(e)),
    };
    if wanted.is_empty() {
        return Ok(Err(MetaError::InvalidArgument(
            "a multipart upload needs at least one part".into(),
        )));
    }
    if wanted.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Ok(Err(MetaError::InvalidPartOrder));
    }
    let mut stored = q::parts(c, upload_id).await?;
    let mut chosen = Vec::with_capacity(wanted.len());
    for (i, (number, etag)) in wanted.iter().enumerate() {
        let Some(pos) = stored.iter().position(|p| p.part_number == *number) else {
            return Ok(Err(MetaError::InvalidPart(format!(
                "part {number} was not uploaded"
            ))));
        };
        if stored[pos].etag.trim_matches('"') != etag.trim_matches('"') {
            return Ok(Err(MetaError::InvalidPart(format!(
                "part {number} has another ETag"
            ))));
        }
        let part = stored.swap_remove(pos);
        if i + 1 < wanted.len() && part.size < MIN_PART_SIZE {
            return Ok(Err(MetaError::EntityTooSmall(*number)));
        }
        chosen.push(part);
    }
    let etags: Vec<String> = chosen.iter().map(|p| p.etag.clone()).collect();
    let Some(etag) = multipart_etag(&etags) else {
        return Ok(Err(MetaError::InvalidPart(
            "a part ETag is not an MD5".into(),
        )));
    };
    let version = Version {
        bucket: bucket.into(),
        key: key.into(),
        version_id: version_id.into(),
        size: chosen.iter().map(|p| p.size).sum(),
        etag,
        created_at_ms: at,
        delete_marker: false,
        shard_map: None,
        wrapped_dek: Vec::new(),
        kek_fingerprint: String::new(),
        parts: chosen,
        ..upload.template
    };
    let (version, mut freed, versioned) = match store_version(c, seq, at, version).await? {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    // Parts uploaded but left out of the object are garbage now.
    freed.extend(stored.into_iter().filter_map(|p| p.shard_map));
    q::delete_upload(c, upload_id).await?;
    Ok(Ok(Response::Completed {
        version,
        freed,
        versioned,
    }))
}

async fn abort_multipart(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Outcome {
    if let Err(e) = upload_for(c, bucket, key, upload_id).await? {
        return Ok(Err(e));
    }
    let freed = q::parts(c, upload_id)
        .await?
        .into_iter()
        .filter_map(|p| p.shard_map)
        .collect();
    q::delete_upload(c, upload_id).await?;
    Ok(Ok(Response::Aborted { freed }))
}

async fn put_access_key(c: &mut SqliteConnection, k: &AccessKey) -> Outcome {
    if k.id.is_empty() || k.sealed_secret.is_empty() || k.kek_fingerprint.is_empty() {
        return Ok(Err(MetaError::InvalidArgument(
            "an access key needs an id, a sealed secret and its master-key fingerprint".into(),
        )));
    }
    // A secret sealed under any key but the write key would be unreadable
    // once that key is dropped: the split-key guard covers secrets too.
    if let Err(e) = rotation::check_write_key(c, &k.kek_fingerprint).await? {
        return Ok(Err(e));
    }
    if q::access_key(c, &k.id).await?.is_some() {
        return Ok(Err(MetaError::InvalidArgument(format!(
            "access key {} exists",
            k.id
        ))));
    }
    sqlx::query("INSERT INTO access_keys (id, name, sealed_secret, created_at_ms, enabled, kek_fingerprint) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(&k.id)
        .bind(&k.name)
        .bind(&k.sealed_secret)
        .bind(k.created_at_ms)
        .bind(k.enabled)
        .bind(&k.kek_fingerprint)
        .execute(&mut *c)
        .await?;
    Ok(Ok(Response::Ok))
}

async fn delete_access_key(c: &mut SqliteConnection, id: &str) -> Outcome {
    let n = sqlx::query("DELETE FROM access_keys WHERE id = ?")
        .bind(id)
        .execute(&mut *c)
        .await?;
    if n.rows_affected() == 0 {
        return Ok(Err(MetaError::NoSuchAccessKey(id.into())));
    }
    Ok(Ok(Response::Ok))
}

/// Most shards an object may have (each on its own blob-server).
pub const MAX_SHARDS: u32 = 32;

async fn set_profile(c: &mut SqliteConnection, k: u32, m: u32) -> Outcome {
    if (k, m) == (0, 0) {
        q::put_setting(c, "profile", None).await?;
        return Ok(Ok(Response::Ok));
    }
    if k == 0 || k.saturating_add(m) > MAX_SHARDS {
        return Ok(Err(MetaError::InvalidArgument(format!(
            "profile {k}+{m}: need 1 <= K and K+M <= {MAX_SHARDS}"
        ))));
    }
    q::put_setting(c, "profile", Some(&format!("{k}+{m}"))).await?;
    Ok(Ok(Response::Ok))
}

async fn put_join_token(c: &mut SqliteConnection, t: &JoinToken) -> Outcome {
    if t.id.is_empty() || t.secret_hash.is_empty() || !matches!(t.role.as_str(), "blob" | "gateway")
    {
        return Ok(Err(MetaError::InvalidArgument(
            "a join token needs an id, a secret hash and the role blob or gateway".into(),
        )));
    }
    sqlx::query(
        "INSERT OR REPLACE INTO join_tokens (id, role, secret_hash, uses_left, expires_at_ms, created_at_ms) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&t.id)
    .bind(&t.role)
    .bind(&t.secret_hash)
    .bind(i64::from(t.uses_left))
    .bind(t.expires_at_ms)
    .bind(t.created_at_ms)
    .execute(&mut *c)
    .await?;
    Ok(Ok(Response::Ok))
}

/// The checks run here, at the command's time, so a replayed or forwarded
/// use can never spend a token twice or after it expired.
async fn use_join_token(
    c: &mut SqliteConnection,
    at: i64,
    id: &str,
    secret_hash: &str,
    role: &str,
) -> Outcome {
    let Some(t) = q::join_token(c, id).await? else {
        return Ok(Err(MetaError::AccessDenied("unknown join token".into())));
    };
    let refuse = |why: &str| {
        Ok(Err(MetaError::AccessDenied(format!(
            "join token {id}: {why}"
        ))))
    };
    if t.secret_hash != secret_hash {
        return refuse("wrong secret");
    }
    if t.role != role {
        return refuse("issued for another role");
    }
    if t.expires_at_ms <= at {
        return refuse("expired");
    }
    if t.uses_left == 0 {
        return refuse("used up");
    }
    sqlx::query("UPDATE join_tokens SET uses_left = uses_left - 1 WHERE id = ?")
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(Ok(Response::Ok))
}

async fn register_blob(c: &mut SqliteConnection, at: i64, s: &BlobServer) -> Outcome {
    if s.id.is_empty() || s.address.is_empty() {
        return Ok(Err(MetaError::InvalidArgument(
            "a blob-server needs an id and an address".into(),
        )));
    }
    sqlx::query(
        "INSERT INTO blob_servers (id, address, failure_domain, capacity_bytes, free_bytes, state, last_heartbeat_ms)
         VALUES (?, ?, ?, ?, ?, 'active', ?)
         ON CONFLICT(id) DO UPDATE SET address = excluded.address, failure_domain = excluded.failure_domain,
           capacity_bytes = excluded.capacity_bytes, free_bytes = excluded.free_bytes,
           state = 'active', last_heartbeat_ms = excluded.last_heartbeat_ms",
    )
    .bind(&s.id)
    .bind(&s.address)
    .bind(&s.failure_domain)
    .bind(q::to_i64(s.capacity_bytes))
    .bind(q::to_i64(s.free_bytes))
    .bind(at)
    .execute(&mut *c)
    .await?;
    Ok(Ok(Response::Ok))
}

async fn blob_heartbeat(
    c: &mut SqliteConnection,
    at: i64,
    id: &str,
    capacity: u64,
    free: u64,
) -> Outcome {
    let n = sqlx::query("UPDATE blob_servers SET capacity_bytes = ?, free_bytes = ?, last_heartbeat_ms = ? WHERE id = ?")
        .bind(q::to_i64(capacity))
        .bind(q::to_i64(free))
        .bind(at)
        .bind(id)
        .execute(&mut *c)
        .await?;
    if n.rows_affected() == 0 {
        return Ok(Err(MetaError::NoSuchBlobServer(id.into())));
    }
    Ok(Ok(Response::Ok))
}
