//! Metadata backup and restore (ADR 0026).
//!
//! - [`format`]: the backup file — magic, header, the state DB, checksum.
//! - [`take`]: a backup from a running node, at a committed index.
//! - [`restore`]: a new meta tier's data dirs from a backup, checked
//!   against what the nodes hold now; [`adjust`] is that check and the
//!   changes `--accept-older` makes.
//! - [`reseed`]: one data dir made the start of a cluster of given
//!   members (restore, and `--force-new-cluster`).

pub mod adjust;
pub mod format;
pub mod reseed;
pub mod restore;
pub mod take;
