//! `hamster blob …` as an operator runs it: the real binary against a
//! scripted meta-server over real mTLS. The script plays the registry as
//! the meta tier would show it poll after poll, so these tests pin what
//! the command does with each answer (when a drain is done, what a
//! refusal prints, the exit codes); the meta tier's own behaviour is
//! tested with real processes in tests/.

mod common;

use std::collections::VecDeque;
use std::process::Output;
use std::sync::{Arc, Mutex};

use hamster_proto::ErrorCode;
use hamster_proto::pb::admin_server::Admin;
use hamster_proto::pb::{
    Balance, BlobBalance, BlobServer, DrainBlobRequest, DrainBlobResponse, ListBlobServersRequest,
    ListBlobServersResponse, RebalanceRequest, RebalanceResponse, RemoveBlobRequest,
    RemoveBlobResponse,
};
use tonic::{Request, Response, Status};

/// What the scripted meta-server answers.
#[derive(Default)]
struct Script {
    /// ListBlobServers answers in turn; the last one repeats.
    frames: VecDeque<ListBlobServersResponse>,
    drain: Option<Result<BlobServer, Status>>,
    remove: Option<Result<RemoveBlobResponse, Status>>,
    /// Every DrainBlob and RemoveBlob asked, as "drain ID to" / "remove ID force".
    asked: Vec<String>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<Script>>);

impl Fake {
    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.0.lock().expect("script")
    }

    fn frame(&self) -> ListBlobServersResponse {
        let mut s = self.script();
        if s.frames.len() > 1 {
            s.frames.pop_front().unwrap_or_default()
        } else {
            s.frames.front().cloned().unwrap_or_default()
        }
    }
}

#[tonic::async_trait]
impl Admin for Fake {
    async fn list_blob_servers(
        &self,
        _: Request<ListBlobServersRequest>,
    ) -> Result<Response<ListBlobServersResponse>, Status> {
        Ok(Response::new(self.frame()))
    }

    async fn drain_blob(
        &self,
        r: Request<DrainBlobRequest>,
    ) -> Result<Response<DrainBlobResponse>, Status> {
        let r = r.into_inner();
        let mut s = self.script();
        s.asked.push(format!("drain {} {}", r.id, r.to));
        let server = s.drain.clone().expect("no drain scripted")?;
        Ok(Response::new(DrainBlobResponse {
            server: Some(server),
        }))
    }

    async fn remove_blob(
        &self,
        r: Request<RemoveBlobRequest>,
    ) -> Result<Response<RemoveBlobResponse>, Status> {
        let r = r.into_inner();
        let mut s = self.script();
        s.asked.push(format!("remove {} {}", r.id, r.force));
        Ok(Response::new(
            s.remove.clone().expect("no remove scripted")?,
        ))
    }

    async fn rebalance(
        &self,
        _: Request<RebalanceRequest>,
    ) -> Result<Response<RebalanceResponse>, Status> {
        Ok(Response::new(RebalanceResponse {
            balance: self.frame().balance,
        }))
    }
}

/// The scripted meta-server and its script.
struct Meta {
    fake: Fake,
    meta: common::ScriptedMeta,
}

impl Meta {
    fn start(script: Script) -> Self {
        let fake = Fake(Arc::new(Mutex::new(script)));
        let meta = common::ScriptedMeta::start(fake.clone());
        Self { fake, meta }
    }

    /// Runs `hamster ARGS` as the admin.
    fn hamster(&self, args: &[&str]) -> Output {
        self.meta
            .hamster()
            .args(args)
            .output()
            .expect("run hamster")
    }

    fn asked(&self) -> Vec<String> {
        self.fake.script().asked.clone()
    }
}

fn server(id: &str, lifecycle: &str, state: &str, named: u64, stored: u64) -> BlobServer {
    BlobServer {
        id: id.into(),
        address: "127.0.0.1:7501".into(),
        failure_domain: "rack-a".into(),
        state: state.into(),
        lifecycle: lifecycle.into(),
        shards_named: named,
        shards_stored: stored,
        bytes_stored: stored << 20,
        free_bytes: 10 << 30,
        capacity_bytes: 20 << 30,
        ..Default::default()
    }
}

fn frame(servers: Vec<BlobServer>) -> ListBlobServersResponse {
    ListBlobServersResponse {
        servers,
        balance: None,
    }
}

