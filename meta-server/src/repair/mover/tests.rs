//! The mover's pure pieces, and a drain planned against the real state
//! machine.

use super::*;

fn server(id: &str, heartbeat: i64) -> BlobServer {
    BlobServer {
        id: id.into(),
        state: BlobState::Active,
        last_heartbeat_ms: heartbeat,
        ..Default::default()
    }
}

#[test]
fn the_next_rebalance_waits_for_every_involved_server_to_report() {
    let ended = 10_000;
    let settle = Some((ended, vec!["a".to_string(), "b".to_string()]));
    let mut servers = vec![server("a", ended + SETTLE_MS), server("b", ended + 5)];
    assert!(
        !settled(&settle, &servers),
        "b reported before the round's frees"
    );
    servers[1].last_heartbeat_ms = ended + SETTLE_MS;
    assert!(settled(&settle, &servers));
    // One that left service (or is gone) is not waited for.
    servers[1].last_heartbeat_ms = ended;
    servers[1].state = BlobState::Down;
    assert!(settled(&settle, &servers));
    servers[1].state = BlobState::Active;
    servers[1].lifecycle = Lifecycle::Draining;
    assert!(settled(&settle, &servers));
    assert!(settled(&settle, &servers[..1]));
    assert!(settled(&None, &[]));
}

#[test]
fn a_page_is_full_when_it_holds_the_limit_in_units() {
    let u = |key: &str, index: u32| UnitOnBlob {
        unit: Unit::version("b", key, "v", 0),
        map: Default::default(),
        index,
        shard_id: format!("{key}{index}"),
    };
    // Two shards of one unit count once.
    assert_eq!(units_in(&[u("a", 0), u("a", 1), u("b", 0)]), 2);
    assert_eq!(units_in(&[]), 0);
}

/// Against the real state machine: a drain planned page by page as
/// the mover does, each move swapped in as a successful copy would
/// be, empties the server, keeps every map on distinct servers, and
/// lets the drain finish.
mod against_the_state {
    use std::sync::Arc;

    use sqlx::Sqlite;
    use sqlx::pool::PoolConnection;
    use tempfile::TempDir;

    use super::*;
    use crate::raft::state_machine::StateDb;
    use crate::repair::exec::TARGET_FRESH_MS;
    use crate::state::apply::apply;
    use crate::state::commands::Command;
    use crate::state::model::{ShardLocation, ShardMap, ShardSwap, Version};

    const NOW: i64 = 1_600_000_000_000;

    struct Db {
        conn: PoolConnection<Sqlite>,
        seq: u64,
        _state: Arc<StateDb>,
        _dir: TempDir,
    }

    impl Db {
        async fn new() -> Db {
            let dir = tempfile::tempdir().expect("tempdir");
            let state = StateDb::open(dir.path()).await.expect("open");
            let conn = state.acquire().await.expect("connection");
            Db {
                conn,
                seq: 0,
                _state: state,
                _dir: dir,
            }
        }

        async fn run(&mut self, op: Op) -> R {
            self.seq += 1;
            apply(&mut self.conn, self.seq, &Command::new("", NOW, op))
                .await
                .expect("apply")
        }

        /// Applies `op`, expecting it accepted.
        async fn ok(&mut self, op: Op) {
            let what = format!("{op:?}");
            let r = self.run(op).await;
            assert!(!matches!(r, R::Err(_)), "{what}: {r:?}");
        }
    }

    fn map(n: usize) -> ShardMap {
        // Index 0 on blob-0, the others on three of blob-1..6.
        let blobs = [0, 1 + n % 6, 1 + (n + 1) % 6, 1 + (n + 2) % 6];
        ShardMap {
            data_shards: 2,
            parity_shards: 2,
            segment_size: 1 << 20,
            shards: blobs
                .iter()
                .enumerate()
                .map(|(i, b)| ShardLocation {
                    index: i as u32,
                    blob_id: format!("blob-{b}"),
                    shard_id: format!("o{n}-s{i}"),
                    checksum: vec![i as u8, n as u8],
                })
                .collect(),
        }
    }

    /// Seven servers, each its own failure domain; ten objects with a
    /// shard on blob-0; blob-0 draining.
    async fn cluster() -> Db {
        let mut db = Db::new().await;
        db.ok(Op::CreateBucket {
            name: "bkt".into(),
            object_lock_enabled: false,
            owner: None,
        })
        .await;
        for i in 0..7 {
            let server = BlobServer {
                id: format!("blob-{i}"),
                address: format!("10.0.0.{i}:7000"),
                failure_domain: format!("d{i}"),
                capacity_bytes: 1 << 30,
                free_bytes: 1 << 29,
                ..Default::default()
            };
            db.ok(Op::RegisterBlob { server }).await;
            db.ok(Op::BlobHeartbeat {
                id: format!("blob-{i}"),
                capacity_bytes: 1 << 30,
                free_bytes: 1 << 29,
                shards_stored: 10,
                bytes_stored: 10 << 20,
            })
            .await;
        }
        for n in 0..10 {
            let version = Version {
                bucket: "bkt".into(),
                key: format!("k{n}"),
                version_id: format!("v{n}"),
                size: 10,
                etag: "e".into(),
                created_at_ms: NOW,
                shard_map: Some(map(n)),
                wrapped_dek: vec![1],
                kek_fingerprint: "kek".into(),
                ..Default::default()
            };
            db.ok(Op::commit_version(version)).await;
        }
        db.ok(Op::DrainBlob {
            id: "blob-0".into(),
            to: String::new(),
        })
        .await;
        db
    }

