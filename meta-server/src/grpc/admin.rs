//! The `Admin` service: cluster status and membership. Admitted for the
//! admin certificate only. Membership changes run on the leader (forwarded
//! if need be): a new member joins as a learner, catches up, then votes.
//! Repair: scrub passes started on every blob-server, their progress,
//! and the durability view. Blob-server lifecycle (list, drain, undrain,
//! remove, rebalance): `blob_admin`. Buckets, owners, grants and limits,
//! acting as the admin certificate (ADR 0027): `buckets`.

use std::sync::Arc;
use std::time::Duration;

use hamster_proto::pb::{self, node_client::NodeClient};
use openraft::ServerState;
use tonic::{Request, Response, Status};

use super::buckets;
use super::errors::{ServiceError, expect_ok, unexpected};
use super::frees::Frees;
use crate::ca::CaStore;
use crate::cluster::{ForwardRequest, Meta, now_ms};
use crate::raft::MetaNode;
use crate::repair::balance::Band;
use crate::repair::{Kick, scrub, view};
use crate::state::commands::Op;
use crate::state::commands::Response as R;
use crate::state::key_rotation;
use crate::state::model::{AccessKey, Role as ModelRole};
use crate::state::reads as q;
use hamster_proto::Role;
use hamster_proto::envelope::seal_secret;
use hamster_proto::join::JoinToken;
use hamster_proto::keyring::Keyring;
use hamster_proto::secrets::AccessKey as NewKey;
use hamster_proto::transport::Pool;
use rand::Rng;

/// How long status waits for each member's health answer.
const HEALTH_TIMEOUT: Duration = Duration::from_millis(1500);

pub struct AdminService {
    meta: Arc<Meta>,
    /// Seals new S3 secrets (ADR 0007); never leaves this process.
    keys: Arc<Keyring>,
    /// Where a CA rotation opened here mints the new CA.
    ca: CaStore,
    /// Wakes this node's repair planner (it acts only if this node leads).
    repair: Kick,
    /// Channels to blob-servers, for StartRepair and ScrubProgress.
    blobs: Pool,
    /// Pass ends ScrubProgress saw: a new one wakes the planner, once.
    pass_ends: scrub::PassEnds,
    /// The rebalancer's band, for the balance views.
    band: Band,
    /// Frees the shards of the uploads a DeleteBucket aborts (ADR 0029).
    frees: Frees,
}

impl AdminService {
    pub fn new(meta: Arc<Meta>, keys: Arc<Keyring>, ca: CaStore, repair: Kick, band: Band) -> Self {
        let blobs = Pool::new(meta.tls.clone(), &[Role::Blob]);
        Self {
            frees: Frees::new(meta.clone()),
            meta,
            keys,
            ca,
            repair,
            blobs,
            pass_ends: Default::default(),
            band,
        }
    }

    /// The cluster's write key, which this node must hold to seal secrets.
    async fn write_key(&self) -> Result<Arc<hamster_proto::secrets::MasterKey>, ServiceError> {
        let fp = self
            .meta
            .read(async |c| key_rotation::write_key(c).await)
            .await?;
        self.keys.for_write(&fp).ok_or_else(|| {
            tracing::error!(cluster = %fp, this_node = %self.keys.describe(),
                "split key: this meta-server does not hold the cluster's write key");
            ServiceError::WrongMasterKey(format!(
                "this meta-server does not hold the cluster's write key {fp}"
            ))
        })
    }
}

fn key_info(k: &AccessKey) -> pb::AccessKey {
    pb::AccessKey {
        access_key_id: k.id.clone(),
        name: k.name.clone(),
        created_at_ms: k.created_at_ms,
        enabled: k.enabled,
        can_create_bucket: k.can_create_bucket,
    }
}

fn index(i: Option<u64>) -> i64 {
    i.map_or(-1, |i| i64::try_from(i).unwrap_or(i64::MAX))
}

