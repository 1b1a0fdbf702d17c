//! Blob.Rebuild across in-process blob-servers over mTLS: rebuilt shards
//! are byte-identical to the originals with the same checksum, for data
//! and parity indexes; a bad source is replaced by a spare; a failed
//! rebuild leaves no shard behind, nor a put still running; malformed
//! requests change nothing; a rebuild asked while another runs is refused
//! at once (busy), not queued. A copy (a move) is byte-identical, falls
//! back on reconstruction only before it wrote anything, and is refused
//! if malformed.

mod common;

use common::{BlobNode, Ca, client, get, put};
use hamster_proto::{ErrorCode, Role, pb};
use reed_solomon_erasure::galois_8::ReedSolomon;

const K: usize = 4;
const M: usize = 2;

/// k+m shards of one set, as the gateway makes them: stripes cut into k
/// zero-padded chunks plus m parity chunks, each shard the concatenation
/// of its chunk of every stripe.
fn encode(object: &[u8], stripe: usize) -> Vec<Vec<u8>> {
    let rs = ReedSolomon::new(K, M).expect("rs");
    let mut shards = vec![Vec::new(); K + M];
    for s in object.chunks(stripe) {
        let len = s.len().div_ceil(K);
        let mut chunks: Vec<Vec<u8>> = (0..K + M)
            .map(|i| {
                let mut c = if i < K {
                    s[(i * len).min(s.len())..((i + 1) * len).min(s.len())].to_vec()
                } else {
                    Vec::new()
                };
                c.resize(len, 0);
                c
            })
            .collect();
        rs.encode(&mut chunks).expect("encode");
        for (shard, c) in shards.iter_mut().zip(chunks) {
            shard.extend_from_slice(&c);
        }
    }
    shards
}

struct Cluster {
    ca: Ca,
    nodes: Vec<BlobNode>,
    shards: Vec<Vec<u8>>,
    /// (node, shard id, checksum) of each index.
    placed: Vec<(usize, String, Vec<u8>)>,
}

/// Three servers, index i on server i % 3.
async fn cluster(object_len: usize) -> Cluster {
    let ca = Ca::new();
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(BlobNode::start(&ca, &format!("blob-{i}"), vec![]).await);
    }
    // 1 MiB stripes; the object is not a multiple of anything.
    let shards = encode(&common::data(object_len, 7), 1 << 20);
    let mut placed = Vec::new();
    for (i, bytes) in shards.iter().enumerate() {
        let n = i % 3;
        let id = format!("obj-{i}");
        let mut c = client(&ca, Role::Gateway, &nodes[n].addr);
        let sum = put(&mut c, &id, i as u32, bytes).await;
        placed.push((n, id, sum));
    }
    Cluster {
        ca,
        nodes,
        shards,
        placed,
    }
}

impl Cluster {
    fn source(&self, index: usize) -> pb::RebuildSource {
        let (n, id, _) = &self.placed[index];
        pb::RebuildSource {
            index: index as u32,
            address: self.nodes[*n].addr.clone(),
            shard_id: id.clone(),
        }
    }

    fn target(&self, index: usize, node: usize, id: &str) -> pb::RebuildTarget {
        pb::RebuildTarget {
            index: index as u32,
            address: self.nodes[node].addr.clone(),
            shard_id: id.to_string(),
            checksum: self.placed[index].2.clone(),
        }
    }

    fn meta(
        &self,
        node: usize,
    ) -> hamster_proto::pb::blob_client::BlobClient<tonic::transport::Channel> {
        client(&self.ca, Role::Meta, &self.nodes[node].addr)
    }

    async fn exists(&self, node: usize, id: &str) -> bool {
        self.meta(node)
            .stat_shard(pb::StatShardRequest {
                shard_id: id.to_string(),
            })
            .await
            .expect("stat")
            .into_inner()
            .exists
    }
}

fn request(sources: Vec<pb::RebuildSource>, targets: Vec<pb::RebuildTarget>) -> pb::RebuildRequest {
    pb::RebuildRequest {
        data_shards: K as u32,
        parity_shards: M as u32,
        sources,
        targets,
        copy: false,
    }
}

