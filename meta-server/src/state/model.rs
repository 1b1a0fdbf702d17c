//! Stored records. These, not the protobuf messages, are what the log and
//! the DB hold, so the wire contract can change without rewriting history.

use std::collections::BTreeMap;

use hamster_proto::pb;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub name: String,
    pub created_at_ms: i64,
    /// "" (never versioned), "Enabled" or "Suspended".
    pub versioning: String,
    pub object_lock_enabled: bool,
    /// Object lock's default retention for new versions that carry none.
    #[serde(default)]
    pub default_retention: Option<DefaultRetention>,
}

/// A bucket's default retention: a mode and a period of whole days or
/// whole years (a year is 365 days), never both.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    /// "GOVERNANCE" or "COMPLIANCE".
    pub mode: String,
    pub days: u32,
    pub years: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardLocation {
    pub index: u32,
    pub blob_id: String,
    pub shard_id: String,
    #[serde(with = "hexbytes")]
    pub checksum: Vec<u8>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMap {
    pub data_shards: u32,
    pub parity_shards: u32,
    pub segment_size: u64,
    pub shards: Vec<ShardLocation>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    pub size: u64,
    pub etag: String,
    pub content_type: String,
    pub user_metadata: BTreeMap<String, String>,
    pub stored_headers: BTreeMap<String, String>,
    pub created_at_ms: i64,
    pub delete_marker: bool,
    pub shard_map: Option<ShardMap>,
    /// The data key wrapped by the master key: never a plain key.
    #[serde(with = "hexbytes")]
    pub wrapped_dek: Vec<u8>,
    pub kek_fingerprint: String,
    pub lock_mode: String,
    pub retain_until_ms: i64,
    pub legal_hold: bool,
    /// A completed multipart object: its parts in order, each with its own
    /// shard map and wrapped data key. Empty for a single-part object.
    #[serde(default)]
    pub parts: Vec<Part>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub initiated_at_ms: i64,
    /// Headers and metadata the completed object will carry.
    pub template: Version,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub part_number: u32,
    pub size: u64,
    pub etag: String,
    pub shard_map: Option<ShardMap>,
    #[serde(with = "hexbytes")]
    pub wrapped_dek: Vec<u8>,
    pub kek_fingerprint: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    pub id: String,
    pub name: String,
    /// The secret sealed under the master key (ADR 0007); never plain.
    #[serde(with = "hexbytes")]
    pub sealed_secret: Vec<u8>,
    pub created_at_ms: i64,
    pub enabled: bool,
    /// The master key that sealed the secret ("": before any rotation,
    /// the cluster's first key).
    #[serde(default)]
    pub kek_fingerprint: String,
}

/// A gateway or meta-server and the master keys it reported holding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyHolder {
    pub id: String,
    /// "gateway" or "meta".
    pub role: String,
    pub current_fp: String,
    /// "" if it holds no next key.
    pub next_fp: String,
    pub last_seen_ms: i64,
}

/// An open master-key rotation: every wrapped key moves from `old` to
/// `new`; new writes already use `new`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotation {
    pub old: String,
    pub new: String,
    pub started_at_ms: i64,
}

/// What one rewrap changes: a wrapped key (or a sealed S3 secret), where
/// it is, and its bytes before and after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewrapped {
    pub target: RewrapTarget,
    #[serde(with = "hexbytes")]
    pub old: Vec<u8>,
    #[serde(with = "hexbytes")]
    pub new: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RewrapTarget {
    Version {
        bucket: String,
        key: String,
        version_id: String,
    },
    /// A part of a completed multipart version.
    VersionPart {
        bucket: String,
        key: String,
        version_id: String,
        part_number: u32,
    },
    /// A part of an upload in progress.
    UploadPart {
        upload_id: String,
        part_number: u32,
    },
    AccessKey {
        id: String,
    },
}

/// A join token as the meta tier keeps it: the secret only as SHA-256.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    pub id: String,
    /// "blob" or "gateway".
    pub role: String,
    pub secret_hash: String,
    pub uses_left: u32,
    pub expires_at_ms: i64,
    pub created_at_ms: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobServer {
    pub id: String,
    pub address: String,
    pub failure_domain: String,
    pub capacity_bytes: u64,
    pub free_bytes: u64,
    pub state: String,
    pub last_heartbeat_ms: i64,
}

/// Bytes as hex in JSON: compact enough, and readable when debugging a log.
mod hexbytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

// --- conversions to and from the wire ---

impl From<pb::ShardMap> for ShardMap {
    fn from(m: pb::ShardMap) -> Self {
        Self {
            data_shards: m.data_shards,
            parity_shards: m.parity_shards,
            segment_size: m.segment_size,
            shards: m
                .shards
                .into_iter()
                .map(|s| ShardLocation {
                    index: s.index,
                    blob_id: s.blob_id,
                    shard_id: s.shard_id,
                    checksum: s.checksum,
                })
                .collect(),
        }
    }
}

