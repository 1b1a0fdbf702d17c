//! The metadata state: what Raft replicates and the SQLite DB it builds.
//!
//! - [`commands`]: the commands in the log and their responses. A command
//!   carries its own timestamp and ids, so apply is deterministic.
//! - [`schema`]: the versioned SQLite schema and its migrations.
//! - [`format`]: format versions of stored records; a command's encoding.
//! - [`model`]: the stored records and their conversions to/from protobuf.
//! - [`apply`]: applies one command inside the batch transaction: the
//!   de-duplication, the savepoint, the rights check, and the dispatch to
//!   a topic below.
//! - [`access`]: who may do what (ADR 0027): the rights a command's actor
//!   needs on its bucket, decided once for every command before its
//!   topic; who may create buckets; a bucket's maximum retention.
//! - [`outcome`]: what a topic answers: a response, a rejection or a
//!   storage failure.
//! - Topics, each a command's rules at the command's time:
//!   - [`buckets`]: creating and deleting buckets (and who owns a new one);
//!   - [`grants`]: an admin's grants, owners and retention limits;
//!   - [`objects`]: committing versions, deleting them, delete markers;
//!   - [`multipart`]: uploads and their parts;
//!   - [`object_lock`]: versioning state, retention and legal holds;
//!   - [`registry`]: access keys, join tokens, blob-servers, the profile;
//!   - [`key_rotation`]: the write key, key holders, master-key rotation;
//!   - [`ca_rotation`]: the trust bundle, members' reports, CA rotation;
//!   - [`deny`]: the deny list of members removed or forgotten (ADR 0030),
//!     refused for good by every tier;
//!   - [`durability`]: blob-servers judged down, scrub reports, a
//!     repair's (or a move's) swap of shards, and the rule that a shard
//!     still named is never freed;
//!   - [`lifecycle`]: draining, drained and removed blob-servers, the
//!     mover's swaps, and the fence that keeps new maps off retired ones;
//!   - [`orphans`]: shards held after a restore, their release, and
//!     dropping the rows of those deleted or named again.
//! - [`reads`]: every read of the applied state (gets, scans, listings,
//!   the durability view).
//! - [`writes`]: every write to it; topics decide, writes store (and
//!   keep `shard_refs` exact with every shard map they write).

pub mod access;
pub mod apply;
pub mod buckets;
pub mod ca_rotation;
pub mod commands;
pub mod deny;
pub mod durability;
pub mod format;
pub mod grants;
pub mod key_rotation;
pub mod lifecycle;
pub mod model;
pub mod multipart;
pub mod object_lock;
pub mod objects;
pub mod orphans;
pub mod outcome;
pub mod public_access;
pub mod reads;
pub mod registry;
pub mod schema;
pub mod writes;