#[tokio::test]
async fn rebuilt_data_and_parity_shards_are_byte_identical_with_the_same_checksum() {
    // ~2.3 MiB per shard: several rebuild windows, the last one partial,
    // and several 64 KiB blocks per window.
    let c = cluster(9_500_123).await;
    let shard_len = c.shards[0].len();
    assert!(shard_len > 2 << 20, "{shard_len}");
    // Lose index 1 (data) and 5 (parity); rebuild from 0, 2, 3, 4 onto
    // servers that include the rebuilder itself (server 0).
    let req = request(
        vec![c.source(0), c.source(2), c.source(3), c.source(4)],
        vec![c.target(1, 0, "new-1"), c.target(5, 1, "new-5")],
    );
    let resp = c.meta(0).rebuild(req).await.expect("rebuild").into_inner();
    assert_eq!(resp.shards.len(), 2);
    assert_eq!(resp.bytes_read, (K * shard_len) as u64);
    assert_eq!(resp.bytes_written, (2 * shard_len) as u64);
    for (index, node, id) in [(1usize, 0usize, "new-1"), (5, 1, "new-5")] {
        let got = resp
            .shards
            .iter()
            .find(|s| s.index == index as u32)
            .expect("answered");
        assert_eq!(got.shard_id, id);
        assert_eq!(got.length, shard_len as u64);
        assert_eq!(
            got.checksum, c.placed[index].2,
            "index {index}: same checksum"
        );
        let bytes = get(&mut c.meta(node), id).await.expect("read back");
        assert!(bytes == c.shards[index], "index {index}: byte-identical");
        let stat = c
            .meta(node)
            .stat_shard(pb::StatShardRequest {
                shard_id: id.into(),
            })
            .await
            .expect("stat")
            .into_inner();
        assert_eq!(stat.checksum, c.placed[index].2);
    }
    // The sources are untouched.
    for i in [0, 2, 3, 4] {
        let (n, id, _) = &c.placed[i];
        assert!(get(&mut c.meta(*n), id).await.expect("source") == c.shards[i]);
    }
}

#[tokio::test]
async fn rebuilding_parity_without_expected_checksums_answers_the_real_ones() {
    let c = cluster(300_001).await;
    // Rebuild both parity shards with no expected checksum (a degraded
    // commit's missing index): the answer carries the real one.
    let mut t4 = c.target(4, 2, "p-4");
    let mut t5 = c.target(5, 2, "p-5");
    t4.checksum.clear();
    t5.checksum.clear();
    let req = request((0..K).map(|i| c.source(i)).collect(), vec![t4, t5]);
    let resp = c.meta(1).rebuild(req).await.expect("rebuild").into_inner();
    for s in &resp.shards {
        assert_eq!(s.checksum, c.placed[s.index as usize].2);
        let bytes = get(&mut c.meta(2), &s.shard_id).await.expect("read");
        assert!(bytes == c.shards[s.index as usize]);
    }
}

/// Flips one payload byte of a shard file `at` bytes past the 64-byte
/// header, so only its block CRC can tell.
fn rot(node: &BlobNode, id: &str, at: usize) {
    let path = node.shard_path(id);
    let mut bytes = std::fs::read(&path).expect("read file");
    bytes[64 + at] ^= 0x40;
    std::fs::write(&path, bytes).expect("write file");
}

#[tokio::test]
async fn a_corrupt_source_is_replaced_by_a_spare() {
    let c = cluster(2_000_000).await;
    let (n2, id2, _) = &c.placed[2];
    rot(&c.nodes[*n2], id2, 1000);
    // k+1 sources, the corrupt one among the first k.
    let req = request(
        vec![
            c.source(0),
            c.source(2),
            c.source(3),
            c.source(4),
            c.source(5),
        ],
        vec![c.target(1, 2, "fb-1")],
    );
    let resp = c.meta(0).rebuild(req).await.expect("rebuild").into_inner();
    assert_eq!(resp.shards[0].checksum, c.placed[1].2);
    assert!(get(&mut c.meta(2), "fb-1").await.expect("read") == c.shards[1]);
    // The source server moved its corrupt shard aside on the read.
    let e = get(&mut c.meta(*n2), id2).await.expect_err("gone");
    assert_eq!(ErrorCode::of(&e), Some(ErrorCode::NoSuchShard));
}

