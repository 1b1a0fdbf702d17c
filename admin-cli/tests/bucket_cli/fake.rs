//! The scripted meta-server the bucket and key CLI tests run against:
//! it records every request and answers as the meta tier would (owner
//! AK1 "alice", the cluster default limit of 36500 days).

use std::collections::VecDeque;
use std::process::Output;
use std::sync::{Arc, Mutex};

use hamster_proto::ErrorCode;
use hamster_proto::pb::admin_server::Admin;
use hamster_proto::pb::{
    AccessKey, AdminCreateBucketRequest, AdoptBucketsRequest, AdoptBucketsResponse,
    AllowBucketRequest, AllowBucketResponse, Bucket, BucketGrant, BucketInfoRequest,
    BucketInfoResponse, CreateAccessKeyRequest, CreateAccessKeyResponse, CreateBucketResponse,
    DeleteBucketRequest, DeleteBucketResponse, DenyBucketRequest, DenyBucketResponse,
    ListAccessKeysRequest, ListAccessKeysResponse, ListBucketsRequest, ListBucketsResponse,
    SetBucketDefaultsRequest, SetBucketDefaultsResponse, SetBucketRequest, SetBucketResponse,
};
use tonic::{Request, Response, Status};

use crate::common;

/// Every request the scripted meta-server received, in order.
#[derive(Debug, PartialEq)]
pub enum Asked {
    List(ListBucketsRequest),
    Create(AdminCreateBucketRequest),
    Delete(DeleteBucketRequest),
    Info(BucketInfoRequest),
    Allow(AllowBucketRequest),
    Deny(DenyBucketRequest),
    Set(SetBucketRequest),
    Defaults(SetBucketDefaultsRequest),
    CreateKey(CreateAccessKeyRequest),
    Adopt(AdoptBucketsRequest),
}

#[derive(Default)]
pub struct Script {
    /// ListBuckets answers in turn; the last one repeats.
    pub pages: VecDeque<ListBucketsResponse>,
    pub info: Option<BucketInfoResponse>,
    pub keys: Vec<AccessKey>,
    /// Buckets with no owner, for AdoptBuckets (which gives them one).
    pub ownerless: Vec<String>,
    pub asked: Vec<Asked>,
}

#[derive(Clone, Default)]
pub struct Fake(Arc<Mutex<Script>>);

impl Fake {
    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.0.lock().expect("script")
    }

    fn ask(&self, a: Asked) {
        self.script().asked.push(a);
    }
}

/// The bucket the fake meta tier holds after a change: owner AK1
/// ("alice") unless told otherwise, the cluster default limit.
pub fn bucket(name: &str, owner: &str) -> Bucket {
    Bucket {
        name: name.into(),
        owner: owner.into(),
        owner_name: if owner == "AK1" {
            "alice".into()
        } else {
            String::new()
        },
        max_retention_days: 36500,
        ..Bucket::default()
    }
}

#[tonic::async_trait]
impl Admin for Fake {
    async fn list_buckets(
        &self,
        r: Request<ListBucketsRequest>,
    ) -> Result<Response<ListBucketsResponse>, Status> {
        self.ask(Asked::List(r.into_inner()));
        let mut s = self.script();
        let page = if s.pages.len() > 1 {
            s.pages.pop_front()
        } else {
            s.pages.front().cloned()
        };
        Ok(Response::new(page.unwrap_or_default()))
    }

    async fn create_bucket(
        &self,
        r: Request<AdminCreateBucketRequest>,
    ) -> Result<Response<CreateBucketResponse>, Status> {
        let r = r.into_inner();
        self.ask(Asked::Create(r.clone()));
        if r.name == "taken" {
            return Err(ErrorCode::BucketAlreadyExists.status("bucket taken already exists"));
        }
        let mut b = bucket(&r.name, &r.owner);
        b.object_lock_enabled = r.object_lock_enabled;
        Ok(Response::new(CreateBucketResponse { bucket: Some(b) }))
    }

    async fn delete_bucket(
        &self,
        r: Request<DeleteBucketRequest>,
    ) -> Result<Response<DeleteBucketResponse>, Status> {
        self.ask(Asked::Delete(r.into_inner()));
        Ok(Response::new(DeleteBucketResponse {}))
    }

    async fn bucket_info(
        &self,
        r: Request<BucketInfoRequest>,
    ) -> Result<Response<BucketInfoResponse>, Status> {
        self.ask(Asked::Info(r.into_inner()));
        match self.script().info.clone() {
            Some(i) => Ok(Response::new(i)),
            None => Err(ErrorCode::NoSuchBucket.status("no bucket named nope")),
        }
    }

    async fn allow_bucket(
        &self,
        r: Request<AllowBucketRequest>,
    ) -> Result<Response<AllowBucketResponse>, Status> {
        let r = r.into_inner();
        self.ask(Asked::Allow(r.clone()));
        Ok(Response::new(AllowBucketResponse {
            grant: Some(BucketGrant {
                bucket: r.bucket,
                access_key_id: r.access_key_id,
                read: r.read,
                write: r.write,
                owner: r.owner,
            }),
        }))
    }

