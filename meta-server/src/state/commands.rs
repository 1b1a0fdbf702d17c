//! Commands in the Raft log, and what applying them answers.
//!
//! The node that proposes a command stamps it with the time and makes any
//! ids it needs (version ids, upload ids) *before* proposing, so every
//! replica applies exactly the same thing: no clock and no randomness in
//! apply. A rejected command answers [`Response::Err`] and changes nothing.

use serde::{Deserialize, Serialize};

use super::model::{
    AccessKey, BadShard, BlobServer, CaPhase, DefaultRetention, HeldShard, JoinToken, LockMode,
    Part, PublicAccessBlock, Rewrapped, Role, ShardMap, ShardSwap, Unit, Upload, Version,
    Versioning,
};

/// One log entry's payload. Stored with a format version, written first
/// and checked before the op is read: see [`super::format`] (which holds
/// its serde impls) and ADR 0020.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    /// Unique id made by the proposer. A command whose id was applied
    /// before answers what it answered then and changes nothing, so a
    /// proposal retried after a lost answer is applied exactly once.
    /// Empty (or absent in the JSON): no de-duplication.
    pub id: String,
    /// Milliseconds since the Unix epoch, taken by the proposer.
    pub at_ms: i64,
    /// Who asks (ADR 0027): apply decides with it whether they may. None:
    /// a command from before actors existed, or the cluster's own.
    pub by: Option<Actor>,
    pub op: Op,
}

/// Who a command acts for: what apply checks the bucket's rights of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// An S3 access key id a gateway authenticated.
    Key(String),
    /// An admin certificate's node id.
    Admin(String),
}

impl Command {
    pub fn new(id: impl Into<String>, at_ms: i64, op: Op) -> Self {
        Self {
            id: id.into(),
            at_ms,
            by: None,
            op,
        }
    }

    /// The same command, acting for `by`.
    pub fn by(mut self, by: Actor) -> Self {
        self.by = Some(by);
        self
    }
}

