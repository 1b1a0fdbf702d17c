//! Sample values for the golden files: realistic and fully populated
//! (non-empty strings, nonzero numbers, `Some`, several shards and parts),
//! so every field's encoding is pinned. Exhaustive by construction: each
//! `*_slot` fn matches every variant without a wildcard, so a new variant
//! does not compile until it has a slot here, and the sample list's test
//! fails until it has a sample (and then a golden file).

#![allow(dead_code)] // each test crate uses its own part

use std::collections::{BTreeMap, BTreeSet};

use hamster_meta::raft::state_machine::StoredSnapshotMeta;
use hamster_meta::raft::{Entry, LogId, MetaNode, SnapshotMeta, StoredMembership};
use hamster_meta::state::commands::{Actor, Command, MetaError, Op, Response};
use hamster_meta::state::model::{
    AccessKey, BadShard, BlobServer, BlobState, Bucket, BucketGrant, CaPhase, CaRotation,
    DefaultRetention, HeldShard, JoinToken, KeyRotation, Lifecycle, LockMode, OrphanHold, Part,
    RewrapTarget, Rewrapped, Role, ShardLocation, ShardMap, ShardSwap, TrustBundle, Unit, Upload,
    Version, Versioning,
};
use openraft::EntryPayload;

pub const AT_MS: i64 = 1_714_000_000_123;

pub fn command(id: &str, op: Op) -> Command {
    Command::new(id, AT_MS, op)
}

/// A command acting for `by` (ADR 0027): `"by"` follows `"at_ms"`.
pub fn command_by(id: &str, by: Actor, op: Op) -> Command {
    Command::new(id, AT_MS, op).by(by)
}

pub fn shard_map(seed: u8) -> ShardMap {
    ShardMap {
        data_shards: 2,
        parity_shards: 1,
        segment_size: 4 * 1024 * 1024,
        shards: (0..3u8)
            .map(|i| ShardLocation {
                index: u32::from(i),
                blob_id: format!("blob-{}", i + 1),
                shard_id: format!("{:02x}{:02x}00112233445566778899aabbccddee", seed, i),
                checksum: vec![0xde, 0xad, seed, i],
            })
            .collect(),
    }
}

pub fn part(n: u32) -> Part {
    Part {
        part_number: n,
        size: 5 * 1024 * 1024 + u64::from(n),
        etag: format!("\"{n:032x}\""),
        shard_map: Some(shard_map(n as u8)),
        wrapped_dek: vec![1, 0xab, n as u8, 0xff],
        kek_fingerprint: "kek-fp-2024".into(),
    }
}

pub fn parts() -> Vec<Part> {
    vec![part(1), part(2)]
}

pub fn user_metadata() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("color".into(), "blue".into()),
        ("owner".into(), "ops-team".into()),
    ])
}

pub fn stored_headers() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cache-control".into(), "max-age=60".into()),
        ("content-encoding".into(), "gzip".into()),
    ])
}

pub fn version() -> Version {
    Version {
        bucket: "photos".into(),
        key: "2024/cat.jpg".into(),
        version_id: "0000000000000042-a1b2c3".into(),
        size: 10 * 1024 * 1024 + 7,
        etag: "\"9b2cf535f27731c974343645a3985328-2\"".into(),
        content_type: "image/jpeg".into(),
        user_metadata: user_metadata(),
        stored_headers: stored_headers(),
        created_at_ms: AT_MS - 5,
        delete_marker: true,
        shard_map: Some(shard_map(7)),
        wrapped_dek: vec![1, 2, 3, 0xfe],
        kek_fingerprint: "kek-fp-2024".into(),
        lock_mode: LockMode::Governance,
        retain_until_ms: AT_MS + 86_400_000,
        legal_hold: true,
        parts: parts(),
    }
}

pub fn upload() -> Upload {
    Upload {
        bucket: "photos".into(),
        key: "2024/cat.jpg".into(),
        upload_id: "upload-7f3e".into(),
        initiated_at_ms: AT_MS - 1000,
        template: version(),
    }
}

