//! Issue 17 end to end, on real processes and SIGKILL, in named steps over
//! one cluster (3 meta, 8 blob, one gateway; the default profile, 4+2):
//! with a server down new PUTs still get six shards on the others; a
//! server the maps name cannot be removed without --force; a drain under
//! an S3 load fails no request, leaves nothing named on the server and
//! makes it removable, after which two more servers can die and every
//! object still reads; a dead server force-removed is repaired to full
//! redundancy; a removed server that comes back with its old certificate
//! and shards is refused by every tier; two empty servers added are filled
//! by the rebalancer until every server is within the band.

use std::time::Duration;

use futures::FutureExt;
use hamster_proto::pb;
use hamster_tests::blobs::{BlobList, named_ids, names_number, within_band};
use hamster_tests::load::Load;
use hamster_tests::s3::{
    ClusterSpec, S3Cluster, assert_read_back, pattern, put_version as put, strings,
};
use hamster_tests::{Kind, Node, Steps};

mod drain;
mod placement;
mod rebalance;
mod remove;

type Client = aws_sdk_s3::Client;

const KIB: usize = 1 << 10;
/// How long the cluster gets to heal or move shards by itself.
const HEAL: Duration = Duration::from_secs(90);
/// What a `hamster blob drain` or `rebalance` may take, in seconds.
const CLI_TIMEOUT: &str = "60";

