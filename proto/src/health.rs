//! The `Node` service every server runs: liveness and the node's TLS view.

use std::sync::Arc;

use crate::pb;
use crate::tls::NodeTls;

pub struct NodeService {
    tls: Arc<NodeTls>,
}

impl NodeService {
    pub fn new(tls: Arc<NodeTls>) -> Self {
        Self { tls }
    }
}

#[tonic::async_trait]
impl pb::node_server::Node for NodeService {
    async fn health(
        &self,
        _req: tonic::Request<pb::HealthRequest>,
    ) -> Result<tonic::Response<pb::HealthResponse>, tonic::Status> {
        let id = self.tls.identity();
        Ok(tonic::Response::new(pb::HealthResponse {
            role: id.role.to_string(),
            node_id: id.node_id.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            trusted_ca_fingerprints: self.tls.trusted_fingerprints(),
            issuer_fingerprint: self.tls.own_issuer_fingerprint().unwrap_or_default(),
            cert_expires_in_secs: self.tls.own_cert_expires_in_secs(),
        }))
    }
}
