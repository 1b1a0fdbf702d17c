//! The repair planner's choice for one unit, as a pure function of the
//! unit's map, which of its indexes are good, and the registry: which
//! good shards to read and which server takes each missing index.
//!
//! Placement follows the gateway's rules (distinct servers, failure
//! domains spread, free space) restricted to what a repair can change:
//! a target holds no good shard of the unit, each target is a different
//! server, the least-used failure domain goes first, then a server whose
//! copy of this unit did NOT just go bad (its disk may be failing), then
//! the emptiest server. An index with no eligible server is left for a
//! later round.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::state::model::{BlobServer, ShardMap};

/// A good shard the rebuilder reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub index: u32,
    pub address: String,
    pub shard_id: String,
}

/// Where a missing index is rebuilt, and what the map holds there now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub index: u32,
    pub blob_id: String,
    pub address: String,
    /// The map's shard id at `index` now; "" if the index is absent.
    pub old_shard_id: String,
    /// The map's checksum at `index` (the rebuilt shard must match);
    /// empty if the index is absent.
    pub expected_checksum: Vec<u8>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// k good shards, plus one spare when there is one (the rebuilder
    /// falls back to it if a source fails mid-way).
    pub sources: Vec<Source>,
    pub targets: Vec<Target>,
    /// Missing indexes no eligible server could take this time.
    pub unplaced: Vec<u32>,
}

/// Why a unit gets no plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoPlan {
    /// Nothing is missing.
    Complete,
    /// Fewer than k good shards that can be read.
    Unrecoverable,
    /// Missing indexes, but no eligible server for any of them.
    NoServers(Vec<u32>),
}

/// A server may take a rebuilt or moved shard: in service (not
/// draining, drained or removed) and not down, heard from since
/// `fresh_since_ms`, with free space.
pub fn eligible(s: &BlobServer, fresh_since_ms: i64) -> bool {
    s.usable() && s.last_heartbeat_ms >= fresh_since_ms && s.free_bytes > 0
}