#[tokio::test]
async fn a_failed_rebuild_commits_nothing() {
    let c = cluster(2_000_000).await;
    // Exactly k sources, one missing: no spare to fall back on.
    let mut gone = c.source(3);
    gone.shard_id = "no-such-shard".into();
    let req = request(
        vec![c.source(0), c.source(1), c.source(2), gone],
        vec![c.target(4, 0, "nf-4"), c.target(5, 1, "nf-5")],
    );
    let e = c.meta(0).rebuild(req).await.expect_err("no spare");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert!(e.message().contains("no-such-shard"), "{}", e.message());
    for (node, id) in [(0, "nf-4"), (1, "nf-5")] {
        assert!(!c.exists(node, id).await, "{id} must not be committed");
    }
}

#[tokio::test]
async fn a_source_failing_midway_with_no_spare_commits_nothing() {
    let c = cluster(9_000_000).await;
    // Rotten past the first window: the targets already have 1 MiB each
    // when the source fails.
    let (n, id, _) = &c.placed[2];
    rot(&c.nodes[*n], id, 1_500_000);
    let req = request(
        (0..K).map(|i| c.source(i)).collect(),
        vec![c.target(4, 0, "mid-4"), c.target(5, 1, "mid-5")],
    );
    let e = c.meta(0).rebuild(req).await.expect_err("no spare");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    // Give an aborted upload time to (wrongly) finish, then look.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for (node, id) in [(0, "mid-4"), (1, "mid-5")] {
        assert!(
            !c.exists(node, id).await,
            "{id}: no partial shard committed"
        );
    }
}

#[tokio::test]
async fn a_rebuilt_shard_that_does_not_match_the_map_is_refused_and_removed_here() {
    let c = cluster(700_000).await;
    // Sources from another set of the same length: the rebuild succeeds
    // bytewise, but the result cannot match the map's checksum.
    let other = encode(&common::data(700_000, 99), 1 << 20);
    let mut wrong = c.source(0);
    wrong.shard_id = "other-0".into();
    put(&mut c.meta(0), "other-0", 0, &other[0]).await;
    let req = request(
        vec![wrong, c.source(1), c.source(2), c.source(3)],
        vec![c.target(4, 0, "bad-4")],
    );
    let e = c.meta(0).rebuild(req).await.expect_err("mismatch");
    assert_eq!(ErrorCode::of(&e), Some(ErrorCode::ShardCorrupt), "{e:?}");
    // Written to this server's own address: deleted again.
    assert!(!c.exists(0, "bad-4").await);
}

#[tokio::test]
async fn malformed_requests_are_refused_before_any_byte_moves() {
    let c = cluster(100_000).await;
    let good = || {
        request(
            (0..K).map(|i| c.source(i)).collect(),
            vec![c.target(4, 0, "m-4")],
        )
    };
    let mut no_parity = good();
    no_parity.parity_shards = 0;
    let mut too_few = good();
    too_few.sources.pop();
    let mut overwrite = good();
    overwrite.targets[0].shard_id = c.placed[0].1.clone();
    let mut twice = good();
    twice.targets[0].index = 0;
    let mut outside = good();
    outside.targets[0].index = (K + M) as u32;
    let mut bad_id = good();
    bad_id.targets[0].shard_id = "../escape".into();
    let mut no_targets = good();
    no_targets.targets.clear();
    for (what, req) in [
        ("m = 0", no_parity),
        ("fewer than k sources", too_few),
        ("target id = a source id", overwrite),
        ("target index among the sources", twice),
        ("index outside k+m", outside),
        ("invalid id", bad_id),
        ("no targets", no_targets),
    ] {
        let e = c.meta(0).rebuild(req).await.expect_err(what);
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{what}: {e:?}");
    }
    assert!(!c.exists(0, "m-4").await);
    // The source named as a target is intact.
    assert!(get(&mut c.meta(0), &c.placed[0].1).await.expect("src") == c.shards[0]);
}

