//! Records of the durability commands: a unit (one shard map), a repair's
//! swap of one shard in it, and a shard a scrub found bad.

use serde::{Deserialize, Serialize};

use super::ShardLocation;

/// One shard map: a version's own (`part_number` 0), a part of a
/// completed multipart version (`version_id` set, `part_number` n), or a
/// part of an open upload (`upload_id` set, `version_id` ""). Exactly one
/// of `version_id` and `upload_id` is non-empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Unit {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    pub upload_id: String,
    pub part_number: u32,
}

impl Unit {
    /// A version's own shard map (`part_number` 0) or one of its parts'.
    pub fn version(bucket: &str, key: &str, version_id: &str, part_number: u32) -> Self {
        Self {
            bucket: bucket.into(),
            key: key.into(),
            version_id: version_id.into(),
            upload_id: String::new(),
            part_number,
        }
    }

    /// A part of an open upload.
    pub fn upload_part(bucket: &str, key: &str, upload_id: &str, part_number: u32) -> Self {
        Self {
            bucket: bucket.into(),
            key: key.into(),
            version_id: String::new(),
            upload_id: upload_id.into(),
            part_number,
        }
    }
}

/// One index of a unit's map moved to a rebuilt shard: applied only if
/// the map still holds `old_shard_id` there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSwap {
    pub index: u32,
    /// The shard the map names at `index` now; "": the index is missing
    /// from the map (a degraded commit).
    pub old_shard_id: String,
    /// The rebuilt shard: a shard id never named before, at `index`.
    pub new: ShardLocation,
}

/// A shard a blob-server found corrupt or unreadable (and moved aside).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadShard {
    pub shard_id: String,
    pub reason: String,
}
