//! The metadata state: what Raft replicates and the SQLite DB it builds.
//!
//! - [`commands`]: the commands in the log and their responses. A command
//!   carries its own timestamp and ids, so apply is deterministic.
//! - [`schema`]: the versioned SQLite schema and its migrations.
//! - [`apply`]: applies one command inside the batch transaction.
//! - [`lock`]: versioning and object lock rules, enforced in apply.
//! - [`rotation`]: the write key, key holders and master-key rotation.
//! - [`trust`]: the trust bundle, members' reports and CA rotation.
//! - [`queries`]: reads (gets and listings) against the applied state.
//! - [`model`]: the stored records and their conversions to/from protobuf.

pub mod apply;
pub mod commands;
pub mod lock;
pub mod model;
pub mod queries;
pub mod rotation;
pub mod schema;
pub mod trust;
