//! The aws CLI (s3 and s3api) with its default settings against a real
//! cluster, each scenario in named steps over one cluster: multipart cp,
//! sync, presigned URLs, the multipart calls one by one, versioning and
//! object lock. `.ci/run` installs it (PyPI: awscli; Debian: curl); a
//! missing tool fails its test, it is never skipped. The CLI's key has
//! only its own buckets, beside another key's bucket it must neither list
//! nor read.

use std::process::Command;

use hamster_tests::Steps;
use hamster_tests::clients::{Env, OTHER_BUCKET, OTHER_KEY, random_file, sample_tree, tree};

/// RFC 3339, `days` from now: the aws CLI's date arguments.
fn days_from_now(days: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::days(days))
        .replace_nanosecond(0)
        .expect("whole seconds")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

/// The arguments of `aws s3api OP --bucket BUCKET --key KEY EXTRA...`,
/// a call on one object (most of what these tests run).
fn on_object<'a>(op: &'a str, bucket: &'a str, key: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["s3api", op, "--bucket", bucket, "--key", key];
    all.extend(extra);
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aws_cli_s3_and_s3api() {
    let e = Env::start().await;
    let e = &e;
    let mut steps = Steps::new("aws_cli_s3_and_s3api");
    steps
        .require("s3 mb makes a bucket", async {
            e.aws(&["s3", "mb", "s3://awscli"]);
        })
        .await;
    steps
        .run(
            "another key's bucket is neither listed nor readable",
            async {
                e.assert_own_buckets_only(&e.aws(&["s3", "ls"]), "awscli");
                let out = e.aws_fails(&["s3", "ls", &format!("s3://{OTHER_BUCKET}")]);
                assert!(out.contains("AccessDenied"), "{out}");
                let other = format!("s3://{OTHER_BUCKET}/{OTHER_KEY}");
                let out = e.aws_fails(&["s3", "cp", &other, "other.down"]);
                assert!(out.contains("403"), "{out}");
            },
        )
        .await;
    steps
        .run("s3 cp of 20 MiB goes multipart and comes back", async {
            // Above the CLI's 8 MiB threshold, so it goes multipart.
            let big = random_file(&e.path("big.bin"), 20 << 20, 7);
            e.aws(&["s3", "cp", "big.bin", "s3://awscli/big.bin"]);
            let head = e.aws(&on_object("head-object", "awscli", "big.bin", &[]));
            assert!(
                head.contains("-3\\\""),
                "not a 3-part multipart ETag: {head}"
            );
            e.aws(&["s3", "cp", "s3://awscli/big.bin", "big.down"]);
            assert!(std::fs::read(e.path("big.down")).expect("down") == big);
        })
        .await;
    steps
        .run("s3 sync up and down agrees, and again", sync(e))
        .await;
    steps
        .run("a presigned URL works with no credentials", presigned(e))
        .await;
    steps
        .run("s3 rm --recursive empties the prefix", async {
            e.aws(&["s3", "rm", "--recursive", "s3://awscli/tree/"]);
            let ls = e.aws(&["s3", "ls", "--recursive", "s3://awscli/"]);
            assert!(!ls.contains("tree/"), "rm left:\n{ls}");
        })
        .await;
    steps
        .run("s3api multipart calls one by one, and abort", multipart(e))
        .await;
    steps
        .run("s3api list-object-versions lists the objects", async {
            let versions = e.aws(&["s3api", "list-object-versions", "--bucket", "awscli"]);
            for k in ["\"big.bin\"", "\"mp\""] {
                assert!(versions.contains(k), "{k} missing from:\n{versions}");
            }
        })
        .await;
    steps.finish();
}

async fn sync(e: &Env) {
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
}

/// A presigned URL (the longest allowed expiry) works with no credentials.
/// aws CLI v1 presigns with SigV2 unless told `s3.signature_version =
/// s3v4`: SigV2 is off by default (it has no expiry on headers; ADR 0028),
/// so its default URL is refused and the SigV4 one works (README Limits).
async fn presigned(e: &Env) {
    let args = e.aws_args(&[
        "s3",
        "presign",
        "s3://awscli/tree/sub/deeper/c.txt",
        "--expires-in",
        "604800",
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let v2 = e.run("aws", &args, &[]);
    assert!(v2.contains("Signature="), "{v2}");
    let refused = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", v2.trim()])
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&refused.stdout),
        "403",
        "a SigV2 URL"
    );
    let config = e.path("aws-s3v4-config");
    std::fs::write(&config, "[default]\ns3 =\n    signature_version = s3v4\n").expect("aws config");
    let config = config.display().to_string();
    let url = e.run("aws", &args, &[("AWS_CONFIG_FILE", config)]);
    assert!(url.contains("X-Amz-Signature="), "{url}");
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
}