/// What a command does. The right each bucket op needs of its actor
/// (write, or owner for configuration, lock changes, bypass and
/// DeleteBucket) is decided in one place, `state::access::need_of`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// By a key: the key owns the new bucket (`owner` must be None). By an
    /// admin: `owner` names the owning key (None: no owner yet).
    CreateBucket {
        name: String,
        object_lock_enabled: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
    },
    /// Deletes an empty bucket and the grants on it. With
    /// `abort_uploads` (issue 21), open uploads do not keep it (S3): they
    /// are deleted with it, answered `Ok` (the proposer read and frees
    /// their parts' shards: the answer never grows with the part count).
    /// Without it (every command from before), an upload keeps it, so an
    /// old log replays to the state it built.
    DeleteBucket {
        name: String,
        #[serde(default, skip_serializing_if = "is_false")]
        abort_uploads: bool,
    },
    /// The linearization point of a PUT. `version.version_id` is the id the
    /// proposer made; on a bucket that is not versioning-enabled the version
    /// is stored as the "null" version, replacing the previous one.
    /// `if_match` / `if_none_match`: S3's conditional write, decided here
    /// so two racing writers cannot both win (ConditionalRequestConflict).
    CommitVersion {
        version: Version,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_match: Option<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        if_none_match: bool,
    },
    /// Delete a version by id, or (no id) the current object: on a
    /// versioning-enabled bucket that writes a delete marker with
    /// `marker_version_id`. `bypass_governance` needs the owner's right,
    /// asked for whether or not a retention needs it.
    DeleteObject {
        bucket: String,
        key: String,
        version_id: Option<String>,
        marker_version_id: String,
        bypass_governance: bool,
    },
    /// Enabled or Suspended; a lock bucket cannot be suspended.
    PutBucketVersioning {
        bucket: String,
        status: Versioning,
    },
    /// The default retention of a lock bucket (None: no default).
    /// `enable` first turns object lock on for a versioning-enabled bucket
    /// made without it (AWS allows it since 2023); nothing turns it off.
    PutLockConfiguration {
        bucket: String,
        default_retention: Option<DefaultRetention>,
        // Left out when false: older logs and goldens keep their bytes.
        #[serde(default, skip_serializing_if = "is_false")]
        enable: bool,
    },
    /// Sets a version's retention (`mode` None removes it), within the
    /// rules of its current retention. `version_id` "": the current one.
    PutRetention {
        bucket: String,
        key: String,
        version_id: String,
        mode: LockMode,
        retain_until_ms: i64,
        bypass_governance: bool,
    },
    /// Places or lifts a version's legal hold.
    PutLegalHold {
        bucket: String,
        key: String,
        version_id: String,
        on: bool,
    },
    BeginMultipart {
        upload: Upload,
    },
    CommitPart {
        bucket: String,
        key: String,
        upload_id: String,
        part: Part,
    },
    /// `parts` are (part number, ETag) as the client listed them. The
    /// bucket's maximum retention is not checked again here: the upload's
    /// retention (its template) was checked when it began
    /// (BeginMultipart), so an upload begun within the limit completes
    /// even if the limit was lowered since.
    CompleteMultipart {
        bucket: String,
        key: String,
        upload_id: String,
        parts: Vec<(u32, String)>,
        version_id: String,
        /// As on CommitVersion.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_match: Option<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        if_none_match: bool,
    },
    AbortMultipart {
        bucket: String,
        key: String,
        upload_id: String,
    },
    PutAccessKey {
        key: AccessKey,
    },
    /// Also drops the key's grants and leaves the buckets it owned
    /// ownerless.
    DeleteAccessKey {
        id: String,
    },
    RegisterBlob {
        server: BlobServer,
    },
    PutJoinToken {
        token: JoinToken,
    },
    /// The erasure profile for new objects; (0, 0) clears it.
    SetProfile {
        data_shards: u32,
        parity_shards: u32,
    },
    /// Spends one use of a join token, if it is valid for `role` at the
    /// command's time; refused (AccessDenied) otherwise.
    UseJoinToken {
        id: String,
        secret_hash: String,
        role: Role,
    },
    BlobHeartbeat {
        id: String,
        capacity_bytes: u64,
        free_bytes: u64,
        /// The store's shard files and bytes (absent from older commands).
        #[serde(default, skip_serializing_if = "is_zero_u64")]
        shards_stored: u64,
        #[serde(default, skip_serializing_if = "is_zero_u64")]
        bytes_stored: u64,
    },
    /// A key holder's report of the master keys it holds (fingerprints).
    /// The first report from a meta-server records the cluster's write key.
    KeyHolderSeen {
        id: String,
        role: Role,
        current: String,
        next: String,
    },
    /// Opens a master-key rotation from the write key `old` to `new`:
    /// refused unless every live key holder holds `new`. New writes use
    /// `new` from this command on.
    StartKeyRotation {
        old: String,
        new: String,
    },
    /// Rewrapped keys of the open rotation, each applied only if it is
    /// still what was read (`old`), so a stale batch changes nothing.
    Rewrap {
        new: String,
        items: Vec<Rewrapped>,
    },
    /// Closes the open rotation: refused while any key is on the old key.
    FinishKeyRotation,
    /// The first trust bundle (public CA certificates), from the first
    /// meta-server report; ignored once one is recorded.
    InitTrust {
        cas: Vec<String>,
        issuing: String,
        issuer: String,
    },
    /// A member's report: the trust generation it has loaded and the CA
    /// that signed its certificate.
    MemberSeen {
        id: String,
        role: Role,
        generation: u64,
        cert_ca: String,
    },
    /// Opens a CA rotation to the CA certificate `ca_pem` (public), whose
    /// key `issuer` minted and keeps on its own disk.
    StartCaRotation {
        ca_pem: String,
        issuer: String,
        /// Replace an open rotation's new CA (its key was lost): the
        /// rotation starts again from the first gate.
        #[serde(default)]
        replace: bool,
    },
    /// Drops a member's record, so a member gone for good no longer holds
    /// a CA rotation's gates.
    ForgetMember {
        role: Role,
        id: String,
    },
    /// Refuses an identity for good (ADR 0030): a meta-server the admin
    /// removed from the membership. Every tier refuses its certificate,
    /// and AddMember and Join refuse its id.
    DenyMember {
        role: Role,
        id: String,
    },
    /// A bucket's S3 PublicAccessBlock (None deletes it): stored and
    /// shown only, since nothing is ever public (issue 21).
    PutPublicAccessBlock {
        bucket: String,
        config: Option<PublicAccessBlock>,
    },
    /// Moves the open CA rotation past the gate of phase `from`.
    AdvanceCaRotation {
        from: CaPhase,
    },
    /// The leader judged a blob-server silent since `silent_since_ms`:
    /// it is marked down (its shards count as lost) unless it is down
    /// already or heartbeat after that time. Its next heartbeat revives it.
    MarkBlobDown {
        id: String,
        silent_since_ms: i64,
    },
    /// A blob-server's scrub (or read) report: each bad shard a map names
    /// on that server is recorded as a fault (others are ignored);
    /// `pass_finished_ms` > 0 records a finished full pass.
    RecordScrub {
        blob_id: String,
        bad: Vec<BadShard>,
        pass_finished_ms: i64,
    },
    /// A repair's compare-and-set: each swap's index moves to its rebuilt
    /// shard only if the unit still exists, still holds `old_shard_id`
    /// there, and still names every shard of `sources` (the shards the
    /// rebuild read: a unit overwritten since names none of them, which
    /// is how a swap into a missing index knows the map is the one it
    /// rebuilt). Otherwise refused (ShardMapChanged), changing nothing.
    SwapShards {
        unit: Unit,
        swaps: Vec<ShardSwap>,
        /// Shard ids the rebuild read; required when a swap fills a
        /// missing index (`old_shard_id` "").
        #[serde(default)]
        sources: Vec<String>,
    },
    /// Starts (or retargets) a drain: the server takes no new shards and
    /// the leader's mover moves its shards away (onto `to` only, if not
    /// ""). Refused for a removed or unknown server, or a `to` that is
    /// not an active, in-service server other than `id`.
    DrainBlob {
        id: String,
        to: String,
    },
    /// Cancels a drain: draining or drained back to in service.
    UndrainBlob {
        id: String,
    },
    /// Draining → drained, refused (BlobServerInUse) while any map names
    /// the server. From then on no new map may name it (commits naming
    /// it are refused: BlobServerRetired), so its store can be emptied.
    FinishDrain {
        id: String,
    },
    /// Retires a server for good: marked removed and down (its shards, if
    /// any, count as lost). Refused (BlobServerInUse) while any map names
    /// it unless `force`. Its registrations, heartbeats and reports are
    /// refused from then on (BlobServerRemoved).
    RemoveBlob {
        id: String,
        force: bool,
    },
    /// A drain's or rebalance's compare-and-set: like SwapShards (same
    /// checks, same answer), but each new location must be on an active,
    /// in-service server, and it counts as moved, not repaired.
    MoveShards {
        unit: Unit,
        swaps: Vec<ShardSwap>,
        #[serde(default)]
        sources: Vec<String>,
    },
    /// The sweep's finding after a restore (ADR 0026): shards on `blob_id`
    /// that no map names, written before the restore, are held (kept and
    /// listed) instead of deleted. A shard held already keeps its row
    /// (its first finding, its release); one a map names now is skipped.
    HoldOrphans {
        blob_id: String,
        shards: Vec<HeldShard>,
    },
    /// An operator's release of held shards: on one blob-server, or
    /// (None) everywhere. The sweep deletes released ones still unnamed.
    ReleaseOrphans {
        blob_id: Option<String>,
    },
    /// Drops held rows: shards the sweep deleted once released, or found
    /// named again (an in-flight commit) or gone from their server.
    ForgetOrphans {
        blob_id: String,
        shard_ids: Vec<String>,
    },
    /// Adds rights on a bucket to a key (admins only; ADR 0027): the
    /// union with its grant, owner implying read and write.
    AllowBucket {
        bucket: String,
        key_id: String,
        read: bool,
        write: bool,
        owner: bool,
    },
    /// Removes every right a key has on a bucket (admins only); refused
    /// for the bucket's owner.
    DenyBucket {
        bucket: String,
        key_id: String,
    },
    /// An admin's change of a bucket's owner (`Some("")`: none) or its
    /// maximum retention (`Some(0)`: the cluster default; at most
    /// 365000 days); refused if the limit would fall below the bucket's
    /// default retention.
    SetBucket {
        bucket: String,
        owner: Option<String>,
        max_retention_days: Option<u32>,
    },
    /// The cluster's default maximum retention (admins only; 1 to 365000
    /// days), refused while a bucket it bounds has a longer default
    /// retention.
    SetBucketDefaults {
        max_retention_days: u32,
    },
    /// Gives every ownerless bucket an owner (admins only; ADR 0027): the
    /// key named, which must exist, or (None) the cluster's only access
    /// key, refused when there are several or none. Migration 10 leaves
    /// buckets made before owners existed ownerless, since a migration
    /// runs at each replica's own log position: ownership must come from
    /// the log, i.e. this command.
    AdoptBuckets {
        owner: Option<String>,
    },
    /// Group commit: commands that reached the leader together, in one log
    /// entry. Each is applied as if alone (own id, own savepoint) and
    /// answers in [`Response::Batch`], in order.
    Batch(Vec<Command>),
    /// A command written before format versions existed (v0) whose values
    /// this binary no longer accepts, e.g. a retention mode outside
    /// GOVERNANCE/COMPLIANCE that the writing version refused at apply.
    /// Kept as it was read and refused again at apply, so an old log
    /// replays to the same state. Only decoding a v0 command makes one,
    /// and it is written back as the v0 command it was (`state::format`).
    Unreadable {
        raw: serde_json::Value,
        why: String,
    },
}

