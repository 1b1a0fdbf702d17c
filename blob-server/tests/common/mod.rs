//! In-process blob-servers with real mTLS (a test CA, identities issued by
//! CSR as nodes get theirs), a fake meta Registry that records scrub
//! reports, and clients of each role.

#![allow(dead_code)] // each test file uses a different part

use std::sync::{Arc, Mutex};

use hamster_blob::store::Store;
use hamster_proto::health::NodeService;
use hamster_proto::pb::{self, blob_client::BlobClient};
use hamster_proto::pki::{self, CertAuthority, ExtraNames, Validity};
use hamster_proto::tls::NodeTls;
use hamster_proto::{PeerIdentity, Role, transport};
use tokio::net::TcpListener;
use tonic::transport::Channel;

pub struct Ca {
    pem: String,
    ca: CertAuthority,
}

impl Ca {
    pub fn new() -> Self {
        let pair = pki::generate_ca("test", Validity::starting_now(pki::CA_VALIDITY)).expect("ca");
        let ca = CertAuthority::from_pem(&pair.cert_pem, &pair.key_pem).expect("load");
        Self {
            pem: pair.cert_pem,
            ca,
        }
    }

    pub fn node(&self, role: Role, id: &str) -> Arc<NodeTls> {
        let identity = PeerIdentity::new(role, id).expect("id");
        let (csr, key) = pki::generate_csr(&identity, &ExtraNames::default()).expect("csr");
        let cert = self
            .ca
            .sign_csr(&csr, &identity, Validity::starting_now(pki::LEAF_VALIDITY))
            .expect("sign");
        NodeTls::from_pem(&cert, &key, &self.pem).expect("node tls")
    }
}

/// A running blob-server: its address, data dir and parts.
pub struct BlobNode {
    pub id: String,
    pub addr: String,
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub scrubber: Arc<hamster_blob::scrub::Scrubber>,
    pub reporter: Arc<hamster_blob::report::Reporter>,
    pub confirmer: Arc<hamster_blob::confirm::Confirmer>,
}

impl BlobNode {
    pub async fn start(ca: &Ca, id: &str, meta: Vec<String>) -> Self {
        Self::start_with_repair_rate(ca, id, meta, 0.0).await
    }

    /// A server whose rebuilds read at `repair_rate` bytes/s (0: unlimited).
    pub async fn start_with_repair_rate(
        ca: &Ca,
        id: &str,
        meta: Vec<String>,
        repair_rate: f64,
    ) -> Self {
        let tls = ca.node(Role::Blob, id);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).await.expect("store");
        let parts =
            hamster_blob::assemble(store.clone(), tls.clone(), meta, addr.clone(), repair_rate);
        let incoming = transport::incoming(listener, tls.clone());
        let service = parts.service;
        tokio::spawn(async move {
            transport::server()
                .add_service(pb::node_server::NodeServer::new(NodeService::new(tls)))
                .add_service(pb::blob_server::BlobServer::new(service))
                .serve_with_incoming(incoming)
                .await
                .expect("serve");
        });
        Self {
            id: id.to_string(),
            addr,
            dir,
            store,
            scrubber: parts.scrubber,
            reporter: parts.reporter,
            confirmer: parts.confirmer,
        }
    }

    /// Where shard `id` lives on disk.
    pub fn shard_path(&self, id: &str) -> std::path::PathBuf {
        use sha2::Digest;
        let h = hex::encode(&sha2::Sha256::digest(id.as_bytes())[..2]);
        self.dir
            .path()
            .join("shards")
            .join(&h[0..2])
            .join(&h[2..4])
            .join(id)
    }
}

pub fn client(ca: &Ca, role: Role, addr: &str) -> BlobClient<Channel> {
    let tls = ca.node(role, &format!("{role}-client"));
    BlobClient::new(transport::channel(addr, &tls, &[Role::Blob]).expect("channel"))
}

pub async fn put(c: &mut BlobClient<Channel>, id: &str, index: u32, data: &[u8]) -> Vec<u8> {
    let mut chunks = vec![pb::ShardChunk {
        shard_id: id.to_string(),
        shard_index: index,
        data: Default::default(),
    }];
    for piece in data.chunks(300_000) {
        chunks.push(pb::ShardChunk {
            data: piece.to_vec().into(),
            ..Default::default()
        });
    }
    let r = c
        .put_shard(tokio_stream::iter(chunks))
        .await
        .expect("put")
        .into_inner();
    assert_eq!(r.length, data.len() as u64);
    r.checksum
}

