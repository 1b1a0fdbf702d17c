//! The `Blob` service: streaming put and ranged get of shards, delete,
//! stat, list, on-demand scrub (started by `Scrub`, followed by
//! `ScrubStatus`) and rebuild. Who may call what is the admission table's
//! (`hamster_proto::authz`): gateway and meta; a repairing blob peer only
//! reads and writes shards; scrub, rebuild and delete are the meta tier's.
//! Shards are append-only (ADR 0029): a put to an existing id is refused
//! (`ShardExists`), and a delete happens only once the meta tier confirms
//! nothing names the shard (`ShardInUse` otherwise, [`crate::confirm`]).
//! A read that finds a corrupt shard moves it aside (an I/O error does not:
//! it says nothing about the bytes).

use std::sync::Arc;

use hamster_proto::{ErrorCode, pb};
use tonic::{Request, Response, Status, Streaming};

use crate::confirm::Confirmer;
use crate::observe::{OpTimer, observed};
use crate::rebuild::Rebuilder;
use crate::scrub::{OnDemand, Scrubber};
use crate::store::{Store, StoreError};

/// Blocks of a get buffered ahead of the client (a block is at most
/// `format::BLOCK_SIZE`, 64 KiB; a read step is `READ_CHUNK`, 1 MiB, of
/// them): two steps, enough to keep the disk busy while the client takes
/// the last one.
const READ_AHEAD: usize =
    2 * (crate::store::read::READ_CHUNK / crate::store::format::BLOCK_SIZE as u64) as usize;

pub struct BlobService {
    store: Store,
    scrub: Arc<Scrubber>,
    rebuilder: Arc<Rebuilder>,
    confirm: Arc<Confirmer>,
}

impl BlobService {
    pub fn new(
        store: Store,
        scrub: Arc<Scrubber>,
        rebuilder: Arc<Rebuilder>,
        confirm: Arc<Confirmer>,
    ) -> Self {
        Self {
            store,
            scrub,
            rebuilder,
            confirm,
        }
    }
}

/// A store error from serving `id`: a corrupt shard is moved aside and
/// reported first, so it is never served again (the reader rebuilds the
/// bytes from parity).
async fn serve_error(scrub: &Scrubber, id: &str, e: StoreError) -> Status {
    if let StoreError::Corrupt { .. } = &e {
        crate::observe::checksum_failure("read");
        scrub.set_aside(id, format!("read: {e}")).await;
    }
    e.into()
}

/// The one place store errors become gRPC statuses, each with its
/// stable code (`hamster_proto::ErrorCode`).
impl From<StoreError> for Status {
    fn from(e: StoreError) -> Status {
        let code = match &e {
            // Shard ids are chosen by the gateway and the meta tier, never
            // by an end user: a bad one is a bug in the caller.
            StoreError::BadId(_) => ErrorCode::MalformedRequest,
            StoreError::NotFound(_) => ErrorCode::NoSuchShard,
            // Ids are fresh per write (invariant 10): reusing one is a bug
            // in the caller, or an attempt to replace a stored shard.
            StoreError::Exists(_) => ErrorCode::ShardExists,
            StoreError::Corrupt { .. } => {
                tracing::error!(error = %e, "corrupt shard");
                ErrorCode::ShardCorrupt
            }
            StoreError::OutOfRange { .. } => ErrorCode::OutOfRange,
            StoreError::Io { .. } => {
                tracing::error!(error = %e, "shard I/O");
                // The cause stays in this node's log.
                return ErrorCode::Internal.status("shard I/O error");
            }
        };
        code.status(e.to_string())
    }
}

/// A put stream that breaks the protocol (a bug in the caller).
fn malformed(why: &str) -> Status {
    ErrorCode::MalformedRequest.status(why)
}

fn checksum_bytes(c: u32) -> Vec<u8> {
    c.to_le_bytes().to_vec()
}

fn scrub_answer(p: OnDemand) -> pb::ScrubResponse {
    pb::ScrubResponse {
        shards_checked: p.stats.shards_checked,
        bytes_checked: p.stats.bytes_checked,
        corrupt: p.stats.corrupt,
        finished_ms: p.stats.finished_ms,
        started_ms: p.started_ms,
        bytes_total: p.bytes_total,
        corrupt_count: p.corrupt_count,
    }
}

type ListStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::ShardEntry, Status>> + Send + 'static>,
>;

/// The same type as the generated (private) `BoxStream` alias.
type GetStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::GetShardChunk, Status>> + Send + 'static>,
>;

#[tonic::async_trait]
impl pb::blob_server::Blob for BlobService {
    async fn put_shard(
        &self,
        req: Request<Streaming<pb::ShardChunk>>,
    ) -> Result<Response<pb::PutShardResponse>, Status> {
        observed("put", self.put(req)).await
    }