fn json_line(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_drain_returns_only_once_no_map_names_the_server_and_its_store_is_empty() {
    let meta = Meta::start(Script {
        drain: Some(Ok(server("b1", "draining", "draining", 30, 30))),
        frames: [
            server("b1", "draining", "draining", 12, 30),
            server("b1", "draining", "draining", 0, 30),
            // No map names it, but its copies are still on disk.
            server("b1", "drained", "drained", 0, 4),
            server("b1", "drained", "drained", 0, 0),
        ]
        .into_iter()
        .map(|b| frame(vec![b]))
        .collect(),
        ..Default::default()
    });
    let started = std::time::Instant::now();
    let out = meta.hamster(&["blob", "drain", "b1", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json_line(&out);
    assert_eq!(v["outcome"], "drained", "{v}");
    assert_eq!(v["shards_moved"], 30, "{v}");
    assert_eq!(v["shards_stored"], 0, "{v}");
    // It saw the store empty (the 4th frame), not just the maps.
    assert!(started.elapsed() >= std::time::Duration::from_secs(3));
    assert_eq!(meta.asked(), ["drain b1 "]);
}

#[test]
fn replace_drains_onto_the_new_server_and_names_the_next_step() {
    let meta = Meta::start(Script {
        drain: Some(Ok(server("old", "draining", "draining", 2, 2))),
        frames: [frame(vec![server("old", "drained", "drained", 0, 0)])].into(),
        ..Default::default()
    });
    let out = meta.hamster(&["blob", "replace", "old", "--with", "new"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(meta.asked(), ["drain old new"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("next: hamster blob remove old"), "{stdout}");
}

#[test]
fn a_drain_that_runs_out_of_time_exits_2_naming_what_is_left() {
    let meta = Meta::start(Script {
        drain: Some(Ok(server("b1", "draining", "down", 5, 5))),
        frames: [frame(vec![server("b1", "draining", "down", 5, 5)])].into(),
        ..Default::default()
    });
    let out = meta.hamster(&["blob", "drain", "b1", "--timeout-secs", "2", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(json_line(&out)["outcome"], "timeout");
    let err = stderr(&out);
    assert!(
        err.contains("5 shards on b1 are still named by shard maps (b1 is down)"),
        "{err}"
    );
}

#[test]
fn an_undrain_by_someone_else_ends_the_follow_with_exit_1() {
    let meta = Meta::start(Script {
        drain: Some(Ok(server("b1", "draining", "draining", 9, 9))),
        frames: [
            frame(vec![server("b1", "draining", "draining", 6, 9)]),
            frame(vec![server("b1", "in", "active", 6, 9)]),
        ]
        .into(),
        ..Default::default()
    });
    let out = meta.hamster(&["blob", "drain", "b1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cancelled"), "{}", stderr(&out));
}

#[test]
fn a_refused_drain_prints_the_meta_tiers_words_and_exits_1() {
    let why = "draining b1 would leave 5 servers in service; its widest map needs 6";
    let meta = Meta::start(Script {
        drain: Some(Err(ErrorCode::NotEnoughBlobServers.status(why))),
        ..Default::default()
    });
    let out = meta.hamster(&["blob", "drain", "b1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&format!("drain b1 refused: {why}")), "{err}");
    assert!(!err.contains("metadata"), "a Debug dump: {err}");
}

#[test]
fn remove_while_maps_name_the_server_is_refused_with_the_count_and_the_way_out() {
    let meta = Meta::start(Script {
        remove: Some(Err(ErrorCode::BlobServerInUse
            .status("12 shards on blob-server b1 are still named by shard maps"))),
        ..Default::default()
    });
    let out = meta.hamster(&["blob", "remove", "b1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("12 shards on blob-server b1"), "{err}");
    assert!(err.contains("hamster blob drain b1"), "{err}");
    assert_eq!(meta.asked(), ["remove b1 false"]);
}

#[test]
fn a_forced_remove_reports_the_shards_lost() {
    let meta = Meta::start(Script {
        remove: Some(Ok(RemoveBlobResponse {
            server: Some(server("b1", "removed", "removed", 40, 40)),
            shards_lost: 40,
        })),
        ..Default::default()
    });
    let out = meta.hamster(&["blob", "remove", "b1", "--force", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json_line(&out);
    assert_eq!(v["shards_lost"], 40, "{v}");
    assert_eq!(v["server"]["state"], "removed", "{v}");
    assert_eq!(meta.asked(), ["remove b1 true"]);
}

#[test]
fn rebalance_follows_until_every_server_is_within_the_band() {
    let balance = |within: bool, new_bytes: u64| Balance {
        band_pct: 10,
        slack_bytes: 64 << 20,
        within_band: within,
        moving: !within,
        servers: vec![
            BlobBalance {
                id: "old".into(),
                bytes_stored: (2 << 30) - new_bytes,
                target_bytes: 1 << 30,
                within_band: within,
            },
            BlobBalance {
                id: "new".into(),
                bytes_stored: new_bytes,
                target_bytes: 1 << 30,
                within_band: within,
            },
        ],
    };
    let with = |b| ListBlobServersResponse {
        servers: vec![],
        balance: Some(b),
    };
    let meta = Meta::start(Script {
        frames: [
            with(balance(false, 0)),
            with(balance(false, 1 << 29)),
            with(balance(true, 1 << 30)),
        ]
        .into(),
        ..Default::default()
    });
    let out = meta.hamster(&["blob", "rebalance", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = json_line(&out);
    assert_eq!(v["outcome"], "balanced", "{v}");
    assert_eq!(
        v["balance"]["servers"][1]["bytes_stored"],
        1u64 << 30,
        "{v}"
    );
}

#[test]
fn list_shows_every_server_and_its_shards() {
    let mut replaced = server("b1", "draining", "draining", 7, 9);
    replaced.drain_to = "b9".into();
    let meta = Meta::start(Script {
        frames: [frame(vec![
            replaced,
            server("b2", "removed", "removed", 0, 0),
        ])]
        .into(),
        ..Default::default()
    });
    let out = meta.hamster(&["blob", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("ID"), "{stdout}");
    assert!(lines[1].contains("draining -> b9"), "{stdout}");
    assert!(lines[1].contains("9 (9.0 MiB)"), "{stdout}");
    assert!(lines[2].contains("removed"), "{stdout}");
    let out = meta.hamster(&["blob", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["blobs"][0]["drain_to"], "b9", "{v}");
    assert_eq!(v["blobs"][1]["state"], "removed", "{v}");
}
