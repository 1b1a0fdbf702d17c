//! The meta-server's gRPC services (the Raft one lives in `raft::service`).
//!
//! - [`meta`]: buckets, versions, listings, multipart, key lookups —
//!   for gateways, each write acting for the request's access key.
//! - [`join`]: joins by token on the join port (CSR signed here).
//! - [`registry`]: blob-server register, heartbeat, list.
//! - [`ca_admin`]: CA rotation for the admin: open, advance, status.
//! - [`certs`]: trust bundle sync and certificate renewal by CSR.
//! - [`admin`]: status and membership, for the admin certificate.
//! - [`blob_admin`]: the blob-server lifecycle for the admin: list,
//!   drain, undrain, remove.
//! - [`buckets`]: buckets as answered (owner's name, retention limit),
//!   bucket pages, and the admin's bucket RPCs: owners, grants, limits.
//! - [`backup`]: `Admin.Backup`, the backup file streamed from a
//!   committed state (ADR 0026).
//! - [`orphans`]: shards held since a restore: list and release.
//! - [`frees`]: deleting, in the background, the shards the gateway's
//!   calls left unnamed (ADR 0029; a gateway never deletes).
//! - [`errors`]: `ServiceError`, what every service refuses with, and the
//!   one place it becomes a gRPC status (with its `ErrorCode`).

pub mod admin;
pub mod backup;
pub mod blob_admin;
pub mod buckets;
pub mod ca_admin;
pub mod certs;
pub mod errors;
pub mod frees;
pub mod join;
pub mod meta;
pub mod orphans;
pub mod registry;

#[cfg(test)]
mod tests;
