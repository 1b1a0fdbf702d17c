//! The PUT/GET pipeline, one module per stage in data-flow order.
//!
//! - [`chunk`]: the body as it streams in, cut into segments, with its MD5.
//! - [`encrypt`]: fixed-size segments sealed with AES-256-GCM under the
//!   object's data key; the segment index is in the nonce, so a Range GET
//!   opens only the segments it touches.
//! - [`erasure`]: each sealed segment is one Reed–Solomon stripe, cut into
//!   k data chunks plus m parity chunks; shard i is chunk i of every stripe.
//! - [`profile`]: the k+m profile a cluster uses by default.
//! - [`placement`]: k+m distinct blob-servers, spread across failure
//!   domains, weighted by free space.
//! - [`fanout`]: chunks streamed to the k+m servers in parallel; the ack rule.
//! - [`write`]: a whole PUT body through chunk → encrypt → erasure →
//!   placement → fanout → ack: durable, uncommitted shards.
//! - [`commit`]: the version or part committed to the meta tier under the
//!   cluster's write key; shards of a refused write handed back to the
//!   meta tier to free (a gateway never deletes a shard, ADR 0029).
//! - [`fanin`]: a stripe read back, rebuilt from parity when shards are
//!   lost or slow (hedged reads).
//! - [`window`]: consecutive stripes read with one call per shard.
//! - [`read`]: a GET range through fanin → decrypt, as a stream.

pub mod chunk;
pub mod commit;
pub mod encrypt;
pub mod erasure;
pub mod fanin;
pub mod fanout;
pub mod placement;
pub mod profile;
pub mod read;
pub mod window;
pub mod write;
