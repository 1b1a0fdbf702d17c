//! The contract between Hamster's tiers, and what every tier does the same way.
//!
//! - [`pb`]: the gRPC services and messages (`proto/hamster/v1/*.proto`):
//!   `Node` (every server), `Meta` and `Registry` (gateway/blob → meta),
//!   `Admin` (admin → meta), `Certs` (trust and renewal, any member → meta), `Raft` (meta ↔ meta), `Blob` (gateway/meta → blob).
//! - [`error`]: [`ErrorCode`], the stable reason a refusal carries between tiers.
//! - [`identity`]: roles and node ids, carried in certificates as `hamster://ROLE/ID`.
//! - [`join`]: join tokens, and a new node getting its certificate by CSR.
//! - [`pki`]: CA, certificates, CSRs — keys are made where they are used.
//! - [`tls`]: rustls configs whose certificate and trust are read per handshake.
//! - [`accept`]: what every listening port applies first: connection cap, TCP keepalive, idle timeout.
//! - [`transport`]: the mTLS accept loop, peer identity per connection, client channels
//!   (connect timeout, keepalives, call deadlines: ADR 0032).
//! - [`authz`]: the table of roles each service admits, and the layer enforcing it.
//! - [`access`]: an access key's rights on a bucket and its S3 DisplayName, alike in every tier.
//! - [`revoke`]: identities removed from the cluster, refused at the handshake and per call.
//! - [`health`]: the `Node` service.
//! - [`secrets`]: master key, S3 keys, 0600 files; secrets never print.
//! - [`keyring`]: a key holder's current and next master keys, reloaded on SIGHUP.
//! - [`envelope`]: wrapped data keys and sealed S3 secrets, the formats all tiers share.
//! - [`trust_sync`]: a member loading new trust bundles and renewing its certificate by CSR.
//! - [`serve`]: flags, logging, SIGHUP reload and shutdown shared by the servers.
//! - [`shard_id`]: shard names, stamped with their creation time.
//! - [`ids`]: request ids and version ids, minted alike by gateways and the meta tier.
//! - [`free`]: deleting freed shards on blob-servers, alike from every tier.
//! - [`metrics`]: the Prometheus recorder and `/metrics` on `--metrics-listen` (issue 23).
//! - [`jsonlog`]: JSON-lines files flushed within a second (access and audit logs).
//! - [`message_size`]: the largest gRPC message of each kind between the tiers (ADR 0031).

pub mod accept;
pub mod access;
pub mod authz;
pub mod envelope;
pub mod error;
pub mod free;
pub mod health;
pub mod identity;
pub mod ids;
pub mod join;
pub mod jsonlog;
pub mod keyring;
pub mod message_size;
pub mod metrics;
pub mod pki;
pub mod revoke;
pub mod secrets;
pub mod serve;
pub mod shard_id;
pub mod tls;
pub mod transport;
pub mod trust_sync;

/// Generated gRPC code for package `hamster.v1`.
pub mod pb {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("hamster.v1");
}

pub use error::ErrorCode;
pub use identity::{PeerIdentity, Role};
