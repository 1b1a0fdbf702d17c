//! Sample ops, one per `Op` variant in order, and the commands that
//! name an actor (ADR 0027).

use super::*;

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
        Op::DenyMember { .. } => 46,
        Op::PutPublicAccessBlock { .. } => 47,
    }
}
pub const OP_VARIANTS: usize = 48;

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
    "DenyMember",
];

/// Ops added with command format 3 (issue 21): always written as 3, so
/// they have neither a v0 nor a v1 golden file.
pub const V3_ONLY_OPS: &[&str] = &["PutPublicAccessBlock"];

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
            abort_uploads: false,
        },
        Op::commit_version(version()),
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
            enable: false,
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
            if_match: None,
            if_none_match: false,
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
            command(
                "batch-b",
                Op::DeleteBucket {
                    name: "tmp".into(),
                    abort_uploads: false,
                },
            ),
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
        Op::DenyMember {
            role: Role::Meta,
            id: "meta-4".into(),
        },
        Op::PutPublicAccessBlock {
            bucket: "photos".into(),
            config: Some(PublicAccessBlock {
                block_public_acls: true,
                ignore_public_acls: false,
                block_public_policy: true,
                restrict_public_buckets: false,
            }),
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
