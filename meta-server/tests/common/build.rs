//! Builders of the commands and records the state-machine tests apply,
//! and the rejections they expect.

use super::*;

pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// S3's multipart ETag, computed here from scratch: MD5 over the
/// concatenated binary MD5s of the parts, then "-N".
pub fn s3_multipart_etag(part_md5s_hex: &[&str]) -> String {
    let mut all = Vec::new();
    for e in part_md5s_hex {
        let bin = hex::decode(e.trim_matches('"')).expect("part ETag is hex");
        assert_eq!(bin.len(), 16);
        all.extend_from_slice(&bin);
    }
    format!("{}-{}", hex::encode(Md5::digest(&all)), part_md5s_hex.len())
}

pub fn shards(tag: &str) -> ShardMap {
    ShardMap {
        data_shards: 2,
        parity_shards: 1,
        segment_size: 1 << 20,
        shards: (0..3)
            .map(|i| ShardLocation {
                index: i,
                blob_id: format!("blob-{i}"),
                shard_id: format!("{tag}-shard-{i}"),
                checksum: vec![i as u8, 0xab, 0xcd],
            })
            .collect(),
    }
}

pub fn ver(bucket: &str, key: &str, id: &str, tag: &str) -> Version {
    Version {
        bucket: bucket.into(),
        key: key.into(),
        version_id: id.into(),
        size: 100 + tag.len() as u64,
        etag: md5_hex(tag.as_bytes()),
        content_type: "text/plain".into(),
        user_metadata: BTreeMap::from([("tag".to_string(), tag.to_string())]),
        stored_headers: BTreeMap::from([("cache-control".to_string(), "no-cache".to_string())]),
        created_at_ms: NOW - 7,
        delete_marker: false,
        shard_map: Some(shards(tag)),
        wrapped_dek: vec![0xde, 0xad, tag.len() as u8],
        kek_fingerprint: "kek-a".into(),
        lock_mode: LockMode::None,
        retain_until_ms: 0,
        legal_hold: false,
        parts: Vec::new(),
        ..Default::default()
    }
}

pub fn part(n: u32, size: u64, tag: &str) -> Part {
    Part {
        part_number: n,
        size,
        etag: md5_hex(tag.as_bytes()),
        shard_map: Some(shards(tag)),
        wrapped_dek: vec![n as u8, 7],
        kek_fingerprint: "kek-a".into(),
        ..Default::default()
    }
}

pub fn template(bucket: &str, key: &str) -> Version {
    Version {
        bucket: bucket.into(),
        key: key.into(),
        // Everything below but the headers, metadata and lock settings is
        // the proposer's business and must not leak into the object.
        version_id: "template-id".into(),
        size: 999,
        etag: "template-etag".into(),
        content_type: "video/mp4".into(),
        user_metadata: BTreeMap::from([("owner".to_string(), "ann".to_string())]),
        stored_headers: BTreeMap::from([("content-disposition".to_string(), "inline".to_string())]),
        created_at_ms: 1,
        delete_marker: false,
        shard_map: Some(shards("template")),
        wrapped_dek: vec![9, 9],
        kek_fingerprint: "kek-template".into(),
        lock_mode: LockMode::None,
        retain_until_ms: 0,
        legal_hold: false,
        parts: vec![part(1, 1, "template-part")],
        ..Default::default()
    }
}

pub fn create(name: &str, object_lock_enabled: bool) -> Op {
    Op::CreateBucket {
        name: name.into(),
        object_lock_enabled,
        owner: None,
    }
}

pub fn delete_bucket(name: &str) -> Op {
    Op::DeleteBucket {
        name: name.into(),
        abort_uploads: false,
    }
}

/// DeleteBucket as the gateway and admin API propose it since issue 21:
/// open uploads are aborted with the bucket.
pub fn delete_bucket_and_uploads(name: &str) -> Op {
    Op::DeleteBucket {
        name: name.into(),
        abort_uploads: true,
    }
}

pub fn commit(version: Version) -> Op {
    Op::commit_version(version)
}

pub fn del(bucket: &str, key: &str, version_id: Option<&str>, marker: &str) -> Op {
    Op::DeleteObject {
        bucket: bucket.into(),
        key: key.into(),
        version_id: version_id.map(Into::into),
        marker_version_id: marker.into(),
        bypass_governance: false,
    }
}

pub fn del_bypass(bucket: &str, key: &str, version_id: &str) -> Op {
    Op::DeleteObject {
        bucket: bucket.into(),
        key: key.into(),
        version_id: Some(version_id.into()),
        marker_version_id: "unused-marker".into(),
        bypass_governance: true,
    }
}

pub fn upload(bucket: &str, key: &str, upload_id: &str) -> Upload {
    Upload {
        bucket: bucket.into(),
        key: key.into(),
        upload_id: upload_id.into(),
        initiated_at_ms: NOW - 100,
        template: template(bucket, key),
    }
}

pub fn begin(bucket: &str, key: &str, upload_id: &str) -> Op {
    Op::BeginMultipart {
        upload: upload(bucket, key, upload_id),
    }
}