pub fn default_retention() -> DefaultRetention {
    DefaultRetention {
        mode: LockMode::Compliance,
        days: 30,
        years: 2,
    }
}

pub fn bucket() -> Bucket {
    Bucket {
        name: "photos".into(),
        created_at_ms: AT_MS - 10_000,
        versioning: Versioning::Enabled,
        object_lock_enabled: true,
        default_retention: Some(default_retention()),
        // Empty and None are left out: the encoding before owners.
        owner: String::new(),
        max_retention_days: None,
    }
}

/// A bucket with an owner and a retention limit of its own.
pub fn owned_bucket() -> Bucket {
    Bucket {
        owner: "AKIAEXAMPLE".into(),
        max_retention_days: Some(3650),
        ..bucket()
    }
}

/// The access key of the PutAccessKey sample (`can_create_bucket` true
/// is left out: the encoding before it existed).
pub fn access_key(can_create_bucket: bool) -> AccessKey {
    AccessKey {
        id: "AKIAEXAMPLE".into(),
        name: "backup-job".into(),
        sealed_secret: vec![1, 9, 8, 7, 6],
        created_at_ms: AT_MS - 7,
        enabled: true,
        kek_fingerprint: "kek-fp-2024".into(),
        can_create_bucket,
    }
}

pub fn grant() -> BucketGrant {
    BucketGrant {
        bucket: "photos".into(),
        key_id: "AKIAREADER".into(),
        read: true,
        write: false,
        owner: false,
    }
}

pub fn trust_bundle() -> TrustBundle {
    TrustBundle {
        generation: 3,
        cas: vec![
            "-----BEGIN CERTIFICATE-----\nMIIBold\n-----END CERTIFICATE-----\n".into(),
            "-----BEGIN CERTIFICATE-----\nMIIBnew\n-----END CERTIFICATE-----\n".into(),
        ],
        issuing: "ca-fp-new".into(),
        issuer: "meta-2".into(),
    }
}

pub fn key_rotation() -> KeyRotation {
    KeyRotation {
        old: "kek-fp-2023".into(),
        new: "kek-fp-2024".into(),
        started_at_ms: AT_MS - 60_000,
    }
}

pub fn ca_rotation() -> CaRotation {
    CaRotation {
        old: "ca-fp-old".into(),
        new: "ca-fp-new".into(),
        phase: CaPhase::Reissuing,
        widened: 2,
        started_at_ms: AT_MS - 120_000,
    }
}

pub fn rewrapped() -> Vec<Rewrapped> {
    let targets = [
        RewrapTarget::Version {
            bucket: "photos".into(),
            key: "2024/cat.jpg".into(),
            version_id: "v-1".into(),
        },
        RewrapTarget::VersionPart {
            bucket: "photos".into(),
            key: "2024/big.bin".into(),
            version_id: "v-2".into(),
            part_number: 2,
        },
        RewrapTarget::UploadPart {
            upload_id: "upload-7f3e".into(),
            part_number: 1,
        },
        RewrapTarget::AccessKey {
            id: "AKIAEXAMPLE".into(),
        },
    ];
    targets
        .into_iter()
        .enumerate()
        .map(|(i, target)| Rewrapped {
            target,
            old: vec![1, 0x10, i as u8],
            new: vec![1, 0x20, i as u8],
        })
        .collect()
}