impl From<ShardMap> for pb::ShardMap {
    fn from(m: ShardMap) -> Self {
        Self {
            data_shards: m.data_shards,
            parity_shards: m.parity_shards,
            segment_size: m.segment_size,
            shards: m
                .shards
                .into_iter()
                .map(|s| pb::ShardLocation {
                    index: s.index,
                    blob_id: s.blob_id,
                    shard_id: s.shard_id,
                    checksum: s.checksum,
                })
                .collect(),
        }
    }
}

impl From<pb::ObjectVersion> for Version {
    fn from(v: pb::ObjectVersion) -> Self {
        Self {
            bucket: v.bucket,
            key: v.key,
            version_id: v.version_id,
            size: v.size,
            etag: v.etag,
            content_type: v.content_type,
            user_metadata: v.user_metadata.into_iter().collect(),
            stored_headers: v.stored_headers.into_iter().collect(),
            created_at_ms: v.created_at_ms,
            delete_marker: v.delete_marker,
            shard_map: v.shard_map.map(Into::into),
            wrapped_dek: v.wrapped_dek,
            kek_fingerprint: v.kek_fingerprint,
            lock_mode: v.lock_mode,
            retain_until_ms: v.retain_until_ms,
            legal_hold: v.legal_hold,
            parts: v.parts.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<Version> for pb::ObjectVersion {
    fn from(v: Version) -> Self {
        Self {
            bucket: v.bucket,
            key: v.key,
            version_id: v.version_id,
            size: v.size,
            etag: v.etag,
            content_type: v.content_type,
            user_metadata: v.user_metadata.into_iter().collect(),
            stored_headers: v.stored_headers.into_iter().collect(),
            created_at_ms: v.created_at_ms,
            delete_marker: v.delete_marker,
            shard_map: v.shard_map.map(Into::into),
            wrapped_dek: v.wrapped_dek,
            kek_fingerprint: v.kek_fingerprint,
            lock_mode: v.lock_mode,
            retain_until_ms: v.retain_until_ms,
            legal_hold: v.legal_hold,
            is_latest: false,
            bucket_versioned: false,
            parts: v.parts.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<Bucket> for pb::Bucket {
    fn from(b: Bucket) -> Self {
        let d = b.default_retention.unwrap_or_default();
        Self {
            name: b.name,
            created_at_ms: b.created_at_ms,
            versioning: b.versioning,
            object_lock_enabled: b.object_lock_enabled,
            default_lock_mode: d.mode,
            default_lock_days: d.days,
            default_lock_years: d.years,
        }
    }
}

impl From<Upload> for pb::MultipartUpload {
    fn from(u: Upload) -> Self {
        Self {
            bucket: u.bucket,
            key: u.key,
            upload_id: u.upload_id,
            initiated_at_ms: u.initiated_at_ms,
        }
    }
}

impl From<pb::Part> for Part {
    fn from(p: pb::Part) -> Self {
        Self {
            part_number: p.part_number,
            size: p.size,
            etag: p.etag,
            shard_map: p.shard_map.map(Into::into),
            wrapped_dek: p.wrapped_dek,
            kek_fingerprint: p.kek_fingerprint,
        }
    }
}

impl From<Part> for pb::Part {
    fn from(p: Part) -> Self {
        Self {
            part_number: p.part_number,
            size: p.size,
            etag: p.etag,
            shard_map: p.shard_map.map(Into::into),
            wrapped_dek: p.wrapped_dek,
            kek_fingerprint: p.kek_fingerprint,
        }
    }
}

impl From<BlobServer> for pb::BlobServer {
    fn from(b: BlobServer) -> Self {
        Self {
            id: b.id,
            address: b.address,
            failure_domain: b.failure_domain,
            capacity_bytes: b.capacity_bytes,
            free_bytes: b.free_bytes,
            state: b.state,
            last_heartbeat_ms: b.last_heartbeat_ms,
        }
    }
}

impl From<pb::BlobServer> for BlobServer {
    fn from(b: pb::BlobServer) -> Self {
        Self {
            id: b.id,
            address: b.address,
            failure_domain: b.failure_domain,
            capacity_bytes: b.capacity_bytes,
            free_bytes: b.free_bytes,
            state: b.state,
            last_heartbeat_ms: b.last_heartbeat_ms,
        }
    }
}

/// The cluster's trust bundle: public CA certificates only (ADR 0019).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustBundle {
    /// Raised by every change; members load the newest they see.
    pub generation: u64,
    /// PEM of each trusted CA certificate.
    pub cas: Vec<String>,
    /// Fingerprint of the CA that signs new certificates.
    pub issuing: String,
    /// The meta-server that minted the issuing CA ("" : not known); a
    /// hint for where to send CSRs, not a rule.
    pub issuer: String,
}

/// An open CA rotation. "widening": trust is {old, new}, waiting for every
/// live member to load it; "reissuing": new certificates come from `new`,
/// waiting for every live member to hold one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaRotation {
    pub old: String,
    pub new: String,
    pub phase: String,
    /// The generation that first trusted both.
    pub widened: u64,
    pub started_at_ms: i64,
}

/// A member's last report: the trust generation it has loaded and the
/// CA that signed its current certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsMember {
    pub id: String,
    pub role: String,
    pub generation: u64,
    pub cert_ca: String,
    pub last_seen_ms: i64,
}
