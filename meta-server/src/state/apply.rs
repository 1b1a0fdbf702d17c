//! Applies one command to the metadata DB, inside the batch transaction:
//! a batch command by command, each de-duplicated by its id and run under
//! its own savepoint, its actor's rights checked (`access`), and
//! dispatched to its topic's module.
//!
//! Deterministic: everything comes from the command (its timestamp, its
//! ids) and the log index (`seq`), never from a clock or an RNG. A topic
//! function answers, rejects ([`ApplyError::Rejected`]) or fails
//! ([`ApplyError::Storage`]); only here does a rejection roll back
//! whatever the command had written and become [`Response::Err`], and a
//! storage failure become the `Err(sqlx::Error)` that stops the state
//! machine.

use sqlx::SqliteConnection;

use super::commands::{Command, Op, Response};
use super::model::{Heartbeat, KeyHolder, Role, TlsMember};
use super::outcome::{ApplyError, Outcome, invalid};
use super::{
    access, buckets, ca_rotation, deny, durability, grants, key_rotation, lifecycle, multipart,
    object_lock, objects, orphans, public_access, reads, registry, writes,
};

/// How long a command id is remembered, in command time. Far longer than
/// any caller keeps retrying one proposal (`--call-wait-ms`).
pub const DEDUP_WINDOW_MS: i64 = 15 * 60 * 1000;

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
            let mut forgot = Forgot::default();
            for (pos, c) in cmds.iter().enumerate() {
                out.push(apply_in(conn, seq_of(index, pos), c, &mut forgot).await?);
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
    apply_in(conn, seq, cmd, &mut Forgot::default()).await
}

/// The forgetting of old answers within one batch. The commands of a
/// batch share one time (`batch::stamp`), so only the first forgets
/// anything: a later DELETE is skipped when it could find nothing — its
/// cut-off is no newer than the last one run, and no answer remembered
/// since is older than it (old logs, whose batches had one time per
/// command, replay exactly too).
struct Forgot {
    /// The cut-off of the last DELETE run.
    cutoff: i64,
    /// The oldest answer remembered since.
    oldest_since: i64,
}

impl Default for Forgot {
    fn default() -> Self {
        Self {
            cutoff: i64::MIN,
            oldest_since: i64::MAX,
        }
    }
}

/// [`apply`] within a batch.
async fn apply_in(
    conn: &mut SqliteConnection,
    seq: u64,
    cmd: &Command,
    forgot: &mut Forgot,
) -> Result<Response, sqlx::Error> {
    if !cmd.id.is_empty()
        && let Some(seen) = reads::answer_of(conn, &cmd.id).await?
    {
        return Ok(seen);
    }
    sqlx::query("SAVEPOINT cmd").execute(&mut *conn).await?;
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    let resp = match apply_op(conn, seq, cmd).await {
        Ok(resp) => {
            sqlx::query("RELEASE cmd").execute(&mut *conn).await?;
            resp
        }
        Err(ApplyError::Rejected(rejected)) => {
            // Each replica counts its own applies: a refusal once per node.
            metrics::counter!("hamster_apply_errors_total", "code" => rejected.code().as_str())
                .increment(1);
            sqlx::query("ROLLBACK TO cmd").execute(&mut *conn).await?;
            sqlx::query("RELEASE cmd").execute(&mut *conn).await?;
            Response::Err(rejected)
        }
        Err(ApplyError::Storage(e)) => return Err(e),
    };
    if !cmd.id.is_empty() {
        writes::remember_answer(conn, &cmd.id, cmd.at_ms, &writes::json(&resp)?).await?;
        // Forget old ids, by command time: the same on every replica.
        forgot.oldest_since = forgot.oldest_since.min(cmd.at_ms);
        let cutoff = cmd.at_ms.saturating_sub(DEDUP_WINDOW_MS);
        if cutoff > forgot.cutoff || cutoff > forgot.oldest_since {
            writes::forget_answers_before(conn, cutoff).await?;
            *forgot = Forgot {
                cutoff,
                oldest_since: i64::MAX,
            };
        }
    }
    Ok(resp)
}

