//! The gateway's client of the meta tier. Any meta-server answers (a
//! follower forwards writes to the leader and serves linearizable reads
//! itself, ADR 0008), so a call goes to the last server that worked and
//! moves on to the next only when that one cannot be reached. A write
//! that fails over is the same request, byte for byte (its `request_id`
//! makes the retry one command in the meta tier, ADR 0024).
//!
//! Each attempt has a deadline (ADR 0032): a meta-server that stopped
//! answering without closing its sockets costs one deadline, and is then
//! remembered as bad for a while — tried only when no other server is
//! left — so the gateway does not keep going back to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hamster_proto::error::ERROR_CODE_KEY;
use hamster_proto::tls::NodeTls;
use hamster_proto::{ErrorCode, Role, transport};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// Rounds over every meta-server before a call gives up.
const ROUNDS: usize = 3;
/// Default deadline of one attempt on one meta-server (`--meta-call-timeout-ms`).
/// Longer than a follower's forward deadline (`RAFT_CALL_TIMEOUT`, 2 s)
/// plus an election, so a live follower is not given up on while it
/// rides out a stalled leader.
pub const META_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a meta-server that timed out or could not be reached is
/// tried only as a last resort.
pub const META_BAD_FOR: Duration = Duration::from_secs(30);

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

/// Whether a failed call says the server itself is out of reach (no
/// hamster error code: the transport failed), as opposed to a live
/// server answering "no quorum".
fn unreachable(s: &Status) -> bool {
    ErrorCode::of(s).is_none()
        && s.metadata().get(ERROR_CODE_KEY).is_none()
        && matches!(
            s.code(),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
        )
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

/// The `hamster_meta_call_errors_total` kind of a failed attempt; None
/// for a refusal (NoSuchKey, PreconditionFailed...): a normal answer.
fn error_kind(e: &MetaError, gone: bool) -> Option<&'static str> {
    match e {
        MetaError::Unavailable(_) if gone => Some("unreachable"),
        MetaError::Unavailable(_) => Some("unavailable"),
        MetaError::Refused { .. } => None,
        MetaError::Failed(_) => Some("internal"),
    }
}

