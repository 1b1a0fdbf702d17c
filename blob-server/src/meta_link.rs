//! The one place this server calls the meta tier: a list of meta-servers
//! tried in turn, over mTLS, expecting the meta role. Registration,
//! heartbeats and scrub reports all go through it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hamster_proto::pb::registry_client::RegistryClient;
use hamster_proto::tls::NodeTls;
use hamster_proto::{Role, transport};
use tonic::transport::Channel;

pub struct MetaLink {
    meta: Vec<String>,
    tls: Arc<NodeTls>,
    /// Which meta-server to try next; moves on after a failure.
    next: AtomicUsize,
}

impl MetaLink {
    pub fn new(meta: Vec<String>, tls: Arc<NodeTls>) -> Self {
        Self {
            meta,
            tls,
            next: AtomicUsize::new(0),
        }
    }

    pub fn tls(&self) -> &Arc<NodeTls> {
        &self.tls
    }

    /// This node's id, from its certificate.
    pub fn node_id(&self) -> String {
        self.tls.identity().node_id.clone()
    }

    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// How many meta-servers there are to try.
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    /// A client for the current meta-server (None: no meta list, or an
    /// address that does not parse — the caller moves on).
    pub fn registry(&self) -> Option<RegistryClient<Channel>> {
        if self.meta.is_empty() {
            return None;
        }
        let addr = &self.meta[self.next.load(Ordering::Relaxed) % self.meta.len()];
        // Registry calls are unary: each gets a deadline, so a meta-server
        // that stopped answering costs one timeout, then `failed` moves on.
        transport::channel_with_deadline(
            addr,
            &self.tls,
            &[Role::Meta],
            transport::REGISTRY_CALL_TIMEOUT,
        )
        .ok()
        .map(RegistryClient::new)
    }

    /// The current meta-server failed: use the next one from now on.
    pub fn failed(&self) {
        self.next.fetch_add(1, Ordering::Relaxed);
    }
}