/// Position of each `Op` variant in [`ops`].
pub fn op_slot(op: &Op) -> usize {
    match op {
        Op::CreateBucket { .. } => 0,
        Op::DeleteBucket { .. } => 1,
        Op::CommitVersion { .. } => 2,
        Op::DeleteObject { .. } => 3,
        Op::PutBucketVersioning { .. } => 4,
        Op::PutLockConfiguration { .. } => 5,
        Op::PutRetention { .. } => 6,
        Op::PutLegalHold { .. } => 7,
        Op::BeginMultipart { .. } => 8,
        Op::CommitPart { .. } => 9,
        Op::CompleteMultipart { .. } => 10,
        Op::AbortMultipart { .. } => 11,
        Op::PutAccessKey { .. } => 12,
        Op::DeleteAccessKey { .. } => 13,
        Op::RegisterBlob { .. } => 14,
        Op::PutJoinToken { .. } => 15,
        Op::SetProfile { .. } => 16,
        Op::UseJoinToken { .. } => 17,
        Op::BlobHeartbeat { .. } => 18,
        Op::KeyHolderSeen { .. } => 19,
        Op::StartKeyRotation { .. } => 20,
        Op::Rewrap { .. } => 21,
        Op::FinishKeyRotation => 22,
        Op::InitTrust { .. } => 23,
        Op::MemberSeen { .. } => 24,
        Op::StartCaRotation { .. } => 25,
        Op::ForgetMember { .. } => 26,
        Op::AdvanceCaRotation { .. } => 27,
        Op::Batch(_) => 28,
        Op::Unreadable { .. } => 29,
        Op::MarkBlobDown { .. } => 30,
        Op::RecordScrub { .. } => 31,
        Op::SwapShards { .. } => 32,
        Op::DrainBlob { .. } => 33,
        Op::UndrainBlob { .. } => 34,
        Op::FinishDrain { .. } => 35,
        Op::RemoveBlob { .. } => 36,
        Op::MoveShards { .. } => 37,
        Op::HoldOrphans { .. } => 38,
        Op::ReleaseOrphans { .. } => 39,
        Op::ForgetOrphans { .. } => 40,
        Op::AllowBucket { .. } => 41,
        Op::DenyBucket { .. } => 42,
        Op::SetBucket { .. } => 43,
        Op::SetBucketDefaults { .. } => 44,
        Op::AdoptBuckets { .. } => 45,
    }
}
pub const OP_VARIANTS: usize = 46;

/// Ops added after format versions existed: no v0 writer ever made one,
/// so they have no v0 golden file.
pub const V1_ONLY_OPS: &[&str] = &[
    "MarkBlobDown",
    "RecordScrub",
    "SwapShards",
    "DrainBlob",
    "UndrainBlob",
    "FinishDrain",
    "RemoveBlob",
    "MoveShards",
    "HoldOrphans",
    "ReleaseOrphans",
    "ForgetOrphans",
    "AllowBucket",
    "DenyBucket",
    "SetBucket",
    "SetBucketDefaults",
    "AdoptBuckets",
];

/// A heartbeat with the store's size (shards and bytes), which older
/// heartbeats lack.
pub fn heartbeat_with_store() -> Op {
    Op::BlobHeartbeat {
        id: "blob-1".into(),
        capacity_bytes: 4_000_000_000_000,
        free_bytes: 3_400_000_000_000,
        shards_stored: 123_456,
        bytes_stored: 600_000_000_000,
    }
}