/// Checks the actor's rights, then hands the command to its topic.
async fn apply_op(c: &mut SqliteConnection, seq: i64, cmd: &Command) -> Outcome {
    // One place decides who may (ADR 0027), before any topic reads or
    // writes, under the command's savepoint like the rest.
    access::check(c, cmd).await?;
    let at = cmd.at_ms;
    match &cmd.op {
        Op::CreateBucket {
            name,
            object_lock_enabled,
            owner,
        } => {
            let by = cmd.by.as_ref();
            buckets::create(c, at, by, name, *object_lock_enabled, owner.as_deref()).await
        }
        Op::DeleteBucket {
            name,
            abort_uploads,
        } => buckets::delete(c, name, *abort_uploads).await,
        Op::CommitVersion {
            version,
            if_match,
            if_none_match,
        } => {
            let cond = objects::Condition {
                if_match: if_match.as_deref(),
                if_none_match: *if_none_match,
            };
            objects::commit(c, seq, at, cmd.by.as_ref(), version.clone(), cond).await
        }
        Op::DeleteObject {
            bucket,
            key,
            version_id,
            marker_version_id,
            bypass_governance,
        } => {
            objects::delete(
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
            object_lock::put_bucket_versioning(c, bucket, *status).await
        }
        Op::PutLockConfiguration {
            bucket,
            default_retention,
            enable,
        } => {
            let d = default_retention.as_ref();
            object_lock::put_lock_configuration(c, cmd.by.as_ref(), bucket, d, *enable).await
        }
        Op::PutPublicAccessBlock { bucket, config } => {
            public_access::put_public_access_block(c, bucket, config.as_ref()).await
        }
        Op::PutRetention {
            bucket,
            key,
            version_id,
            mode,
            retain_until_ms,
            bypass_governance,
        } => {
            object_lock::put_retention(
                c,
                at,
                cmd.by.as_ref(),
                bucket,
                key,
                version_id,
                *mode,
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
        } => object_lock::put_legal_hold(c, bucket, key, version_id, *on).await,
        Op::BeginMultipart { upload } => multipart::begin(c, at, cmd.by.as_ref(), upload).await,
        Op::CommitPart {
            bucket,
            key,
            upload_id,
            part,
        } => multipart::commit_part(c, bucket, key, upload_id, part).await,
        Op::CompleteMultipart {
            bucket,
            key,
            upload_id,
            parts,
            version_id,
            if_match,
            if_none_match,
        } => {
            let cond = objects::Condition {
                if_match: if_match.as_deref(),
                if_none_match: *if_none_match,
            };
            let (parts, id) = (parts.as_slice(), version_id.as_str());
            multipart::complete(c, seq, at, bucket, key, upload_id, parts, id, cond).await
        }
        Op::AbortMultipart {
            bucket,
            key,
            upload_id,
        } => multipart::abort(c, bucket, key, upload_id).await,
        Op::PutAccessKey { key } => registry::put_access_key(c, key).await,
        Op::DeleteAccessKey { id } => registry::delete_access_key(c, id).await,
        Op::PutJoinToken { token } => registry::put_join_token(c, token).await,
        Op::SetProfile {
            data_shards,
            parity_shards,
        } => registry::set_profile(c, *data_shards, *parity_shards).await,
        Op::UseJoinToken {
            id,
            secret_hash,
            role,
        } => registry::use_join_token(c, at, id, secret_hash, *role).await,
        Op::RegisterBlob { server } => registry::register_blob(c, at, server).await,
        Op::BlobHeartbeat {
            id,
            capacity_bytes,
            free_bytes,
            shards_stored,
            bytes_stored,
        } => {
            let hb = Heartbeat {
                id: id.clone(),
                capacity_bytes: *capacity_bytes,
                free_bytes: *free_bytes,
                shards_stored: *shards_stored,
                bytes_stored: *bytes_stored,
                at_ms: at,
            };
            registry::blob_heartbeat(c, &hb).await
        }
        Op::KeyHolderSeen {
            id,
            role,
            current,
            next,
        } => {
            if *role == Role::Blob {
                lifecycle::check_not_removed(c, id).await?;
            }
            let h = KeyHolder {
                id: id.clone(),
                role: *role,
                current_fp: current.clone(),
                next_fp: next.clone(),
                last_seen_ms: at,
            };
            key_rotation::key_holder_seen(c, at, &h).await
        }
        Op::StartKeyRotation { old, new } => key_rotation::start(c, at, old, new).await,
        Op::Rewrap { new, items } => key_rotation::rewrap(c, new, items).await,
        Op::FinishKeyRotation => key_rotation::finish(c).await,
        Op::InitTrust {
            cas,
            issuing,
            issuer,
        } => ca_rotation::init(c, cas, issuing, issuer).await,
        Op::MemberSeen {
            id,
            role,
            generation,
            cert_ca,
        } => {
            if *role == Role::Blob {
                lifecycle::check_not_removed(c, id).await?;
            }
            let m = TlsMember {
                id: id.clone(),
                role: *role,
                generation: *generation,
                cert_ca: cert_ca.clone(),
                last_seen_ms: at,
            };
            ca_rotation::member_seen(c, at, &m).await
        }
        Op::StartCaRotation {
            ca_pem,
            issuer,
            replace,
        } => ca_rotation::start(c, at, ca_pem, issuer, *replace).await,
        Op::ForgetMember { role, id } => ca_rotation::forget_member(c, *role, id).await,
        Op::DenyMember { role, id } => deny::deny_member(c, at, *role, id).await,
        Op::AdvanceCaRotation { from } => ca_rotation::advance(c, at, *from).await,
        Op::MarkBlobDown {
            id,
            silent_since_ms,
        } => durability::mark_blob_down(c, id, *silent_since_ms).await,
        Op::RecordScrub {
            blob_id,
            bad,
            pass_finished_ms,
        } => durability::record_scrub(c, at, blob_id, bad, *pass_finished_ms).await,
        Op::SwapShards {
            unit,
            swaps,
            sources,
        } => durability::swap_shards(c, unit, swaps, sources).await,
        Op::DrainBlob { id, to } => lifecycle::drain(c, id, to).await,
        Op::UndrainBlob { id } => lifecycle::undrain(c, at, id).await,
        Op::FinishDrain { id } => lifecycle::finish_drain(c, id).await,
        Op::RemoveBlob { id, force } => lifecycle::remove(c, at, id, *force).await,
        Op::MoveShards {
            unit,
            swaps,
            sources,
        } => lifecycle::move_shards(c, unit, swaps, sources).await,
        Op::HoldOrphans { blob_id, shards } => orphans::hold(c, at, blob_id, shards).await,
        Op::ReleaseOrphans { blob_id } => orphans::release(c, blob_id.as_deref()).await,
        Op::ForgetOrphans { blob_id, shard_ids } => orphans::forget(c, blob_id, shard_ids).await,
        Op::AllowBucket {
            bucket,
            key_id,
            read,
            write,
            owner,
        } => grants::allow(c, bucket, key_id, *read, *write, *owner).await,
        Op::DenyBucket { bucket, key_id } => grants::deny(c, bucket, key_id).await,
        Op::SetBucket {
            bucket,
            owner,
            max_retention_days,
        } => grants::set_bucket(c, bucket, owner.as_deref(), *max_retention_days).await,
        Op::SetBucketDefaults { max_retention_days } => {
            grants::set_defaults(c, *max_retention_days).await
        }
        Op::AdoptBuckets { owner } => grants::adopt(c, owner.as_deref()).await,
        // Batches are unpacked by apply_entry; one inside a batch is refused.
        Op::Batch(_) => invalid("a batch inside a batch"),
        // The version that wrote it refused it too (ADR 0020).
        Op::Unreadable { why, .. } => invalid(format!(
            "a command from before format versions that this version cannot read: {why}"
        )),
    }
}
