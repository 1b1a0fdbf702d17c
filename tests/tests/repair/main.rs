//! Issue 16 end to end, on real processes and SIGKILL, in named steps over
//! one cluster (3 meta, 7 blob, profile 4+2, so one server is spare):
//! a wiped disk and rotted shards repaired by `hamster repair`, then two
//! more servers lost and every object (plain, multipart, an open upload's
//! parts) still whole; a degraded PUT and a rotted shard healed with no
//! command; a COMPLIANCE version repaired with no master key readable; a
//! commit whose answer was lost making exactly one version; a whole server
//! lost and repaired under an S3 load with zero failed requests.

use std::time::Duration;

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ObjectLockMode};
use futures::FutureExt;
use hamster_proto::pb;
use hamster_tests::durability::{
    durability_summary, file_name, flip_payload_byte, int, now_ms, object_of, proc_mentions,
    units_of,
};
use hamster_tests::load::Load;
use hamster_tests::lock::{DAY, create_lock_bucket, get_retention, now_secs};
use hamster_tests::s3::{
    ClusterSpec, S3Cluster, assert_read_back, assert_s3_error, delete_version, get_bytes as get,
    pattern, put_version as put, strings,
};
use hamster_tests::{Kind, Node, Steps};

mod damage;
mod heal;
mod locked;
mod retry;

type Client = aws_sdk_s3::Client;

const MIB: usize = 1 << 20;
/// How long the cluster gets to heal by itself.
const HEAL: Duration = Duration::from_secs(90);

/// The open upload of step 1, completed in step 2.
struct Open {
    key: String,
    id: String,
    /// Each part's bytes and what CompleteMultipartUpload names it by.
    parts: Vec<(Vec<u8>, CompletedPart)>,
}

struct World {
    s: S3Cluster,
    c: Client,
    /// Objects of bucket "data" that must read back byte-identical.
    objects: Vec<(String, Vec<u8>)>,
    open: Option<Open>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scrub_and_repair_keep_every_byte() {
    let mut steps = Steps::new("repair");
    let spec = ClusterSpec {
        metas: 3,
        blobs: 7,
        meta_args: strings(&["--repair-every-ms=1000", "--blob-down-after-secs=4"]),
        blob_args: strings(&["--scrub-pause-secs=2", "--scrub-rate=200"]),
        ..ClusterSpec::default()
    };
    let (s, c) = S3Cluster::start_step(&mut steps, &spec).await;
    let mut w = World {
        s,
        c,
        objects: Vec::new(),
        open: None,
    };
    steps
        .require("load objects and an open upload", damage::load(&mut w))
        .await;
    steps
        .run(
            "a wiped disk and rotted shards are repaired",
            damage::wiped_and_rotted(&mut w),
        )
        .await;
    steps
        .run(
            "a degraded PUT is repaired with no command",
            heal::degraded_put(&mut w),
        )
        .await;
    steps
        .run(
            "a rotted shard found by scrub is never served and is rebuilt",
            heal::rot(&mut w),
        )
        .await;
    steps
        .run(
            "a COMPLIANCE version is repaired with no master key",
            locked::compliance(&mut w),
        )
        .await;
    steps
        .run(
            "a lost commit answer makes one version, freed once",
            retry::lost_answer(&mut w),
        )
        .await;
    steps
        .run(
            "a whole server is repaired under load with zero failures",
            heal::under_load(&mut w),
        )
        .await;
    steps.finish();
}

/// Every object of bucket "data" reads back byte-identical.
async fn read_all(w: &World, when: &str) {
    assert_read_back(&w.c, "data", &w.objects, when).await;
}

/// Restarts every blob-server a failed step left dead and waits until the
/// cluster is whole again, so one failure does not cascade.
async fn settle(w: &mut World, what: &str) {
    w.s.settle(&[], what, HEAL).await;
}

fn kill_all(w: &mut World, nodes: &[Node]) {
    w.s.c.kill_all(nodes);
}

async fn restart_all(w: &mut World, nodes: &[Node]) {
    w.s.c.restart_all(nodes).await;
}

/// Sets the erasure profile and waits until the gateway writes with it
/// (probe objects, deleted after).
async fn set_profile(w: &World, k: u32, m: u32) {
    let run = w.s.c.admin_cli(&["profile", "set", &format!("{k}+{m}")]);
    assert!(run.ok(), "profile set: {run}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for n in 0.. {
        let key = format!("probe-{k}-{m}-{n}");
        // Above the gateway's mirror threshold: a tiny probe is 1+m.
        put(&w.c, "data", &key, &pattern(20_000, 1)).await;
        let v = w.s.c.version(w.s.metas[0], "data", &key, "").await;
        w.c.delete_object()
            .bucket("data")
            .key(&key)
            .send()
            .await
            .expect("rm probe");
        let map = v.shard_map.expect("map");
        if (map.data_shards, map.parity_shards, map.shards.len()) == (k, m, (k + m) as usize) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway never wrote {k}+{m}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every unit (version, completed part, open part) the test wrote.
async fn all_units(w: &World) -> Vec<(String, pb::ShardMap)> {
    let meta = w.s.metas[0];
    let mut out = Vec::new();
    for (key, _) in &w.objects {
        let v = w.s.c.version(meta, "data", key, "").await;
        out.extend(units_of(&v).into_iter().map(|m| (key.clone(), m)));
    }
    if let Some(open) = &w.open {
        for p in w.s.c.upload_parts(meta, "data", &open.key, &open.id).await {
            let what = format!("{} part {}", open.key, p.part_number);
            out.extend(p.shard_map.map(|m| (what, m)));
        }
    }
    out
}

/// The shard map of `bucket/key` (version `id`, or the latest if "").
async fn map_of(w: &World, bucket: &str, key: &str, id: &str) -> pb::ShardMap {
    w.s.c
        .version(w.s.metas[0], bucket, key, id)
        .await
        .shard_map
        .unwrap_or_else(|| panic!("{bucket}/{key}: no shard map"))
}
