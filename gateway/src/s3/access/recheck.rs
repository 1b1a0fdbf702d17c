//! How often a refusal asks the meta tier (`Access::allow` against a fake
//! `Meta` service that counts calls): at most one key lookup per key per
//! second, a refused bucket remembered for as long, and a bucket created
//! or granted a moment ago still usable at once; unsigned requests cost
//! one lookup per bucket per `EXISTS_TTL`, within a global cap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hamster_proto::ErrorCode;
use hamster_proto::envelope::seal_secret;
use hamster_proto::keyring::Keyring;
use hamster_proto::secrets::MasterKey;
use s3s::auth::{Credentials, SecretKey};
use tonic::Status;

use super::*;
use crate::meta::fake::{self, framed};
use crate::s3::auth::{Keys, RECHECK_EVERY};
use crate::s3::error::code_of;

const KEY: &str = "AKTEST";

/// What the fake meta tier knows, and the calls it was sent.
#[derive(Default)]
struct State {
    grants: Vec<pb::BucketGrant>,
    buckets: HashMap<String, pb::Bucket>,
    calls: Vec<String>,
}

/// What the fake meta-server answers from: the key's sealed secret and
/// `State`.
struct FakeMeta {
    state: Arc<Mutex<State>>,
    sealed: Vec<u8>,
}

impl FakeMeta {
    fn answer(&self, method: &str, body: &[u8]) -> Result<Bytes, Status> {
        let mut st = self.state.lock().expect("lock");
        st.calls.push(method.to_string());
        match method {
            "LookupAccessKey" => Ok(framed(&pb::LookupAccessKeyResponse {
                access_key_id: KEY.into(),
                sealed_secret: self.sealed.clone(),
                enabled: true,
                can_create_bucket: true,
                grants: st.grants.clone(),
                ..Default::default()
            })),
            "HeadBucket" => {
                let req: pb::HeadBucketRequest =
                    prost::Message::decode(body.get(5..).unwrap_or_default())
                        .map_err(|e| Status::internal(e.to_string()))?;
                match st.buckets.get(&req.name) {
                    Some(b) => Ok(framed(&pb::HeadBucketResponse {
                        bucket: Some(b.clone()),
                    })),
                    None => Err(ErrorCode::NoSuchBucket.status("no such bucket")),
                }
            }
            other => Err(Status::unimplemented(other.to_string())),
        }
    }
}

/// An `Access` over a fake meta tier that knows one key, `KEY`.
async fn access() -> (Access, Arc<Mutex<State>>) {
    let kek = MasterKey::generate();
    let sealed = seal_secret(&kek, KEY, "secret");
    let keyring = Arc::new(Keyring::of(kek, None));
    let state = Arc::new(Mutex::new(State::default()));
    let fake = FakeMeta {
        state: state.clone(),
        sealed,
    };
    let (addr, channel) = fake::serve(move |path, body| {
        let method = path.rsplit('/').next().unwrap_or_default();
        fake.answer(method, body)
    })
    .await;
    let meta = Arc::new(MetaTier::over(vec![addr], vec![channel]));
    let keys = Arc::new(Keys::new(meta.clone(), keyring));
    (Access::new(keys, meta), state)
}

fn bucket(st: &Arc<Mutex<State>>, name: &str, owner: &str) {
    let b = pb::Bucket {
        name: name.into(),
        owner: owner.into(),
        ..Default::default()
    };
    st.lock().expect("lock").buckets.insert(name.into(), b);
}

fn grant(st: &Arc<Mutex<State>>, bucket: &str, read: bool, owner: bool) {
    st.lock().expect("lock").grants.push(pb::BucketGrant {
        bucket: bucket.into(),
        access_key_id: KEY.into(),
        read,
        write: owner,
        owner,
    });
}

/// (LookupAccessKey, HeadBucket) calls so far.
fn calls(st: &Arc<Mutex<State>>) -> (usize, usize) {
    let st = st.lock().expect("lock");
    let n = |m: &str| st.calls.iter().filter(|c| *c == m).count();
    (n("LookupAccessKey"), n("HeadBucket"))
}

fn request<T>(input: T) -> S3Request<T> {
    S3Request {
        input,
        method: http::Method::GET,
        uri: http::Uri::from_static("/"),
        headers: http::HeaderMap::new(),
        extensions: http::Extensions::new(),
        credentials: Some(Credentials {
            access_key: KEY.into(),
            secret_key: SecretKey::from("secret"),
        }),
        region: None,
        service: None,
        trailing_headers: None,
    }
}

