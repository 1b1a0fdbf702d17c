//! Metadata backup and restore (ADR 0026), below the CLI: the file a
//! backup writes and every way a reader refuses one; a restore's checks
//! against the node's keys, trust and revocations, and what it changes
//! when told to accept an older backup; the seeded data dirs; and
//! `--force-new-cluster` on a survivor's data dir.

// openraft's RPC errors are large, and its network trait returns them.
#![allow(clippy::result_large_err)]

mod common;

#[path = "backup/boot.rs"]
mod boot;
#[path = "backup/file.rs"]
mod file;
#[path = "backup/fixture.rs"]
mod fixture;
#[path = "backup/join.rs"]
mod join;
#[path = "backup/older.rs"]
mod older;
#[path = "backup/reseed.rs"]
mod reseed;
#[path = "backup/restore.rs"]
mod restore;