/// One sample of every `Op`, in slot order.
pub fn ops() -> Vec<Op> {
    vec![
        Op::CreateBucket {
            name: "photos".into(),
            object_lock_enabled: true,
            owner: None,
        },
        Op::DeleteBucket {
            name: "old-logs".into(),
        },
        Op::CommitVersion { version: version() },
        Op::DeleteObject {
            bucket: "photos".into(),
            key: "2024/cat.jpg".into(),
            version_id: Some("0000000000000041-ffee".into()),
            marker_version_id: "0000000000000043-d00d".into(),
            bypass_governance: true,
        },
        Op::PutBucketVersioning {
            bucket: "photos".into(),
            status: Versioning::Suspended,
        },
        Op::PutLockConfiguration {
            bucket: "photos".into(),
            default_retention: Some(default_retention()),
        },
        Op::PutRetention {
            bucket: "photos".into(),
            key: "2024/cat.jpg".into(),
            version_id: "0000000000000042-a1b2c3".into(),
            mode: LockMode::Compliance,
            retain_until_ms: AT_MS + 3_600_000,
            bypass_governance: true,
        },
        Op::PutLegalHold {
            bucket: "photos".into(),
            key: "2024/cat.jpg".into(),
            version_id: "0000000000000042-a1b2c3".into(),
            on: true,
        },
        Op::BeginMultipart { upload: upload() },
        Op::CommitPart {
            bucket: "photos".into(),
            key: "2024/cat.jpg".into(),
            upload_id: "upload-7f3e".into(),
            part: part(3),
        },
        Op::CompleteMultipart {
            bucket: "photos".into(),
            key: "2024/cat.jpg".into(),
            upload_id: "upload-7f3e".into(),
            parts: vec![(1, "\"etag-one\"".into()), (2, "\"etag-two\"".into())],
            version_id: "0000000000000044-beef".into(),
        },
        Op::AbortMultipart {
            bucket: "photos".into(),
            key: "2024/dog.jpg".into(),
            upload_id: "upload-0a0b".into(),
        },
        Op::PutAccessKey {
            key: access_key(true),
        },
        Op::DeleteAccessKey {
            id: "AKIAOLD".into(),
        },
        Op::RegisterBlob {
            server: BlobServer {
                id: "blob-1".into(),
                address: "10.0.0.5:7001".into(),
                failure_domain: "rack-a".into(),
                capacity_bytes: 4_000_000_000_000,
                free_bytes: 3_500_000_000_000,
                state: BlobState::Active,
                last_heartbeat_ms: AT_MS - 900,
                // The registry's to set: a RegisterBlob carries none, and
                // its encoding is the one before the fields existed.
                last_scrub_ms: 0,
                lifecycle: Lifecycle::In,
                drain_to: String::new(),
                shards_stored: 0,
                bytes_stored: 0,
            },
        },
        Op::PutJoinToken {
            token: JoinToken {
                id: "tok-1".into(),
                role: Role::Blob,
                secret_hash: "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
                    .into(),
                uses_left: 3,
                expires_at_ms: AT_MS + 3_600_000,
                created_at_ms: AT_MS - 3,
            },
        },
        Op::SetProfile {
            data_shards: 4,
            parity_shards: 2,
        },
        Op::UseJoinToken {
            id: "tok-1".into(),
            secret_hash: "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8".into(),
            role: Role::Gateway,
        },
        // Without the store's size, as heartbeats were before it (their
        // encoding): `heartbeat_with_store` pins the one with it.
        Op::BlobHeartbeat {
            id: "blob-1".into(),
            capacity_bytes: 4_000_000_000_000,
            free_bytes: 3_400_000_000_000,
            shards_stored: 0,
            bytes_stored: 0,
        },
        Op::KeyHolderSeen {
            id: "gw-1".into(),
            role: Role::Gateway,
            current: "kek-fp-2023".into(),
            next: "kek-fp-2024".into(),
        },
        Op::StartKeyRotation {
            old: "kek-fp-2023".into(),
            new: "kek-fp-2024".into(),
        },
        Op::Rewrap {
            new: "kek-fp-2024".into(),
            items: rewrapped(),
        },
        Op::FinishKeyRotation,
        Op::InitTrust {
            cas: trust_bundle().cas,
            issuing: "ca-fp-new".into(),
            issuer: "meta-1".into(),
        },
        Op::MemberSeen {
            id: "gw-1".into(),
            role: Role::Gateway,
            generation: 3,
            cert_ca: "ca-fp-new".into(),
        },
        Op::StartCaRotation {
            ca_pem: "-----BEGIN CERTIFICATE-----\nMIIBnew\n-----END CERTIFICATE-----\n".into(),
            issuer: "meta-2".into(),
            replace: true,
        },
        Op::ForgetMember {
            role: Role::Blob,
            id: "blob-9".into(),
        },
        Op::AdvanceCaRotation {
            from: CaPhase::Widening,
        },
        Op::Batch(vec![
            command(
                "batch-a",
                Op::CreateBucket {
                    name: "logs".into(),
                    object_lock_enabled: false,
                    owner: None,
                },
            ),
            command("batch-b", Op::DeleteBucket { name: "tmp".into() }),
        ]),
        Op::Unreadable {
            raw: serde_json::json!({"PutRetention": {"bucket": "photos", "mode": "FOREVER"}}),
            why: "unknown variant `FOREVER`".into(),
        },
        Op::MarkBlobDown {
            id: "blob-3".into(),
            silent_since_ms: AT_MS - 60_000,
        },
        Op::RecordScrub {
            blob_id: "blob-2".into(),
            bad: vec![
                BadShard {
                    shard_id: "070100112233445566778899aabbccddee".into(),
                    reason: "block 3: checksum mismatch".into(),
                },
                BadShard {
                    shard_id: "070200112233445566778899aabbccddee".into(),
                    reason: "truncated header".into(),
                },
            ],
            pass_finished_ms: AT_MS - 10,
        },
        Op::SwapShards {
            unit: Unit {
                bucket: "photos".into(),
                key: "2024/big.bin".into(),
                version_id: "0000000000000042-a1b2c3".into(),
                upload_id: String::new(),
                part_number: 2,
            },
            swaps: vec![
                ShardSwap {
                    index: 1,
                    old_shard_id: "020100112233445566778899aabbccddee".into(),
                    new: ShardLocation {
                        index: 1,
                        blob_id: "blob-5".into(),
                        shard_id: "0a0100112233445566778899aabbccddee".into(),
                        checksum: vec![0xde, 0xad, 2, 1],
                    },
                },
                ShardSwap {
                    index: 2,
                    old_shard_id: String::new(),
                    new: ShardLocation {
                        index: 2,
                        blob_id: "blob-6".into(),
                        shard_id: "0a0200112233445566778899aabbccddee".into(),
                        checksum: vec![0xbe, 0xef, 2, 2],
                    },
                },
            ],
            sources: vec!["020000112233445566778899aabbccddee".into()],
        },
        Op::DrainBlob {
            id: "blob-3".into(),
            to: "blob-9".into(),
        },
        Op::UndrainBlob {
            id: "blob-3".into(),
        },
        Op::FinishDrain {
            id: "blob-3".into(),
        },
        Op::RemoveBlob {
            id: "blob-3".into(),
            force: true,
        },
        Op::MoveShards {
            unit: Unit {
                bucket: "photos".into(),
                key: "2024/big.bin".into(),
                version_id: String::new(),
                upload_id: "upload-7f3e".into(),
                part_number: 3,
            },
            swaps: vec![ShardSwap {
                index: 0,
                old_shard_id: "030000112233445566778899aabbccddee".into(),
                new: ShardLocation {
                    index: 0,
                    blob_id: "blob-7".into(),
                    shard_id: "0b0000112233445566778899aabbccddee".into(),
                    checksum: vec![0xde, 0xad, 3, 0],
                },
            }],
            sources: vec!["030000112233445566778899aabbccddee".into()],
        },
        Op::HoldOrphans {
            blob_id: "blob-2".into(),
            shards: vec![
                HeldShard {
                    shard_id: "0c0000112233445566778899aabbccddee".into(),
                    bytes: 2_097_216,
                    modified_ms: AT_MS - 86_400_000,
                },
                HeldShard {
                    shard_id: "0c0100112233445566778899aabbccddee".into(),
                    bytes: 64,
                    modified_ms: AT_MS - 90_000_000,
                },
            ],
        },
        Op::ReleaseOrphans {
            blob_id: Some("blob-2".into()),
        },
        Op::ForgetOrphans {
            blob_id: "blob-2".into(),
            shard_ids: vec![
                "0c0000112233445566778899aabbccddee".into(),
                "0c0100112233445566778899aabbccddee".into(),
            ],
        },
        Op::AllowBucket {
            bucket: "photos".into(),
            key_id: "AKIAREADER".into(),
            read: true,
            write: true,
            owner: false,
        },
        Op::DenyBucket {
            bucket: "photos".into(),
            key_id: "AKIAREADER".into(),
        },
        Op::SetBucket {
            bucket: "photos".into(),
            owner: Some("AKIAEXAMPLE".into()),
            max_retention_days: Some(3650),
        },
        Op::SetBucketDefaults {
            max_retention_days: 7300,
        },
        Op::AdoptBuckets {
            owner: Some("AKIAEXAMPLE".into()),
        },
    ]
}