fn tmp_files(node: &BlobNode) -> usize {
    std::fs::read_dir(node.dir.path().join("tmp"))
        .expect("tmp")
        .count()
}

#[tokio::test]
async fn a_target_that_cannot_be_opened_leaves_no_put_running() {
    let c = cluster(300_000).await;
    let mut unreachable = c.target(5, 2, "fo-5");
    unreachable.address = "not an address".into();
    let req = request(
        (0..K).map(|i| c.source(i)).collect(),
        vec![c.target(4, 1, "fo-4"), unreachable],
    );
    let e = c.meta(0).rebuild(req).await.expect_err("bad address");
    assert_eq!(
        ErrorCode::of(&e),
        Some(ErrorCode::MalformedRequest),
        "{e:?}"
    );
    // The put already opened to server 1 was abandoned: no stream left
    // hanging there with its temp file, and nothing committed.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(tmp_files(&c.nodes[1]), 0, "a put is still open on server 1");
    assert!(!c.exists(1, "fo-4").await);
}

#[tokio::test]
async fn a_rebuild_asked_while_another_runs_is_refused_at_once() {
    let c = cluster(300_000).await;
    // A server whose rebuilds read 10 kB/s: the first takes ~30 s.
    let slow = BlobNode::start_with_repair_rate(&c.ca, "blob-slow", vec![], 10_000.0).await;
    let mut first_client = client(&c.ca, Role::Meta, &slow.addr);
    let first = request(
        (0..K).map(|i| c.source(i)).collect(),
        vec![pb::RebuildTarget {
            address: slow.addr.clone(),
            ..c.target(4, 0, "busy-4")
        }],
    );
    let running = tokio::spawn(async move { first_client.rebuild(first).await });
    // Running once its put to itself has begun.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while tmp_files(&slow) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never started");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let second = request(
        (0..K).map(|i| c.source(i)).collect(),
        vec![c.target(5, 1, "busy-5")],
    );
    let mut meta = client(&c.ca, Role::Meta, &slow.addr);
    let e = tokio::time::timeout(std::time::Duration::from_secs(5), meta.rebuild(second))
        .await
        .expect("answered at once, not queued")
        .expect_err("busy");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert_eq!(ErrorCode::of(&e), Some(ErrorCode::Unavailable));
    assert!(e.message().contains("busy"), "{}", e.message());
    assert!(!c.exists(1, "busy-5").await);
    assert!(!running.is_finished(), "the first is still running");
    running.abort();
}

/// A move of index `index` from its server onto server `to`: the copy's
/// own source first, then `fallback`.
fn copy_request(
    c: &Cluster,
    index: usize,
    to: usize,
    id: &str,
    fallback: &[usize],
) -> pb::RebuildRequest {
    let mut sources = vec![c.source(index)];
    sources.extend(fallback.iter().map(|i| c.source(*i)));
    pb::RebuildRequest {
        copy: true,
        ..request(sources, vec![c.target(index, to, id)])
    }
}

#[tokio::test]
async fn a_copy_moves_a_shard_byte_for_byte_with_the_maps_checksum() {
    // Several windows, the last one partial.
    let c = cluster(9_500_123).await;
    let shard_len = c.shards[2].len();
    // Index 2 lives on server 2; move it to server 0, with a fallback
    // that must not be touched.
    let req = copy_request(&c, 2, 0, "moved-2", &[0, 1, 3, 4]);
    let resp = c.meta(0).rebuild(req).await.expect("copy").into_inner();
    assert_eq!(resp.shards.len(), 1);
    let got = &resp.shards[0];
    assert_eq!((got.index, got.shard_id.as_str()), (2, "moved-2"));
    assert_eq!(got.length, shard_len as u64);
    assert_eq!(got.checksum, c.placed[2].2, "the map's checksum");
    // Read once, not k times: nothing was reconstructed.
    assert_eq!(resp.bytes_read, shard_len as u64);
    assert_eq!(resp.bytes_written, shard_len as u64);
    let bytes = get(&mut c.meta(0), "moved-2").await.expect("read back");
    assert!(bytes == c.shards[2], "byte-identical");
    // The source stays until the meta tier frees it.
    assert!(get(&mut c.meta(2), &c.placed[2].1).await.expect("source") == c.shards[2]);
}