    async fn view(db: &mut Db) -> View {
        View {
            servers: q::blob_servers(&mut db.conn).await.expect("servers"),
            fresh_since: NOW - TARGET_FRESH_MS,
            addresses: HashMap::new(),
        }
    }

    #[tokio::test]
    async fn a_drain_moves_every_shard_off_and_then_finishes() {
        let mut db = cluster().await;
        let (mut memory, mut round) = (Memory::default(), Round::default());
        let mut moved = 0;
        let mut units = HashSet::new();
        for _ in 0..10 {
            let view = view(&mut db).await;
            let page = q::units_on_blob(&mut db.conn, "blob-0", None, 3)
                .await
                .expect("page");
            if page.is_empty() {
                break;
            }
            let mut batch = Batch {
                room: 2,
                ..Batch::default()
            };
            let from = view.servers[0].clone();
            // Room for two: a page of three is not done.
            let whole = page.len() <= 2;
            let done = plan_page(&view, &from, page, &mut batch, &mut memory, &mut round);
            assert_eq!(done, whole);
            assert_eq!(batch.jobs.len(), 2);
            let targets: HashSet<&str> = batch
                .jobs
                .iter()
                .map(|j| j.plan.targets[0].blob_id.as_str())
                .collect();
            assert_eq!(targets.len(), 2, "two moves, two rebuilders");
            for job in &batch.jobs {
                let t = &job.plan.targets[0];
                assert!(job.copy, "blob-0 answers: a copy");
                assert_eq!(job.plan.sources[0].address, "10.0.0.0:7000");
                assert!(job.map.shards.iter().all(|l| l.blob_id != t.blob_id));
                units.insert(job.unit.clone());
                moved += 1;
                let new = ShardLocation {
                    index: t.index,
                    blob_id: t.blob_id.clone(),
                    shard_id: format!("moved-{moved}"),
                    checksum: t.expected_checksum.clone(),
                };
                let r = db
                    .run(Op::MoveShards {
                        unit: job.unit.clone(),
                        swaps: vec![ShardSwap {
                            index: t.index,
                            old_shard_id: t.old_shard_id.clone(),
                            new,
                        }],
                        sources: Vec::new(),
                    })
                    .await;
                // The old copy on blob-0 is what the swap frees.
                let R::Swapped { freed } = r else {
                    panic!("{r:?}");
                };
                assert_eq!(freed.len(), 1);
                assert_eq!(freed[0].shards[0].blob_id, "blob-0");
            }
        }
        assert_eq!(moved, 10);
        assert_eq!(round.waiting, 0);
        let named = q::shards_named_on_count(&mut db.conn, "blob-0").await;
        assert_eq!(named.expect("count"), 0);
        db.ok(Op::FinishDrain {
            id: "blob-0".into(),
        })
        .await;
        let lifecycle = q::blob_lifecycle(&mut db.conn, "blob-0").await;
        assert_eq!(lifecycle.expect("read"), Some(Lifecycle::Drained));
        assert_eq!(units.len(), 10);
        for unit in &units {
            let m = q::unit_map(&mut db.conn, unit).await.expect("read");
            let m = m.expect("map");
            let on: HashSet<&str> = m.shards.iter().map(|l| l.blob_id.as_str()).collect();
            assert_eq!(on.len(), 4, "distinct servers: {m:?}");
            assert!(!on.contains("blob-0"));
        }
        assert_eq!(q::shards_moved(&mut db.conn).await.expect("read"), 10);
    }

    #[tokio::test]
    async fn a_drain_onto_a_server_that_cannot_take_shards_waits_for_it() {
        let mut db = cluster().await;
        db.ok(Op::DrainBlob {
            id: "blob-0".into(),
            to: "blob-6".into(),
        })
        .await;
        db.ok(Op::MarkBlobDown {
            id: "blob-6".into(),
            silent_since_ms: NOW + 1,
        })
        .await;
        let view = view(&mut db).await;
        let from = view.servers[0].clone();
        assert_eq!(from.drain_to, "blob-6");
        let page = q::units_on_blob(&mut db.conn, "blob-0", None, 100)
            .await
            .expect("page");
        // Units blob-6 holds a shard of could never go there: they are
        // placed as usual. The others wait for blob-6.
        let (theirs, wait): (Vec<_>, Vec<_>) = page
            .iter()
            .partition(|u| u.map.shards.iter().any(|l| l.blob_id == "blob-6"));
        let (theirs, wait) = (theirs.len(), wait.len());
        assert!(theirs > 0 && wait > 0, "the fixture has both kinds");
        let (mut memory, mut round) = (Memory::default(), Round::default());
        let mut batch = Batch {
            room: 100,
            ..Batch::default()
        };
        assert!(plan_page(
            &view,
            &from,
            page,
            &mut batch,
            &mut memory,
            &mut round
        ));
        assert_eq!(round.waiting, wait);
        assert_eq!(batch.jobs.len(), theirs);
        for job in &batch.jobs {
            let t = &job.plan.targets[0].blob_id;
            assert!(t != "blob-6" && job.map.shards.iter().all(|l| l.blob_id != *t));
        }
    }
}
