//! The deletion check (ADR 0029): before deleting, this server asks the
//! meta tier (`Registry.ConfirmFree`, a linearizable read) which ids no
//! version, part or upload names, and deletes only those. Whoever asked
//! to delete — the meta tier's own sweep, repair or frees — a shard still
//! named stays.
//!
//! Deletes arrive in bursts (a sweep round, an object with many parts
//! freed at once), so checks are coalesced: one ConfirmFree is in flight
//! at a time, carrying every id queued meanwhile (at most
//! [`MAX_IDS_PER_CONFIRM`]); the next one leaves when it answers.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hamster_proto::ErrorCode;
use hamster_proto::pb::ConfirmFreeRequest;
use hamster_proto::pb::registry_client::RegistryClient;
use tokio::sync::oneshot;
use tonic::transport::Channel;

use crate::meta_link::MetaLink;

/// Most ids one ConfirmFree carries (the meta tier refuses more).
pub const MAX_IDS_PER_CONFIRM: usize = 1000;
/// Per ConfirmFree call: a meta-server that lets it pass is skipped for
/// the next one in the list.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ConfirmError {
    /// No meta-server answered: nothing may be deleted now.
    #[error("the meta tier could not confirm the shard is free: {0}")]
    Unavailable(String),
}

impl From<ConfirmError> for tonic::Status {
    fn from(e: ConfirmError) -> tonic::Status {
        ErrorCode::Unavailable.status(e.to_string())
    }
}

type Answer = Result<Arc<HashSet<String>>, ConfirmError>;

#[derive(Default)]
struct Queue {
    waiting: Vec<(String, oneshot::Sender<Answer>)>,
    in_flight: bool,
}

pub struct Confirmer {
    link: Arc<MetaLink>,
    queue: Mutex<Queue>,
    /// The client of the meta-server that last answered: kept, so a
    /// burst of confirms does not pay a TLS handshake each.
    client: Mutex<Option<RegistryClient<Channel>>>,
}

impl Confirmer {
    pub fn new(link: Arc<MetaLink>) -> Arc<Self> {
        Arc::new(Self {
            link,
            queue: Mutex::default(),
            client: Mutex::default(),
        })
    }

    /// Whether the meta tier confirms that nothing names `id`.
    pub async fn is_free(self: &Arc<Self>, id: &str) -> Result<bool, ConfirmError> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut q = self.lock();
            q.waiting.push((id.to_string(), tx));
            !std::mem::replace(&mut q.in_flight, true)
        };
        if start {
            // Its own task: a caller that goes away does not strand the
            // others queued behind its call.
            tokio::spawn(self.clone().drain());
        }
        let free = rx
            .await
            .map_err(|_| ConfirmError::Unavailable("the check was dropped".into()))??;
        Ok(free.contains(id))
    }

    /// Ids queued and not yet sent (tests watch a burst build up).
    pub fn queued(&self) -> usize {
        let q = self.lock();
        q.waiting.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding it cannot leave the queue inconsistent
        // (every change is a single push or take).
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends what is queued, batch after batch, until nothing is.
    async fn drain(self: Arc<Self>) {
        loop {
            let batch = {
                let mut q = self.lock();
                if q.waiting.is_empty() {
                    q.in_flight = false;
                    return;
                }
                let n = q.waiting.len().min(MAX_IDS_PER_CONFIRM);
                q.waiting.drain(..n).collect::<Vec<_>>()
            };
            let mut ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
            ids.sort_unstable();
            ids.dedup();
            let answer = self.confirm(ids).await.map(Arc::new);
            for (_, tx) in batch {
                // A caller gone meanwhile needs no answer.
                let _ = tx.send(answer.clone());
            }
        }
    }

    /// One ConfirmFree, tried on each meta-server in turn.
    async fn confirm(&self, shard_ids: Vec<String>) -> Result<HashSet<String>, ConfirmError> {
        if self.link.is_empty() {
            return Err(ConfirmError::Unavailable(
                "this server has no meta tier to ask (--meta)".into(),
            ));
        }
        let asked: HashSet<&String> = shard_ids.iter().collect();
        let mut last = String::new();
        for _ in 0..self.link.len() {
            let cached = self.client.lock().unwrap_or_else(|p| p.into_inner()).take();
            let Some(mut client) = cached.or_else(|| self.link.registry()) else {
                self.link.failed();
                last = "a meta address does not parse".into();
                continue;
            };
            let req = ConfirmFreeRequest {
                shard_ids: shard_ids.clone(),
            };
            match tokio::time::timeout(CALL_TIMEOUT, client.confirm_free(req)).await {
                // Only ids this call asked about count as confirmed.
                Ok(Ok(r)) => {
                    *self.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(client);
                    return Ok(r
                        .into_inner()
                        .free
                        .into_iter()
                        .filter(|id| asked.contains(id))
                        .collect());
                }
                Ok(Err(s)) => last = format!("{:?}: {}", s.code(), s.message()),
                Err(_) => last = "no answer in time".into(),
            }
            self.link.failed();
        }
        tracing::warn!(error = %last, ids = shard_ids.len(), "no meta-server confirmed shards free; nothing deleted");
        Err(ConfirmError::Unavailable(last))
    }
}