struct World {
    s: S3Cluster,
    c: Client,
    /// Objects of bucket "data" that must read back byte-identical.
    objects: Vec<(String, Vec<u8>)>,
    /// Servers a step retired (removed): never restarted after.
    gone: Vec<Node>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blob_servers_drain_remove_and_rebalance() {
    let mut steps = Steps::new("blob_life");
    let spec = ClusterSpec {
        metas: 3,
        blobs: 8,
        meta_args: strings(&[
            "--repair-every-ms=500",
            "--blob-down-after-secs=4",
            "--rebalance-slack-mb=1",
            // Sweep orphans (frees that could not reach a dead server)
            // soon, so stores hold about what the maps name.
            "--sweep-every-secs=2",
            "--sweep-grace-secs=10",
        ]),
        // Background scrub out of the way: it is not what this tests.
        blob_args: strings(&["--scrub-pause-secs=86400"]),
        ..ClusterSpec::default()
    };
    let (s, c) = S3Cluster::start_step(&mut steps, &spec).await;
    let mut w = World {
        s,
        c,
        objects: Vec::new(),
        gone: Vec::new(),
    };
    steps.require("load objects", load(&mut w)).await;
    steps
        .run(
            "with one server down, new PUTs get 4+2 on the others",
            placement::one_down(&mut w),
        )
        .await;
    steps
        .run(
            "remove without --force is refused, naming the count",
            drain::remove_refused(&mut w),
        )
        .await;
    steps
        .run(
            "a drain under load fails nothing and empties the server",
            drain::under_load(&mut w),
        )
        .await;
    steps
        .run(
            "a dead server force-removed is repaired",
            remove::forced(&mut w),
        )
        .await;
    steps
        .run(
            "a removed server that comes back is refused by every tier",
            remove::comes_back(&mut w),
        )
        .await;
    steps
        .run(
            "two servers added are filled within the band under load",
            rebalance::added(&mut w),
        )
        .await;
    steps.finish();
}

/// Step 0: bucket "data" with a dozen objects of 17 B to 1 MiB.
async fn load(w: &mut World) {
    w.c.create_bucket()
        .bucket("data")
        .send()
        .await
        .expect("create bucket");
    let sizes = [17, 4 * KIB, 90 * KIB, 300 * KIB, 700 * KIB, 1024 * KIB];
    for i in 0..12 {
        let data = pattern(sizes[i % sizes.len()] + i, i as u8);
        add(w, &format!("obj-{i}"), data).await;
    }
    let map = map_of(w, "obj-5").await;
    assert_eq!(
        (map.data_shards, map.parity_shards, map.shards.len()),
        (4, 2, 6),
        "the default profile of 8 servers is not 4+2: {map:?}"
    );
    // Tiny ones (17 B, 4 KiB) are mirrored, 1+2, and go through every
    // drain, removal and rebalance below like the others.
    for key in ["obj-0", "obj-1"] {
        let map = map_of(w, key).await;
        assert_eq!(
            (map.data_shards, map.parity_shards, map.shards.len()),
            (1, 2, 3),
            "{key} is not mirrored: {map:?}"
        );
    }
}

/// PUTs `data` as `key` of bucket "data" and keeps it for read-backs.
async fn add(w: &mut World, key: &str, data: Vec<u8>) {
    put(&w.c, "data", key, &data).await;
    w.objects.push((key.to_string(), data));
}

/// Every kept object reads back byte-identical.
async fn read_all(w: &World, when: &str) {
    assert_read_back(&w.c, "data", &w.objects, when).await;
}

/// Restarts every blob-server a failed step left dead (not the retired
/// ones), waits until nothing is under-replicated, then until the mover
/// is still, so a step's counts of shards hold while it runs.
async fn settle(w: &mut World, what: &str) {
    let gone = w.gone.clone();
    w.s.settle(&gone, what, HEAL).await;
    quiet(w, what).await;
}

/// Waits (up to 30 s) until four listings 1.5 s apart name the same
/// shards on each server: no move is under way (a mover round follows
/// the servers' heartbeats, every second). Only warns if not: the
/// rebalance step is where the band is judged.
async fn quiet(w: &World, what: &str) {
    let named = |l: &BlobList| -> Vec<(String, u64)> {
        l.blobs
            .iter()
            .map(|b| (b.id.clone(), b.shards_named))
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = named(&blob_list(w));
    let mut same = 0;
    while same < 3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = blob_list(w);
        if named(&now) == last {
            same += 1;
        } else {
            same = 0;
            last = named(&now);
        }
        if std::time::Instant::now() > deadline {
            eprintln!("{what}: shards still moving after 30 s: {}", now.summary());
            return;
        }
    }
}

/// The current shard map of `key` in bucket "data".
async fn map_of(w: &World, key: &str) -> pb::ShardMap {
    w.s.c
        .version(w.s.metas[0], "data", key, "")
        .await
        .shard_map
        .unwrap_or_else(|| panic!("data/{key}: no shard map"))
}

fn id_of(w: &World, node: Node) -> String {
    w.s.c.node(node).id.clone()
}

/// `hamster blob list --json`, or a failed step.
fn blob_list(w: &World) -> BlobList {
    w.s.c.blob_list().unwrap_or_else(|e| panic!("{e}"))
}

/// Every unit of bucket "data" has k+m shards on distinct servers, none
/// of them retired.
async fn assert_whole(w: &World, when: &str) {
    let gone: Vec<String> = w.gone.iter().map(|&n| id_of(w, n)).collect();
    for (key, map) in w.s.c.bucket_units(w.s.metas[0], "data").await {
        let width = (map.data_shards + map.parity_shards) as usize;
        let mut servers: Vec<&str> = map.shards.iter().map(|l| l.blob_id.as_str()).collect();
        servers.sort_unstable();
        servers.dedup();
        assert!(
            map.shards.len() == width && servers.len() == width,
            "{when}: {key} is not whole on distinct servers: {map:?}"
        );
        assert!(
            !servers.iter().any(|s| gone.iter().any(|g| g == s)),
            "{when}: {key} names a retired server ({gone:?}): {map:?}"
        );
    }
}

/// The running blob-servers other than `but`, in order.
fn running_others(w: &World, but: &[Node]) -> Vec<Node> {
    w.s.blobs
        .iter()
        .copied()
        .filter(|b| w.s.c.is_running(*b) && !but.contains(b) && !w.gone.contains(b))
        .collect()
}
