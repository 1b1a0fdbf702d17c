//! The gateway's client of the meta tier. Any meta-server answers (a
//! follower forwards writes to the leader and serves linearizable reads
//! itself, ADR 0008), so a call goes to the last server that worked and
//! moves on to the next only when that one cannot be reached. A write
//! that fails over is the same request, byte for byte (its `request_id`
//! makes the retry one command in the meta tier, ADR 0024).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// Test hook only (`--test-drop-commit-answers`): how many more
    /// successful CommitVersion answers to throw away.
    drop_commit_answers: AtomicU64,
}

/// The method name `meta_call!` gives for CommitVersion.
const COMMIT_VERSION: &str = "commit_version";

impl MetaTier {
    /// Lazy channels to every meta-server; nothing connects yet.
    pub fn new(addrs: Vec<String>, tls: &Arc<NodeTls>) -> Result<Self, transport::ConnectError> {
        let channels = addrs
            .iter()
            .map(|a| transport::channel(a, tls, &[Role::Meta]))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::over(addrs, channels))
    }

    pub(crate) fn over(addrs: Vec<String>, channels: Vec<Channel>) -> Self {
        Self {
            addrs,
            channels,
            current: AtomicUsize::new(0),
            drop_commit_answers: AtomicU64::new(0),
        }
    }

    /// TEST HOOK, never for production: the first `n` successful
    /// CommitVersion answers are discarded as if the connection broke
    /// after the meta tier applied the commit, so the call fails over to
    /// the next meta-server with the same request (a lost answer).
    pub fn drop_commit_answers(self, n: u64) -> Self {
        self.drop_commit_answers.store(n, Ordering::Relaxed);
        self
    }

    /// Whether the test hook takes this answer.
    fn drop_answer(&self, method: &str) -> bool {
        method == COMMIT_VERSION
            && self
                .drop_commit_answers
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
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
        self.call_as("", f).await
    }

    /// [`Self::call`] for the `Meta` method named `method` (what
    /// `meta_call!` uses; the name only matters to the test hook).
    pub async fn call_as<T, F, Fut>(&self, method: &str, f: F) -> Result<T, MetaError>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let n = self.channels.len();
        let mut last = MetaError::Unavailable("no meta-server configured".into());
        for attempt in 0..n * ROUNDS {
            let i = (self.current.load(Ordering::Relaxed) + attempt) % n;
            match f(self.channels[i].clone()).await {
                Ok(_) if self.drop_answer(method) => {
                    tracing::warn!(meta = %self.addrs[i], "test hook: dropping a CommitVersion answer (--test-drop-commit-answers)");
                    last = MetaError::Unavailable("answer dropped by the test hook".into());
                }
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
        $tier.call_as(stringify!($method), move |ch| {
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
pub(crate) mod fake;

#[cfg(test)]
mod tests {
    use super::*;
    use hamster_proto::pb;

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

    /// What the fake servers were sent: (server, path, request body).
    type Seen = Arc<std::sync::Mutex<Vec<(usize, String, Vec<u8>)>>>;

    /// A tier over `n` fake meta-servers, and what they were sent; each
    /// answers an empty message (every response's default).
    async fn fake_tier(n: usize) -> (MetaTier, Seen) {
        let seen: Seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (mut addrs, mut channels) = (Vec::new(), Vec::new());
        for server in 0..n {
            let seen = seen.clone();
            let (addr, channel) = fake::serve(move |path, body| {
                let call = (server, path.to_string(), body.to_vec());
                seen.lock().expect("lock").push(call);
                Ok(fake::framed(&()))
            })
            .await;
            addrs.push(addr);
            channels.push(channel);
        }
        (MetaTier::over(addrs, channels), seen)
    }

    #[tokio::test]
    async fn a_dropped_commit_answer_resends_the_same_request_to_the_next_server() {
        let (tier, seen) = fake_tier(3).await;
        let tier = tier.drop_commit_answers(1);
        let req = pb::CommitVersionRequest {
            version: Some(pb::ObjectVersion {
                bucket: "b".into(),
                key: "k".into(),
                version_id: hamster_proto::ids::new_version_id(crate::now_ms()),
                ..Default::default()
            }),
            request_id: hamster_proto::ids::new_request_id(),
            access_key_id: "AKID".into(),
        };
        let sent = prost::Message::encode_to_vec(&req);
        crate::meta_call!(tier, commit_version, req.clone())
            .await
            .expect("the retry is answered");
        // Two attempts, on two servers, carrying the very same bytes.
        let calls = seen.lock().expect("lock").clone();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert_eq!((calls[0].0, calls[1].0), (0, 1));
        for (_, path, body) in &calls {
            assert_eq!(path, "/hamster.v1.Meta/CommitVersion");
            // gRPC framing: no compression, 4-byte length, the message.
            assert_eq!(body[5..], sent[..]);
            let got: pb::CommitVersionRequest =
                prost::Message::decode(&body[5..]).expect("a request");
            assert_eq!(got.request_id, req.request_id);
            assert_eq!(got.access_key_id, "AKID");
            assert_eq!(
                got.version.expect("version").version_id,
                req.version.as_ref().expect("v").version_id
            );
        }
        // The hook is spent: the next commit is answered the first time,
        // by the server that answered last.
        crate::meta_call!(tier, commit_version, req.clone())
            .await
            .expect("answered");
        assert_eq!(seen.lock().expect("lock").len(), 3);
        assert_eq!(seen.lock().expect("lock")[2].0, 1);
    }

    #[tokio::test]
    async fn the_hook_drops_only_commit_version_answers() {
        let (tier, seen) = fake_tier(2).await;
        let tier = tier.drop_commit_answers(5);
        let req = pb::DeleteObjectRequest {
            bucket: "b".into(),
            key: "k".into(),
            request_id: hamster_proto::ids::new_request_id(),
            ..Default::default()
        };
        crate::meta_call!(tier, delete_object, req)
            .await
            .expect("answered");
        assert_eq!(seen.lock().expect("lock").len(), 1);
        // Five drops over two servers and three rounds: the sixth attempt
        // is answered.
        let commit = pb::CommitVersionRequest::default();
        crate::meta_call!(tier, commit_version, commit)
            .await
            .expect("answered");
        assert_eq!(seen.lock().expect("lock").len(), 7);
    }
}
