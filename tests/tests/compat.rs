//! Real S3 clients with their default settings against a real cluster:
//! rclone, restic and s3cmd (the aws CLI is in compat_aws.rs). `.ci/run`
//! installs them (PyPI: awscli, s3cmd; Debian: rclone, restic, curl); a
//! missing tool fails its test, it is never skipped. Each runs with a key
//! that has only its own buckets, beside another key's bucket it must
//! neither list nor read.

use hamster_tests::clients::{Env, OTHER_BUCKET, OTHER_KEY, random_file, sample_tree, tree};

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
    // The other key's bucket: not listed, not readable.
    let lsd = e.run("rclone", &["lsd", "ham:"], &envs);
    e.assert_own_buckets_only(&lsd, "rclone");
    let other = format!("ham:{OTHER_BUCKET}/{OTHER_KEY}");
    let (ok, _, text) = e.run_status("rclone", &["cat", &other], &envs);
    assert!(!ok && text.contains("AccessDenied"), "{text}");
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
    // restic lists no buckets; its key sees its repository's only.
    let listed = e.s.client().list_buckets().send().await.expect("list");
    let names: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["restic-repo"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3cmd_put_get_ls_del_and_multipart() {
    let e = Env::start().await;
    let host = e.s.s3_addr().to_string();
    let cfg = e.path("s3cfg");
    std::fs::write(
        &cfg,
        format!(
            // s3cmd's own default region, "US", on purpose: the gateway
            // answers AuthorizationHeaderMalformed naming us-east-1, as
            // AWS does, and s3cmd signs again with it (issue 21 point 11).
            "[default]\naccess_key = {}\nsecret_key = {}\nhost_base = {host}\nhost_bucket = {host}\nuse_https = False\n",
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
    // The other key's bucket: not listed, not readable.
    e.assert_own_buckets_only(&s3cmd(&["ls"]), "s3://s3cmd");
    let other = format!("s3://{OTHER_BUCKET}/{OTHER_KEY}");
    let (ok, _, text) = e.run_status(
        "s3cmd",
        &[
            "-c",
            cfg.to_str().expect("utf8"),
            "get",
            &other,
            "other.down",
        ],
        &[],
    );
    assert!(!ok && text.contains("403"), "{text}");
}
