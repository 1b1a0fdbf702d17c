//! Helpers for S3 tests: a whole cluster (meta, blob-servers, a gateway),
//! an access key made with `hamster key create`, an aws-sdk-s3 client
//! pointed at the gateway, and the checks of S3 errors.

use std::time::{Duration, Instant};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::delete_object::{DeleteObjectError, DeleteObjectOutput};
use aws_sdk_s3::operation::delete_objects::{DeleteObjectsError, DeleteObjectsOutput};
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::operation::head_object::{HeadObjectError, HeadObjectOutput};
use aws_sdk_s3::operation::put_bucket_versioning::{
    PutBucketVersioningError, PutBucketVersioningOutput,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, Delete, ObjectIdentifier, VersioningConfiguration,
};
use hamster_proto::pb;

use crate::{Cluster, Kind, Node, Steps, path_str};

/// An aws-sdk-s3 error as (S3 error code, HTTP status).
pub fn error_status<E: ProvideErrorMetadata>(
    e: &SdkError<E, HttpResponse>,
) -> (Option<String>, Option<u16>) {
    let code = e.code().map(str::to_string);
    let st = e.raw_response().map(|r| r.status().as_u16());
    (code, st)
}

/// Asserts that an S3 call failed with error `code` and HTTP `status`
/// (the check most S3 tests make, one line instead of six).
#[track_caller]
pub fn assert_s3_error<T, E>(result: Result<T, SdkError<E, HttpResponse>>, code: &str, status: u16)
where
    E: ProvideErrorMetadata + std::fmt::Debug,
{
    match result {
        Ok(_) => panic!("expected {status} {code}, the call succeeded"),
        Err(e) => assert_eq!(
            error_status(&e),
            (Some(code.to_string()), Some(status)),
            "{e:?}"
        ),
    }
}

/// A response header of a failed call (e.g. x-amz-delete-marker).
pub fn error_header<E>(e: &SdkError<E, HttpResponse>, name: &str) -> Option<String> {
    e.raw_response()?.headers().get(name).map(str::to_string)
}

/// `len` bytes of a repeating pattern that differs by `seed`.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i * 7) as u8) ^ seed).collect()
}

/// The whole body of a GetObject.
pub async fn read_body(out: GetObjectOutput) -> Vec<u8> {
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// The whole body of `bucket/key`, or what went wrong, as text.
pub async fn get_bytes(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    let out = get_version(c, bucket, key, None)
        .await
        .map_err(|e| format!("GET {bucket}/{key}: {e:?}"))?;
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| format!("GET {bucket}/{key} body: {e}"))?;
    Ok(body.into_bytes().to_vec())
}

/// Every (key, bytes) of `bucket` reads back byte-identical; panics
/// naming the first that does not, and `when`.
pub async fn assert_read_back(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    objects: &[(String, Vec<u8>)],
    when: &str,
) {
    for (key, data) in objects {
        let got = get_bytes(c, bucket, key)
            .await
            .unwrap_or_else(|e| panic!("{when}: {e}"));
        assert!(
            got == *data,
            "{when}: {key} read back {} bytes, not the {} written (or different ones)",
            got.len(),
            data.len()
        );
    }
}

/// What an S3 call answers: its output, or the error to check with
/// [`assert_s3_error`].
pub type S3Result<O, E> = Result<O, SdkError<E, HttpResponse>>;

// The calls below are the ones the versioning and lock tests make over
// and over, with a version id or not: one home for each.

/// PUTs `data`; answers the x-amz-version-id, if the bucket gave one.
pub async fn put_version(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    data: &[u8],
) -> Option<String> {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .expect("put")
        .version_id()
        .map(str::to_string)
}

/// GetObject of `key`, of version `id` if given.
pub async fn get_version(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    id: Option<&str>,
) -> S3Result<GetObjectOutput, GetObjectError> {
    c.get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(id.map(str::to_string))
        .send()
        .await
}

/// HeadObject of `key`, of version `id` if given.
pub async fn head_version(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    id: Option<&str>,
) -> S3Result<HeadObjectOutput, HeadObjectError> {
    c.head_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(id.map(str::to_string))
        .send()
        .await
}

/// DeleteObject of `key`, of version `id` if given; `bypass` sends
/// x-amz-bypass-governance-retention (absent otherwise, as a client that
/// never heard of it would).
pub async fn delete_version(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    id: Option<&str>,
    bypass: bool,
) -> S3Result<DeleteObjectOutput, DeleteObjectError> {
    c.delete_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(id.map(str::to_string))
        .set_bypass_governance_retention(bypass.then_some(true))
        .send()
        .await
}

