//! Sample values for the golden files: realistic and fully populated
//! (non-empty strings, nonzero numbers, `Some`, several shards and parts),
//! so every field's encoding is pinned. Exhaustive by construction: each
//! `*_slot` fn matches every variant without a wildcard, so a new variant
//! does not compile until it has a slot here, and the sample list's test
//! fails until it has a sample (and then a golden file).

#![allow(dead_code)] // each test crate uses its own part

mod answers;
mod ops;
mod v3;

#[allow(unused_imports)] // each test crate uses its own part
pub use answers::*;
#[allow(unused_imports)]
pub use ops::*;
#[allow(unused_imports)]
pub use v3::*;

use std::collections::{BTreeMap, BTreeSet};

use hamster_meta::raft::state_machine::StoredSnapshotMeta;
use hamster_meta::raft::{Entry, LogId, MetaNode, SnapshotMeta, StoredMembership};
use hamster_meta::state::commands::{Actor, Command, MetaError, Op, Response};
use hamster_meta::state::model::{
    AccessKey, BadShard, BlobServer, BlobState, Bucket, BucketGrant, CaPhase, CaRotation,
    DefaultRetention, HeldShard, JoinToken, KeyRotation, Lifecycle, LockMode, OrphanHold, Part,
    PublicAccessBlock, RewrapTarget, Rewrapped, Role, ShardLocation, ShardMap, ShardSwap,
    TrustBundle, Unit, Upload, Version, Versioning,
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
        // Empty: the encoding before checksums were kept (issue 21).
        checksum_value: String::new(),
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
        // Empty: the encoding before checksums were kept (issue 21).
        checksum_algorithm: String::new(),
        checksum_value: String::new(),
        checksum_type: String::new(),
        upload_id: String::new(),
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
        public_access_block: None,
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

/// The hold a restore writes (the setting `orphan_hold`).
pub fn orphan_hold() -> OrphanHold {
    OrphanHold {
        restored_at_ms: AT_MS,
        backup_index: 123_456,
        backup_created_ms: AT_MS - 3_600_000,
    }
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
        payload: EntryPayload::Normal(command("cmd-0042", Op::commit_version(version()))),
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