/// `aws s3api create-multipart-upload` of `key`: the upload id.
fn create_upload(e: &Env, key: &str) -> String {
    let query = ["--output", "text", "--query", "UploadId"];
    let out = e.aws(&on_object("create-multipart-upload", "awscli", key, &query));
    out.trim().to_string()
}

async fn multipart(e: &Env) {
    let p1 = random_file(&e.path("p1"), 5 << 20, 11);
    let p2 = random_file(&e.path("p2"), 1000, 12);
    let id = create_upload(e, "mp");
    let mut parts = Vec::new();
    for (n, f) in [(1, "p1"), (2, "p2")] {
        let n_arg = n.to_string();
        let etag = e.aws(&on_object(
            "upload-part",
            "awscli",
            "mp",
            &[
                "--upload-id",
                &id,
                "--part-number",
                &n_arg,
                "--body",
                f,
                "--output",
                "text",
                "--query",
                "ETag",
            ],
        ));
        parts.push(format!(
            "{{\"PartNumber\":{n},\"ETag\":{}}}",
            serde_json::to_string(etag.trim()).expect("json")
        ));
    }
    let listed = e.aws(&on_object(
        "list-parts",
        "awscli",
        "mp",
        &["--upload-id", &id],
    ));
    assert!(listed.contains("\"PartNumber\": 2"), "{listed}");
    let uploads = e.aws(&["s3api", "list-multipart-uploads", "--bucket", "awscli"]);
    assert!(uploads.contains(&id), "{uploads}");
    std::fs::write(
        e.path("parts.json"),
        format!("{{\"Parts\":[{}]}}", parts.join(",")),
    )
    .expect("parts");
    let list = [
        "--upload-id",
        &id,
        "--multipart-upload",
        "file://parts.json",
    ];
    e.aws(&on_object(
        "complete-multipart-upload",
        "awscli",
        "mp",
        &list,
    ));
    e.aws(&on_object("get-object", "awscli", "mp", &["mp.down"]));
    assert!(std::fs::read(e.path("mp.down")).expect("mp") == [p1, p2].concat());
    let aborted = create_upload(e, "gone");
    let upload = ["--upload-id", aborted.as_str()];
    e.aws(&on_object(
        "abort-multipart-upload",
        "awscli",
        "gone",
        &upload,
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aws_cli_versioning_and_object_lock() {
    let e = Env::start().await;
    let e = &e;
    let mut steps = Steps::new("aws_cli_versioning_and_object_lock");
    steps
        .require("versioning is enabled", async {
            e.aws(&["s3", "mb", "s3://cliver"]);
            e.aws(&[
                "s3api",
                "put-bucket-versioning",
                "--bucket",
                "cliver",
                "--versioning-configuration",
                "Status=Enabled",
            ]);
            let v = e.api(&["get-bucket-versioning", "--bucket", "cliver"]);
            assert_eq!(v["Status"], "Enabled", "{v}");
        })
        .await;
    steps
        .run(
            "two versions listed newest first, read by id",
            two_versions(e),
        )
        .await;
    steps
        .run("a marker hides the key until deleted by id", marker(e))
        .await;
    let (gov, held) = steps
        .require(
            "a lock bucket: default GOVERNANCE, and COMPLIANCE held",
            locked(e),
        )
        .await;
    steps
        .run("the legal hold lifts", async {
            let off = ["--legal-hold", "Status=OFF"];
            e.aws(&on_object("put-object-legal-hold", "clilock", "held", &off));
            let lh = e.aws_json(&on_object("get-object-legal-hold", "clilock", "held", &[]));
            assert_eq!(lh["LegalHold"]["Status"], "OFF", "{lh}");
        })
        .await;
    steps
        .run(
            "COMPLIANCE: no delete, no shortening, bypass or not",
            compliance(e, &held),
        )
        .await;
    steps
        .run(
            "GOVERNANCE (the default): the bypass lets it go",
            governance(e, &gov),
        )
        .await;
    steps
        .run("a bucket of locked versions cannot be removed", async {
            let err = e.aws_fails(&["s3", "rb", "s3://clilock"]);
            assert!(err.contains("BucketNotEmpty"), "{err}");
        })
        .await;
    steps.finish();
}

async fn two_versions(e: &Env) {
    std::fs::write(e.path("first"), b"first").expect("write");
    std::fs::write(e.path("second"), b"second").expect("write");
    let first = e.aws_json(&on_object(
        "put-object",
        "cliver",
        "doc",
        &["--body", "first"],
    ));
    let first = first["VersionId"].as_str().expect("VersionId").to_string();
    e.aws(&["s3", "cp", "second", "s3://cliver/doc"]);
    let listed = e.api(&["list-object-versions", "--bucket", "cliver"]);
    let versions = listed["Versions"].as_array().expect("Versions");
    assert_eq!(versions.len(), 2, "{listed}");
    assert_eq!(versions[0]["IsLatest"], true, "{listed}");
    assert_eq!(versions[1]["VersionId"], first.as_str(), "{listed}");
    let by_id = ["--version-id", first.as_str(), "got-first"];
    e.aws(&on_object("get-object", "cliver", "doc", &by_id));
    assert_eq!(std::fs::read(e.path("got-first")).expect("read"), b"first");
}

async fn marker(e: &Env) {
    e.aws(&["s3", "rm", "s3://cliver/doc"]);
    let listed = e.api(&["list-object-versions", "--bucket", "cliver"]);
    let marker = &listed["DeleteMarkers"][0];
    assert_eq!(marker["IsLatest"], true, "{listed}");
    let marker = marker["VersionId"].as_str().expect("marker id").to_string();
    let err = e.aws_fails(&on_object("head-object", "cliver", "doc", &[]));
    assert!(err.contains("404"), "{err}");
    let by_id = ["--version-id", marker.as_str()];
    e.aws(&on_object("delete-object", "cliver", "doc", &by_id));
    e.aws(&["s3", "cp", "s3://cliver/doc", "back"]);
    assert_eq!(std::fs::read(e.path("back")).expect("read"), b"second");
}

/// A lock bucket with default retention; "gov" takes the default, "held"
/// is COMPLIANCE with a legal hold. Answers their version ids.
async fn locked(e: &Env) -> anyhow::Result<(String, String)> {
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
    let cfg = e.api(&["get-object-lock-configuration", "--bucket", "clilock"]);
    let d = &cfg["ObjectLockConfiguration"]["Rule"]["DefaultRetention"];
    assert_eq!(
        (d["Mode"].as_str(), d["Days"].as_i64()),
        (Some("GOVERNANCE"), Some(1)),
        "{cfg}"
    );
    // The bodies come from the versioning steps' files.
    std::fs::write(e.path("first"), b"first").expect("write");
    std::fs::write(e.path("second"), b"second").expect("write");
    let gov = e.aws_json(&on_object(
        "put-object",
        "clilock",
        "gov",
        &["--body", "first"],
    ));
    let gov = gov["VersionId"].as_str().expect("VersionId").to_string();
    let until = days_from_now(3);
    let held = e.aws_json(&on_object(
        "put-object",
        "clilock",
        "held",
        &[
            "--body",
            "second",
            "--object-lock-mode",
            "COMPLIANCE",
            "--object-lock-retain-until-date",
            &until,
            "--object-lock-legal-hold-status",
            "ON",
        ],
    ));
    let held = held["VersionId"].as_str().expect("VersionId").to_string();
    let r = e.aws_json(&on_object("get-object-retention", "clilock", "held", &[]));
    assert_eq!(r["Retention"]["Mode"], "COMPLIANCE", "{r}");
    let h = e.aws_json(&on_object("head-object", "clilock", "held", &[]));
    assert_eq!(
        (
            h["ObjectLockMode"].as_str(),
            h["ObjectLockLegalHoldStatus"].as_str()
        ),
        (Some("COMPLIANCE"), Some("ON")),
        "{h}"
    );
    Ok((gov, held))
}

async fn compliance(e: &Env, held: &str) {
    for bypass in [false, true] {
        let err = e.aws_fails(&delete_version("held", held, bypass));
        assert!(err.contains("AccessDenied"), "{err}");
    }
    let shorter = format!(
        r#"{{"Mode":"COMPLIANCE","RetainUntilDate":"{}"}}"#,
        days_from_now(1)
    );
    let err = e.aws_fails(&on_object(
        "put-object-retention",
        "clilock",
        "held",
        &["--retention", &shorter, "--bypass-governance-retention"],
    ));
    assert!(err.contains("AccessDenied"), "{err}");
}

async fn governance(e: &Env, gov: &str) {
    let err = e.aws_fails(&delete_version("gov", gov, false));
    assert!(err.contains("AccessDenied"), "{err}");
    e.aws(&delete_version("gov", gov, true));
}

/// The arguments of a delete of version `id` of `key` in the lock bucket,
/// with the governance bypass or not.
fn delete_version<'a>(key: &'a str, id: &'a str, bypass: bool) -> Vec<&'a str> {
    let mut args = on_object("delete-object", "clilock", key, &["--version-id", id]);
    args.extend(bypass.then_some("--bypass-governance-retention"));
    args
}