/// Second samples, where one encoding per op is not enough (ADR 0027):
/// (golden file, command). Commands naming their actor (a key, an
/// admin), a CreateBucket naming an owner, a key that may not create
/// buckets.
pub fn commands_with_actors() -> Vec<(&'static str, Command)> {
    vec![
        (
            "command/v2/DeleteObject-by-key.json",
            command_by(
                "cmd-by-key",
                Actor::Key("AKIAEXAMPLE".into()),
                Op::DeleteObject {
                    bucket: "photos".into(),
                    key: "2024/cat.jpg".into(),
                    version_id: None,
                    marker_version_id: "0000000000000043-d00d".into(),
                    bypass_governance: false,
                },
            ),
        ),
        (
            "command/v2/CreateBucket-owner.json",
            command_by(
                "cmd-by-admin",
                Actor::Admin("admin-ops".into()),
                Op::CreateBucket {
                    name: "photos".into(),
                    object_lock_enabled: true,
                    owner: Some("AKIAEXAMPLE".into()),
                },
            ),
        ),
        (
            "command/v2/SetBucket-no-owner.json",
            command_by(
                "cmd-set-none",
                Actor::Admin("admin-ops".into()),
                Op::SetBucket {
                    bucket: "photos".into(),
                    owner: Some(String::new()),
                    max_retention_days: None,
                },
            ),
        ),
        (
            "command/v2/AdoptBuckets-by-admin.json",
            command_by(
                "cmd-adopt",
                Actor::Admin("admin-ops".into()),
                Op::AdoptBuckets { owner: None },
            ),
        ),
        (
            "command/v1/PutAccessKey-no-create.json",
            command(
                "cmd-key-no-create",
                Op::PutAccessKey {
                    key: access_key(false),
                },
            ),
        ),
    ]
}

