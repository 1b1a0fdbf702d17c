//! How big a gRPC message between the tiers may be (ADR 0031). Every
//! answer that could grow with the data is paged or bounded, so each kind
//! of message fits its limit with room; a limit is set explicitly on both
//! ends, never left to tonic's defaults.

/// A request to the `Meta` service, as a meta-server decodes it. The
/// largest legitimate one is a CompleteMultipart naming 10,000 parts
/// (number and ETag each: about 0.5 MB).
pub const META_REQUEST_MAX: usize = 4 * 1024 * 1024;

/// An answer of the `Meta` service, as a gateway decodes it and a
/// meta-server encodes it: tonic's default, now stated. Every answer is
/// bounded well below it: versions go without their parts
/// (`parts_count`); a listing page of 1000 entries with 1 KiB keys is
/// about 1.2 MB; a GetParts or ListParts page is cut at
/// [`PARTS_PAGE_BYTES`]; freed shards are no longer answered (ADR 0029).
pub const META_ANSWER_MAX: usize = 4 * 1024 * 1024;

/// A GetParts or ListParts page stops before its encoded parts pass this
/// many bytes (and at 1000 parts): wide erasure profiles (up to 32
/// shards a part) make fewer parts a page, never a bigger page.
pub const PARTS_PAGE_BYTES: usize = 2 * 1024 * 1024;
