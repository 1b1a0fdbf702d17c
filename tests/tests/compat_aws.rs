//! The aws CLI (s3 and s3api) with its default settings against a real
//! cluster, each scenario in named steps over one cluster: multipart cp,
//! sync, presigned URLs, the multipart calls one by one, versioning and
//! object lock. `.ci/run` installs it (PyPI: awscli; Debian: curl); a
//! missing tool fails its test, it is never skipped.

use std::process::Command;

use hamster_tests::Steps;
use hamster_tests::clients::{Env, random_file, sample_tree, tree};

/// RFC 3339, `days` from now: the aws CLI's date arguments.
fn days_from_now(days: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::days(days))
        .replace_nanosecond(0)
        .expect("whole seconds")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
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
        .run("s3 cp of 20 MiB goes multipart and comes back", async {
            // Above the CLI's 8 MiB threshold, so it goes multipart.
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
async fn presigned(e: &Env) {
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
}

/// `aws s3api create-multipart-upload` of `key`: the upload id.
fn create_upload(e: &Env, key: &str) -> String {
    let out = e.aws(&[
        "s3api",
        "create-multipart-upload",
        "--bucket",
        "awscli",
        "--key",
        key,
        "--output",
        "text",
        "--query",
        "UploadId",
    ]);
    out.trim().to_string()
}

async fn multipart(e: &Env) {
    let p1 = random_file(&e.path("p1"), 5 << 20, 11);
    let p2 = random_file(&e.path("p2"), 1000, 12);
    let id = create_upload(e, "mp");
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
    let aborted = create_upload(e, "gone");
    e.aws(&[
        "s3api",
        "abort-multipart-upload",
        "--bucket",
        "awscli",
        "--key",
        "gone",
        "--upload-id",
        &aborted,
    ]);
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
            let lh = e.api(&[
                "get-object-legal-hold",
                "--bucket",
                "clilock",
                "--key",
                "held",
            ]);
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
    let first = e.api(&[
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
    let listed = e.api(&["list-object-versions", "--bucket", "cliver"]);
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
}

async fn marker(e: &Env) {
    e.aws(&["s3", "rm", "s3://cliver/doc"]);
    let listed = e.api(&["list-object-versions", "--bucket", "cliver"]);
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
    let gov = e.api(&[
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
    let held = e.api(&[
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
    let r = e.api(&[
        "get-object-retention",
        "--bucket",
        "clilock",
        "--key",
        "held",
    ]);
    assert_eq!(r["Retention"]["Mode"], "COMPLIANCE", "{r}");
    let h = e.api(&["head-object", "--bucket", "clilock", "--key", "held"]);
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
    for extra in [None, Some("--bypass-governance-retention")] {
        let mut args = vec![
            "s3api",
            "delete-object",
            "--bucket",
            "clilock",
            "--key",
            "held",
            "--version-id",
            held,
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
}

async fn governance(e: &Env, gov: &str) {
    let err = e.aws_fails(&[
        "s3api",
        "delete-object",
        "--bucket",
        "clilock",
        "--key",
        "gov",
        "--version-id",
        gov,
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
        gov,
        "--bypass-governance-retention",
    ]);
}