pub struct MetaTier {
    addrs: Vec<String>,
    channels: Vec<Channel>,
    current: AtomicUsize,
    /// Deadline of one attempt on one server.
    call_timeout: Duration,
    /// Per server: tried only as a last resort until then.
    bad_until: std::sync::Mutex<Vec<Option<Instant>>>,
    /// Which servers were tried, in order (unit tests only).
    #[cfg(test)]
    tried: std::sync::Mutex<Vec<usize>>,
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
        let n = channels.len();
        Self {
            addrs,
            channels,
            current: AtomicUsize::new(0),
            call_timeout: META_CALL_TIMEOUT,
            bad_until: std::sync::Mutex::new(vec![None; n]),
            #[cfg(test)]
            tried: std::sync::Mutex::default(),
            drop_commit_answers: AtomicU64::new(0),
        }
    }

    /// Sets the deadline of one attempt on one meta-server.
    pub fn call_timeout(mut self, d: Duration) -> Self {
        self.call_timeout = d;
        self
    }

    fn bad(&self) -> std::sync::MutexGuard<'_, Vec<Option<Instant>>> {
        match self.bad_until.lock() {
            Ok(b) => b,
            Err(p) => p.into_inner(),
        }
    }

    /// The servers to try in this round, from the current one on: those
    /// not marked bad; all of them in the last round or if every one is
    /// marked (better a slow answer than none).
    fn order(&self, last_round: bool) -> Vec<usize> {
        let n = self.channels.len();
        let start = self.current.load(Ordering::Relaxed);
        let all: Vec<usize> = (0..n).map(|k| (start + k) % n).collect();
        if last_round {
            return all;
        }
        let now = Instant::now();
        let bad = self.bad();
        let good: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| bad.get(i).copied().flatten().is_none_or(|t| t <= now))
            .collect();
        if good.is_empty() { all } else { good }
    }

    fn mark(&self, i: usize, bad: bool) {
        if let Some(slot) = self.bad().get_mut(i) {
            *slot = bad.then(|| Instant::now() + META_BAD_FOR);
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
        let mut last = MetaError::Unavailable("no meta-server configured".into());
        for round in 0..ROUNDS {
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            for i in self.order(round + 1 == ROUNDS) {
                #[cfg(test)]
                if let Ok(mut t) = self.tried.lock() {
                    t.push(i);
                }
                let answer = tokio::time::timeout(self.call_timeout, f(self.channels[i].clone()))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Status::deadline_exceeded(format!(
                            "no answer within {:?}",
                            self.call_timeout
                        )))
                    });
                match answer {
                    Ok(_) if self.drop_answer(method) => {
                        tracing::warn!(meta = %self.addrs[i], "test hook: dropping a CommitVersion answer (--test-drop-commit-answers)");
                        last = MetaError::Unavailable("answer dropped by the test hook".into());
                    }
                    Ok(r) => {
                        self.mark(i, false);
                        self.current.store(i, Ordering::Relaxed);
                        return Ok(r.into_inner());
                    }
                    Err(s) => {
                        let gone = unreachable(&s);
                        let timeout = gone && s.code() == Code::DeadlineExceeded;
                        let e = classify(s);
                        let kind = if timeout {
                            Some("timeout")
                        } else {
                            error_kind(&e, gone)
                        };
                        if let Some(kind) = kind {
                            crate::observe::metrics::meta_error(kind);
                        }
                        match e {
                            MetaError::Unavailable(m) => {
                                if gone {
                                    tracing::warn!(meta = %self.addrs[i], error = %m, "meta-server unreachable; avoiding it for a while");
                                    self.mark(i, true);
                                } else {
                                    tracing::debug!(meta = %self.addrs[i], error = %m, "meta-server unavailable; trying the next");
                                }
                                last = MetaError::Unavailable(m);
                            }
                            other => return Err(other),
                        }
                    }
                }
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
                // Answers are bounded (ADR 0031); the limit says so.
                ::hamster_proto::pb::meta_client::MetaClient::new(ch)
                    .max_decoding_message_size(::hamster_proto::message_size::META_ANSWER_MAX)
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

    /// A listener that accepts connections and never answers: a
    /// meta-server stopped without closing its sockets (SIGSTOP).
    async fn stalled() -> (String, Channel) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let ch = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect_lazy();
        (addr, ch)
    }

    #[tokio::test]
    async fn a_stalled_server_costs_one_deadline_then_is_avoided() {
        let (a0, c0) = stalled().await;
        // Server 1 answers, except its second call: "no quorum" (an
        // election in progress).
        let calls = Arc::new(AtomicU64::new(0));
        let (a1, c1) = fake::serve({
            let calls = calls.clone();
            move |_, _| {
                if calls.fetch_add(1, Ordering::Relaxed) == 1 {
                    Err(ErrorCode::Unavailable.status("no leader"))
                } else {
                    Ok(fake::framed(&()))
                }
            }
        })
        .await;
        let tier =
            MetaTier::over(vec![a0, a1], vec![c0, c1]).call_timeout(Duration::from_millis(300));
        let req = pb::DeleteObjectRequest::default();
        // Without a deadline the first attempt never ends: bound the test.
        tokio::time::timeout(
            Duration::from_secs(20),
            crate::meta_call!(tier, delete_object, req.clone()),
        )
        .await
        .expect("the stalled server did not hold the call")
        .expect("answered by server 1");
        assert_eq!(*tier.tried.lock().expect("lock"), vec![0, 1]);
        // Server 1 is briefly without quorum: the call retries it after a
        // pause rather than going back to the stalled server.
        crate::meta_call!(tier, delete_object, req)
            .await
            .expect("answered");
        assert_eq!(*tier.tried.lock().expect("lock"), vec![0, 1, 1, 1]);
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
            ..Default::default()
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
