//! The `Blob` service (admitted for gateway and meta roles): streaming
//! put and ranged get of shards, delete, stat.

use hamster_proto::{ErrorCode, pb};
use tonic::{Request, Response, Status, Streaming};

use crate::store::{Store, StoreError};

/// Pieces of a get buffered ahead of the client (one block each).
const READ_AHEAD: usize = 4;

pub struct BlobService {
    store: Store,
}

impl BlobService {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
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
        while let Some(chunk) = stream.message().await? {
            if !chunk.shard_id.is_empty() && chunk.shard_id != first.shard_id {
                return Err(malformed("shard id changed mid-stream"));
            }
            write.write(&chunk.data).await?;
        }
        // Acknowledged only once durable.
        let info = write.commit().await?;
        Ok(Response::new(pb::PutShardResponse {
            length: info.len,
            checksum: checksum_bytes(info.checksum),
        }))
    }

    async fn get_shard(
        &self,
        req: Request<pb::GetShardRequest>,
    ) -> Result<Response<GetStream>, Status> {
        let r = req.into_inner();
        let mut read = self.store.read(&r.shard_id, r.offset, r.length).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
        tokio::spawn(async move {
            loop {
                let item = match read.next().await {
                    Ok(Some(data)) => Ok(pb::GetShardChunk { data }),
                    Ok(None) => return,
                    Err(e) => Err(Status::from(e)),
                };
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    return;
                }
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(Response::new(Box::pin(stream) as GetStream))
    }

    async fn delete_shard(
        &self,
        req: Request<pb::DeleteShardRequest>,
    ) -> Result<Response<pb::DeleteShardResponse>, Status> {
        let existed = self.store.delete(&req.into_inner().shard_id).await?;
        Ok(Response::new(pb::DeleteShardResponse { existed }))
    }

    async fn list_shards(
        &self,
        req: Request<pb::ListShardsRequest>,
    ) -> Result<Response<ListStream>, Status> {
        use tokio_stream::StreamExt;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        self.store.list(req.into_inner().modified_before_ms, tx);
        let stream =
            tokio_stream::wrappers::ReceiverStream::new(rx).map(|(shard_id, modified_ms)| {
                Ok(pb::ShardEntry {
                    shard_id,
                    modified_ms,
                })
            });
        Ok(Response::new(Box::pin(stream) as ListStream))
    }

    async fn stat_shard(
        &self,
        req: Request<pb::StatShardRequest>,
    ) -> Result<Response<pb::StatShardResponse>, Status> {
        match self.store.stat(&req.into_inner().shard_id).await {
            Ok(info) => Ok(Response::new(pb::StatShardResponse {
                exists: true,
                length: info.len,
                checksum: checksum_bytes(info.checksum),
            })),
            Err(StoreError::NotFound(_)) => Ok(Response::new(pb::StatShardResponse::default())),
            Err(e) => Err(e.into()),
        }
    }
}