impl Op {
    /// An unconditional [`Op::CommitVersion`].
    pub fn commit_version(version: Version) -> Op {
        Op::CommitVersion {
            version,
            if_match: None,
            if_none_match: false,
        }
    }

    /// Short name for logs and metrics (never the payload).
    pub fn name(&self) -> &'static str {
        match self {
            Op::CreateBucket { .. } => "CreateBucket",
            Op::DeleteBucket { .. } => "DeleteBucket",
            Op::CommitVersion { .. } => "CommitVersion",
            Op::DeleteObject { .. } => "DeleteObject",
            Op::PutBucketVersioning { .. } => "PutBucketVersioning",
            Op::PutLockConfiguration { .. } => "PutLockConfiguration",
            Op::PutRetention { .. } => "PutRetention",
            Op::PutLegalHold { .. } => "PutLegalHold",
            Op::BeginMultipart { .. } => "BeginMultipart",
            Op::CommitPart { .. } => "CommitPart",
            Op::CompleteMultipart { .. } => "CompleteMultipart",
            Op::AbortMultipart { .. } => "AbortMultipart",
            Op::PutAccessKey { .. } => "PutAccessKey",
            Op::DeleteAccessKey { .. } => "DeleteAccessKey",
            Op::PutJoinToken { .. } => "PutJoinToken",
            Op::SetProfile { .. } => "SetProfile",
            Op::UseJoinToken { .. } => "UseJoinToken",
            Op::RegisterBlob { .. } => "RegisterBlob",
            Op::BlobHeartbeat { .. } => "BlobHeartbeat",
            Op::KeyHolderSeen { .. } => "KeyHolderSeen",
            Op::StartKeyRotation { .. } => "StartKeyRotation",
            Op::Rewrap { .. } => "Rewrap",
            Op::FinishKeyRotation => "FinishKeyRotation",
            Op::InitTrust { .. } => "InitTrust",
            Op::MemberSeen { .. } => "MemberSeen",
            Op::StartCaRotation { .. } => "StartCaRotation",
            Op::AdvanceCaRotation { .. } => "AdvanceCaRotation",
            Op::ForgetMember { .. } => "ForgetMember",
            Op::DenyMember { .. } => "DenyMember",
            Op::PutPublicAccessBlock { .. } => "PutPublicAccessBlock",
            Op::MarkBlobDown { .. } => "MarkBlobDown",
            Op::RecordScrub { .. } => "RecordScrub",
            Op::SwapShards { .. } => "SwapShards",
            Op::DrainBlob { .. } => "DrainBlob",
            Op::UndrainBlob { .. } => "UndrainBlob",
            Op::FinishDrain { .. } => "FinishDrain",
            Op::RemoveBlob { .. } => "RemoveBlob",
            Op::MoveShards { .. } => "MoveShards",
            Op::HoldOrphans { .. } => "HoldOrphans",
            Op::ReleaseOrphans { .. } => "ReleaseOrphans",
            Op::ForgetOrphans { .. } => "ForgetOrphans",
            Op::AllowBucket { .. } => "AllowBucket",
            Op::DenyBucket { .. } => "DenyBucket",
            Op::SetBucket { .. } => "SetBucket",
            Op::SetBucketDefaults { .. } => "SetBucketDefaults",
            Op::AdoptBuckets { .. } => "AdoptBuckets",
            Op::Batch(_) => "Batch",
            Op::Unreadable { .. } => "Unreadable",
        }
    }
}