fn state_name(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "Leader",
        ServerState::Follower => "Follower",
        ServerState::Candidate => "Candidate",
        ServerState::Learner => "Learner",
        ServerState::Shutdown => "Shutdown",
    }
}

impl AdminService {
    /// The key part of `status`: write key, rotation, what is left on the
    /// old key, and each key holder; and durability with the blob-servers
    /// (the same read, so every meta-server answers alike).
    async fn key_status(&self) -> Result<pb::StatusResponse, ServiceError> {
        let band = self.band;
        let (write, open, holders, durability, (blob_servers, balance), (shards_moved, o)) = self
            .meta
            .read(async |c| {
                let open = match key_rotation::rotation(c).await? {
                    Some(r) => {
                        let left = key_rotation::count_on(c, &r.old).await?;
                        let secrets = q::count_secrets_sealed_by(c, &r.old).await?;
                        Some((r, left, secrets))
                    }
                    None => None,
                };
                Ok((
                    key_rotation::write_key(c).await?,
                    open,
                    q::key_holders(c).await?,
                    q::durability_summary(c).await?,
                    super::blob_admin::servers(c, band).await?,
                    (q::shards_moved(c).await?, super::orphans::status(c).await?),
                ))
            })
            .await?;
        let now = now_ms();
        let key_holders = holders
            .into_iter()
            .map(|h| pb::KeyHolder {
                live: h.last_seen_ms >= now - key_rotation::LIVE_MS,
                id: h.id,
                role: h.role.to_string(),
                current_kek_fingerprint: h.current_fp,
                next_kek_fingerprint: h.next_fp,
                last_seen_ms: h.last_seen_ms,
            })
            .collect();
        let mut out = pb::StatusResponse {
            master_key_fingerprint: write,
            key_rotation: "none".into(),
            key_holders,
            under_replicated: durability.under_replicated,
            unrecoverable: durability.unrecoverable,
            last_scrub_ms: durability.last_scrub_ms,
            repair_queue: durability.repair_queue,
            shards_repaired: durability.shards_repaired,
            blob_servers,
            shards_moved,
            balance: Some(balance),
            held_orphans: o.held_orphans,
            held_orphan_bytes: o.held_orphan_bytes,
            restored: o.restored,
            cluster_id: o.cluster_id,
            ..Default::default()
        };
        if let Some((r, left, secrets)) = open {
            out.key_rotation = "rewrapping".into();
            out.rotation_old_fingerprint = r.old;
            out.rotation_new_fingerprint = r.new;
            out.versions_on_old_key = left;
            out.access_keys_on_old_key = secrets;
        }
        Ok(out)
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let m = self.meta.raft.metrics().borrow().clone();
        let (nodes, voters) = self.meta.members();
        let probes = nodes.iter().map(|(id, node)| {
            let peers = self.meta.peers.clone();
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(id).cloned())
                .map_or(-1, |l| index(l.map(|l| l.index)));
            let matched = if *id == m.id {
                index(m.last_log_index)
            } else {
                matched
            };
            let (id, node, voter) = (*id, node.clone(), voters.contains(id));
            async move {
                let health = match peers.channel(&node.addr) {
                    Ok(ch) => tokio::time::timeout(
                        HEALTH_TIMEOUT,
                        NodeClient::new(ch).health(pb::HealthRequest {}),
                    )
                    .await
                    .map_err(|_| "no answer".to_string())
                    .and_then(|r| r.map_err(|s| s.message().to_string())),
                    Err(e) => Err(e.to_string()),
                };
                pb::MemberStatus {
                    raft_id: id,
                    node_id: node.name.clone(),
                    address: node.addr.clone(),
                    voter,
                    healthy: health.is_ok(),
                    health_error: health.err().unwrap_or_default(),
                    matched_index: matched,
                }
            }
        });
        let members = futures::future::join_all(probes).await;
        let keys = self.key_status().await?;
        let keys_and_ca = super::ca_admin::status(&self.meta, keys).await?;
        Ok(Response::new(pb::StatusResponse {
            node_id: self.meta.tls.identity().node_id.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            leader_raft_id: m.current_leader.unwrap_or(0),
            members,
            raft_id: m.id,
            term: m.current_term,
            state: state_name(m.state).into(),
            last_log_index: index(m.last_log_index),
            commit_index: index(self.meta.log.committed_index()),
            applied_index: index(m.last_applied.map(|l| l.index)),
            snapshot_index: index(m.snapshot.map(|l| l.index)),
            ..keys_and_ca
        }))
    }

    /// Opens a CA rotation, minting the new CA in this node's CA
    /// directory; with one open, answers it (a re-run follows it).
    async fn start_ca_rotation(
        &self,
        req: Request<pb::StartCaRotationRequest>,
    ) -> Result<Response<pb::StartCaRotationResponse>, Status> {
        let replace = req.into_inner().replace;
        let state = super::ca_admin::start(&self.meta, &self.ca, replace).await?;
        Ok(Response::new(pb::StartCaRotationResponse {
            state: Some(state),
        }))
    }

    async fn forget_member(
        &self,
        req: Request<pb::ForgetMemberRequest>,
    ) -> Result<Response<pb::ForgetMemberResponse>, Status> {
        let r = req.into_inner();
        super::ca_admin::forget(&self.meta, &r.role, &r.id).await?;
        Ok(Response::new(pb::ForgetMemberResponse {}))
    }

    async fn advance_ca_rotation(
        &self,
        req: Request<pb::AdvanceCaRotationRequest>,
    ) -> Result<Response<pb::AdvanceCaRotationResponse>, Status> {
        let from = req.into_inner().from_phase;
        let state = super::ca_admin::advance(&self.meta, &from).await?;
        Ok(Response::new(pb::AdvanceCaRotationResponse {
            state: Some(state),
        }))
    }

    /// Opens a master-key rotation to this node's next key (or the one
    /// named). The state machine refuses it, naming them, unless every
    /// live key holder has that key loaded.
    async fn start_key_rotation(
        &self,
        req: Request<pb::StartKeyRotationRequest>,
    ) -> Result<Response<pb::StartKeyRotationResponse>, Status> {
        let named = req.into_inner().new_kek_fingerprint;
        let new = if named.is_empty() {
            self.keys.next().map(|k| k.fingerprint()).ok_or_else(|| {
                ServiceError::RotationRefused(format!(
                    "meta-server {} has no next master key loaded (--next-master-key-file, then SIGHUP)",
                    self.meta.tls.identity().node_id
                ))
            })?
        } else {
            named
        };
        if self.keys.get(&new).is_none() {
            return Err(ServiceError::RotationRefused(format!(
                "meta-server {} does not hold the master key {new}",
                self.meta.tls.identity().node_id
            ))
            .into());
        }
        let old = self
            .meta
            .read(async |c| key_rotation::write_key(c).await)
            .await?;
        let op = Op::StartKeyRotation {
            old: old.clone(),
            new: new.clone(),
        };
        match self.meta.write(op).await? {
            R::RotationStarted { to_rewrap } => {
                tracing::info!(old = %old, new = %new, to_rewrap, "master-key rotation open");
                Ok(Response::new(pb::StartKeyRotationResponse {
                    old_kek_fingerprint: old,
                    new_kek_fingerprint: new,
                    to_rewrap,
                }))
            }
            other => Err(unexpected(other).into()),
        }
    }

    async fn add_member(
        &self,
        req: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::AddMemberResponse>, Status> {
        let r = req.into_inner();
        if r.raft_id == 0 || r.address.is_empty() || r.node_id.is_empty() {
            return Err(ServiceError::InvalidArgument(
                "raft_id (> 0), node_id and address are required".into(),
            )
            .into());
        }
        super::ca_admin::refuse_denied(&self.meta, ModelRole::Meta, &r.node_id).await?;
        let node = MetaNode {
            addr: r.address,
            name: r.node_id,
        };
        tracing::info!(raft_id = r.raft_id, %node, voter = r.as_voter, "adding member");
        expect_ok(
            self.meta
                .run(ForwardRequest::AddLearner {
                    id: r.raft_id,
                    node,
                })
                .await?,
        )?;
        if r.as_voter {
            expect_ok(
                self.meta
                    .run(ForwardRequest::AddVoter { id: r.raft_id })
                    .await?,
            )?;
        }
        Ok(Response::new(pb::AddMemberResponse {}))
    }

    async fn remove_member(
        &self,
        req: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        let id = req.into_inner().raft_id;
        tracing::info!(raft_id = id, "removing member");
        super::ca_admin::remove_member(&self.meta, id).await?;
        Ok(Response::new(pb::RemoveMemberResponse {}))
    }

    /// Generates the secret here, proposes only its sealed form, and
    /// returns the plaintext once, to the admin who asked (ADR 0007).
    async fn create_access_key(
        &self,
        req: Request<pb::CreateAccessKeyRequest>,
    ) -> Result<Response<pb::CreateAccessKeyResponse>, Status> {
        let r = req.into_inner();
        let name = r.name;
        if name.len() > 256 {
            return Err(
                ServiceError::InvalidArgument("a key name is at most 256 bytes".into()).into(),
            );
        }
        let fresh = NewKey::generate();
        let kek = self.write_key().await?;
        let key = AccessKey {
            sealed_secret: seal_secret(&kek, &fresh.id, fresh.secret()),
            id: fresh.id.clone(),
            name,
            created_at_ms: now_ms(),
            enabled: true,
            kek_fingerprint: kek.fingerprint(),
            can_create_bucket: r.can_create_bucket.unwrap_or(true),
        };
        let info = key_info(&key);
        expect_ok(self.meta.write(Op::PutAccessKey { key }).await?)?;
        tracing::info!(access_key_id = %info.access_key_id, "access key created");
        let audit = serde_json::json!({"access_key_id": info.access_key_id});
        let mut out = Response::new(pb::CreateAccessKeyResponse {
            key: Some(info),
            secret_access_key: fresh.secret().to_string(),
        });
        crate::observe::audit::note(&mut out, audit);
        Ok(out)
    }

    async fn list_access_keys(
        &self,
        _req: Request<pb::ListAccessKeysRequest>,
    ) -> Result<Response<pb::ListAccessKeysResponse>, Status> {
        let keys = self.meta.read(async |c| q::access_keys(c).await).await?;
        Ok(Response::new(pb::ListAccessKeysResponse {
            keys: keys.iter().map(key_info).collect(),
        }))
    }

    async fn delete_access_key(
        &self,
        req: Request<pb::DeleteAccessKeyRequest>,
    ) -> Result<Response<pb::DeleteAccessKeyResponse>, Status> {
        let id = req.into_inner().access_key_id;
        expect_ok(
            self.meta
                .write(Op::DeleteAccessKey { id: id.clone() })
                .await?,
        )?;
        tracing::info!(access_key_id = %id, "access key deleted");
        Ok(Response::new(pb::DeleteAccessKeyResponse {}))
    }

    /// A join token for a blob-server or gateway: the secret goes back to
    /// the admin once; the meta tier keeps its hash (ADR 0015).
    async fn create_join_token(
        &self,
        req: Request<pb::CreateJoinTokenRequest>,
    ) -> Result<Response<pb::CreateJoinTokenResponse>, Status> {
        let r = req.into_inner();
        let role: Role = r
            .role
            .parse()
            .map_err(|_| ServiceError::InvalidArgument("role must be blob or gateway".into()))?;
        if !matches!(role, Role::Blob | Role::Gateway) {
            return Err(ServiceError::InvalidArgument(
                "join tokens are for blob-servers and gateways".into(),
            )
            .into());
        }
        let uses = if r.uses == 0 { 1 } else { r.uses.min(10_000) };
        let ttl_secs = if r.ttl_secs == 0 {
            3600
        } else {
            r.ttl_secs.min(366 * 24 * 3600)
        };
        let ca = self.meta.tls.own_issuer_fingerprint().ok_or_else(|| {
            ServiceError::NoCaKey("this node's CA is not in its trust set".into())
        })?;
        let id = hex::encode(rand::rng().random::<[u8; 8]>());
        let secret = hex::encode(rand::rng().random::<[u8; 32]>());
        let token = JoinToken::new(role, id.clone(), secret, ca);
        let now = now_ms();
        let stored = crate::state::model::JoinToken {
            id: id.clone(),
            role: role.into(),
            secret_hash: token.secret_hash(),
            uses_left: uses,
            expires_at_ms: now + i64::try_from(ttl_secs).unwrap_or(0) * 1000,
            created_at_ms: now,
        };
        expect_ok(self.meta.write(Op::PutJoinToken { token: stored }).await?)?;
        tracing::info!(token = %id, %role, uses, ttl_secs, "join token created");
        let mut out = Response::new(pb::CreateJoinTokenResponse {
            token: token.encode().to_string(),
        });
        // The token's id only: its secret half is the answer's alone.
        crate::observe::audit::note(&mut out, serde_json::json!({"token_id": id}));
        Ok(out)
    }

    async fn set_profile(
        &self,
        req: Request<pb::SetProfileRequest>,
    ) -> Result<Response<pb::SetProfileResponse>, Status> {
        let r = req.into_inner();
        expect_ok(
            self.meta
                .write(Op::SetProfile {
                    data_shards: r.data_shards,
                    parity_shards: r.parity_shards,
                })
                .await?,
        )?;
        tracing::info!(
            k = r.data_shards,
            m = r.parity_shards,
            "erasure profile set"
        );
        Ok(Response::new(pb::SetProfileResponse {}))
    }

    /// Every bucket, a page at a time; with an access key id, only those
    /// that key reaches (what it would list through S3).
    async fn list_buckets(
        &self,
        req: Request<pb::ListBucketsRequest>,
    ) -> Result<Response<pb::ListBucketsResponse>, Status> {
        let r = req.into_inner();
        let key = (!r.access_key_id.is_empty()).then_some(r.access_key_id.as_str());
        Ok(Response::new(buckets::list(&self.meta, key, &r).await?))
    }

    /// The same command as S3's DeleteBucket, so the same rules: a bucket
    /// holding any version (locked or not) is refused; its open uploads
    /// are aborted with it.
    async fn delete_bucket(
        &self,
        req: Request<pb::DeleteBucketRequest>,
    ) -> Result<Response<pb::DeleteBucketResponse>, Status> {
        let by = buckets::admin(&req)?;
        let name = req.into_inner().name;
        // The shards of the open uploads it aborts, read first: the
        // answer carries none (frees::bucket_upload_shards).
        let (abort_uploads, shards) = self.frees.of_bucket_uploads(&by, &name).await?;
        let op = Op::DeleteBucket {
            name: name.clone(),
            abort_uploads,
        };
        expect_ok(self.meta.write_for(by, None, op).await?)?;
        self.frees.free_later(shards);
        tracing::info!(bucket = %name, "bucket deleted by the admin");
        Ok(Response::new(pb::DeleteBucketResponse {}))
    }

    async fn create_bucket(
        &self,
        req: Request<pb::AdminCreateBucketRequest>,
    ) -> Result<Response<pb::CreateBucketResponse>, Status> {
        let by = buckets::admin(&req)?;
        let out = buckets::create(&self.meta, by, req.into_inner()).await?;
        if let Some(b) = &out.bucket {
            tracing::info!(bucket = %b.name, owner = %b.owner, "bucket created by the admin");
        }
        Ok(Response::new(out))
    }

    async fn bucket_info(
        &self,
        req: Request<pb::BucketInfoRequest>,
    ) -> Result<Response<pb::BucketInfoResponse>, Status> {
        let name = req.into_inner().name;
        Ok(Response::new(buckets::info(&self.meta, name).await?))
    }

    async fn allow_bucket(
        &self,
        req: Request<pb::AllowBucketRequest>,
    ) -> Result<Response<pb::AllowBucketResponse>, Status> {
        let by = buckets::admin(&req)?;
        let out = buckets::allow(&self.meta, by, req.into_inner()).await?;
        if let Some(g) = &out.grant {
            tracing::info!(bucket = %g.bucket, access_key_id = %g.access_key_id,
                read = g.read, write = g.write, owner = g.owner, "bucket rights granted");
        }
        Ok(Response::new(out))
    }

    async fn deny_bucket(
        &self,
        req: Request<pb::DenyBucketRequest>,
    ) -> Result<Response<pb::DenyBucketResponse>, Status> {
        let by = buckets::admin(&req)?;
        let r = req.into_inner();
        let (bucket, key) = (r.bucket.clone(), r.access_key_id.clone());
        buckets::deny(&self.meta, by, r).await?;
        tracing::info!(%bucket, access_key_id = %key, "bucket rights removed");
        Ok(Response::new(pb::DenyBucketResponse {}))
    }

    async fn set_bucket(
        &self,
        req: Request<pb::SetBucketRequest>,
    ) -> Result<Response<pb::SetBucketResponse>, Status> {
        let by = buckets::admin(&req)?;
        let r = req.into_inner();
        let changes = r.owner.is_some() || r.max_retention_days.is_some();
        let out = buckets::set(&self.meta, by, r).await?;
        if let Some(b) = out.bucket.as_ref().filter(|_| changes) {
            tracing::info!(bucket = %b.name, owner = %b.owner,
                max_retention_days = b.max_retention_days, "bucket settings changed");
        }
        Ok(Response::new(out))
    }

    async fn set_bucket_defaults(
        &self,
        req: Request<pb::SetBucketDefaultsRequest>,
    ) -> Result<Response<pb::SetBucketDefaultsResponse>, Status> {
        let by = buckets::admin(&req)?;
        let r = req.into_inner();
        let changes = r.max_retention_days.is_some();
        let out = buckets::defaults(&self.meta, by, r).await?;
        if changes {
            tracing::info!(
                max_retention_days = out.max_retention_days,
                "cluster bucket defaults changed"
            );
        }
        Ok(Response::new(out))
    }

    /// Owner "": the cluster's only access key.
    async fn adopt_buckets(
        &self,
        req: Request<pb::AdoptBucketsRequest>,
    ) -> Result<Response<pb::AdoptBucketsResponse>, Status> {
        let by = buckets::admin(&req)?;
        let out = buckets::adopt(&self.meta, by, req.into_inner()).await?;
        tracing::info!(owner = %out.owner, buckets = out.buckets.len(),
            "ownerless buckets adopted");
        Ok(Response::new(out))
    }
    /// Starts a scrub pass on every blob-server not down and records the
    /// shards missing from their lists; answers at once (ScrubProgress
    /// follows the passes), and wakes the planner if this node leads
    /// (otherwise the leader's next round picks the faults up).
    async fn start_repair(
        &self,
        _req: Request<pb::StartRepairRequest>,
    ) -> Result<Response<pb::StartRepairResponse>, Status> {
        let out = scrub::start_all(&self.meta, &self.blobs).await?;
        tracing::info!(
            started = out.blobs_started.len(),
            unreachable = out.blobs_unreachable.len(),
            missing = out.missing,
            "repair started: scrub passes running"
        );
        self.repair.kick();
        Ok(Response::new(out))
    }

    /// Each blob-server's on-demand pass, asked now. A pass seen ended
    /// wakes the planner (its findings are in the state by then).
    async fn scrub_progress(
        &self,
        _req: Request<pb::ScrubProgressRequest>,
    ) -> Result<Response<pb::ScrubProgressResponse>, Status> {
        let out = scrub::progress(&self.meta, &self.blobs).await?;
        if self.pass_ends.any_new(&out) {
            self.repair.kick();
        }
        Ok(Response::new(out))
    }

    /// The durability counts and the worst units (linearizable).
    async fn durability(
        &self,
        req: Request<pb::DurabilityRequest>,
    ) -> Result<Response<pb::DurabilityResponse>, Status> {
        let limit = req.into_inner().limit;
        Ok(Response::new(view::durability(&self.meta, limit).await?))
    }

    /// Every blob-server, removed ones included, with the shards maps
    /// name on each, and the balance (linearizable).
    async fn list_blob_servers(
        &self,
        _req: Request<pb::ListBlobServersRequest>,
    ) -> Result<Response<pb::ListBlobServersResponse>, Status> {
        Ok(Response::new(
            super::blob_admin::list(&self.meta, self.band).await?,
        ))
    }

    /// Starts a drain and wakes the mover (it acts if this node leads;
    /// otherwise the leader's next round picks the drain up).
    async fn drain_blob(
        &self,
        req: Request<pb::DrainBlobRequest>,
    ) -> Result<Response<pb::DrainBlobResponse>, Status> {
        let r = req.into_inner();
        let server = super::blob_admin::drain(&self.meta, r.id, r.to).await?;
        self.repair.kick();
        Ok(Response::new(pb::DrainBlobResponse {
            server: Some(server),
        }))
    }

    async fn undrain_blob(
        &self,
        req: Request<pb::UndrainBlobRequest>,
    ) -> Result<Response<pb::UndrainBlobResponse>, Status> {
        let server = super::blob_admin::undrain(&self.meta, req.into_inner().id).await?;
        Ok(Response::new(pb::UndrainBlobResponse {
            server: Some(server),
        }))
    }

    /// Removes a server for good; a forced removal wakes repair.
    async fn remove_blob(
        &self,
        req: Request<pb::RemoveBlobRequest>,
    ) -> Result<Response<pb::RemoveBlobResponse>, Status> {
        let r = req.into_inner();
        let out = super::blob_admin::remove(&self.meta, r.id, r.force).await?;
        self.repair.kick();
        Ok(Response::new(out))
    }

    /// Wakes the mover; answers the balance as it stands.
    async fn rebalance(
        &self,
        _req: Request<pb::RebalanceRequest>,
    ) -> Result<Response<pb::RebalanceResponse>, Status> {
        self.repair.kick();
        let balance = super::blob_admin::balance(&self.meta, self.band).await?;
        Ok(Response::new(pb::RebalanceResponse {
            balance: Some(balance),
        }))
    }

    /// The backup file, streamed (ADR 0026).
    async fn backup(
        &self,
        _req: Request<pb::BackupRequest>,
    ) -> Result<Response<super::backup::BackupStream>, Status> {
        Ok(Response::new(
            super::backup::stream(self.meta.clone()).await?,
        ))
    }

    async fn list_orphans(
        &self,
        req: Request<pb::ListOrphansRequest>,
    ) -> Result<Response<pb::ListOrphansResponse>, Status> {
        Ok(Response::new(
            super::orphans::list(&self.meta, req.into_inner()).await?,
        ))
    }

    async fn release_orphans(
        &self,
        req: Request<pb::ReleaseOrphansRequest>,
    ) -> Result<Response<pb::ReleaseOrphansResponse>, Status> {
        Ok(Response::new(
            super::orphans::release(&self.meta, req.into_inner()).await?,
        ))
    }
}