    async fn get_shard(
        &self,
        req: Request<pb::GetShardRequest>,
    ) -> Result<Response<GetStream>, Status> {
        let timer = OpTimer::start("get");
        let r = req.into_inner();
        let mut read = match self.store.read(&r.shard_id, r.offset, r.length).await {
            Ok(read) => read,
            Err(e) => {
                let status = serve_error(&self.scrub, &r.shard_id, e).await;
                timer.finish(Some(crate::observe::error_kind(&status)));
                return Err(status);
            }
        };
        let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
        let scrub = self.scrub.clone();
        tokio::spawn(async move {
            // Timed until the last byte is handed over, or the failure
            // (recorded before the caller can see it).
            let error = loop {
                match read.next().await {
                    // One message per block: slices of the read, sent
                    // without a copy of their own.
                    Ok(Some(blocks)) => {
                        let mut gone = false;
                        for data in blocks {
                            let n = data.len();
                            if tx.send(Ok(pb::GetShardChunk { data })).await.is_err() {
                                gone = true;
                                break;
                            }
                            crate::observe::bytes_read(n);
                        }
                        if gone {
                            break Some("Cancelled".to_string());
                        }
                    }
                    Ok(None) => break None,
                    Err(e) => {
                        let status = serve_error(&scrub, &r.shard_id, e).await;
                        timer.finish(Some(crate::observe::error_kind(&status)));
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                }
            };
            timer.finish(error);
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Response::new(Box::pin(stream) as GetStream))
    }

    async fn delete_shard(
        &self,
        req: Request<pb::DeleteShardRequest>,
    ) -> Result<Response<pb::DeleteShardResponse>, Status> {
        observed("delete", self.delete(req)).await
    }

    async fn list_shards(
        &self,
        req: Request<pb::ListShardsRequest>,
    ) -> Result<Response<ListStream>, Status> {
        observed("list", self.list(req)).await
    }

    async fn stat_shard(
        &self,
        req: Request<pb::StatShardRequest>,
    ) -> Result<Response<pb::StatShardResponse>, Status> {
        observed("stat", self.stat(req)).await
    }

    /// Starts (or joins) an on-demand pass and answers at once.
    async fn scrub(
        &self,
        _req: Request<pb::ScrubRequest>,
    ) -> Result<Response<pb::ScrubResponse>, Status> {
        let timer = OpTimer::start("scrub");
        let answer = Ok(Response::new(scrub_answer(self.scrub.start_now())));
        timer.done(&answer);
        answer
    }

    async fn scrub_status(
        &self,
        _req: Request<pb::ScrubStatusRequest>,
    ) -> Result<Response<pb::ScrubResponse>, Status> {
        let pass = self.scrub.on_demand().unwrap_or_default();
        Ok(Response::new(scrub_answer(pass)))
    }

    async fn rebuild(
        &self,
        req: Request<pb::RebuildRequest>,
    ) -> Result<Response<pb::RebuildResponse>, Status> {
        observed("rebuild", async {
            Ok(Response::new(
                self.rebuilder.rebuild(req.into_inner()).await?,
            ))
        })
        .await
    }
}

/// The calls' bodies, timed by the trait methods above.
impl BlobService {
    async fn put(
        &self,
        req: Request<Streaming<pb::ShardChunk>>,
    ) -> Result<Response<pb::PutShardResponse>, Status> {
        let mut stream = req.into_inner();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| malformed("empty shard stream"))?;
        let mut write = self
            .store
            .create(&first.shard_id, first.shard_index)
            .await?;
        write.write(&first.data).await?;
        crate::observe::bytes_written(first.data.len());
        while let Some(chunk) = stream.message().await? {
            if !chunk.shard_id.is_empty() && chunk.shard_id != first.shard_id {
                return Err(malformed("shard id changed mid-stream"));
            }
            write.write(&chunk.data).await?;
            crate::observe::bytes_written(chunk.data.len());
        }
        // hyper reports a client's cancel (RST_STREAM CANCEL: an aborted
        // rebuild target, a gateway giving up) as a plain end of the body,
        // and drops this future the next time it is pending. One yield
        // gives it that chance before the commit, whose disk work runs in
        // one blocking call (and a commit dropped before it links, links
        // nothing): a cut stream is never committed.
        tokio::task::yield_now().await;
        // Acknowledged only once durable.
        let info = write.commit().await?;
        Ok(Response::new(pb::PutShardResponse {
            length: info.len,
            checksum: checksum_bytes(info.checksum),
        }))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteShardRequest>,
    ) -> Result<Response<pb::DeleteShardResponse>, Status> {
        let id = req.into_inner().shard_id;
        // A bad id is refused before the meta tier is asked anything.
        self.store.check_id(&id)?;
        if !self.confirm.is_free(&id).await? {
            tracing::info!(shard = %id, "delete refused: the meta tier says the shard is in use");
            return Err(ErrorCode::ShardInUse.status(format!(
                "shard {id} is named by a version, part or upload; not deleted"
            )));
        }
        let existed = self.store.delete(&id).await?;
        Ok(Response::new(pb::DeleteShardResponse { existed }))
    }

    async fn list(
        &self,
        req: Request<pb::ListShardsRequest>,
    ) -> Result<Response<ListStream>, Status> {
        use tokio_stream::StreamExt;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        self.store.list(req.into_inner().modified_before_ms, tx);
        // A listing that fails ends in an error, never in a short list.
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(|listed| {
            let (shard_id, modified_ms, bytes) = listed?;
            Ok(pb::ShardEntry {
                shard_id,
                modified_ms,
                bytes,
            })
        });
        Ok(Response::new(Box::pin(stream) as ListStream))
    }

    async fn stat(
        &self,
        req: Request<pb::StatShardRequest>,
    ) -> Result<Response<pb::StatShardResponse>, Status> {
        let id = req.into_inner().shard_id;
        match self.store.stat(&id).await {
            Ok(info) => Ok(Response::new(pb::StatShardResponse {
                exists: true,
                length: info.len,
                checksum: checksum_bytes(info.checksum),
            })),
            Err(StoreError::NotFound(_)) => Ok(Response::new(pb::StatShardResponse::default())),
            Err(e) => Err(serve_error(&self.scrub, &id, e).await),
        }
    }
}