/// GetObject on `b`: "" if allowed, else the S3 error code.
async fn get(a: &Access, b: &str) -> String {
    let input = GetObjectInput::builder()
        .bucket(b.into())
        .key("k".into())
        .build()
        .expect("input");
    code_of(a.get_object(&mut request(input)).await)
}

async fn put(a: &Access, b: &str) -> String {
    let input = PutObjectInput {
        bucket: b.into(),
        key: "k".into(),
        ..Default::default()
    };
    code_of(a.put_object(&mut request(input)).await)
}

#[tokio::test]
async fn hammering_a_bucket_it_may_not_use_costs_two_meta_reads_a_second() {
    let (a, st) = access().await;
    bucket(&st, "theirs", "OTHER");
    for _ in 0..20 {
        assert_eq!(get(&a, "theirs").await, "AccessDenied");
        assert_eq!(put(&a, "theirs").await, "AccessDenied");
    }
    // The lookup that filled the cache, and one HeadBucket: 403, not 404.
    assert_eq!(calls(&st), (1, 1));
    tokio::time::sleep(RECHECK_EVERY).await;
    for _ in 0..20 {
        assert_eq!(get(&a, "theirs").await, "AccessDenied");
    }
    // One recheck of the key and one of the bucket in the next second.
    assert_eq!(calls(&st), (2, 2));
    // A missing bucket is 404, asked each time (it may be created any
    // moment, through any gateway), but the key is not looked up again.
    for _ in 0..3 {
        assert_eq!(get(&a, "missing").await, "NoSuchBucket");
    }
    assert_eq!(calls(&st), (2, 5));
}

#[tokio::test]
async fn a_bucket_created_or_granted_a_moment_ago_works_at_once() {
    let (a, st) = access().await;
    bucket(&st, "mine", KEY);
    grant(&st, "mine", true, true);
    bucket(&st, "theirs", "OTHER");
    bucket(&st, "other", "OTHER");
    assert_eq!(get(&a, "mine").await, "");
    assert_eq!(calls(&st), (1, 0));
    // Granted after the cache was filled: the first refusal looks again.
    grant(&st, "theirs", true, false);
    assert_eq!(get(&a, "theirs").await, "");
    assert_eq!(calls(&st), (2, 0));
    // Created by this key (through any gateway) within the same second:
    // the meta tier names it the owner, so the key is looked up again.
    bucket(&st, "new", KEY);
    grant(&st, "new", true, true);
    assert_eq!(put(&a, "new").await, "");
    assert_eq!(calls(&st), (3, 1));
    // A grant on another key's bucket within that second waits for the
    // next recheck: at most a second.
    grant(&st, "other", true, false);
    assert_eq!(get(&a, "other").await, "AccessDenied");
    assert_eq!(get(&a, "other").await, "AccessDenied");
    assert_eq!(calls(&st), (3, 2));
    tokio::time::sleep(RECHECK_EVERY).await;
    assert_eq!(get(&a, "other").await, "");
    assert_eq!(calls(&st), (4, 2));
}

/// GetObject on `b` with no signature: the S3 error code.
async fn unsigned_get(a: &Access, b: &str) -> String {
    let input = GetObjectInput::builder()
        .bucket(b.into())
        .key("k".into())
        .build()
        .expect("input");
    let mut req = request(input);
    req.credentials = None;
    code_of(a.get_object(&mut req).await)
}

#[tokio::test]
async fn unsigned_requests_cannot_drive_meta_reads() {
    use super::anonymous::LOOKUPS_PER_SECOND;
    let (a, st) = access().await;
    bucket(&st, "theirs", "OTHER");
    // The same names over and over: one HeadBucket each.
    for _ in 0..50 {
        assert_eq!(unsigned_get(&a, "missing").await, "NoSuchBucket");
        assert_eq!(unsigned_get(&a, "theirs").await, "AccessDenied");
    }
    assert_eq!(calls(&st), (0, 2));
    // Random names: at most the cap's lookups in the second, then 403
    // without asking.
    let mut answers = Vec::new();
    for i in 0..200 {
        answers.push(unsigned_get(&a, &format!("random-{i}")).await);
    }
    let (_, heads) = calls(&st);
    assert!(heads <= 2 + 2 * LOOKUPS_PER_SECOND as usize, "{heads}");
    assert!(answers.iter().any(|c| c == "AccessDenied"), "{answers:?}");
    // An unsigned CreateBucket names no existing bucket: 403, no lookup.
    let input = CreateBucketInput::builder()
        .bucket("new-bucket".into())
        .build()
        .expect("input");
    let mut req = request(input);
    req.credentials = None;
    assert_eq!(code_of(a.create_bucket(&mut req).await), "AccessDenied");
    assert_eq!(calls(&st), (0, heads));
}
