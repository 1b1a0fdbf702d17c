//! What the audit log records of each `Admin` request: the fields naming
//! what the call reads or changes. Every request message of the service
//! is listed; none carries a secret (secrets are only ever in answers:
//! CreateAccessKey's S3 secret, CreateJoinToken's token), and nothing of
//! an answer is read here.

use hamster_proto::pb;
use prost::Message;
use serde_json::{Value, json};

/// Methods that change nothing (they are logged too, marked read-only).
/// Backup changes nothing but hands out the whole metadata, sealed
/// secrets included: it is logged like the rest.
pub const READ_ONLY: &[&str] = &[
    "Status",
    "ListAccessKeys",
    "ScrubProgress",
    "Durability",
    "ListBuckets",
    "BucketInfo",
    "ListBlobServers",
    "ListOrphans",
    "Backup",
];

fn d<M: Message + Default>(msg: &[u8]) -> Option<M> {
    M::decode(msg).ok()
}

/// The identifying fields of `method`'s request `msg` (one protobuf
/// message, unframed); None for an undecodable message or an unknown
/// method, Some(`{}`) for a request without fields.
pub fn args(method: &str, msg: &[u8]) -> Option<Value> {
    Some(match method {
        "AddMember" => {
            let r: pb::AddMemberRequest = d(msg)?;
            json!({"raft_id": r.raft_id, "node_id": r.node_id, "address": r.address,
                "as_voter": r.as_voter})
        }
        "RemoveMember" => json!({"raft_id": d::<pb::RemoveMemberRequest>(msg)?.raft_id}),
        "CreateAccessKey" => {
            let r: pb::CreateAccessKeyRequest = d(msg)?;
            json!({"name": r.name, "can_create_bucket": r.can_create_bucket})
        }
        "DeleteAccessKey" => {
            json!({"access_key_id": d::<pb::DeleteAccessKeyRequest>(msg)?.access_key_id})
        }
        "StartKeyRotation" => json!({"rotation": "master-key",
            "new_kek_fingerprint": d::<pb::StartKeyRotationRequest>(msg)?.new_kek_fingerprint}),
        "StartCaRotation" => json!({"rotation": "ca",
            "replace": d::<pb::StartCaRotationRequest>(msg)?.replace}),
        "AdvanceCaRotation" => json!({"rotation": "ca",
            "from_phase": d::<pb::AdvanceCaRotationRequest>(msg)?.from_phase}),
        "ForgetMember" => {
            let r: pb::ForgetMemberRequest = d(msg)?;
            json!({"role": r.role, "id": r.id})
        }
        "CreateJoinToken" => {
            let r: pb::CreateJoinTokenRequest = d(msg)?;
            json!({"role": r.role, "uses": r.uses, "ttl_secs": r.ttl_secs})
        }
        "SetProfile" => {
            let r: pb::SetProfileRequest = d(msg)?;
            json!({"data_shards": r.data_shards, "parity_shards": r.parity_shards})
        }
        "Durability" => json!({"limit": d::<pb::DurabilityRequest>(msg)?.limit}),
        "ListBuckets" => {
            let r: pb::ListBucketsRequest = d(msg)?;
            json!({"access_key_id": r.access_key_id})
        }
        "DeleteBucket" => json!({"bucket": d::<pb::DeleteBucketRequest>(msg)?.name}),
        "CreateBucket" => {
            let r: pb::AdminCreateBucketRequest = d(msg)?;
            json!({"bucket": r.name, "owner": r.owner,
                "object_lock_enabled": r.object_lock_enabled})
        }
        "BucketInfo" => json!({"bucket": d::<pb::BucketInfoRequest>(msg)?.name}),
        "AllowBucket" => {
            let r: pb::AllowBucketRequest = d(msg)?;
            json!({"bucket": r.bucket, "access_key_id": r.access_key_id, "read": r.read,
                "write": r.write, "owner": r.owner})
        }
        "DenyBucket" => {
            let r: pb::DenyBucketRequest = d(msg)?;
            json!({"bucket": r.bucket, "access_key_id": r.access_key_id})
        }
        "SetBucket" => {
            let r: pb::SetBucketRequest = d(msg)?;
            json!({"bucket": r.name, "owner": r.owner,
                "max_retention_days": r.max_retention_days})
        }
        "SetBucketDefaults" => json!({"max_retention_days":
            d::<pb::SetBucketDefaultsRequest>(msg)?.max_retention_days}),
        "AdoptBuckets" => json!({"owner": d::<pb::AdoptBucketsRequest>(msg)?.owner}),
        "DrainBlob" => {
            let r: pb::DrainBlobRequest = d(msg)?;
            json!({"blob_id": r.id, "to": r.to})
        }
        "UndrainBlob" => json!({"blob_id": d::<pb::UndrainBlobRequest>(msg)?.id}),
        "RemoveBlob" => {
            let r: pb::RemoveBlobRequest = d(msg)?;
            json!({"blob_id": r.id, "force": r.force})
        }
        "ListOrphans" => {
            let r: pb::ListOrphansRequest = d(msg)?;
            json!({"blob_id": r.blob_id, "limit": r.limit})
        }
        "ReleaseOrphans" => {
            let r: pb::ReleaseOrphansRequest = d(msg)?;
            json!({"all": r.all, "blob_id": r.blob_id})
        }
        "Status" | "ListAccessKeys" | "StartRepair" | "ScrubProgress" | "ListBlobServers"
        | "Rebalance" | "Backup" => json!({}),
        _ => return None,
    })
}

/// The one message of a unary gRPC request body (5-byte frame header:
/// compressed flag, big-endian length); None when compressed, short or
/// followed by more.
pub fn unframe(body: &[u8]) -> Option<&[u8]> {
    let (&flag, rest) = body.split_first()?;
    if flag != 0 || rest.len() < 4 {
        return None;
    }
    let (len, msg) = rest.split_at(4);
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    (msg.len() == len).then_some(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(m: &impl Message) -> Vec<u8> {
        let msg = m.encode_to_vec();
        let mut out = vec![0];
        out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        out.extend_from_slice(&msg);
        out
    }

    #[test]
    fn requests_are_decoded_into_their_identifying_fields() {
        let body = frame(&pb::AllowBucketRequest {
            bucket: "photos".into(),
            access_key_id: "AKTEST".into(),
            read: true,
            write: false,
            owner: false,
        });
        let a = args("AllowBucket", unframe(&body).expect("frame")).expect("args");
        assert_eq!(a["bucket"], "photos");
        assert_eq!(a["access_key_id"], "AKTEST");
        assert_eq!(a["read"], true);
        let body = frame(&pb::RemoveMemberRequest { raft_id: 3 });
        let a = args("RemoveMember", unframe(&body).expect("frame")).expect("args");
        assert_eq!(a["raft_id"], 3);
        assert_eq!(args("Status", &[]), Some(json!({})));
        assert_eq!(args("NoSuchMethod", &[]), None);
    }

    #[test]
    fn compressed_short_or_trailing_frames_give_no_message() {
        assert_eq!(unframe(&[]), None);
        assert_eq!(unframe(&[1, 0, 0, 0, 0]), None);
        assert_eq!(unframe(&[0, 0, 0, 0, 2, 8]), None);
        assert_eq!(unframe(&[0, 0, 0, 0, 1, 8, 9]), None);
        assert_eq!(unframe(&[0, 0, 0, 0, 0]), Some(&[][..]));
    }
}