impl Op {
    /// Ops that act on a bucket for someone: apply checks the actor's
    /// rights (`state::access`), and a forwarded one must name its actor.
    pub fn needs_actor(&self) -> bool {
        matches!(
            self,
            Op::CreateBucket { .. }
                | Op::DeleteBucket { .. }
                | Op::CommitVersion { .. }
                | Op::DeleteObject { .. }
                | Op::PutBucketVersioning { .. }
                | Op::PutLockConfiguration { .. }
                | Op::PutPublicAccessBlock { .. }
                | Op::PutRetention { .. }
                | Op::PutLegalHold { .. }
                | Op::BeginMultipart { .. }
                | Op::CommitPart { .. }
                | Op::CompleteMultipart { .. }
                | Op::AbortMultipart { .. }
                | Op::AllowBucket { .. }
                | Op::DenyBucket { .. }
                | Op::SetBucket { .. }
                | Op::SetBucketDefaults { .. }
                | Op::AdoptBuckets { .. }
        )
    }
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// What applying a command answers. Rejections are values, not failures:
/// they are replicated and identical on every node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Membership changes and blank entries.
    #[default]
    Ok,
    Bucket(super::model::Bucket),
    /// A version was committed; the shards of the version it replaced.
    Committed {
        version: Version,
        freed: Vec<ShardMap>,
        /// Whether the bucket was ever versioned (says how to show "null").
        #[serde(default)]
        versioned: bool,
    },
    Deleted {
        version_id: String,
        delete_marker: bool,
        /// Shards no version references any more: the caller deletes them.
        freed: Vec<ShardMap>,
    },
    Upload(Upload),
    /// A part was stored; the shards of the part it replaced, if any.
    PartStored {
        replaced: Option<ShardMap>,
    },
    /// Completed: the new version and the shards of parts left out of it.
    Completed {
        version: Version,
        freed: Vec<ShardMap>,
        #[serde(default)]
        versioned: bool,
    },
    /// A rotation opened with this many keys to rewrap.
    RotationStarted {
        to_rewrap: u64,
    },
    /// A rewrap batch: how many keys moved (the rest had changed).
    Rewrapped {
        moved: u64,
    },
    /// A version's retention or legal hold was set.
    Locked {
        version_id: String,
    },
    /// An upload aborted, or a DeleteBucket that aborted the bucket's
    /// open uploads (one that aborted none answers `Ok`, as before): the
    /// shards of their parts.
    Aborted {
        freed: Vec<ShardMap>,
    },
    /// The trust generation and the open CA rotation, if any.
    CaRotation {
        generation: u64,
        rotation: Option<super::model::CaRotation>,
    },
    /// A repair's swap was applied: the replaced shards no map names any
    /// more (the caller deletes them).
    Swapped {
        freed: Vec<ShardMap>,
    },
    /// The answers of an [`Op::Batch`], in order.
    Batch(Vec<Response>),
    /// Held orphan rows added, released or dropped by the command.
    Orphans {
        rows: u64,
    },
    /// A key's rights on a bucket, after an AllowBucket.
    Grant(super::model::BucketGrant),
    /// The cluster's bucket defaults, after a SetBucketDefaults.
    Defaults {
        max_retention_days: u32,
    },
    /// After an AdoptBuckets: the owner given and the buckets that got it,
    /// in name order.
    Adopted {
        owner: String,
        buckets: Vec<String>,
    },
    Err(MetaError),
}

