//! The environment of the tests with real S3 clients (the aws CLI,
//! rclone, restic, s3cmd): a cluster, a directory for the clients' files,
//! the clients run with the cluster's credentials, and sample files.
//!
//! The clients' key has only its own buckets (ADR 0027): another key's
//! bucket, [`OTHER_BUCKET`], exists in the cluster, and a client must
//! neither list nor read it.

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_s3::primitives::ByteStream;

use crate::files_under;
use crate::s3::S3Cluster;

/// Another key's bucket, holding [`OTHER_KEY`]: there in every [`Env`],
/// invisible to the clients.
pub const OTHER_BUCKET: &str = "not-yours";
pub const OTHER_KEY: &str = "private.txt";

/// A test's cluster and where its files go.
pub struct Env {
    pub s: S3Cluster,
    pub dir: tempfile::TempDir,
}

impl Env {
    /// A cluster whose other key ("other") owns [`OTHER_BUCKET`].
    pub async fn start() -> Self {
        let s = S3Cluster::start(1, 3).await;
        let other = s.tenant("other", &[]);
        other
            .s3
            .create_bucket()
            .bucket(OTHER_BUCKET)
            .send()
            .await
            .expect("the other key's bucket");
        other
            .s3
            .put_object()
            .bucket(OTHER_BUCKET)
            .key(OTHER_KEY)
            .body(ByteStream::from_static(b"the other key's"))
            .send()
            .await
            .expect("the other key's object");
        Self {
            s,
            dir: tempfile::tempdir().expect("tmp"),
        }
    }

    /// Panics if a client's bucket listing shows [`OTHER_BUCKET`], or
    /// does not show `own`.
    pub fn assert_own_buckets_only(&self, listing: &str, own: &str) {
        assert!(
            listing.contains(own) && !listing.contains(OTHER_BUCKET),
            "a listing of {own} only, not {OTHER_BUCKET}:\n{listing}"
        );
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.s.s3_addr())
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Runs a client with the S3 credentials in its environment; panics
    /// with its output (and the cluster's log tails) if it fails.
    pub fn run(&self, tool: &str, args: &[&str], envs: &[(&str, String)]) -> String {
        let (ok, stdout, text) = self.run_status(tool, args, envs);
        assert!(ok, "{tool} {args:?} failed:\n{text}");
        stdout
    }

    /// Runs a client: whether it succeeded, its stdout, all its output.
    pub fn run_status(
        &self,
        tool: &str,
        args: &[&str],
        envs: &[(&str, String)],
    ) -> (bool, String, String) {
        let out = Command::new(tool)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &self.s.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.s.secret)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            // This machine points AWS_CA_BUNDLE at the system bundle; rclone's
            // SDK cannot use it with its own transport. The endpoint is http.
            .env_remove("AWS_CA_BUNDLE")
            .env("AWS_CONFIG_FILE", self.path("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.path("no-aws-credentials"),
            )
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool} (does .ci/run install it?): {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            text,
        )
    }

    pub fn aws_args(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec!["--endpoint-url".to_string(), self.endpoint()];
        all.extend(args.iter().map(|a| a.to_string()));
        all
    }

    pub fn aws(&self, args: &[&str]) -> String {
        let all = self.aws_args(args);
        self.run(
            "aws",
            &all.iter().map(String::as_str).collect::<Vec<_>>(),
            &[],
        )
    }

    /// The aws CLI, expected to fail: its output, which names the error.
    pub fn aws_fails(&self, args: &[&str]) -> String {
        let all = self.aws_args(args);
        let (ok, _, text) = self.run_status(
            "aws",
            &all.iter().map(String::as_str).collect::<Vec<_>>(),
            &[],
        );
        assert!(!ok, "aws {args:?} should have failed:\n{text}");
        text
    }

    /// `aws s3api ARGS`'s JSON answer.
    pub fn api(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["s3api"];
        all.extend(args);
        self.aws_json(&all)
    }

    /// An s3api call's JSON answer.
    pub fn aws_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.aws(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("aws {args:?}: {e}: {out}"))
    }
}

pub fn random_file(path: &Path, len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect();
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).expect("dir");
    }
    std::fs::write(path, &data).expect("write");
    data
}

/// Every file under `root`, relative path → bytes.
pub fn tree(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    files_under(root)
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(root)
                .expect("rel")
                .to_string_lossy()
                .into_owned();
            (rel, std::fs::read(&p).expect("read"))
        })
        .collect()
}

pub fn sample_tree(root: &Path) {
    random_file(&root.join("a.bin"), 300_000, 1);
    random_file(&root.join("sub/b.bin"), 1_500_000, 2);
    random_file(&root.join("sub/deeper/c.txt"), 10, 3);
    random_file(&root.join("empty"), 0, 4);
}
