//! A whole PUT body through the write stages, in flow order: chunk (with
//! MD5) → seal each segment under a fresh data key → Reed–Solomon per
//! stripe → place k+m shards → fan out → the ack rule. What comes out is
//! ready to commit: the shard map and the data key wrapped by the master
//! key. Nothing is committed here ([`super::commit`] does); a caller that
//! does not commit calls [`Stored::discard`].

use futures::Stream;
use hamster_proto::envelope::{DataKey, wrap_dek};
use hamster_proto::secrets::MasterKey;
use hamster_proto::transport::Pool;
use hamster_proto::{pb, shard_id};

use super::chunk::Chunker;
use super::encrypt::{SEGMENT_SIZE, SegmentCipher};
use super::erasure::Coder;
use super::fanout::{AckError, Fanout, Landed, Target, release};
use super::placement::{Candidate, PlacementError, place};
use crate::meta::MetaTier;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("reading the request body: {0}")]
    Body(#[from] BodyError),
    #[error(transparent)]
    Placement(#[from] PlacementError),
    #[error(transparent)]
    Ack(#[from] AckError),
    #[error("erasure profile: {0}")]
    Profile(String),
}

/// Why the body could not be read, classified once where it is read
/// (`s3/ingest.rs`): the client's fault in every case.
#[derive(Clone, Debug, thiserror::Error)]
pub enum BodyError {
    /// An aws-chunked chunk signature does not match.
    #[error("a chunk signature does not match")]
    ChunkSignature,
    /// The body does not hash to the signed x-amz-content-sha256.
    #[error("the body does not match x-amz-content-sha256")]
    PayloadHash,
    /// Cut short, malformed, or unreadable for another reason.
    #[error("{0}")]
    Other(String),
}

/// Shards that are durable and not yet committed.
pub struct Stored {
    pub size: u64,
    /// MD5 of the body, hex: the ETag of a single-part object.
    pub md5: String,
    pub shard_map: pb::ShardMap,
    pub wrapped_dek: Vec<u8>,
    pub kek_fingerprint: String,
    landed: Vec<Landed>,
}

impl Stored {
    /// Has the meta tier free the shards of a write that will not be
    /// committed (a gateway cannot delete them itself, ADR 0029).
    pub async fn discard(self, meta: &MetaTier) {
        release(&self.landed, meta).await;
    }
}

/// Writes `body` as k+m shards onto servers from `candidates`. With fewer
/// than k+m servers up, the missing shards are simply not written (the ack
/// rule still asks for k+1); `inspect` sees every plaintext byte in order
/// (for checksums the client sent). Shards of a write that fails here are
/// handed to `meta` to free.
pub async fn write<S, B>(
    body: S,
    (k, m): (usize, usize),
    candidates: &[Candidate],
    kek: &MasterKey,
    pool: &Pool,
    meta: &MetaTier,
    mut inspect: impl FnMut(&[u8]),
) -> Result<Stored, WriteError>
where
    S: Stream<Item = Result<B, BodyError>> + Unpin,
    B: AsRef<[u8]>,
{
    let coder = Coder::new(k, m).map_err(|e| WriteError::Profile(e.to_string()))?;
    let usable = candidates
        .iter()
        .filter(|c| c.active && c.free_bytes > 0)
        .count();
    let needed = if m > 0 { k + 1 } else { k };
    let servers = place(
        candidates,
        (k + m).min(usable.max(needed)),
        &mut rand::rng(),
    )?;
    let object = shard_id::new_object(crate::now_ms());
    let targets = servers
        .into_iter()
        .enumerate()
        .map(|(i, c)| Target {
            blob_id: c.id,
            address: c.address,
            shard_id: shard_id::shard(&object, i),
        })
        .collect();
    let dek = DataKey::generate();
    let cipher = SegmentCipher::new(&dek);
    let mut fanout = Fanout::open(targets, pool);
    let mut chunker = Chunker::new(body);
    loop {
        let seg = match chunker.next().await {
            Ok(Some(seg)) => seg,
            Ok(None) => break,
            Err(e) => {
                let landed = fanout.abort().await;
                release(&landed, meta).await;
                return Err(e.into());
            }
        };
        inspect(&seg.data);
        let mut sealed = seg.data;
        cipher.seal_in_place(seg.index, seg.last, &mut sealed);
        fanout.send(coder.encode(sealed)).await;
    }
    let (size, md5) = chunker.finish().unwrap_or_default();
    let landed = match fanout.finish(k).await {
        // Degraded against the profile's width, not the servers asked:
        // once a blob-server is known down, fewer are asked (k+1 at least).
        Ok(l) if l.len() < k + m => {
            crate::observe::metrics::degraded_write();
            l
        }
        Ok(l) => l,
        Err((e, landed)) => {
            release(&landed, meta).await;
            return Err(e.into());
        }
    };
    let shard_map = pb::ShardMap {
        data_shards: k as u32,
        parity_shards: m as u32,
        segment_size: SEGMENT_SIZE as u64,
        ..super::fanout::landed_map(&landed)
    };
    Ok(Stored {
        size,
        md5,
        shard_map,
        wrapped_dek: wrap_dek(kek, &dek),
        kek_fingerprint: kek.fingerprint(),
        landed,
    })
}
