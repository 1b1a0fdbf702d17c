//! The services on a one-member cluster in this process: real Raft, real
//! apply, the gRPC handlers called directly with the caller's verified
//! identity set as the TLS layer sets it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hamster_proto::pb::admin_server::Admin;
use hamster_proto::pb::meta_server::Meta as _;
use hamster_proto::pki::{self, CertAuthority, ExtraNames, Validity};
use hamster_proto::revoke::Revoked;
use hamster_proto::tls::NodeTls;
use hamster_proto::transport::PeerInfo;
use hamster_proto::{ErrorCode, PeerIdentity, Role, pb};
use openraft::ServerState;
use tonic::{Request, Status};

use super::admin::AdminService;
use super::meta::MetaService;
use crate::batch::Batcher;
use crate::ca::CaStore;
use crate::cluster::Meta;
use crate::raft::log_store::LogStore;
use crate::raft::network::Peers;
use crate::raft::state_machine::{StateDb, StateMachine};
use crate::raft::{MetaNode, Raft};
use crate::repair::Kick;
use crate::repair::balance::Band;

mod authz;
mod compat;

/// A one-member meta tier and its Meta and Admin services.
pub struct Node {
    pub meta: Arc<Meta>,
    pub gateway: MetaService,
    pub admin: AdminService,
    _dir: tempfile::TempDir,
}

fn meta_tls() -> Arc<NodeTls> {
    let pair = pki::generate_ca("test", Validity::starting_now(pki::CA_VALIDITY)).expect("ca");
    let ca = CertAuthority::from_pem(&pair.cert_pem, &pair.key_pem).expect("ca");
    let identity = PeerIdentity::new(Role::Meta, "meta-1").expect("id");
    let (csr, key) = pki::generate_csr(&identity, &ExtraNames::default()).expect("csr");
    let cert = ca
        .sign_csr(&csr, &identity, Validity::starting_now(pki::LEAF_VALIDITY))
        .expect("sign");
    NodeTls::from_pem(&cert, &key, &pair.cert_pem).expect("meta tls")
}

impl Node {
    pub async fn start() -> Node {
        let dir = tempfile::tempdir().expect("tmp");
        let tls = meta_tls();
        let log = LogStore::open(&dir.path().join("raft-log.db"))
            .await
            .expect("log");
        let db = StateDb::open(dir.path()).await.expect("db");
        let config = openraft::Config {
            heartbeat_interval: 50,
            election_timeout_min: 150,
            election_timeout_max: 300,
            ..Default::default()
        }
        .validate()
        .expect("config");
        let peers = Peers::new(tls.clone());
        let raft = Raft::new(
            1,
            Arc::new(config),
            peers.clone(),
            log.clone(),
            StateMachine::new(db.clone()),
        )
        .await
        .expect("raft");
        let me = MetaNode {
            addr: "127.0.0.1:1".into(),
            name: "meta-1".into(),
        };
        raft.initialize(BTreeMap::from([(1, me)]))
            .await
            .expect("initialize");
        raft.wait(Some(Duration::from_secs(10)))
            .state(ServerState::Leader, "elected")
            .await
            .expect("leads");
        let meta = Arc::new(Meta {
            raft: raft.clone(),
            batcher: Batcher::start(raft),
            raft_id: 1,
            db,
            log,
            peers,
            tls,
            wait: Duration::from_secs(5),
            write_window: Duration::from_secs(3600),
        });
        let keys = Arc::new(hamster_proto::keyring::Keyring::of(
            hamster_proto::secrets::MasterKey::generate(),
            None,
        ));
        let band = Band {
            pct: 10,
            slack_bytes: 0,
        };
        let admin = AdminService::new(
            meta.clone(),
            keys,
            CaStore { dir: None },
            Kick::default(),
            band,
        );
        Node {
            gateway: MetaService::new(meta.clone()),
            admin,
            meta,
            _dir: dir,
        }
    }

    /// A new access key named `name`; answers its id.
    pub async fn key(&self, name: &str, can_create_bucket: bool) -> String {
        let r = pb::CreateAccessKeyRequest {
            name: name.into(),
            can_create_bucket: Some(can_create_bucket),
        };
        let out = self.admin.create_access_key(admin(r)).await.expect("key");
        out.into_inner().key.expect("key").access_key_id
    }

    /// Key `key`'s CreateBucket through the gateway-facing service.
    pub async fn create(&self, key: &str, name: &str) -> Result<pb::Bucket, Status> {
        let r = pb::CreateBucketRequest {
            name: name.into(),
            object_lock_enabled: false,
            access_key_id: key.into(),
        };
        let out = self.gateway.create_bucket(gateway(r)).await?;
        Ok(out.into_inner().bucket.expect("bucket"))
    }

    /// The admin's grant of rights (`rwo` letters) on `bucket` to `key`.
    pub async fn allow(
        &self,
        bucket: &str,
        key: &str,
        rwo: &str,
    ) -> Result<pb::BucketGrant, Status> {
        let r = pb::AllowBucketRequest {
            bucket: bucket.into(),
            access_key_id: key.into(),
            read: rwo.contains('r'),
            write: rwo.contains('w'),
            owner: rwo.contains('o'),
        };
        Ok(self
            .admin
            .allow_bucket(admin(r))
            .await?
            .into_inner()
            .grant
            .expect("grant"))
    }

    /// One page of the buckets `key` lists.
    pub async fn list(
        &self,
        key: &str,
        after: &str,
        max: u32,
    ) -> Result<(Vec<String>, String), Status> {
        let r = pb::ListBucketsRequest {
            access_key_id: key.into(),
            continuation_token: after.into(),
            max_buckets: max,
            ..Default::default()
        };
        let out = self.gateway.list_buckets(gateway(r)).await?.into_inner();
        let names = out.buckets.into_iter().map(|b| b.name).collect();
        Ok((names, out.next_continuation_token))
    }
}

fn from<T>(body: T, role: Role, id: &str) -> Request<T> {
    let mut req = Request::new(body);
    req.extensions_mut().insert(PeerInfo {
        identity: PeerIdentity::new(role, id).expect("id"),
        remote_addr: None,
        cert: None,
        revoked: Revoked::default(),
    });
    req
}

/// A request as the gateway "gw-1" sends it.
pub fn gateway<T>(body: T) -> Request<T> {
    from(body, Role::Gateway, "gw-1")
}

/// A request as the admin certificate "admin" sends it.
pub fn admin<T>(body: T) -> Request<T> {
    from(body, Role::Admin, "admin")
}

/// The code a refusal carries.
pub fn code<T: std::fmt::Debug>(r: Result<T, Status>) -> ErrorCode {
    let s = r.expect_err("a refusal");
    ErrorCode::of(&s).unwrap_or_else(|| panic!("no code on {s:?}"))
}