/// A command refused by the state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MetaError {
    #[error("no such bucket {0}")]
    NoSuchBucket(String),
    #[error("bucket {0} already exists")]
    BucketAlreadyExists(String),
    /// CreateBucket by the key that owns the bucket already.
    #[error("bucket {0} is already yours")]
    BucketAlreadyOwnedByYou(String),
    #[error("bucket {0} is not empty")]
    BucketNotEmpty(String),
    #[error("no such key {0}")]
    NoSuchKey(String),
    #[error("no such version {0}")]
    NoSuchVersion(String),
    #[error("no such upload {0}")]
    NoSuchUpload(String),
    #[error("invalid part {0}")]
    InvalidPart(String),
    #[error("parts are not in ascending order")]
    InvalidPartOrder,
    #[error("part {0} is smaller than the 5 MiB minimum and is not the last")]
    EntityTooSmall(u32),
    #[error("access denied: {0}")]
    AccessDenied(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("no such access key {0}")]
    NoSuchAccessKey(String),
    #[error("no such blob-server {0}")]
    NoSuchBlobServer(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("invalid bucket state: {0}")]
    InvalidBucketState(String),
    #[error("method not allowed: {0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    RotationRefused(String),
    /// A commit's data key is wrapped by a master key other than the
    /// cluster's write key: the writer holds the wrong key.
    #[error("{0}")]
    WrongMasterKey(String),
    /// A repair's compare-and-set lost: the unit's map is not the one the
    /// repair was planned on (deleted, overwritten, repaired already).
    #[error("shard map changed: {0}")]
    ShardMapChanged(String),
    /// Maps still name the blob-server: (id, how many shards).
    #[error("{1} shards on blob-server {0} are still named by shard maps")]
    BlobServerInUse(String, u64),
    /// The blob-server was removed for good.
    #[error("blob-server {0} was removed")]
    BlobServerRemoved(String),
    /// A new map names a server that takes no new shards.
    #[error("blob-server {0} takes no new shards (draining, drained, removed or down)")]
    BlobServerRetired(String),
    /// Too few usable servers for the request; the message says why.
    #[error("{0}")]
    NotEnoughBlobServers(String),
    /// A conditional write's condition no longer held at apply: another
    /// write won the race (S3's 409).
    #[error("conditional request conflict: {0}")]
    ConditionalRequestConflict(String),
}
