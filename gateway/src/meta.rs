//! The gateway's client of the meta tier. Any meta-server answers (a
//! follower forwards writes to the leader and serves linearizable reads
//! itself, ADR 0008), so a call goes to the last server that worked and
//! moves on to the next only when that one cannot be reached.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hamster_proto::error::ERROR_CODE_KEY;
use hamster_proto::tls::NodeTls;
use hamster_proto::{ErrorCode, Role, transport};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Rounds over every meta-server before a call gives up.
const ROUNDS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The meta tier refused the call for a reason it named, e.g.
    /// `NoSuchBucket`; `s3/error.rs` says what each code means to S3.
    #[error("{code}: {message}")]
    Refused { code: ErrorCode, message: String },
    /// No meta-server could answer (no quorum, none reachable).
    #[error("meta tier unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or a broken peer, never the client's fault.
    #[error("meta tier error: {0}")]
    Failed(String),
}

impl MetaError {
    /// The stable code of a refusal, if this is one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            MetaError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

fn classify(s: Status) -> MetaError {
    match ErrorCode::of(&s) {
        // "No leader or quorum": the same as a server out of reach, so the
        // call moves on to the next meta-server.
        Some(ErrorCode::Unavailable) => return MetaError::Unavailable(s.message().to_string()),
        Some(ErrorCode::Internal) => return MetaError::Failed(s.message().to_string()),
        Some(code) => {
            return MetaError::Refused {
                code,
                message: s.message().to_string(),
            };
        }
        None => {}
    }
    if let Some(code) = s.metadata().get(ERROR_CODE_KEY) {
        // A newer meta-server's code: no meaning here, so not the client's.
        tracing::error!(code = ?code, message = %s.message(), "meta tier refusal with a code this gateway does not know");
        return MetaError::Failed(format!("unknown refusal {code:?}: {}", s.message()));
    }
    match s.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
            MetaError::Unavailable(s.message().to_string())
        }
        _ => MetaError::Failed(format!("{:?}: {}", s.code(), s.message())),
    }
}

pub struct MetaTier {
    addrs: Vec<String>,
    channels: Vec<Channel>,
    current: AtomicUsize,
}

impl MetaTier {
    /// Lazy channels to every meta-server; nothing connects yet.
    pub fn new(addrs: Vec<String>, tls: &Arc<NodeTls>) -> Result<Self, transport::ConnectError> {
        let channels = addrs
            .iter()
            .map(|a| transport::channel(a, tls, &[Role::Meta]))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            addrs,
            channels,
            current: AtomicUsize::new(0),
        })
    }

    /// Runs `f` against a meta-server, failing over while the tier is
    /// unreachable. Only "could not reach / no leader" is retried; a
    /// refusal is final. (A plain closure returning an owned future, not
    /// an async closure: its future must be provably `Send`.)
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, MetaError>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let n = self.channels.len();
        let mut last = MetaError::Unavailable("no meta-server configured".into());
        for attempt in 0..n * ROUNDS {
            let i = (self.current.load(Ordering::Relaxed) + attempt) % n;
            match f(self.channels[i].clone()).await {
                Ok(r) => {
                    self.current.store(i, Ordering::Relaxed);
                    return Ok(r.into_inner());
                }
                Err(s) => match classify(s) {
                    MetaError::Unavailable(m) => {
                        tracing::debug!(meta = %self.addrs[i], error = %m, "meta-server unavailable; trying the next");
                        last = MetaError::Unavailable(m);
                        if (attempt + 1) % n == 0 {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                    other => return Err(other),
                },
            }
        }
        Err(last)
    }
}

/// `meta_call!(tier, method, request)`: one `Meta` RPC through
/// [`MetaTier::call`], with failover.
#[macro_export]
macro_rules! meta_call {
    ($tier:expr, $method:ident, $req:expr) => {{
        let req = $req;
        $tier.call(move |ch| {
            let req = req.clone();
            async move {
                ::hamster_proto::pb::meta_client::MetaClient::new(ch)
                    .$method(req)
                    .await
            }
        })
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_code_is_a_refusal() {
        let e = classify(ErrorCode::NoSuchKey.status("gone"));
        assert_eq!(e.code(), Some(ErrorCode::NoSuchKey));
        assert!(matches!(e, MetaError::Refused { message, .. } if message == "gone"));
    }

    #[test]
    fn an_unknown_code_is_a_failure() {
        let mut s = Status::failed_precondition("new");
        s.metadata_mut()
            .insert(ERROR_CODE_KEY, "FromTheFuture".parse().expect("ascii"));
        assert!(matches!(classify(s), MetaError::Failed(_)));
    }

    #[test]
    fn no_quorum_moves_on_to_the_next_server() {
        assert!(matches!(
            classify(ErrorCode::Unavailable.status("no leader")),
            MetaError::Unavailable(_)
        ));
        assert!(matches!(
            classify(Status::unavailable("down")),
            MetaError::Unavailable(_)
        ));
        assert!(matches!(
            classify(Status::internal("bug")),
            MetaError::Failed(_)
        ));
    }
}
