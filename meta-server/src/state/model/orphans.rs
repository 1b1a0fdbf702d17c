//! Records of the orphan hold after a restore (ADR 0026): a shard the
//! sweep holds (in a command), a held row as the DB keeps it, and the
//! conversions of a row and of the hold to what the admin service sends.

use hamster_proto::pb;
use serde::{Deserialize, Serialize};

use super::OrphanHold;

/// A shard the sweep found unnamed, old enough and written before the
/// restore: what `HoldOrphans` records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldShard {
    pub shard_id: String,
    /// The shard file's size on its server.
    pub bytes: u64,
    /// The shard file's write time on its server.
    pub modified_ms: i64,
}

/// A row of `held_orphans`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldOrphan {
    pub blob_id: String,
    pub shard_id: String,
    pub bytes: u64,
    pub modified_ms: i64,
    /// When the sweep first held it (the command's time).
    pub found_ms: i64,
    /// Released by an operator: the next sweep deletes it.
    pub released: bool,
}

impl From<HeldOrphan> for pb::HeldOrphan {
    fn from(o: HeldOrphan) -> Self {
        Self {
            blob_id: o.blob_id,
            shard_id: o.shard_id,
            bytes: o.bytes,
            modified_ms: o.modified_ms,
            found_ms: o.found_ms,
            released: o.released,
        }
    }
}

impl From<OrphanHold> for pb::OrphanHold {
    fn from(h: OrphanHold) -> Self {
        Self {
            restored_at_ms: h.restored_at_ms,
            backup_index: h.backup_index,
            backup_created_ms: h.backup_created_ms,
        }
    }
}
