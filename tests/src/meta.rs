//! Helpers for tests against the meta tier: status, waiting for a leader,
//! and committing test versions as a gateway would, acting for an access
//! key (ADR 0027: the meta tier refuses a gateway's write that names none).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hamster_proto::pb::admin_client::AdminClient;
use hamster_proto::pb::meta_client::MetaClient;
use hamster_proto::pb::{self, StatusRequest, StatusResponse};
use hamster_proto::tls::NodeTls;
use tonic::transport::Channel;

use crate::{Cluster, Kind, Node};

impl Cluster {
    /// `Admin.Status` of `node`, asked with the admin certificate.
    pub async fn status(&self, node: Node) -> Result<StatusResponse, tonic::Status> {
        let mut c = AdminClient::new(self.channel(node, &self.admin_tls()));
        match tokio::time::timeout(Duration::from_secs(5), c.status(StatusRequest {})).await {
            Ok(r) => r.map(tonic::Response::into_inner),
            Err(_) => Err(tonic::Status::deadline_exceeded("status timed out")),
        }
    }

    /// Waits until the running nodes among `metas` agree on one leader;
    /// returns the leader.
    pub async fn wait_leader(&self, metas: &[Node]) -> Node {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut leaders = Vec::new();
            for &m in metas.iter().filter(|m| self.is_running(**m)) {
                if let Ok(s) = self.status(m).await {
                    leaders.push(s.leader_raft_id);
                }
            }
            if let Some(&first) = leaders.first()
                && first != 0
                && leaders.iter().all(|l| *l == first)
                && let Some(leader) = self.meta_by_raft_id(first)
            {
                return leader;
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader among {:?}: {leaders:?}",
                metas.iter().map(|m| &self.node(*m).id).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The meta node with Raft id `raft_id`.
    pub fn meta_by_raft_id(&self, raft_id: u64) -> Option<Node> {
        self.handles()
            .into_iter()
            .find(|n| n.kind() == Kind::Meta && self.node(*n).raft_id == raft_id)
    }

    /// Waits until `node` has applied at least `index`.
    pub async fn wait_applied(&self, node: Node, index: i64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(s) = self.status(node).await
                && s.applied_index >= index
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} never applied index {index}",
                self.node(node).id
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A gateway identity (provisioned once per name) to call `Meta` with.
    pub fn gateway_identity(&self, name: &str) -> Arc<NodeTls> {
        let dir = self.root().join("nodes").join(name);
        if !dir.join("node.crt").exists() {
            self.provision(Kind::Gateway, name);
        }
        self.identity(&dir)
    }

    /// For the load tools: a 3-node meta tier, healthy, with the bucket
    /// "bench" owned by [`Cluster::meta_key`]; answers (nodes, leader, a
    /// gateway identity, that key's id).
    pub async fn bench_meta_tier(&mut self) -> (Vec<Node>, Node, Arc<NodeTls>, String) {
        let metas = self.start_meta_cluster(3);
        for &m in &metas {
            self.wait_healthy(m).await;
        }
        let leader = self.wait_leader(&metas).await;
        let gw = self.gateway_identity("gw-bench");
        let key = self.meta_key(leader).await;
        self.meta_client(leader, &gw)
            .create_bucket(pb::CreateBucketRequest {
                name: "bench".into(),
                object_lock_enabled: false,
                access_key_id: key.clone(),
            })
            .await
            .expect("bucket");
        (metas, leader, gw, key)
    }

    /// The access key a test's gateway calls act for: made once per
    /// cluster through `node` with Admin.CreateAccessKey (its id is kept
    /// in the cluster directory; its secret is never needed, since those
    /// calls are not signed S3 requests). A bucket it creates is its own.
    pub async fn meta_key(&self, node: Node) -> String {
        let file = self.root().join("meta-key-id");
        if let Ok(id) = std::fs::read_to_string(&file) {
            return id;
        }
        let id = self.admin_create_key(node, "meta-tests", None).await;
        std::fs::write(&file, &id).expect("write the key id");
        id
    }

    /// Admin.CreateAccessKey through `node`: the new key's id.
    /// `can_create_bucket` None: the default (it may).
    pub async fn admin_create_key(
        &self,
        node: Node,
        name: &str,
        can_create_bucket: Option<bool>,
    ) -> String {
        let req = pb::CreateAccessKeyRequest {
            name: name.into(),
            can_create_bucket,
        };
        let admin = self.admin_tls();
        let mut first = AdminClient::new(self.channel(node, &admin));
        let answer = match first.create_access_key(req.clone()).await {
            // A follower makes no admin change (ADR 0030): it names the
            // leader, which is asked instead, as the CLI does.
            Err(s)
                if hamster_proto::ErrorCode::of(&s)
                    == Some(hamster_proto::ErrorCode::NotLeader) =>
            {
                let leader = s
                    .metadata()
                    .get(hamster_proto::error::LEADER_KEY)
                    .and_then(|v| v.to_str().ok())
                    .expect("NotLeader names the leader")
                    .to_string();
                let ch = hamster_proto::transport::channel(&leader, &admin, &[])
                    .expect("channel to the leader");
                AdminClient::new(ch).create_access_key(req).await
            }
            other => other,
        };
        answer
            .expect("create access key")
            .into_inner()
            .key
            .expect("the new key")
            .access_key_id
    }

    /// The fingerprint of the master key `hamster init` made.
    pub fn kek_fingerprint(&self) -> String {
        hamster_proto::secrets::MasterKey::load(&self.pki_dir().join("master.key"))
            .expect("master key")
            .fingerprint()
    }

    /// A `Meta` client on `node`, as the gateway identity `gw`.
    pub fn meta_client(&self, node: Node, gw: &Arc<NodeTls>) -> MetaClient<Channel> {
        MetaClient::new(self.channel(node, gw))
    }
}

/// A version as a gateway would commit it (shards and wrapped key are
/// placeholders of the right shape: the meta tier never looks inside).
/// `kek` is the fingerprint of the cluster's master key, which the meta
/// tier requires of every commit ([`Cluster::kek_fingerprint`]).
pub fn test_version(kek: &str, bucket: &str, key: &str, n: u64) -> pb::ObjectVersion {
    pb::ObjectVersion {
        bucket: bucket.into(),
        key: key.into(),
        size: n,
        etag: format!("{n:032x}"),
        content_type: "application/octet-stream".into(),
        created_at_ms: 1_700_000_000_000,
        shard_map: Some(pb::ShardMap {
            data_shards: 2,
            parity_shards: 1,
            segment_size: 1 << 20,
            shards: (0..3)
                .map(|i| pb::ShardLocation {
                    index: i,
                    blob_id: format!("blob-{i}"),
                    shard_id: format!("{key}/{i}"),
                    checksum: vec![i as u8; 4],
                })
                .collect(),
        }),
        wrapped_dek: vec![7; 60],
        kek_fingerprint: kek.into(),
        ..Default::default()
    }
}

/// Commits a test version of `key`, acting for the access key
/// `access_key_id` (which needs write on `bucket`).
pub async fn commit(
    client: &mut MetaClient<Channel>,
    kek: &str,
    access_key_id: &str,
    bucket: &str,
    key: &str,
    n: u64,
) -> Result<pb::ObjectVersion, tonic::Status> {
    let r = client
        .commit_version(pb::CommitVersionRequest {
            version: Some(test_version(kek, bucket, key, n)),
            request_id: String::new(),
            access_key_id: access_key_id.into(),
            ..Default::default()
        })
        .await?;
    r.into_inner()
        .version
        .ok_or_else(|| tonic::Status::internal("no version in response"))
}

/// Every key in `bucket` as node `client` lists it (all pages).
pub async fn list_all(
    client: &mut MetaClient<Channel>,
    bucket: &str,
) -> Result<Vec<String>, tonic::Status> {
    let mut keys = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_objects(pb::ListObjectsRequest {
                bucket: bucket.into(),
                continuation_token: token.clone(),
                max_keys: 1000,
                ..Default::default()
            })
            .await?
            .into_inner();
        keys.extend(page.objects.into_iter().map(|o| o.key));
        if !page.is_truncated {
            return Ok(keys);
        }
        token = page.next_continuation_token;
    }
}

/// Every part of a completed multipart version, paged with GetParts as a
/// gateway reads them (answers carry `parts_count`, never the parts, ADR
/// 0031); empty for a single-part version.
pub async fn all_parts(
    client: &mut MetaClient<Channel>,
    v: &pb::ObjectVersion,
) -> Result<Vec<pb::Part>, tonic::Status> {
    let mut parts = Vec::new();
    if v.parts_count == 0 {
        return Ok(parts);
    }
    let mut marker = 0;
    loop {
        let page = client
            .get_parts(pb::GetPartsRequest {
                bucket: v.bucket.clone(),
                key: v.key.clone(),
                version_id: v.version_id.clone(),
                etag: v.etag.clone(),
                created_at_ms: v.created_at_ms,
                part_number_marker: marker,
                max_parts: 1000,
            })
            .await?
            .into_inner();
        parts.extend(page.parts);
        if !page.is_truncated {
            return Ok(parts);
        }
        marker = page.next_part_number_marker;
    }
}
