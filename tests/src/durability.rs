//! Helpers for the durability tests (issue 16): where a blob-server keeps
//! its shard files and what it moved aside, damage done behind its back
//! (a deleted file, a flipped payload byte), the admin CLI's `repair` and
//! `status --json`, the meta tier's durability view, the shard maps of
//! versions and parts, and what a process shows in /proc.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hamster_proto::pb::{self, admin_client::AdminClient};
use serde_json::Value;

use crate::s3::S3Cluster;
use crate::{Cluster, Node, files_under};

/// Bytes of a shard file's header: a flip at or past this offset lands in
/// a block (payload or its CRC), so only the block checksum can catch it.
pub const SHARD_HEADER: usize = 64;

/// One run of the admin CLI.
#[derive(Debug)]
pub struct CliRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// The JSON object the command printed (the last stdout line that
    /// parses as one; a progress line before it is not JSON).
    pub fn json(&self) -> Result<Value, String> {
        if let Ok(v) = serde_json::from_str::<Value>(self.stdout.trim())
            && v.is_object()
        {
            return Ok(v);
        }
        self.stdout
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
            .find(Value::is_object)
            .ok_or_else(|| format!("no JSON object in the output of {self}"))
    }
}

impl std::fmt::Display for CliRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The wall clock in ms (the blob-servers' clock: same machine).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A top-level integer of a JSON object (None if absent or not one).
pub fn int(v: &Value, field: &str) -> Option<i64> {
    v.get(field).and_then(Value::as_i64)
}

/// The durability fields of a `status --json`, for failure messages (the
/// whole status is pages long).
pub fn durability_summary(st: &Value) -> String {
    let servers: Vec<String> = st["blob_servers"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|b| format!("{} {} scrub@{}", b["id"], b["state"], b["last_scrub_ms"]))
        .collect();
    format!(
        "under_replicated {}, unrecoverable {}, repair_queue {}, shards_repaired {}, \
         last_scrub_ms {}; blob-servers: {}",
        st["under_replicated"],
        st["unrecoverable"],
        st["repair_queue"],
        st["shards_repaired"],
        st["last_scrub_ms"],
        servers.join(", ")
    )
}

impl Cluster {
    /// Runs `hamster ARGS <admin flags>`, logged to logs/hamster.log like
    /// every CLI run; never panics on the command's own failure.
    pub fn admin_cli(&self, args: &[&str]) -> CliRun {
        self.admin_run(args)()
    }

    /// As [`Cluster::admin_cli`], on the blocking pool: for a command that
    /// follows a long operation (a drain) while the test does other things.
    pub fn admin_cli_bg(&self, args: &[&str]) -> tokio::task::JoinHandle<CliRun> {
        tokio::task::spawn_blocking(self.admin_run(args))
    }

    /// The CLI run, ready to go on any thread.
    fn admin_run(&self, args: &[&str]) -> impl FnOnce() -> CliRun + Send + 'static {
        self.cli_run(args, self.admin_flags())
    }

    /// `hamster ARGS FLAGS`, logged to logs/hamster.log as `hamster ARGS`,
    /// ready to go on any thread; never panics on the command's own failure.
    pub(crate) fn cli_run(
        &self,
        args: &[&str],
        flags: Vec<String>,
    ) -> impl FnOnce() -> CliRun + Send + 'static {
        let mut cmd = Command::new(self.bins.join("hamster"));
        cmd.args(args)
            .args(flags)
            .env("RUST_LOG", &self.log_level)
            .env_remove("RUST_BACKTRACE");
        let log = self.root().join("logs/hamster.log");
        let line = args.join(" ");
        move || {
            let out = cmd.output().expect("run hamster");
            let run = CliRun {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            };
            if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(log) {
                let _ = writeln!(f, "$ hamster {line}\n{run}");
            }
            run
        }
    }

    /// `hamster status --json`, parsed; panics (with the output) if it fails.
    pub fn status_json(&self) -> Value {
        let run = self.admin_cli(&["status", "--json"]);
        assert!(run.ok(), "hamster status --json failed: {run}");
        run.json().unwrap_or_else(|e| panic!("{e}"))
    }

    /// `Admin.Durability` of `meta`: the summary and the worst units.
    pub async fn durability(&self, meta: Node) -> Result<pb::DurabilityResponse, tonic::Status> {
        let mut c = AdminClient::new(self.channel(meta, &self.admin_tls()));
        let call = c.durability(pb::DurabilityRequest { limit: 20 });
        match tokio::time::timeout(Duration::from_secs(10), call).await {
            Ok(r) => r.map(tonic::Response::into_inner),
            Err(_) => Err(tonic::Status::deadline_exceeded("durability timed out")),
        }
    }

    /// An on-demand scrub of every live blob-server through `meta`
    /// (`Admin.StartRepair`), followed with `Admin.ScrubProgress` until
    /// every pass it started has finished; answers each pass.
    pub async fn scrub_now(&self, meta: Node, limit: Duration) -> Vec<pb::BlobScrub> {
        let mut c = AdminClient::new(self.channel(meta, &self.admin_tls()));
        let started = c
            .start_repair(pb::StartRepairRequest {})
            .await
            .expect("start repair")
            .into_inner();
        assert!(
            started.blobs_unreachable.is_empty(),
            "unreachable: {:?}",
            started.blobs_unreachable
        );
        let deadline = Instant::now() + limit;
        loop {
            let p = c
                .scrub_progress(pb::ScrubProgressRequest {})
                .await
                .expect("scrub progress")
                .into_inner();
            let ours: Vec<pb::BlobScrub> = p
                .blobs
                .into_iter()
                .filter(|b| started.blobs_started.contains(&b.blob_id))
                .collect();
            let done = ours
                .iter()
                .all(|b| b.started_ms >= started.started_ms && b.finished_ms > 0);
            if done && ours.len() == started.blobs_started.len() {
                return ours;
            }
            assert!(Instant::now() < deadline, "scrub not done: {ours:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (asking `meta`, no command run) until no version or part is
    /// under-replicated; panics after `limit` naming what is left.
    pub async fn wait_durable(&self, meta: Node, what: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let seen = self.status(meta).await;
            if let Ok(s) = &seen
                && s.under_replicated == 0
                && s.unrecoverable == 0
            {
                return;
            }
            if Instant::now() > deadline {
                let units = self.durability(meta).await;
                panic!(
                    "{what}: still under-replicated after {limit:?}: status {:?}; units {units:?}",
                    seen.map(|s| (s.under_replicated, s.unrecoverable, s.repair_queue))
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A version as the meta tier holds it (`version_id` "" = current),
    /// with its parts (paged with GetParts: answers carry only their count).
    pub async fn version(
        &self,
        meta: Node,
        bucket: &str,
        key: &str,
        id: &str,
    ) -> pb::ObjectVersion {
        let gw = self.gateway_identity("gw-probe");
        let mut client = self.meta_client(meta, &gw);
        let mut v = client
            .get_version(pb::GetVersionRequest {
                bucket: bucket.into(),
                key: key.into(),
                version_id: id.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("get version {bucket}/{key}: {e}"))
            .into_inner()
            .version
            .unwrap_or_else(|| panic!("no version of {bucket}/{key}"));
        v.parts = crate::meta::all_parts(&mut client, &v)
            .await
            .unwrap_or_else(|e| panic!("parts of {bucket}/{key}: {e}"));
        v
    }

    /// The uploaded parts of an open multipart upload.
    pub async fn upload_parts(
        &self,
        meta: Node,
        bucket: &str,
        key: &str,
        id: &str,
    ) -> Vec<pb::Part> {
        let gw = self.gateway_identity("gw-probe");
        self.meta_client(meta, &gw)
            .list_parts(pb::ListPartsRequest {
                bucket: bucket.into(),
                key: key.into(),
                upload_id: id.into(),
                part_number_marker: 0,
                max_parts: 1000,
            })
            .await
            .unwrap_or_else(|e| panic!("list parts of {bucket}/{key}: {e}"))
            .into_inner()
            .parts
    }
}

/// Every erasure-coded unit of a version: its own map, or its parts'.
pub fn units_of(v: &pb::ObjectVersion) -> Vec<pb::ShardMap> {
    if v.parts.is_empty() {
        v.shard_map.iter().cloned().collect()
    } else {
        v.parts.iter().filter_map(|p| p.shard_map.clone()).collect()
    }
}

/// The object part of a shard id (`{object}-{index}`).
pub fn object_of(shard_id: &str) -> &str {
    shard_id.rsplit_once('-').map_or(shard_id, |(o, _)| o)
}

/// A file's name as a string (shard files are named by their shard id).
pub fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Flips one byte of a shard file past its header (in the middle of the
/// blocks); a header-only file gets its header's payload length flipped.
/// Answers the offset.
pub fn flip_payload_byte(path: &Path) -> usize {
    let mut bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let at = if bytes.len() > SHARD_HEADER {
        SHARD_HEADER + (bytes.len() - SHARD_HEADER) / 2
    } else {
        20
    };
    bytes[at] ^= 0x5a;
    std::fs::write(path, bytes).expect("write flipped shard");
    at
}

impl S3Cluster {
    /// Restarts every blob-server a failed step left dead (but those in
    /// `keep_down`) and waits until nothing is under-replicated, so one
    /// failed step does not cascade into the next.
    pub async fn settle(&mut self, keep_down: &[Node], what: &str, limit: Duration) {
        for b in self.blobs.clone() {
            if !self.c.is_running(b) && !keep_down.contains(&b) {
                self.c.restart(b);
                self.c.wait_healthy(b).await;
            }
        }
        self.c.wait_durable(self.metas[0], what, limit).await;
    }

    /// A blob-server's data directory.
    pub fn data_dir(&self, blob: Node) -> PathBuf {
        self.c.node(blob).dir.join("data")
    }

    /// The shards a blob-server moved aside.
    pub fn quarantined(&self, blob: Node) -> Vec<String> {
        files_under(&self.data_dir(blob).join("quarantine"))
            .iter()
            .map(|p| file_name(p))
            .collect()
    }

    /// Whether `blob` moved shard `id` aside: it is in quarantine/, or it
    /// was and has been freed since (repair replaced it), as its log says.
    pub fn moved_aside(&self, blob: Node, id: &str) -> bool {
        self.quarantined(blob).iter().any(|q| q == id)
            || self
                .c
                .log(blob)
                .lines()
                .any(|l| l.contains(id) && l.contains("moved aside"))
    }

    /// The file of shard `id` on `blob`, if it is there (not moved aside).
    pub fn shard_file(&self, blob: Node, id: &str) -> Option<PathBuf> {
        self.shard_files(blob)
            .into_iter()
            .find(|p| file_name(p) == id)
    }

    /// The blob-server with node id `id`.
    pub fn blob_by_id(&self, id: &str) -> Node {
        *self
            .blobs
            .iter()
            .find(|&&b| self.c.node(b).id == id)
            .unwrap_or_else(|| panic!("no blob-server {id}"))
    }

    /// Shard files of object `object` (a shard id's object part), on
    /// every blob-server, quarantine excluded.
    pub fn object_files(&self, object: &str) -> Vec<PathBuf> {
        self.blobs
            .iter()
            .flat_map(|&b| self.shard_files(b))
            .filter(|p| object_of(&file_name(p)) == object)
            .collect()
    }

    /// Asserts that every shard a unit names is a file on its server.
    pub fn assert_on_disk(&self, what: &str, map: &pb::ShardMap) {
        for loc in &map.shards {
            let blob = self.blob_by_id(&loc.blob_id);
            assert!(
                self.shard_file(blob, &loc.shard_id).is_some(),
                "{what}: shard {} (index {}) is not on {}",
                loc.shard_id,
                loc.index,
                loc.blob_id
            );
        }
    }
}

/// What of `pid`'s command line, environment and open files mentions
/// `needle` (empty: nothing).
pub fn proc_mentions(pid: u32, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for part in ["cmdline", "environ"] {
        let raw = std::fs::read(format!("/proc/{pid}/{part}")).unwrap_or_default();
        if String::from_utf8_lossy(&raw).contains(needle) {
            found.push(part.to_string());
        }
    }
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(target) = std::fs::read_link(fd.path())
            && target.to_string_lossy().contains(needle)
        {
            found.push(format!("fd {}", target.display()));
        }
    }
    found
}

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // utime and stime are fields 14 and 15; the fields after the ")" that
    // closes the command name start at field 3.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (tick(11) + tick(12)) as f64 / 100.0
}