pub fn put_part(bucket: &str, key: &str, upload_id: &str, part: Part) -> Op {
    Op::CommitPart {
        bucket: bucket.into(),
        key: key.into(),
        upload_id: upload_id.into(),
        part,
    }
}

pub fn complete(
    bucket: &str,
    key: &str,
    upload_id: &str,
    parts: &[(u32, &str)],
    version_id: &str,
) -> Op {
    Op::CompleteMultipart {
        bucket: bucket.into(),
        key: key.into(),
        upload_id: upload_id.into(),
        parts: parts.iter().map(|(n, e)| (*n, e.to_string())).collect(),
        version_id: version_id.into(),
        if_match: None,
        if_none_match: false,
    }
}

pub fn abort(bucket: &str, key: &str, upload_id: &str) -> Op {
    Op::AbortMultipart {
        bucket: bucket.into(),
        key: key.into(),
        upload_id: upload_id.into(),
    }
}

pub fn access_key(id: &str) -> AccessKey {
    AccessKey {
        id: id.into(),
        name: format!("name of {id}"),
        sealed_secret: vec![1, 2, 3, 4, 5],
        created_at_ms: NOW - 1,
        enabled: true,
        kek_fingerprint: "kek-a".into(),
        can_create_bucket: true,
    }
}

pub fn blob(id: &str, address: &str) -> BlobServer {
    BlobServer {
        id: id.into(),
        address: address.into(),
        failure_domain: "rack-1".into(),
        capacity_bytes: 1000,
        free_bytes: 600,
        // Both are the state machine's to set, whatever the proposer says.
        state: BlobState::Unset,
        last_heartbeat_ms: 5,
        // The registry's to set (DrainBlob, heartbeats...): a
        // registration's are ignored.
        ..BlobServer::default()
    }
}

/// What a DeleteObject answers.
pub fn deleted(version_id: &str, delete_marker: bool, freed: Vec<ShardMap>) -> Response {
    Response::Deleted {
        version_id: version_id.into(),
        delete_marker,
        freed,
    }
}

pub fn invalid() -> MetaError {
    MetaError::InvalidArgument(String::new())
}

pub fn denied() -> MetaError {
    MetaError::AccessDenied(String::new())
}

pub fn invalid_part() -> MetaError {
    MetaError::InvalidPart(String::new())
}

pub fn invalid_request() -> MetaError {
    MetaError::InvalidRequest(String::new())
}

// Per-key authorization (ADR 0027): who a command acts for, and the
// admin's grant commands.

/// A command acting for access key `id`.
pub fn key(id: &str) -> Actor {
    Actor::Key(id.into())
}

/// A command acting for an admin.
pub fn admin() -> Actor {
    Actor::Admin("admin-1".into())
}

pub fn allow(bucket: &str, key_id: &str, read: bool, write: bool, owner: bool) -> Op {
    Op::AllowBucket {
        bucket: bucket.into(),
        key_id: key_id.into(),
        read,
        write,
        owner,
    }
}

pub fn deny(bucket: &str, key_id: &str) -> Op {
    Op::DenyBucket {
        bucket: bucket.into(),
        key_id: key_id.into(),
    }
}

/// A grant as AllowBucket answers it and the grant reads return it.
pub fn grant(bucket: &str, key_id: &str, read: bool, write: bool, owner: bool) -> BucketGrant {
    BucketGrant {
        bucket: bucket.into(),
        key_id: key_id.into(),
        read,
        write,
        owner,
    }
}

/// Sorts shard maps so sets of freed maps compare regardless of order.
pub fn sorted(mut maps: Vec<ShardMap>) -> Vec<ShardMap> {
    maps.sort_by(|a, b| a.shards[0].shard_id.cmp(&b.shards[0].shard_id));
    maps
}

pub async fn all_versions_of(
    c: &mut SqliteConnection,
    bucket: &str,
    key: &str,
) -> Vec<(String, bool, bool)> {
    // prefix = key and no delimiter: keys that start with `key`; keep `key`.
    let page = q::list(c, bucket, key, "", Cursor::Start, 1000, Walk::AllVersions)
        .await
        .expect("list");
    page.entries
        .into_iter()
        .filter_map(|e| match e {
            Entry::Version { version, is_latest } if version.key == key => {
                Some((version.version_id, version.delete_marker, is_latest))
            }
            _ => None,
        })
        .collect()
}

/// A DB with a versioned bucket `bucket` and `n` registered blob-servers
/// blob-0..n-1 (at 10.0.0.i:7000), each last heard from at apply time.
pub async fn versioned_with_blobs(bucket: &str, n: usize) -> Db {
    let mut db = Db::new().await;
    db.ok(create(bucket, false)).await;
    db.ok(Op::PutBucketVersioning {
        bucket: bucket.into(),
        status: Versioning::Enabled,
    })
    .await;
    for i in 0..n {
        let server = blob(&format!("blob-{i}"), &format!("10.0.0.{i}:7000"));
        db.ok(Op::RegisterBlob { server }).await;
    }
    db
}
