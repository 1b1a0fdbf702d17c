//! The gateway's pipeline stages against real blob-servers: chunk, seal,
//! erasure-code, fan out to 6 servers, read back through any 4; no
//! plaintext on any server's disk; the ack rule refuses a write with
//! fewer than k+1 durable shards and answers what landed (which the
//! gateway hands to the meta tier to free: shard_authority.rs).

use hamster_gateway::pipeline::chunk::Chunker;
use hamster_gateway::pipeline::encrypt::{SEGMENT_SIZE, SegmentCipher, TAG_LEN};
use hamster_gateway::pipeline::erasure::Coder;
use hamster_gateway::pipeline::fanin::{Source, read_stripe};
use hamster_gateway::pipeline::fanout::{AckError, Fanout, Landed, Target};
use hamster_proto::Role;
use hamster_proto::envelope::DataKey;
use hamster_proto::pb::{StatShardRequest, blob_client::BlobClient};
use hamster_proto::transport::Pool;
use hamster_tests::{Cluster, Kind, Node};

const HEDGE: std::time::Duration = std::time::Duration::from_millis(250);
const MARKER: &[u8] = b"HAMSTER-PLAINTEXT-MARKER-7f3a";

fn object(len: usize) -> Vec<u8> {
    MARKER.iter().copied().cycle().take(len).collect()
}

struct Written {
    landed: Result<Vec<Landed>, (AckError, Vec<Landed>)>,
    stripe_lens: Vec<usize>,
}

async fn write(
    c: &Cluster,
    blobs: &[Node],
    name: &str,
    data: &[u8],
    cipher: &SegmentCipher,
    gw: &Pool,
) -> Written {
    let coder = Coder::new(4, 2).expect("4+2");
    let targets = blobs
        .iter()
        .enumerate()
        .map(|(i, &b)| Target {
            blob_id: c.node(b).id.clone(),
            address: c.node(b).addr.to_string(),
            shard_id: format!("{name}.s{i}"),
        })
        .collect();
    let mut fanout = Fanout::open(targets, gw);
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        data.chunks(65_536).map(|p| Ok(p.to_vec())).collect();
    let mut chunker = Chunker::new(futures::stream::iter(pieces));
    let mut stripe_lens = Vec::new();
    while let Some(seg) = chunker.next().await.expect("body") {
        let sealed = cipher.seal(seg.index, seg.last, &seg.data);
        stripe_lens.push(sealed.len());
        fanout.send(coder.encode(sealed)).await;
    }
    Written {
        landed: fanout.finish(4).await,
        stripe_lens,
    }
}

async fn read(
    landed: &[Landed],
    stripe_lens: &[usize],
    cipher: &SegmentCipher,
    gw: &Pool,
) -> Result<Vec<u8>, String> {
    let coder = Coder::new(4, 2).expect("4+2");
    let mut sources: Vec<Source> = (0..6)
        .map(|i| Source {
            index: i,
            address: "127.0.0.1:1".into(),
            shard_id: String::new(),
        })
        .collect();
    for l in landed {
        sources[l.index as usize] = Source {
            index: l.index,
            address: l.target.address.clone(),
            shard_id: l.target.shard_id.clone(),
        };
    }
    let full = coder.chunk_len(SEGMENT_SIZE + TAG_LEN) as u64;
    let mut out = Vec::new();
    for (s, &len) in stripe_lens.iter().enumerate() {
        let sealed = read_stripe(&coder, &sources, s as u64, full, len, gw, HEDGE)
            .await
            .map_err(|e| e.to_string())?;
        let last = s + 1 == stripe_lens.len();
        out.extend(
            cipher
                .open(s as u64, last, &sealed)
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(out)
}

/// Six healthy blob-servers and a gateway identity to call them with.
async fn six_blob_servers() -> (Cluster, Vec<Node>, Pool) {
    let mut c = Cluster::new();
    let blobs: Vec<Node> = (1..=6)
        .map(|i| c.start(Kind::Blob, &format!("blob-{i}")))
        .collect();
    for &b in &blobs {
        c.wait_healthy(b).await;
    }
    let gw = Pool::new(c.gateway_identity("gw-test"), &[Role::Blob]);
    (c, blobs, gw)
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p))
        } else {
            out.push(p)
        }
    }
    out
}

#[tokio::test]
async fn an_object_round_trips_through_six_servers_and_survives_two_losses() {
    let (mut c, blobs, gw) = six_blob_servers().await;
    let dek = DataKey::generate();
    let cipher = SegmentCipher::new(&dek);
    let data = object(3 * SEGMENT_SIZE + 5);
    let w = write(&c, &blobs, "obj1", &data, &cipher, &gw).await;
    let landed = w.landed.expect("all shards durable");
    assert_eq!(landed.len(), 6);
    assert_eq!(w.stripe_lens.len(), 4);

    // No plaintext on any blob-server's disk.
    for &b in &blobs {
        for f in files_under(&c.node(b).dir.join("data")) {
            let bytes = std::fs::read(&f).expect("read");
            assert!(
                !bytes.windows(MARKER.len()).any(|w| w == MARKER),
                "plaintext in {}",
                f.display()
            );
        }
    }

    assert_eq!(
        read(&landed, &w.stripe_lens, &cipher, &gw)
            .await
            .expect("read"),
        data
    );
    // Lose a data shard and a parity shard's server: still readable.
    c.kill(blobs[0]);
    c.kill(blobs[4]);
    assert_eq!(
        read(&landed, &w.stripe_lens, &cipher, &gw)
            .await
            .expect("degraded read"),
        data
    );
    // Lose a third: refused, never wrong bytes.
    c.kill(blobs[2]);
    assert!(read(&landed, &w.stripe_lens, &cipher, &gw).await.is_err());
}

#[tokio::test]
async fn the_ack_rule_needs_k_plus_one_and_answers_what_landed_below_it() {
    let (mut c, blobs, gw) = six_blob_servers().await;
    let cipher = SegmentCipher::new(&DataKey::generate());
    let data = object(SEGMENT_SIZE + 100);

    // One server down: 5 of 6 durable >= k+1 = 5, the write stands.
    c.kill(blobs[5]);
    let w = write(&c, &blobs, "degraded", &data, &cipher, &gw).await;
    let landed = w.landed.expect("k+1 durable is enough");
    assert_eq!(landed.len(), 5);
    assert_eq!(
        read(&landed, &w.stripe_lens, &cipher, &gw)
            .await
            .expect("read"),
        data
    );

    // Two down: 4 durable < 5, refused; the 4 that landed are answered,
    // for the gateway to hand to the meta tier (it cannot delete them).
    c.kill(blobs[4]);
    let w = write(&c, &blobs, "refused", &data, &cipher, &gw).await;
    let (err, landed) = w.landed.expect_err("below k+1");
    assert_eq!(
        err,
        AckError::TooFewShards {
            durable: 4,
            total: 6,
            needed: 5
        }
    );
    for l in &landed {
        let mut client = BlobClient::new(gw.channel(&l.target.address).expect("ch"));
        let st = client
            .stat_shard(StatShardRequest {
                shard_id: l.target.shard_id.clone(),
            })
            .await
            .expect("stat");
        assert!(
            st.into_inner().exists,
            "landed shard {} not stored",
            l.target.shard_id
        );
    }
}