#[tokio::test]
async fn a_copy_whose_source_is_gone_is_reconstructed_from_the_others() {
    let c = cluster(2_500_000).await;
    let shard_len = c.shards[5].len();
    // Index 5's server lost it (a dead or wiped disk).
    let mut req = copy_request(&c, 5, 0, "moved-5", &[0, 1, 2, 3, 4]);
    req.sources[0].shard_id = "no-such-shard".into();
    let resp = c.meta(1).rebuild(req).await.expect("fallback").into_inner();
    assert_eq!(resp.shards[0].checksum, c.placed[5].2);
    assert_eq!(resp.bytes_read, (K * shard_len) as u64, "reconstructed");
    assert!(get(&mut c.meta(0), "moved-5").await.expect("read") == c.shards[5]);

    // Without a fallback, the move fails and leaves nothing behind.
    let mut req = copy_request(&c, 4, 0, "lost-4", &[]);
    req.sources[0].shard_id = "no-such-shard".into();
    let e = c.meta(1).rebuild(req).await.expect_err("no fallback");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    assert!(!c.exists(0, "lost-4").await);
}

#[tokio::test]
async fn a_copy_source_failing_after_bytes_were_written_fails_the_move_whole() {
    let c = cluster(9_000_000).await;
    // Rotten past the first window: the target already holds copied bytes.
    let (n, id, _) = &c.placed[3];
    rot(&c.nodes[*n], id, 1_500_000);
    let req = copy_request(&c, 3, 1, "half-3", &[0, 1, 2, 4]);
    let e = c.meta(1).rebuild(req).await.expect_err("no splice");
    assert_eq!(e.code(), tonic::Code::Unavailable, "{e:?}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!c.exists(1, "half-3").await, "no partial shard committed");
}

#[tokio::test]
async fn malformed_copies_are_refused_before_any_byte_moves() {
    let c = cluster(100_000).await;
    let good = || copy_request(&c, 4, 0, "mc-4", &[0, 1, 2, 3]);
    c.meta(1)
        .rebuild(copy_request(&c, 4, 0, "mc-ok", &[]))
        .await
        .expect("a copy with no fallback is fine");
    let mut two_targets = good();
    two_targets.targets.push(c.target(5, 1, "mc-5"));
    let mut no_target = good();
    no_target.targets.clear();
    let mut no_source = good();
    no_source.sources.clear();
    let mut wrong_index = good();
    wrong_index.sources.swap(0, 1);
    let mut short_fallback = good();
    short_fallback.sources.truncate(K - 1);
    let mut fallback_has_target = good();
    fallback_has_target.sources[1] = pb::RebuildSource {
        shard_id: "other-id".into(),
        ..c.source(4)
    };
    let mut twice = good();
    twice.sources[3] = pb::RebuildSource {
        shard_id: "dup-id".into(),
        ..c.source(1)
    };
    let mut overwrite = good();
    overwrite.targets[0].shard_id = c.placed[4].1.clone();
    for (what, req) in [
        ("two targets", two_targets),
        ("no target", no_target),
        ("no source", no_source),
        ("first source of another index", wrong_index),
        ("fallback of fewer than k", short_fallback),
        ("fallback with the target's index", fallback_has_target),
        ("fallback index twice", twice),
        ("target id = the source's", overwrite),
    ] {
        let e = c.meta(1).rebuild(req).await.expect_err(what);
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{what}: {e:?}");
    }
    assert!(!c.exists(0, "mc-4").await);
    assert!(get(&mut c.meta(1), &c.placed[4].1).await.expect("src") == c.shards[4]);
}