    async fn deny_bucket(
        &self,
        r: Request<DenyBucketRequest>,
    ) -> Result<Response<DenyBucketResponse>, Status> {
        let r = r.into_inner();
        self.ask(Asked::Deny(r.clone()));
        if r.access_key_id == "AK1" {
            return Err(ErrorCode::InvalidRequest
                .status("AK1 owns bucket b1: give the bucket another owner first"));
        }
        Ok(Response::new(DenyBucketResponse {}))
    }

    async fn set_bucket(
        &self,
        r: Request<SetBucketRequest>,
    ) -> Result<Response<SetBucketResponse>, Status> {
        let r = r.into_inner();
        self.ask(Asked::Set(r.clone()));
        let mut b = bucket(&r.name, r.owner.as_deref().unwrap_or("AK1"));
        b.max_retention_days = match r.max_retention_days {
            None | Some(0) => 36500,
            Some(n) => n,
        };
        Ok(Response::new(SetBucketResponse { bucket: Some(b) }))
    }

    async fn set_bucket_defaults(
        &self,
        r: Request<SetBucketDefaultsRequest>,
    ) -> Result<Response<SetBucketDefaultsResponse>, Status> {
        let r = r.into_inner();
        self.ask(Asked::Defaults(r));
        Ok(Response::new(SetBucketDefaultsResponse {
            max_retention_days: r.max_retention_days.unwrap_or(36500),
        }))
    }

    /// As the meta tier: no owner named is the only key (refused if
    /// there are several), an unknown key is refused.
    async fn adopt_buckets(
        &self,
        r: Request<AdoptBucketsRequest>,
    ) -> Result<Response<AdoptBucketsResponse>, Status> {
        let r = r.into_inner();
        self.ask(Asked::Adopt(r.clone()));
        let mut s = self.script();
        let owner = match (r.owner.as_str(), s.keys.as_slice()) {
            ("", [only]) => only.access_key_id.clone(),
            ("", _) => {
                return Err(ErrorCode::InvalidRequest
                    .status("the cluster has several access keys: name the owner (--owner KEY)"));
            }
            (k, keys) if keys.iter().any(|x| x.access_key_id == k) => k.to_string(),
            (k, _) => return Err(ErrorCode::NoSuchAccessKey.status(format!("no access key {k}"))),
        };
        Ok(Response::new(AdoptBucketsResponse {
            owner,
            buckets: std::mem::take(&mut s.ownerless),
        }))
    }

    async fn create_access_key(
        &self,
        r: Request<CreateAccessKeyRequest>,
    ) -> Result<Response<CreateAccessKeyResponse>, Status> {
        let r = r.into_inner();
        self.ask(Asked::CreateKey(r.clone()));
        Ok(Response::new(CreateAccessKeyResponse {
            key: Some(AccessKey {
                access_key_id: "AKNEW".into(),
                name: r.name,
                created_at_ms: 1,
                enabled: true,
                can_create_bucket: r.can_create_bucket.unwrap_or(true),
            }),
            secret_access_key: "s3cret".into(),
        }))
    }

    async fn list_access_keys(
        &self,
        _: Request<ListAccessKeysRequest>,
    ) -> Result<Response<ListAccessKeysResponse>, Status> {
        Ok(Response::new(ListAccessKeysResponse {
            keys: self.script().keys.clone(),
        }))
    }
}

pub struct Meta {
    fake: Fake,
    meta: common::ScriptedMeta,
}

impl Meta {
    pub fn start(script: Script) -> Self {
        let fake = Fake(Arc::new(Mutex::new(script)));
        let meta = common::ScriptedMeta::start(fake.clone());
        Self { fake, meta }
    }

    pub fn hamster(&self, args: &[&str]) -> Output {
        self.meta
            .hamster()
            .args(args)
            .output()
            .expect("run hamster")
    }

    /// Runs `hamster ARGS`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.hamster(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `hamster ARGS`, expected to fail (exit 1) saying `says` on
    /// stderr; answers its stderr.
    pub fn refused(&self, args: &[&str], says: &str) -> String {
        let out = self.hamster(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        err
    }

    /// Every request received so far (and forgets them).
    pub fn asked(&self) -> Vec<Asked> {
        std::mem::take(&mut self.fake.script().asked)
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A clap refusal: exit 2, usage on stderr, nothing sent.
pub fn assert_clap_refuses(meta: &Meta, args: &[&str], says: &str) {
    let out = meta.hamster(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    assert_eq!(meta.asked(), [], "{args:?} reached the meta tier");
}

pub fn page(names: &[&str], next: &str) -> ListBucketsResponse {
    ListBucketsResponse {
        buckets: names.iter().map(|n| bucket(n, "AK1")).collect(),
        next_continuation_token: next.into(),
    }
}

pub fn list_request(token: &str) -> Asked {
    Asked::List(ListBucketsRequest {
        access_key_id: String::new(),
        prefix: String::new(),
        continuation_token: token.into(),
        max_buckets: 0,
    })
}