pub async fn get(c: &mut BlobClient<Channel>, id: &str) -> Result<Vec<u8>, tonic::Status> {
    let mut s = c
        .get_shard(pb::GetShardRequest {
            shard_id: id.to_string(),
            offset: 0,
            length: 0,
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = s.message().await? {
        out.extend_from_slice(&chunk.data);
    }
    Ok(out)
}

/// A meta Registry that records every ReportScrub (with the caller's
/// certificate id), refuses the first `refuse` of them, and holds each
/// while a test holds `hold` for writing; it records registrations and
/// heartbeats too, and answers ConfirmFree from a set of referenced ids.
#[derive(Clone, Default)]
pub struct FakeRegistry {
    pub reports: Arc<Mutex<Vec<(String, pb::ReportScrubRequest)>>>,
    pub refuse: Arc<Mutex<usize>>,
    pub hold: Arc<tokio::sync::RwLock<()>>,
    pub registered: Arc<Mutex<Vec<pb::BlobServer>>>,
    pub heartbeats: Arc<Mutex<Vec<pb::HeartbeatRequest>>>,
    /// Shard ids ConfirmFree answers as in use.
    pub referenced: Arc<Mutex<std::collections::HashSet<String>>>,
    /// Every ConfirmFree's ids, in order of arrival.
    pub confirms: Arc<Mutex<Vec<Vec<String>>>>,
    pub confirm_hold: Arc<tokio::sync::RwLock<()>>,
    /// ConfirmFree answers Unavailable (no leader) while set.
    pub confirm_down: Arc<Mutex<bool>>,
}

#[tonic::async_trait]
impl pb::registry_server::Registry for FakeRegistry {
    async fn register_blob(
        &self,
        req: tonic::Request<pb::RegisterBlobRequest>,
    ) -> Result<tonic::Response<pb::RegisterBlobResponse>, tonic::Status> {
        let server = req.into_inner().server.unwrap_or_default();
        self.registered.lock().expect("lock").push(server);
        Ok(tonic::Response::new(pb::RegisterBlobResponse {}))
    }

    async fn heartbeat(
        &self,
        req: tonic::Request<pb::HeartbeatRequest>,
    ) -> Result<tonic::Response<pb::HeartbeatResponse>, tonic::Status> {
        self.heartbeats.lock().expect("lock").push(req.into_inner());
        Ok(tonic::Response::new(pb::HeartbeatResponse::default()))
    }

    /// Every asked id is free but those in `referenced`; each request is
    /// recorded, and waits while a test holds `confirm_hold` for writing.
    async fn confirm_free(
        &self,
        req: tonic::Request<pb::ConfirmFreeRequest>,
    ) -> Result<tonic::Response<pb::ConfirmFreeResponse>, tonic::Status> {
        let ids = req.into_inner().shard_ids;
        self.confirms.lock().expect("lock").push(ids.clone());
        let _held = self.confirm_hold.read().await;
        if *self.confirm_down.lock().expect("lock") {
            return Err(tonic::Status::unavailable("no leader (test)"));
        }
        let referenced = self.referenced.lock().expect("lock");
        let free = ids
            .into_iter()
            .filter(|id| !referenced.contains(id))
            .collect();
        Ok(tonic::Response::new(pb::ConfirmFreeResponse { free }))
    }

    async fn report_scrub(
        &self,
        req: tonic::Request<pb::ReportScrubRequest>,
    ) -> Result<tonic::Response<pb::ReportScrubResponse>, tonic::Status> {
        let caller = transport::peer(&req)
            .map(|p| p.node_id.clone())
            .unwrap_or_default();
        let _held = self.hold.read().await;
        {
            let mut refuse = self.refuse.lock().expect("lock");
            if *refuse > 0 {
                *refuse -= 1;
                return Err(tonic::Status::unavailable("no leader (test)"));
            }
        }
        self.reports
            .lock()
            .expect("lock")
            .push((caller, req.into_inner()));
        Ok(tonic::Response::new(pb::ReportScrubResponse {}))
    }
}

impl FakeRegistry {
    /// Serves it as a meta node; returns its address.
    pub async fn start(&self, ca: &Ca) -> String {
        let tls = ca.node(Role::Meta, "meta-1");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let incoming = transport::incoming(listener, tls);
        let me = self.clone();
        tokio::spawn(async move {
            transport::server()
                .add_service(pb::registry_server::RegistryServer::new(me))
                .serve_with_incoming(incoming)
                .await
                .expect("serve");
        });
        addr
    }

    /// Every bad shard id reported so far, in order.
    pub fn bad_ids(&self) -> Vec<String> {
        self.reports
            .lock()
            .expect("lock")
            .iter()
            .flat_map(|(_, r)| r.bad.iter().map(|b| b.shard_id.clone()))
            .collect()
    }
}

/// Starts (or joins) an on-demand scrub pass and follows it with
/// ScrubStatus until it shows its end; answers that final status.
pub async fn scrub_done(c: &mut BlobClient<Channel>) -> pb::ScrubResponse {
    let started = c
        .scrub(pb::ScrubRequest {})
        .await
        .expect("scrub")
        .into_inner();
    assert!(started.started_ms > 0, "{started:?}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let s = c
            .scrub_status(pb::ScrubStatusRequest {})
            .await
            .expect("scrub status")
            .into_inner();
        assert_eq!(s.started_ms, started.started_ms, "another pass: {s:?}");
        if s.finished_ms > 0 {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pass never ended: {s:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Deterministic test bytes.
pub fn data(len: usize, seed: u32) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect()
}