/// The hold a restore writes (the setting `orphan_hold`).
pub fn orphan_hold() -> OrphanHold {
    OrphanHold {
        restored_at_ms: AT_MS,
        backup_index: 123_456,
        backup_created_ms: AT_MS - 3_600_000,
    }
}

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
    }
}
pub const ERROR_VARIANTS: usize = 24;

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

pub fn log_id(index: u64) -> LogId {
    openraft::testing::log_id(7, 2, index)
}

pub fn membership() -> openraft::Membership<u64, MetaNode> {
    let node = |i: u64| MetaNode {
        addr: format!("10.0.1.{i}:7400"),
        name: format!("meta-{i}"),
    };
    openraft::Membership::new(
        vec![BTreeSet::from([1, 2, 3]), BTreeSet::from([2, 3, 4])],
        BTreeMap::from([(1, node(1)), (2, node(2)), (3, node(3)), (4, node(4))]),
    )
}

pub fn entry_normal() -> Entry {
    Entry {
        log_id: log_id(42),
        payload: EntryPayload::Normal(command(
            "cmd-0042",
            Op::CommitVersion { version: version() },
        )),
    }
}

pub fn entry_membership() -> Entry {
    Entry {
        log_id: log_id(43),
        payload: EntryPayload::Membership(membership()),
    }
}

pub fn stored_membership() -> StoredMembership {
    StoredMembership::new(Some(log_id(43)), membership())
}

/// snapshot.json as format `v` writes it (v0: no tag, read as 0).
pub fn snapshot_meta(v: u64) -> StoredSnapshotMeta {
    StoredSnapshotMeta {
        v,
        meta: SnapshotMeta {
            last_log_id: Some(log_id(5000)),
            last_membership: stored_membership(),
            snapshot_id: "7-2-5000-0f1e2d3c".into(),
        },
        file: "snapshot-7-5000-0f1e2d3c.db".into(),
    }
}
