//! Which format version a command is written in: the oldest layout that
//! holds everything it says (ADR 0020, 0034).
//!
//! A reader ignores JSON fields it does not know (serde's default), so a
//! field added to a command is safe only while it is absent or at its
//! default: an older reader that met it set would apply a different
//! command than a newer replica and the replicas' states would part for
//! good. A command that sets one is therefore written at the version
//! that introduced the field, which older readers refuse (TooNew): they
//! stop applying instead of diverging. Unset, the command keeps its old
//! version and bytes, so it stays readable by every node and every
//! golden file keeps its bytes.

use super::{COMMAND_WITH_ACTOR, COMMAND_WITH_S3_ROUND_TWO, COMMAND_WITHOUT_ACTOR};
use crate::state::commands::{Command, Op};
use crate::state::model::{Part, Upload, Version};

impl Command {
    /// The version this command is written in: 1; 2 if it names its actor
    /// (ADR 0027); 3 if it carries issue 21's fields ([`Op::needs_v3`]).
    /// A batch takes the newest of its own and its commands', so its first
    /// key already tells an older reader to refuse the whole entry.
    pub fn layout(&self) -> u64 {
        let own = if self.op.needs_v3() {
            COMMAND_WITH_S3_ROUND_TWO
        } else if self.by.is_some() {
            COMMAND_WITH_ACTOR
        } else {
            COMMAND_WITHOUT_ACTOR
        };
        match &self.op {
            Op::Batch(cmds) => cmds.iter().map(Command::layout).fold(own, u64::max),
            _ => own,
        }
    }
}

impl Op {
    /// Whether this op itself (a batch's commands are judged on their own)
    /// says something a version-2 reader would drop without noticing:
    /// issue 21's fields set, or its new op PutPublicAccessBlock (which a
    /// version-2 reader would refuse anyway, as an unknown variant, but
    /// without saying it needs an upgrade). The match has no wildcard so
    /// that a new op must be decided here.
    pub fn needs_v3(&self) -> bool {
        match self {
            Op::DeleteBucket {
                name: _,
                abort_uploads,
            } => *abort_uploads,
            Op::CommitVersion {
                version,
                if_match,
                if_none_match,
            } => if_match.is_some() || *if_none_match || version.needs_v3(),
            Op::PutLockConfiguration {
                bucket: _,
                default_retention: _,
                enable,
            } => *enable,
            Op::BeginMultipart { upload } => upload.needs_v3(),
            Op::CommitPart { part, .. } => part.needs_v3(),
            Op::CompleteMultipart {
                bucket: _,
                key: _,
                upload_id: _,
                parts: _,
                version_id: _,
                if_match,
                if_none_match,
            } => if_match.is_some() || *if_none_match,
            Op::PutPublicAccessBlock { .. } => true,
            Op::CreateBucket { .. }
            | Op::DeleteObject { .. }
            | Op::PutBucketVersioning { .. }
            | Op::PutRetention { .. }
            | Op::PutLegalHold { .. }
            | Op::AbortMultipart { .. }
            | Op::PutAccessKey { .. }
            | Op::DeleteAccessKey { .. }
            | Op::RegisterBlob { .. }
            | Op::PutJoinToken { .. }
            | Op::SetProfile { .. }
            | Op::UseJoinToken { .. }
            | Op::BlobHeartbeat { .. }
            | Op::KeyHolderSeen { .. }
            | Op::StartKeyRotation { .. }
            | Op::Rewrap { .. }
            | Op::FinishKeyRotation
            | Op::InitTrust { .. }
            | Op::MemberSeen { .. }
            | Op::StartCaRotation { .. }
            | Op::ForgetMember { .. }
            | Op::DenyMember { .. }
            | Op::AdvanceCaRotation { .. }
            | Op::MarkBlobDown { .. }
            | Op::RecordScrub { .. }
            | Op::SwapShards { .. }
            | Op::DrainBlob { .. }
            | Op::UndrainBlob { .. }
            | Op::FinishDrain { .. }
            | Op::RemoveBlob { .. }
            | Op::MoveShards { .. }
            | Op::HoldOrphans { .. }
            | Op::ReleaseOrphans { .. }
            | Op::ForgetOrphans { .. }
            | Op::AllowBucket { .. }
            | Op::DenyBucket { .. }
            | Op::SetBucket { .. }
            | Op::SetBucketDefaults { .. }
            | Op::AdoptBuckets { .. }
            | Op::Batch(_)
            | Op::Unreadable { .. } => false,
        }
    }
}

// The records commands carry are taken apart field by field (no `..`),
// so a field added to one must be decided here too.

impl Version {
    fn needs_v3(&self) -> bool {
        let Version {
            bucket: _,
            key: _,
            version_id: _,
            size: _,
            etag: _,
            content_type: _,
            user_metadata: _,
            stored_headers: _,
            created_at_ms: _,
            delete_marker: _,
            shard_map: _,
            wrapped_dek: _,
            kek_fingerprint: _,
            lock_mode: _,
            retain_until_ms: _,
            legal_hold: _,
            parts,
            checksum_algorithm,
            checksum_value,
            checksum_type,
            upload_id,
        } = self;
        !checksum_algorithm.is_empty()
            || !checksum_value.is_empty()
            || !checksum_type.is_empty()
            || !upload_id.is_empty()
            || parts.iter().any(Part::needs_v3)
    }
}

impl Part {
    fn needs_v3(&self) -> bool {
        let Part {
            part_number: _,
            size: _,
            etag: _,
            shard_map: _,
            wrapped_dek: _,
            kek_fingerprint: _,
            checksum_value,
        } = self;
        !checksum_value.is_empty()
    }
}

impl Upload {
    fn needs_v3(&self) -> bool {
        let Upload {
            bucket: _,
            key: _,
            upload_id: _,
            initiated_at_ms: _,
            template,
        } = self;
        template.needs_v3()
    }
}

#[cfg(test)]
mod tests;