/// DeleteObjects of the (key, version id)s in `objects`; `bypass` is the
/// x-amz-bypass-governance-retention header's value (None: no header; an
/// attack sends an explicit `false` too).
pub async fn delete_versions(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    objects: &[(&str, &str)],
    bypass: Option<bool>,
) -> S3Result<DeleteObjectsOutput, DeleteObjectsError> {
    let ids = objects
        .iter()
        .map(|(key, id)| {
            let id = ObjectIdentifier::builder().key(*key).version_id(*id);
            id.build().expect("id")
        })
        .collect();
    let del = Delete::builder().set_objects(Some(ids)).build();
    c.delete_objects()
        .bucket(bucket)
        .delete(del.expect("delete"))
        .set_bypass_governance_retention(bypass)
        .send()
        .await
}

/// A versioning configuration with `status` ("Enabled", "Suspended", or
/// anything else, to be refused).
pub fn versioning(status: &str) -> VersioningConfiguration {
    VersioningConfiguration::builder()
        .status(BucketVersioningStatus::from(status))
        .build()
}

/// PutBucketVersioning.
pub async fn set_versioning(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    config: VersioningConfiguration,
) -> S3Result<PutBucketVersioningOutput, PutBucketVersioningError> {
    c.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(config)
        .send()
        .await
}

/// GetBucketVersioning's status (None: never versioned).
pub async fn versioning_status(
    c: &aws_sdk_s3::Client,
    bucket: &str,
) -> Option<BucketVersioningStatus> {
    c.get_bucket_versioning()
        .bucket(bucket)
        .send()
        .await
        .expect("get versioning")
        .status()
        .cloned()
}

/// How to build an [`S3Cluster`]: how many of each server, and the extra
/// flags of each tier.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub metas: usize,
    pub blobs: usize,
    pub meta_args: Vec<String>,
    pub blob_args: Vec<String>,
    pub gw_args: Vec<String>,
    pub log_level: String,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        Self {
            metas: 1,
            blobs: 3,
            meta_args: Vec::new(),
            blob_args: Vec::new(),
            gw_args: Vec::new(),
            log_level: "info".into(),
        }
    }
}

/// Owned copies of flags.
pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// A running cluster with an S3 endpoint.
pub struct S3Cluster {
    pub c: Cluster,
    pub metas: Vec<Node>,
    pub blobs: Vec<Node>,
    pub gw: Node,
    pub access_key_id: String,
    pub secret: String,
}

impl Cluster {
    /// Admin CLI flags that reach the meta tier.
    pub fn admin_flags(&self) -> Vec<String> {
        let pki = self.pki_dir();
        vec![
            format!("--admin-cert={}", path_str(&pki.join("admin.crt"))),
            format!("--admin-key={}", path_str(&pki.join("admin.key"))),
            format!("--trust={}", path_str(&pki.join("trust.pem"))),
            format!("--meta={}", self.meta_addrs()[0]),
        ]
    }

    /// `hamster key create`: a new S3 access key (id, secret).
    pub fn create_access_key(&self, name: &str) -> (String, String) {
        self.create_access_key_with(name, &[])
    }

    /// `hamster key create` with `extra` flags (`--can-create-bucket
    /// false`): a new S3 access key (id, secret).
    pub fn create_access_key_with(&self, name: &str, extra: &[&str]) -> (String, String) {
        let out = self.root().join(format!("key-{name}.json"));
        let mut args = vec!["key", "create", "--name", name, "--out", path_str(&out)];
        args.extend(extra);
        let flags = self.admin_flags();
        args.extend(flags.iter().map(String::as_str));
        self.hamster(&args);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out).expect("key file")).expect("json");
        let field = |f: &str| json[f].as_str().expect("field").to_string();
        (field("access_key_id"), field("secret_access_key"))
    }

    /// Waits until the meta tier lists `n` blob-servers with fresh heartbeats.
    pub async fn wait_blobs_registered(&self, meta: Node, n: usize) {
        let gw = self.gateway_identity("gw-probe");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut c = pb::registry_client::RegistryClient::new(self.channel(meta, &gw));
            if let Ok(r) = c.list_blobs(pb::ListBlobsRequest {}).await
                && r.into_inner().servers.len() >= n
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{n} blob-servers never registered"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// An aws-sdk-s3 client for gateway `gw` (path-style, no retries, so a
    /// test sees each answer as it is).
    pub fn s3_client(&self, gw: Node, id: &str, secret: &str) -> aws_sdk_s3::Client {
        let addr = self.node(gw).s3_addr.expect("a gateway");
        s3_client_at(&format!("http://{addr}"), id, secret)
    }
}

