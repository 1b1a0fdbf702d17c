//! `hamster backup` as an operator runs it: the real binary against a
//! scripted meta-server over real mTLS that streams a file made to order.
//! What is pinned: a whole, checked file appears under FILE only at the
//! end (0600); a stream that breaks or does not verify leaves no FILE and
//! no partial file; an existing FILE is not replaced without --force.
//! Backups of a real cluster are tested in tests/.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use hamster_proto::pb::admin_server::Admin;
use hamster_proto::pb::{BackupChunk, BackupRequest};
use sha2::{Digest, Sha256};
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

/// Streams `bytes` in 3 chunks, then `error` if set.
#[derive(Clone)]
struct Fake {
    bytes: Vec<u8>,
    error: Option<Status>,
}

#[tonic::async_trait]
impl Admin for Fake {
    async fn backup(
        &self,
        _: Request<BackupRequest>,
    ) -> Result<Response<BoxStream<BackupChunk>>, Status> {
        let third = self.bytes.len().div_ceil(3).max(1);
        let mut items: Vec<Result<BackupChunk, Status>> = self
            .bytes
            .chunks(third)
            .map(|c| Ok(BackupChunk { data: c.to_vec() }))
            .collect();
        items.extend(self.error.clone().map(Err));
        Ok(Response::new(Box::pin(tonic::codegen::tokio_stream::iter(
            items,
        ))))
    }
}

/// The scripted meta-server; the CLI writes its backups under `out/`.
struct Meta(common::ScriptedMeta);

impl Meta {
    fn start(fake: Fake) -> Self {
        Self(common::ScriptedMeta::start(fake))
    }

    fn dir(&self) -> &Path {
        self.0.dir.path()
    }

    fn out(&self) -> std::path::PathBuf {
        self.dir().join("out").join("meta.hbk")
    }

    /// Runs `hamster backup --out OUT ARGS` as the admin.
    fn backup(&self, args: &[&str]) -> Output {
        std::fs::create_dir_all(self.dir().join("out")).expect("mkdir");
        self.0
            .hamster()
            .arg("backup")
            .arg(format!("--out={}", self.out().display()))
            .args(args)
            .output()
            .expect("run hamster")
    }

    /// The files in the output dir.
    fn left(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir().join("out"))
            .expect("read dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn sample() -> Vec<u8> {
    let body = b"sqlite pages ".repeat(1000);
    common::file(
        &common::header(&body, &"11".repeat(32), &"22".repeat(32)),
        &body,
    )
}

#[test]
fn a_whole_backup_is_renamed_into_place_private_and_described() {
    let bytes = sample();
    let meta = Meta::start(Fake {
        bytes: bytes.clone(),
        error: None,
    });
    let out = meta.backup(&["--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(meta.out()).expect("backup"), bytes);
    let mode = std::fs::metadata(meta.out())
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(meta.left(), ["meta.hbk"]);

    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(v["bytes"], bytes.len());
    assert_eq!(v["raft_index"], 42);
    assert_eq!(v["raft_term"], 3);
    assert_eq!(v["versions"], 7);
    assert_eq!(v["key_fingerprints"][0], "11".repeat(32));
    assert_eq!(v["write_key"], "11".repeat(32));
    assert_eq!(v["issuing_ca"], "22".repeat(32));
    assert_eq!(v["sha256"], hex::encode(Sha256::digest(&bytes)));

    // FILE exists now: not replaced without --force, replaced with it.
    let again = meta.backup(&[]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    let forced = meta.backup(&["--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    let text = String::from_utf8_lossy(&forced.stdout);
    assert!(text.contains("raft index 42 (term 3)"), "{text}");
    assert_eq!(meta.left(), ["meta.hbk"]);
}

#[test]
fn a_backup_that_does_not_verify_leaves_no_file() {
    let mut bytes = sample();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    let meta = Meta::start(Fake { bytes, error: None });
    let out = meta.backup(&[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("checksum"), "{}", stderr(&out));
    assert!(meta.left().is_empty(), "{:?}", meta.left());
}

#[test]
fn a_stream_that_breaks_leaves_no_file_and_an_old_one_untouched() {
    let bytes = sample();
    let meta = Meta::start(Fake {
        bytes: bytes[..bytes.len() / 2].to_vec(),
        error: Some(Status::unavailable("leader lost")),
    });
    std::fs::create_dir_all(meta.dir().join("out")).expect("mkdir");
    std::fs::write(meta.out(), b"yesterday's backup").expect("write");
    let out = meta.backup(&["--force"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("leader lost"), "{}", stderr(&out));
    assert_eq!(meta.left(), ["meta.hbk"]);
    assert_eq!(
        std::fs::read(meta.out()).expect("old"),
        b"yesterday's backup"
    );
}
