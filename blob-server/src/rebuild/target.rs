//! Where a rebuild's bytes go: one PutShard per target, fed window by
//! window, committed only by a plain end of stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use hamster_proto::ErrorCode;
use hamster_proto::pb::{self, blob_client::BlobClient};
use hamster_proto::transport::Pool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::Status;

use super::{IO_TIMEOUT, peer_error};

enum Msg {
    Chunk(pb::ShardChunk),
    End,
}

/// A shard id no put can have (ids never start with '.').
const NOT_AN_ID: &str = ".rebuild-abandoned";

/// A PutShard body: a plain end of stream commits the shard, so it ends
/// that way only on `Msg::End`. If the rebuild gives up, its sender
/// vanishes without an End (and the call is aborted, see [`Target`]); the
/// body then sends a chunk under another id, which PutShard refuses before
/// it commits anything (a client stream carries messages, not errors).
struct Body {
    rx: mpsc::Receiver<Msg>,
    refused: bool,
}

impl Body {
    fn new(rx: mpsc::Receiver<Msg>) -> Self {
        Self { rx, refused: false }
    }
}

impl tokio_stream::Stream for Body {
    type Item = pb::ShardChunk;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.refused {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Msg::Chunk(c))) => Poll::Ready(Some(c)),
            Poll::Ready(Some(Msg::End)) => Poll::Ready(None),
            Poll::Ready(None) => {
                self.refused = true;
                Poll::Ready(Some(pb::ShardChunk {
                    shard_id: NOT_AN_ID.into(),
                    ..Default::default()
                }))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

type PutCall = JoinHandle<Result<pb::PutShardResponse, Status>>;

/// One target's PutShard call; dropped before it finished (any error, a
/// later target failing to open), the call is aborted, so no partial shard
/// is committed and no call lingers.
pub(super) struct Target {
    pub(super) spec: pb::RebuildTarget,
    tx: mpsc::Sender<Msg>,
    call: PutCall,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.call.abort();
    }
}

impl Target {
    pub(super) fn open(pool: &Pool, spec: pb::RebuildTarget) -> Result<Self, Status> {
        let ch = pool
            .channel(&spec.address)
            .map_err(|e| ErrorCode::MalformedRequest.status(e.to_string()))?;
        let (tx, rx) = mpsc::channel(2);
        let first = pb::ShardChunk {
            shard_id: spec.shard_id.clone(),
            shard_index: spec.index,
            data: Default::default(),
        };
        // Room for two: cannot fail on a new channel.
        let _ = tx.try_send(Msg::Chunk(first));
        let call = tokio::spawn(async move {
            BlobClient::new(ch)
                .put_shard(Body::new(rx))
                .await
                .map(tonic::Response::into_inner)
        });
        Ok(Self { spec, tx, call })
    }

    fn name(&self) -> String {
        format!(
            "target {} ({} at {})",
            self.spec.index, self.spec.shard_id, self.spec.address
        )
    }

    pub(super) async fn send(&mut self, data: Vec<u8>) -> Result<(), Status> {
        self.send_msg(Msg::Chunk(pb::ShardChunk {
            data: data.into(),
            ..Default::default()
        }))
        .await
    }

    async fn send_msg(&mut self, msg: Msg) -> Result<(), Status> {
        match tokio::time::timeout(IO_TIMEOUT, self.tx.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            // The call ended early: its answer says why.
            Ok(Err(_)) => Err(match (&mut self.call).await {
                Ok(Err(e)) => peer_error(&self.name(), &e),
                _ => ErrorCode::Unavailable.status(format!("{} ended early", self.name())),
            }),
            Err(_) => Err(ErrorCode::Unavailable.status(format!("{} stalled", self.name()))),
        }
    }

    pub(super) async fn finish(&mut self) -> Result<pb::PutShardResponse, Status> {
        self.send_msg(Msg::End).await?;
        match tokio::time::timeout(IO_TIMEOUT, &mut self.call).await {
            Ok(Ok(Ok(r))) => Ok(r),
            Ok(Ok(Err(e))) => Err(peer_error(&self.name(), &e)),
            Ok(Err(_)) => Err(ErrorCode::Internal.status(format!("{} task failed", self.name()))),
            Err(_) => Err(ErrorCode::Unavailable.status(format!("{} did not answer", self.name()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::valid_id;
    use tokio_stream::StreamExt;

    fn chunk(data: &[u8]) -> Msg {
        Msg::Chunk(pb::ShardChunk {
            data: data.to_vec().into(),
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn a_body_ends_plainly_only_on_end() {
        let (tx, rx) = mpsc::channel(4);
        let mut body = Body::new(rx);
        tx.send(chunk(b"a")).await.expect("send");
        tx.send(Msg::End).await.expect("send");
        assert_eq!(body.next().await.expect("chunk").data, &b"a"[..]);
        assert!(body.next().await.is_none());
    }

    #[tokio::test]
    async fn an_abandoned_body_ends_with_a_chunk_put_shard_refuses() {
        let (tx, rx) = mpsc::channel(4);
        let mut body = Body::new(rx);
        tx.send(chunk(b"a")).await.expect("send");
        drop(tx);
        assert_eq!(body.next().await.expect("chunk").data, &b"a"[..]);
        // Not Pending forever: a chunk under an id no put can have...
        let last = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("the body does not hang")
            .expect("a last chunk");
        assert_eq!(last.shard_id, NOT_AN_ID);
        assert!(!valid_id(&last.shard_id));
        // ...then the end.
        assert!(body.next().await.is_none());
    }
}