pub fn s3_client_at(endpoint: &str, id: &str, secret: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(id, secret, None, None, "hamster-tests"))
        .force_path_style(true)
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

impl S3Cluster {
    /// `metas` meta-servers, `blobs` blob-servers and one gateway, all up,
    /// with an access key.
    pub async fn start(metas: usize, blobs: usize) -> Self {
        Self::start_with(metas, blobs, &[]).await
    }

    /// As [`S3Cluster::start`], with extra gateway flags.
    pub async fn start_with(metas: usize, blobs: usize, gw_args: &[&str]) -> Self {
        Self::build(metas, blobs, &[], gw_args).await
    }

    /// As [`S3Cluster::start`], with extra meta-server and gateway flags.
    pub async fn build(metas: usize, blobs: usize, meta_args: &[&str], gw_args: &[&str]) -> Self {
        Self::build_logged(metas, blobs, meta_args, gw_args, "info").await
    }

    /// As [`S3Cluster::build`], with every node at `log_level`.
    pub async fn build_logged(
        metas: usize,
        blobs: usize,
        meta_args: &[&str],
        gw_args: &[&str],
        log_level: &str,
    ) -> Self {
        Self::build_spec(&ClusterSpec {
            metas,
            blobs,
            meta_args: strings(meta_args),
            gw_args: strings(gw_args),
            log_level: log_level.into(),
            ..ClusterSpec::default()
        })
        .await
    }

    /// A cluster as `spec` describes it.
    pub async fn build_spec(spec: &ClusterSpec) -> Self {
        let (metas, blobs) = (spec.metas, spec.blobs);
        let mut c = Cluster::new();
        c.log_level = spec.log_level.clone();
        c.meta_args.extend(spec.meta_args.iter().cloned());
        c.blob_args.extend(spec.blob_args.iter().cloned());
        let metas = if metas == 1 {
            vec![c.start(Kind::Meta, "meta-1")]
        } else {
            c.start_meta_cluster(metas)
        };
        c.wait_leader(&metas).await;
        let blobs: Vec<Node> = (1..=blobs)
            .map(|i| c.start(Kind::Blob, &format!("blob-{i}")))
            .collect();
        for &b in &blobs {
            c.wait_healthy(b).await;
        }
        c.wait_blobs_registered(metas[0], blobs.len()).await;
        let gw = c.prepare(Kind::Gateway, "gw-1");
        let gw_args: Vec<&str> = spec.gw_args.iter().map(String::as_str).collect();
        c.add_args(gw, &gw_args);
        c.spawn_prepared(gw);
        c.wait_healthy(gw).await;
        let (access_key_id, secret) = c.create_access_key("test");
        Self {
            c,
            metas,
            blobs,
            gw,
            access_key_id,
            secret,
        }
    }

    /// The shard files on blob-server `blob`.
    pub fn shard_files(&self, blob: Node) -> Vec<std::path::PathBuf> {
        crate::files_under(&self.c.node(blob).dir.join("data").join("shards"))
    }

    /// Shard files on every blob-server.
    pub fn shard_file_count(&self) -> usize {
        self.blobs.iter().map(|&b| self.shard_files(b).len()).sum()
    }

    /// Waits until `ok` holds for the count of shard files (freeing is
    /// asynchronous), or fails with `what`.
    pub async fn wait_shards(&self, what: &str, ok: impl Fn(usize) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ok(self.shard_file_count()) {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The gateway's S3 endpoint.
    pub fn s3_addr(&self) -> std::net::SocketAddr {
        self.c.node(self.gw).s3_addr.expect("a gateway")
    }

    pub fn client(&self) -> aws_sdk_s3::Client {
        self.c.s3_client(self.gw, &self.access_key_id, &self.secret)
    }

    /// A scenario's first step, "start": the cluster `spec` describes (if
    /// it fails, the scenario stops there). Answers the cluster and a
    /// client of its gateway.
    pub async fn start_step(steps: &mut Steps, spec: &ClusterSpec) -> (Self, aws_sdk_s3::Client) {
        let s = steps
            .require("start", async {
                Ok::<_, String>(Self::build_spec(spec).await)
            })
            .await;
        let c = s.client();
        (s, c)
    }
}
