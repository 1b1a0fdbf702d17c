//! Real S3 clients with their default settings against a real cluster:
//! the aws CLI (s3 and s3api), rclone, restic and s3cmd. `.ci/run`
//! installs them (PyPI: awscli, s3cmd; Debian: rclone, restic, curl); a
//! missing tool fails its test, it is never skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use hamster_tests::files_under;
use hamster_tests::s3::S3Cluster;

/// A test's cluster and where its files go.
struct Env {
    s: S3Cluster,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Self {
        Self {
            s: S3Cluster::start(1, 3).await,
            dir: tempfile::tempdir().expect("tmp"),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.s.c.nodes[self.s.gw].s3_addr.expect("s3"))
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Runs a client with the S3 credentials in its environment; panics
    /// with its output (and the cluster's log tails) if it fails.
    fn run(&self, tool: &str, args: &[&str], envs: &[(&str, String)]) -> String {
        let (ok, stdout, text) = self.run_status(tool, args, envs);
        assert!(ok, "{tool} {args:?} failed:\n{text}");
        stdout
    }

    /// Runs a client: whether it succeeded, its stdout, all its output.
    fn run_status(
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

    fn aws_args(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec!["--endpoint-url".to_string(), self.endpoint()];
        all.extend(args.iter().map(|a| a.to_string()));
        all
    }

    fn aws(&self, args: &[&str]) -> String {
        let all = self.aws_args(args);
        self.run(
            "aws",
            &all.iter().map(String::as_str).collect::<Vec<_>>(),
            &[],
        )
    }

    /// The aws CLI, expected to fail: its output, which names the error.
    fn aws_fails(&self, args: &[&str]) -> String {
        let all = self.aws_args(args);
        let (ok, _, text) = self.run_status(
            "aws",
            &all.iter().map(String::as_str).collect::<Vec<_>>(),
            &[],
        );
        assert!(!ok, "aws {args:?} should have failed:\n{text}");
        text
    }

    /// An s3api call's JSON answer.
    fn aws_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.aws(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("aws {args:?}: {e}: {out}"))
    }
}

fn random_file(path: &Path, len: usize, seed: u64) -> Vec<u8> {
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
fn tree(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
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

fn sample_tree(root: &Path) {
    random_file(&root.join("a.bin"), 300_000, 1);
    random_file(&root.join("sub/b.bin"), 1_500_000, 2);
    random_file(&root.join("sub/deeper/c.txt"), 10, 3);
    random_file(&root.join("empty"), 0, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aws_cli_s3_and_s3api() {
    let e = Env::start().await;
    e.aws(&["s3", "mb", "s3://awscli"]);
    // 20 MiB: above the CLI's 8 MiB threshold, so it goes multipart.
    let big = random_file(&e.path("big.bin"), 20 << 20, 7);
    e.aws(&["s3", "cp", "big.bin", "s3://awscli/big.bin"]);
    let head = e.aws(&[
        "s3api",
        "head-object",
        "--bucket",
        "awscli",
        "--key",
        "big.bin",
    ]);
    assert!(
        head.contains("-3\\\""),
        "not a 3-part multipart ETag: {head}"
    );
    e.aws(&["s3", "cp", "s3://awscli/big.bin", "big.down"]);
    assert!(std::fs::read(e.path("big.down")).expect("down") == big);

    sample_tree(&e.path("src"));
    e.aws(&["s3", "sync", "src", "s3://awscli/tree/"]);
    let ls = e.aws(&["s3", "ls", "--recursive", "s3://awscli/tree/"]);
    for k in [
        "tree/a.bin",
        "tree/sub/b.bin",
        "tree/sub/deeper/c.txt",
        "tree/empty",
    ] {
        assert!(ls.contains(k), "{k} missing from:\n{ls}");
    }
    e.aws(&["s3", "sync", "s3://awscli/tree/", "back"]);
    assert_eq!(tree(&e.path("back")), tree(&e.path("src")));
    // A second sync uploads nothing new and still agrees.
    e.aws(&["s3", "sync", "src", "s3://awscli/tree/"]);

    // A presigned URL (the longest allowed expiry) works with no credentials.
    let url = e.aws(&[
        "s3",
        "presign",
        "s3://awscli/tree/sub/deeper/c.txt",
        "--expires-in",
        "604800",
    ]);
    let got = Command::new("curl")
        .args(["-sSf", url.trim()])
        .output()
        .expect("curl");
    assert!(
        got.status.success(),
        "presigned GET: {}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert_eq!(
        got.stdout,
        std::fs::read(e.path("src/sub/deeper/c.txt")).expect("c")
    );

    e.aws(&["s3", "rm", "--recursive", "s3://awscli/tree/"]);
    let ls = e.aws(&["s3", "ls", "--recursive", "s3://awscli/"]);
    assert!(!ls.contains("tree/"), "rm left:\n{ls}");

    // s3api: the multipart calls one by one, then ListObjectVersions.
    let p1 = random_file(&e.path("p1"), 5 << 20, 11);
    let p2 = random_file(&e.path("p2"), 1000, 12);
    let out = e.aws(&[
        "s3api",
        "create-multipart-upload",
        "--bucket",
        "awscli",
        "--key",
        "mp",
        "--output",
        "text",
        "--query",
        "UploadId",
    ]);
    let id = out.trim().to_string();
    let mut parts = Vec::new();
    for (n, f) in [(1, "p1"), (2, "p2")] {
        let etag = e.aws(&[
            "s3api",
            "upload-part",
            "--bucket",
            "awscli",
            "--key",
            "mp",
            "--upload-id",
            &id,
            "--part-number",
            &n.to_string(),
            "--body",
            f,
            "--output",
            "text",
            "--query",
            "ETag",
        ]);
        parts.push(format!(
            "{{\"PartNumber\":{n},\"ETag\":{}}}",
            serde_json::to_string(etag.trim()).expect("json")
        ));
    }
    let listed = e.aws(&[
        "s3api",
        "list-parts",
        "--bucket",
        "awscli",
        "--key",
        "mp",
        "--upload-id",
        &id,
    ]);
    assert!(listed.contains("\"PartNumber\": 2"), "{listed}");
    let uploads = e.aws(&["s3api", "list-multipart-uploads", "--bucket", "awscli"]);
    assert!(uploads.contains(&id), "{uploads}");
    std::fs::write(
        e.path("parts.json"),
        format!("{{\"Parts\":[{}]}}", parts.join(",")),
    )
    .expect("parts");
    e.aws(&[
        "s3api",
        "complete-multipart-upload",
        "--bucket",
        "awscli",
        "--key",
        "mp",
        "--upload-id",
        &id,
        "--multipart-upload",
        "file://parts.json",
    ]);
    e.aws(&[
        "s3api",
        "get-object",
        "--bucket",
        "awscli",
        "--key",
        "mp",
        "mp.down",
    ]);
    assert!(std::fs::read(e.path("mp.down")).expect("mp") == [p1, p2].concat());
    let aborted = e.aws(&[
        "s3api",
        "create-multipart-upload",
        "--bucket",
        "awscli",
        "--key",
        "gone",
        "--output",
        "text",
        "--query",
        "UploadId",
    ]);
    e.aws(&[
        "s3api",
        "abort-multipart-upload",
        "--bucket",
        "awscli",
        "--key",
        "gone",
        "--upload-id",
        aborted.trim(),
    ]);
    let versions = e.aws(&["s3api", "list-object-versions", "--bucket", "awscli"]);
    for k in ["\"big.bin\"", "\"mp\""] {
        assert!(versions.contains(k), "{k} missing from:\n{versions}");
    }
}

/// RFC 3339, `days` from now: the aws CLI's date arguments.
fn days_from_now(days: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::days(days))
        .replace_nanosecond(0)
        .expect("whole seconds")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aws_cli_versioning_and_object_lock() {
    let e = Env::start().await;
    let api = |args: &[&str]| {
        let mut all = vec!["s3api"];
        all.extend(args);
        e.aws_json(&all)
    };
    // Versioning: two versions, a marker, reads by id, the marker removed.
    e.aws(&["s3", "mb", "s3://cliver"]);
    e.aws(&[
        "s3api",
        "put-bucket-versioning",
        "--bucket",
        "cliver",
        "--versioning-configuration",
        "Status=Enabled",
    ]);
    let v = api(&["get-bucket-versioning", "--bucket", "cliver"]);
    assert_eq!(v["Status"], "Enabled", "{v}");
    std::fs::write(e.path("first"), b"first").expect("write");
    std::fs::write(e.path("second"), b"second").expect("write");
    let first = api(&[
        "put-object",
        "--bucket",
        "cliver",
        "--key",
        "doc",
        "--body",
        "first",
    ]);
    let first = first["VersionId"].as_str().expect("VersionId").to_string();
    e.aws(&["s3", "cp", "second", "s3://cliver/doc"]);
    let listed = api(&["list-object-versions", "--bucket", "cliver"]);
    let versions = listed["Versions"].as_array().expect("Versions");
    assert_eq!(versions.len(), 2, "{listed}");
    assert_eq!(versions[0]["IsLatest"], true, "{listed}");
    assert_eq!(versions[1]["VersionId"], first.as_str(), "{listed}");
    e.aws(&[
        "s3api",
        "get-object",
        "--bucket",
        "cliver",
        "--key",
        "doc",
        "--version-id",
        &first,
        "got-first",
    ]);
    assert_eq!(std::fs::read(e.path("got-first")).expect("read"), b"first");
    e.aws(&["s3", "rm", "s3://cliver/doc"]);
    let listed = api(&["list-object-versions", "--bucket", "cliver"]);
    let marker = &listed["DeleteMarkers"][0];
    assert_eq!(marker["IsLatest"], true, "{listed}");
    let marker = marker["VersionId"].as_str().expect("marker id").to_string();
    let err = e.aws_fails(&["s3api", "head-object", "--bucket", "cliver", "--key", "doc"]);
    assert!(err.contains("404"), "{err}");
    e.aws(&[
        "s3api",
        "delete-object",
        "--bucket",
        "cliver",
        "--key",
        "doc",
        "--version-id",
        &marker,
    ]);
    e.aws(&["s3", "cp", "s3://cliver/doc", "back"]);
    assert_eq!(std::fs::read(e.path("back")).expect("read"), b"second");

    // Object lock: default retention, COMPLIANCE with a legal hold.
    e.aws(&[
        "s3api",
        "create-bucket",
        "--bucket",
        "clilock",
        "--object-lock-enabled-for-bucket",
    ]);
    e.aws(&[
        "s3api",
        "put-object-lock-configuration",
        "--bucket",
        "clilock",
        "--object-lock-configuration",
        r#"{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"GOVERNANCE","Days":1}}}"#,
    ]);
    let cfg = api(&["get-object-lock-configuration", "--bucket", "clilock"]);
    let d = &cfg["ObjectLockConfiguration"]["Rule"]["DefaultRetention"];
    assert_eq!(
        (d["Mode"].as_str(), d["Days"].as_i64()),
        (Some("GOVERNANCE"), Some(1)),
        "{cfg}"
    );
    let gov = api(&[
        "put-object",
        "--bucket",
        "clilock",
        "--key",
        "gov",
        "--body",
        "first",
    ]);
    let gov = gov["VersionId"].as_str().expect("VersionId").to_string();
    let until = days_from_now(3);
    let held = api(&[
        "put-object",
        "--bucket",
        "clilock",
        "--key",
        "held",
        "--body",
        "second",
        "--object-lock-mode",
        "COMPLIANCE",
        "--object-lock-retain-until-date",
        &until,
        "--object-lock-legal-hold-status",
        "ON",
    ]);
    let held = held["VersionId"].as_str().expect("VersionId").to_string();
    let r = api(&[
        "get-object-retention",
        "--bucket",
        "clilock",
        "--key",
        "held",
    ]);
    assert_eq!(r["Retention"]["Mode"], "COMPLIANCE", "{r}");
    let h = api(&["head-object", "--bucket", "clilock", "--key", "held"]);
    assert_eq!(
        (
            h["ObjectLockMode"].as_str(),
            h["ObjectLockLegalHoldStatus"].as_str()
        ),
        (Some("COMPLIANCE"), Some("ON")),
        "{h}"
    );
    e.aws(&[
        "s3api",
        "put-object-legal-hold",
        "--bucket",
        "clilock",
        "--key",
        "held",
        "--legal-hold",
        "Status=OFF",
    ]);
    let lh = api(&[
        "get-object-legal-hold",
        "--bucket",
        "clilock",
        "--key",
        "held",
    ]);
    assert_eq!(lh["LegalHold"]["Status"], "OFF", "{lh}");
    // COMPLIANCE: no delete, no shortening, bypass or not.
    for extra in [None, Some("--bypass-governance-retention")] {
        let mut args = vec![
            "s3api",
            "delete-object",
            "--bucket",
            "clilock",
            "--key",
            "held",
            "--version-id",
            &held,
        ];
        args.extend(extra);
        let err = e.aws_fails(&args);
        assert!(err.contains("AccessDenied"), "{err}");
    }
    let shorter = format!(
        r#"{{"Mode":"COMPLIANCE","RetainUntilDate":"{}"}}"#,
        days_from_now(1)
    );
    let err = e.aws_fails(&[
        "s3api",
        "put-object-retention",
        "--bucket",
        "clilock",
        "--key",
        "held",
        "--retention",
        &shorter,
        "--bypass-governance-retention",
    ]);
    assert!(err.contains("AccessDenied"), "{err}");
    // GOVERNANCE (the default): the bypass lets it go.
    let err = e.aws_fails(&[
        "s3api",
        "delete-object",
        "--bucket",
        "clilock",
        "--key",
        "gov",
        "--version-id",
        &gov,
    ]);
    assert!(err.contains("AccessDenied"), "{err}");
    e.aws(&[
        "s3api",
        "delete-object",
        "--bucket",
        "clilock",
        "--key",
        "gov",
        "--version-id",
        &gov,
        "--bypass-governance-retention",
    ]);
    let err = e.aws_fails(&["s3", "rb", "s3://clilock"]);
    assert!(err.contains("BucketNotEmpty"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rclone_copy_sync_check() {
    let e = Env::start().await;
    let envs = vec![
        ("RCLONE_CONFIG_HAM_TYPE", "s3".to_string()),
        ("RCLONE_CONFIG_HAM_PROVIDER", "Other".to_string()),
        ("RCLONE_CONFIG_HAM_ACCESS_KEY_ID", e.s.access_key_id.clone()),
        ("RCLONE_CONFIG_HAM_SECRET_ACCESS_KEY", e.s.secret.clone()),
        ("RCLONE_CONFIG_HAM_ENDPOINT", e.endpoint()),
        ("RCLONE_CONFIG", e.path("rclone.conf").display().to_string()),
    ];
    sample_tree(&e.path("src"));
    e.run("rclone", &["copy", "src", "ham:rclone/data"], &envs);
    e.run("rclone", &["check", "src", "ham:rclone/data"], &envs);
    // Change the source: one file gone, one new, one rewritten; sync follows.
    std::fs::remove_file(e.path("src/a.bin")).expect("rm");
    random_file(&e.path("src/new/d.bin"), 70_000, 9);
    random_file(&e.path("src/sub/b.bin"), 1_200_000, 10);
    e.run("rclone", &["sync", "src", "ham:rclone/data"], &envs);
    e.run("rclone", &["check", "src", "ham:rclone/data"], &envs);
    let ls = e.run("rclone", &["lsf", "-R", "ham:rclone/data"], &envs);
    assert!(!ls.contains("a.bin"), "sync kept a deleted file:\n{ls}");
    e.run("rclone", &["copy", "ham:rclone/data", "back"], &envs);
    assert_eq!(tree(&e.path("back")), tree(&e.path("src")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restic_backup_check_restore() {
    let e = Env::start().await;
    let envs = vec![
        (
            "RESTIC_REPOSITORY",
            format!("s3:{}/restic-repo", e.endpoint()),
        ),
        (
            "RESTIC_PASSWORD",
            "correct horse battery staple".to_string(),
        ),
        (
            "RESTIC_CACHE_DIR",
            e.path("restic-cache").display().to_string(),
        ),
    ];
    sample_tree(&e.path("src"));
    random_file(&e.path("src/big.bin"), 9 << 20, 21);
    e.run("restic", &["init"], &envs);
    e.run("restic", &["backup", "src"], &envs);
    e.run("restic", &["check", "--read-data"], &envs);
    e.run(
        "restic",
        &["restore", "latest", "--target", "restored"],
        &envs,
    );
    assert_eq!(tree(&e.path("restored/src")), tree(&e.path("src")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3cmd_put_get_ls_del_and_multipart() {
    let e = Env::start().await;
    let host = e.s.c.nodes[e.s.gw].s3_addr.expect("s3").to_string();
    let cfg = e.path("s3cfg");
    std::fs::write(
        &cfg,
        format!(
            // s3cmd's own default region, "US", is not a region name; s3s
            // refuses it in the signature scope (ADR 0013), so name one.
            "[default]\naccess_key = {}\nsecret_key = {}\nhost_base = {host}\nhost_bucket = {host}\nuse_https = False\nbucket_location = us-east-1\n",
            e.s.access_key_id, e.s.secret
        ),
    )
    .expect("s3cfg");
    let s3cmd = |args: &[&str]| {
        let mut all = vec!["-c", cfg.to_str().expect("utf8")];
        all.extend_from_slice(args);
        e.run("s3cmd", &all, &[])
    };
    s3cmd(&["mb", "s3://s3cmd"]);
    let small = random_file(&e.path("small.bin"), 100_000, 31);
    // 20 MiB: above s3cmd's 15 MiB multipart chunk.
    let big = random_file(&e.path("big.bin"), 20 << 20, 32);
    s3cmd(&["put", "small.bin", "s3://s3cmd/small.bin"]);
    s3cmd(&["put", "big.bin", "s3://s3cmd/big.bin"]);
    let ls = s3cmd(&["ls", "s3://s3cmd"]);
    assert!(
        ls.contains("s3://s3cmd/small.bin") && ls.contains("s3://s3cmd/big.bin"),
        "{ls}"
    );
    s3cmd(&["get", "s3://s3cmd/small.bin", "small.down"]);
    s3cmd(&["get", "s3://s3cmd/big.bin", "big.down"]);
    assert!(std::fs::read(e.path("small.down")).expect("small") == small);
    assert!(std::fs::read(e.path("big.down")).expect("big") == big);
    s3cmd(&["del", "s3://s3cmd/small.bin"]);
    let ls = s3cmd(&["ls", "s3://s3cmd"]);
    assert!(!ls.contains("small.bin"), "{ls}");
}