/// Plans the repair of one unit. `good`: its indexes known good (on a
/// live server, no fault); `width`: k + m.
pub fn plan(
    map: &ShardMap,
    good: &[u32],
    width: u32,
    servers: &[BlobServer],
    fresh_since_ms: i64,
) -> Result<Plan, NoPlan> {
    let k = map.data_shards as usize;
    let by_id: HashMap<&str, &BlobServer> = servers.iter().map(|s| (s.id.as_str(), s)).collect();
    let good: BTreeSet<u32> = good.iter().copied().filter(|i| *i < width).collect();
    let at: BTreeMap<u32, &crate::state::model::ShardLocation> =
        map.shards.iter().map(|s| (s.index, s)).collect();

    // Readable good shards, in index order (data shards first).
    let mut sources: Vec<Source> = good
        .iter()
        .filter_map(|i| {
            let loc = at.get(i)?;
            let server = by_id.get(loc.blob_id.as_str())?;
            Some(Source {
                index: *i,
                address: server.address.clone(),
                shard_id: loc.shard_id.clone(),
            })
        })
        .collect();
    let missing: Vec<u32> = (0..width).filter(|i| !good.contains(i)).collect();
    if missing.is_empty() {
        return Err(NoPlan::Complete);
    }
    if k == 0 || sources.len() < k {
        return Err(NoPlan::Unrecoverable);
    }
    sources.truncate(k + 1);

    // Servers holding a good shard keep it: never a target. Their domains
    // count as used.
    let mut taken: BTreeSet<&str> = good
        .iter()
        .filter_map(|i| at.get(i).map(|l| l.blob_id.as_str()))
        .collect();
    let mut domain_use: HashMap<&str, usize> = HashMap::new();
    for id in &taken {
        if let Some(s) = by_id.get(id) {
            *domain_use.entry(s.failure_domain.as_str()).or_default() += 1;
        }
    }
    // Servers whose copy of this unit went bad (a fault, not a silence):
    // still eligible, but last among equals.
    let went_bad: BTreeSet<&str> = map
        .shards
        .iter()
        .filter(|l| !good.contains(&l.index))
        .map(|l| l.blob_id.as_str())
        .collect();
    let mut out = Plan {
        sources,
        ..Plan::default()
    };
    for index in missing {
        let best = servers
            .iter()
            .filter(|s| eligible(s, fresh_since_ms) && !taken.contains(s.id.as_str()))
            .min_by(|a, b| {
                let use_of = |s: &BlobServer| {
                    domain_use
                        .get(s.failure_domain.as_str())
                        .copied()
                        .unwrap_or(0)
                };
                let bad = |s: &BlobServer| went_bad.contains(s.id.as_str());
                use_of(a)
                    .cmp(&use_of(b))
                    .then(bad(a).cmp(&bad(b)))
                    .then(b.free_bytes.cmp(&a.free_bytes))
                    .then(a.id.cmp(&b.id))
            });
        let Some(server) = best else {
            out.unplaced.push(index);
            continue;
        };
        taken.insert(&server.id);
        *domain_use
            .entry(server.failure_domain.as_str())
            .or_default() += 1;
        let old = at.get(&index);
        out.targets.push(Target {
            index,
            blob_id: server.id.clone(),
            address: server.address.clone(),
            old_shard_id: old.map(|l| l.shard_id.clone()).unwrap_or_default(),
            expected_checksum: old.map(|l| l.checksum.clone()).unwrap_or_default(),
        });
    }
    if out.targets.is_empty() {
        return Err(NoPlan::NoServers(out.unplaced));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::model::{BlobState, Lifecycle, ShardLocation};

    const NOW: i64 = 1_000_000;

    fn server(id: &str, domain: &str, free: u64) -> BlobServer {
        BlobServer {
            id: id.into(),
            address: format!("{id}:7000"),
            failure_domain: domain.into(),
            capacity_bytes: 1 << 40,
            free_bytes: free,
            state: BlobState::Active,
            last_heartbeat_ms: NOW,
            ..Default::default()
        }
    }

    /// A k+m map with index i on `blobs[i]` (None: index absent).
    fn map(k: u32, m: u32, blobs: &[Option<&str>]) -> ShardMap {
        ShardMap {
            data_shards: k,
            parity_shards: m,
            segment_size: 1 << 20,
            shards: blobs
                .iter()
                .enumerate()
                .filter_map(|(i, b)| {
                    b.map(|b| ShardLocation {
                        index: i as u32,
                        blob_id: b.into(),
                        shard_id: format!("s{i}"),
                        checksum: vec![i as u8; 4],
                    })
                })
                .collect(),
        }
    }

    #[test]
    fn targets_are_distinct_servers_holding_no_good_shard() {
        // 2+2 on b0..b3; b2 and b3 lost their shards (faults); five spare
        // servers, all in b0's domain.
        let mut servers: Vec<BlobServer> = (0..4)
            .map(|i| server(&format!("b{i}"), &format!("d{i}"), 100))
            .collect();
        servers.extend((4..9).map(|i| server(&format!("b{i}"), "d0", 100)));
        let m = map(2, 2, &[Some("b0"), Some("b1"), Some("b2"), Some("b3")]);
        let p = plan(&m, &[0, 1], 4, &servers, NOW).expect("plan");
        assert_eq!(p.targets.len(), 2);
        let ids: BTreeSet<&str> = p.targets.iter().map(|t| t.blob_id.as_str()).collect();
        assert_eq!(ids.len(), 2, "distinct: {p:?}");
        assert!(!ids.contains("b0") && !ids.contains("b1"), "{p:?}");
        // The servers whose shards went bad are eligible (their old shard
        // is replaced) and come first: their domains are unused, d0 is not.
        assert_eq!(ids, BTreeSet::from(["b2", "b3"]));
        assert_eq!(p.targets[0].index, 2);
        assert_eq!(p.targets[0].old_shard_id, "s2");
        assert_eq!(p.targets[0].expected_checksum, vec![2u8; 4]);
        // Sources: the two good shards (no spare exists).
        let src: Vec<(u32, &str)> = p
            .sources
            .iter()
            .map(|s| (s.index, s.address.as_str()))
            .collect();
        assert_eq!(src, vec![(0, "b0:7000"), (1, "b1:7000")]);
    }

    #[test]
    fn a_server_whose_copy_went_bad_comes_last_among_equals() {
        // 2+1 on b0..b2, every server its own domain; b2's shard rotted.
        // b3 (less free space) is preferred to b2; with b3 gone, b2 is
        // still used rather than leaving the index unrepaired.
        let mut servers: Vec<BlobServer> = (0..4)
            .map(|i| server(&format!("b{i}"), &format!("d{i}"), 100))
            .collect();
        servers[2].free_bytes = 1_000_000;
        let m = map(2, 1, &[Some("b0"), Some("b1"), Some("b2")]);
        let p = plan(&m, &[0, 1], 3, &servers, NOW).expect("plan");
        assert_eq!(p.targets[0].blob_id, "b3", "{p:?}");
        servers.truncate(3);
        let p = plan(&m, &[0, 1], 3, &servers, NOW).expect("plan");
        assert_eq!(p.targets[0].blob_id, "b2", "{p:?}");
    }

    #[test]
    fn an_unused_failure_domain_wins_over_free_space() {
        // Good shards in domains a and b; candidates: a roomy server in a,
        // a small one in c.
        let servers = vec![
            server("a1", "a", 100),
            server("b1", "b", 100),
            server("a2", "a", 1_000_000),
            server("c1", "c", 10),
            server("c2", "c", 5),
        ];
        let m = map(2, 1, &[Some("a1"), Some("b1"), None]);
        let p = plan(&m, &[0, 1], 3, &servers, NOW).expect("plan");
        assert_eq!(p.targets.len(), 1);
        assert_eq!(p.targets[0].blob_id, "c1", "unused domain, then most free");
        // A degraded commit's absent index: no old id, no checksum.
        assert_eq!(p.targets[0].old_shard_id, "");
        assert!(p.targets[0].expected_checksum.is_empty());
        // Two missing: the second goes to the next least-used domain.
        let m = map(1, 3, &[Some("a1"), None, None, None]);
        let p = plan(&m, &[0], 4, &servers, NOW).expect("plan");
        let ids: Vec<&str> = p.targets.iter().map(|t| t.blob_id.as_str()).collect();
        // Index 3: a and c are used once each; a2 has more free space.
        assert_eq!(ids, vec!["b1", "c1", "a2"]);
    }

    #[test]
    fn an_index_without_an_eligible_server_is_left_for_later() {
        // 2+2 on exactly four servers; b3 is down, so its index has no
        // server left that holds no shard of the unit.
        let mut servers: Vec<BlobServer> = (0..4)
            .map(|i| server(&format!("b{i}"), &format!("d{i}"), 100))
            .collect();
        servers[3].state = BlobState::Down;
        let m = map(2, 2, &[Some("b0"), Some("b1"), Some("b2"), Some("b3")]);
        assert_eq!(
            plan(&m, &[0, 1, 2], 4, &servers, NOW),
            Err(NoPlan::NoServers(vec![3]))
        );
        // A fifth server, but silent, full, or down: still none.
        let mut fifth = server("b4", "d4", 100);
        fifth.last_heartbeat_ms = NOW - 1;
        servers.push(fifth.clone());
        assert_eq!(
            plan(&m, &[0, 1, 2], 4, &servers, NOW),
            Err(NoPlan::NoServers(vec![3]))
        );
        servers.pop();
        fifth.last_heartbeat_ms = NOW;
        fifth.free_bytes = 0;
        servers.push(fifth.clone());
        assert!(matches!(
            plan(&m, &[0, 1, 2], 4, &servers, NOW),
            Err(NoPlan::NoServers(_))
        ));
        // Healthy: taken. Two missing (b2 down too), one server: one
        // placed, one left.
        servers.pop();
        fifth.free_bytes = 100;
        servers.push(fifth);
        servers[2].state = BlobState::Down;
        let p = plan(&m, &[0, 1], 4, &servers, NOW).expect("plan");
        assert_eq!(p.targets.len(), 1);
        assert_eq!(
            (p.targets[0].index, p.targets[0].blob_id.as_str()),
            (2, "b4")
        );
        assert_eq!(p.unplaced, vec![3]);
    }

    #[test]
    fn servers_leaving_service_take_no_rebuilt_shard_but_are_read() {
        // 2+1 on b0..b2; b2 is down. b3 is the only other server.
        for leaving in [Lifecycle::Draining, Lifecycle::Drained, Lifecycle::Removed] {
            let mut servers: Vec<BlobServer> = (0..4)
                .map(|i| server(&format!("b{i}"), &format!("d{i}"), 100))
                .collect();
            servers[2].state = BlobState::Down;
            servers[3].lifecycle = leaving;
            let m = map(2, 1, &[Some("b0"), Some("b1"), Some("b2")]);
            assert_eq!(
                plan(&m, &[0, 1], 3, &servers, NOW),
                Err(NoPlan::NoServers(vec![2])),
                "{leaving:?}"
            );
            servers[3].lifecycle = Lifecycle::In;
            let p = plan(&m, &[0, 1], 3, &servers, NOW).expect("plan");
            assert_eq!(p.targets[0].blob_id, "b3");
        }
        // A draining server's good shard is still a source.
        let mut servers: Vec<BlobServer> = (0..4)
            .map(|i| server(&format!("b{i}"), &format!("d{i}"), 100))
            .collect();
        servers[0].lifecycle = Lifecycle::Draining;
        servers[2].state = BlobState::Down;
        let m = map(2, 1, &[Some("b0"), Some("b1"), Some("b2")]);
        let p = plan(&m, &[0, 1], 3, &servers, NOW).expect("plan");
        assert_eq!(p.sources[0].address, "b0:7000");
        assert_eq!(p.targets[0].blob_id, "b3");
    }

    #[test]
    fn fewer_than_k_good_or_nothing_missing_gets_no_plan() {
        let servers: Vec<BlobServer> = (0..6)
            .map(|i| server(&format!("b{i}"), &format!("d{i}"), 100))
            .collect();
        let m = map(3, 1, &[Some("b0"), Some("b1"), Some("b2"), Some("b3")]);
        assert_eq!(
            plan(&m, &[0, 3], 4, &servers, NOW),
            Err(NoPlan::Unrecoverable)
        );
        assert_eq!(
            plan(&m, &[0, 1, 2, 3], 4, &servers, NOW),
            Err(NoPlan::Complete)
        );
        // A good shard on a server the registry no longer lists cannot
        // be read: it does not count as a source.
        let few: Vec<BlobServer> = servers.iter().skip(1).cloned().collect();
        assert_eq!(
            plan(&m, &[0, 1, 2], 4, &few, NOW),
            Err(NoPlan::Unrecoverable)
        );
        // k+1 sources at most.
        let m = map(
            2,
            3,
            &[Some("b0"), Some("b1"), Some("b2"), Some("b3"), None],
        );
        let p = plan(&m, &[0, 1, 2, 3], 5, &servers, NOW).expect("plan");
        assert_eq!(p.sources.len(), 3);
        assert_eq!(p.targets.len(), 1);
        assert_eq!(p.targets[0].index, 4);
    }
}
