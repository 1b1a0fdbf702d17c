//! Issue 18 end to end, on real processes and SIGKILL, in named steps over
//! one cluster (3 meta, 6 blob, one gateway): a backup taken under an S3
//! write load holds every write acknowledged before it was asked for and
//! no secret; a corrupt, truncated or foreign-key backup is refused with
//! nothing changed; every meta-server's data destroyed, one restored from
//! the backup and grown back to three with `hamster member add`, every
//! object, version, delete marker, lock and legal hold is back and writes
//! resume; the shards written after the backup are held and reported, not
//! swept, until released; then two of three meta-servers lost for good
//! and the survivor made a one-node cluster with --force-new-cluster,
//! grown again, and refused if started with the flag a second time.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hamster_tests::backup::Acked;
use hamster_tests::s3::{ClusterSpec, S3Cluster, assert_read_back, get_bytes, strings};
use hamster_tests::{Node, Steps};

mod offline;
mod orphans;
mod quorum;
mod restore;
mod setup;
mod take;

type Client = aws_sdk_s3::Client;

const MIB: usize = 1 << 20;
/// The sweep's grace: shards younger than this are never touched (and a
/// commit may name shards at most half as old).
const GRACE_SECS: u64 = 6;
/// How long the cluster gets to settle after a restart.
const SETTLE: Duration = Duration::from_secs(30);

/// One version of the lock bucket, as a listing shows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Listed {
    key: String,
    version_id: String,
    latest: bool,
    delete_marker: bool,
    size: i64,
}

/// The lock bucket's state before the backup.
#[derive(Default)]
struct Locked {
    /// ListObjectVersions, sorted.
    listing: Vec<Listed>,
    /// (key, version id, bytes) of every version that is not a marker.
    versions: Vec<(String, String, Vec<u8>)>,
    /// (key, version id, mode, retain-until secs) of each locked version.
    retained: Vec<(String, String, String, i64)>,
    /// (key, version id) under a legal hold.
    held: (String, String),
    /// (key, version id) of the COMPLIANCE version.
    compliance: (String, String),
    /// (key, version id) of the GOVERNANCE version.
    governance: (String, String),
}

/// The backup the later steps restore.
struct Backup {
    file: PathBuf,
    raft_index: u64,
}

/// What step 5 wrote after the backup: its objects' shards, by
/// (blob id, shard id).
#[derive(Default)]
struct Late {
    shards: Vec<(String, String)>,
}

struct World {
    s: S3Cluster,
    c: Client,
    /// Objects of bucket "data" that must read back byte-identical.
    objects: Vec<(String, Vec<u8>)>,
    locked: Locked,
    backup: Option<Backup>,
    /// Load writes acknowledged before the backup was asked for.
    before: Vec<Acked>,
    /// Load writes acknowledged while the backup call ran: in it or not,
    /// but never different.
    during: Vec<Acked>,
    /// Load writes acknowledged after the backup answered.
    after: Vec<Acked>,
    late: Late,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_restore_and_quorum_loss() {
    let mut steps = Steps::new("backup");
    let grace = format!("--sweep-grace-secs={GRACE_SECS}");
    let spec = ClusterSpec {
        metas: 3,
        blobs: 6,
        meta_args: strings(&["--sweep-every-secs=1", &grace]),
        // Background scrub out of the way: it is not what this tests.
        blob_args: strings(&["--scrub-pause-secs=86400"]),
        ..ClusterSpec::default()
    };
    let (s, c) = S3Cluster::start_step(&mut steps, &spec).await;
    let mut w = World {
        s,
        c,
        objects: Vec::new(),
        locked: Locked::default(),
        backup: None,
        before: Vec::new(),
        during: Vec::new(),
        after: Vec::new(),
        late: Late::default(),
    };
    steps
        .require(
            "objects, versions, a delete marker, locks and a legal hold",
            setup::load(&mut w),
        )
        .await;
    steps
        .require(
            "a backup under S3 write load holds every acknowledged write",
            take::under_load(&mut w),
        )
        .await;
    steps
        .run(
            "the backup holds no master, CA, node key or S3 secret",
            take::no_secrets(&w),
        )
        .await;
    steps
        .run(
            "a corrupt, truncated or foreign-key backup is refused, nothing changed",
            take::refusals(&w),
        )
        .await;
    steps
        .require("writes after the backup", setup::late_writes(&mut w))
        .await;
    steps
        .require(
            "every meta-server wiped, one restored and grown to three",
            restore::wipe_restore_grow(&mut w),
        )
        .await;
    steps
        .run(
            "every acknowledged object, version, lock and hold is back",
            restore::everything_reads(&w),
        )
        .await;
    steps
        .run(
            "a COMPLIANCE version stays undeletable; writes resume",
            restore::locks_hold_and_writes_resume(&w),
        )
        .await;
    steps
        .run(
            "shards written after the backup are held and reported until released",
            orphans::held_until_released(&mut w),
        )
        .await;
    steps
        .run(
            "two of three meta-servers lost: --force-new-cluster and grow",
            quorum::force_new_cluster(&mut w),
        )
        .await;
    steps.finish();
}

/// Every object of bucket "data" and every load write acknowledged
/// before the backup read back byte-identical.
async fn read_all(w: &World, when: &str) {
    assert_read_back(&w.c, "data", &w.objects, when).await;
    let before: Vec<(String, Vec<u8>)> = w
        .before
        .iter()
        .map(|a| (a.key.clone(), a.data.clone()))
        .collect();
    assert_read_back(&w.c, "load", &before, when).await;
}

/// Waits until the gateway serves `bucket/key` again (it finds the new
/// meta leader on its own), answering the body.
async fn wait_readable(w: &World, bucket: &str, key: &str) -> Vec<u8> {
    let deadline = Instant::now() + SETTLE;
    loop {
        match get_bytes(&w.c, bucket, key).await {
            Ok(b) => return b,
            Err(e) if Instant::now() > deadline => {
                panic!("the gateway never served {bucket}/{key} again: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// PUTs `bucket/key` once the cluster takes writes again. Right after the
/// meta tier comes back, blob-servers' heartbeats have not reached the new
/// leader yet, and a PUT is refused with 503 SlowDown (too few fresh
/// servers, nothing committed) until they do: retried on that answer only.
async fn put_when_writable(w: &World, bucket: &str, key: &str, data: &[u8]) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let r =
            w.c.put_object()
                .bucket(bucket)
                .key(key)
                .body(aws_sdk_s3::primitives::ByteStream::from(data.to_vec()))
                .send()
                .await;
        match r {
            Ok(_) => return,
            Err(e)
                if hamster_tests::s3::error_status(&e).0.as_deref() == Some("SlowDown")
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            Err(e) => panic!("put {bucket}/{key}: {e:?}"),
        }
    }
}

/// Waits until the meta tier has `n` voters, all live, agreeing on a
/// leader; answers the leader.
async fn wait_members(w: &World, metas: &[Node], n: usize) -> Node {
    let deadline = Instant::now() + SETTLE;
    loop {
        let leader = w.s.c.wait_leader(metas).await;
        if let Ok(st) = w.s.c.status(leader).await
            && st.members.len() == n
            && st.members.iter().all(|m| m.voter)
        {
            return leader;
        }
        assert!(
            Instant::now() < deadline,
            "the meta tier never had {n} voters: {:?}",
            w.s.c.status(leader).await.map(|s| s.members)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
