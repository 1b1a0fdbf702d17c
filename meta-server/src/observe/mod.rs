//! What operators see of a meta-server besides its log (issue 23):
//!
//! - [`series`]: its Prometheus series (Raft, durability, rotations),
//!   served by `--metrics-listen`;
//! - [`audit`]: the admin audit log (`--audit-log`), one JSON line per
//!   `Admin` call; [`audit_args`]: what it records of each request.

pub mod audit;
pub mod audit_args;
pub mod series;
