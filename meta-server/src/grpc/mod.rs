//! The meta-server's gRPC services (the Raft one lives in `raft::service`).
//!
//! - [`meta`]: buckets, versions, listings, multipart — for gateways.
//! - [`registry`]: blob-server register, heartbeat, list.
//! - [`admin`]: status and membership, for the admin certificate.
//! - [`errors`]: the one place errors become gRPC statuses.

pub mod admin;
pub mod errors;
pub mod meta;
pub mod registry;
