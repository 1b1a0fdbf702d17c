//! Conversions of the stored records to and from the protobuf messages.
//! A value the wire may carry but a record cannot hold (an unknown state
//! name) is refused here, before anything is proposed.

use hamster_proto::pb;

use super::{
    BlobServer, Bucket, Lifecycle, Part, ShardLocation, ShardMap, UnknownName, Upload, Version,
};

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

impl TryFrom<pb::ObjectVersion> for Version {
    type Error = UnknownName;
    fn try_from(v: pb::ObjectVersion) -> Result<Self, UnknownName> {
        Ok(Self {
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
            lock_mode: v.lock_mode.parse()?,
            retain_until_ms: v.retain_until_ms,
            legal_hold: v.legal_hold,
            parts: v.parts.into_iter().map(Into::into).collect(),
            checksum_algorithm: v.checksum_algorithm,
            checksum_value: v.checksum_value,
            checksum_type: v.checksum_type,
            upload_id: v.upload_id,
        })
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
            lock_mode: v.lock_mode.as_str().into(),
            retain_until_ms: v.retain_until_ms,
            legal_hold: v.legal_hold,
            is_latest: false,
            bucket_versioned: false,
            // Answers carry the count, never the parts (ADR 0031): a
            // reader pages them with GetParts.
            parts_count: u32::try_from(v.parts.len()).unwrap_or(u32::MAX),
            parts: Vec::new(),
            checksum_algorithm: v.checksum_algorithm,
            checksum_value: v.checksum_value,
            checksum_type: v.checksum_type,
            upload_id: v.upload_id,
        }
    }
}

impl From<Bucket> for pb::Bucket {
    fn from(b: Bucket) -> Self {
        let d = b.default_retention.unwrap_or_default();
        Self {
            name: b.name,
            created_at_ms: b.created_at_ms,
            versioning: b.versioning.as_str().into(),
            object_lock_enabled: b.object_lock_enabled,
            default_lock_mode: d.mode.as_str().into(),
            default_lock_days: d.days,
            default_lock_years: d.years,
            owner: b.owner,
            // Filled by the service: the owner key's name, and the limit
            // in force (the bucket's own, else the cluster's).
            owner_name: String::new(),
            max_retention_days: b.max_retention_days.unwrap_or(0),
            public_access_block: b.public_access_block.map(|p| pb::PublicAccessBlock {
                block_public_acls: p.block_public_acls,
                ignore_public_acls: p.ignore_public_acls,
                block_public_policy: p.block_public_policy,
                restrict_public_buckets: p.restrict_public_buckets,
            }),
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
            checksum_value: p.checksum_value,
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
            checksum_value: p.checksum_value,
        }
    }
}

impl From<BlobServer> for pb::BlobServer {
    fn from(b: BlobServer) -> Self {
        let state = b.display_state().into();
        Self {
            id: b.id,
            address: b.address,
            failure_domain: b.failure_domain,
            capacity_bytes: b.capacity_bytes,
            free_bytes: b.free_bytes,
            state,
            last_heartbeat_ms: b.last_heartbeat_ms,
            last_scrub_ms: b.last_scrub_ms,
            shards_stored: b.shards_stored,
            bytes_stored: b.bytes_stored,
            lifecycle: b.lifecycle.as_str().into(),
            drain_to: b.drain_to,
            // The admin service fills it from the shard references.
            shards_named: 0,
        }
    }
}

impl TryFrom<pb::BlobServer> for BlobServer {
    type Error = UnknownName;
    fn try_from(b: pb::BlobServer) -> Result<Self, UnknownName> {
        Ok(Self {
            id: b.id,
            address: b.address,
            failure_domain: b.failure_domain,
            capacity_bytes: b.capacity_bytes,
            free_bytes: b.free_bytes,
            state: b.state.parse()?,
            last_heartbeat_ms: b.last_heartbeat_ms,
            // Only the registry records a scrub (Op::RecordScrub), a
            // lifecycle (DrainBlob...) or a store's size (heartbeats): a
            // registration cannot set them.
            last_scrub_ms: 0,
            lifecycle: Lifecycle::In,
            drain_to: String::new(),
            shards_stored: 0,
            bytes_stored: 0,
        })
    }
}
