//! `Admin.Backup`: the backup file (ADR 0026), streamed in order from a
//! copy of the state taken at a committed index.
//!
//! The call linearizes first (everything acknowledged before it is in the
//! copy), copies the DB into the data dir (`backup::take::copy`), then
//! streams the file (`backup::take::chunks`): one 1 MiB chunk in memory
//! at a time, the copy removed when the stream ends or is dropped (the
//! client went away). The admin service admits only the admin certificate.

use std::pin::Pin;
use std::sync::Arc;

use futures::StreamExt;
use hamster_proto::pb;
use tokio_stream::Stream;
use tonic::Status;

use super::errors::ServiceError;
use crate::backup::take;
use crate::cluster::Meta;

pub type BackupStream = Pin<Box<dyn Stream<Item = Result<pb::BackupChunk, Status>> + Send>>;

pub async fn stream(meta: Arc<Meta>) -> Result<BackupStream, ServiceError> {
    meta.linearize().await?;
    let copy = take::copy(&meta.db, meta.raft_id).await.map_err(|e| {
        tracing::error!(error = %e, "backup: copying the state DB");
        ServiceError::Internal("backup failed: copying the state DB".into())
    })?;
    tracing::info!(
        index = copy.header.raft_index,
        db_bytes = copy.header.db_bytes,
        "backup: state copied; streaming"
    );
    Ok(Box::pin(take::chunks(copy).map(|chunk| match chunk {
        Ok(data) => Ok(pb::BackupChunk { data }),
        Err(e) => {
            // Details to the log; the client sees a failed call.
            tracing::error!(error = %e, "backup: streaming");
            Err(Status::from(ServiceError::Internal(
                "backup failed while streaming".into(),
            )))
        }
    })))
}
