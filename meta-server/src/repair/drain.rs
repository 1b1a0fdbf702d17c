//! A move's choices for one shard, pure (ADR 0025):
//!
//! - [`target`]: where a draining server's shard goes: the operator's
//!   `--to` server only, if one was named (and holds no shard of the
//!   unit already); otherwise the repair
//!   planner's placement rules (in service, fresh, free space, no shard of
//!   the unit), the failure domain least used by the unit's other shards
//!   first, then the server given the fewest moves this round (so moves
//!   run on several servers at once: each runs one rebuild at a time),
//!   then the least filled, then the id.
//! - [`move_job`]: what the target reads, for a drain's or a rebalance's
//!   move alike: the shard itself, copied byte for byte while its server
//!   answers, with k other shards to reconstruct from should that read
//!   fail; only the others when its server is down or silent.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::exec::Job;
use super::plan::{Plan, Source, Target, eligible};
use crate::state::model::{BlobServer, BlobState, Lifecycle, ShardMap};
use crate::state::reads::UnitOnBlob;

/// The server that takes index `index` of `map` off the draining server
/// (`drain_to`: the only one allowed, if not ""); `load`: moves already
/// given to each server this round. None: wait for a later round.
pub fn target<'a>(
    map: &ShardMap,
    index: u32,
    drain_to: &str,
    servers: &'a [BlobServer],
    fresh_since_ms: i64,
    load: &HashMap<String, usize>,
) -> Option<&'a BlobServer> {
    let by_id: HashMap<&str, &BlobServer> = servers.iter().map(|s| (s.id.as_str(), s)).collect();
    let holders: HashSet<&str> = map.shards.iter().map(|l| l.blob_id.as_str()).collect();
    let fits = |s: &BlobServer| eligible(s, fresh_since_ms) && !holders.contains(s.id.as_str());
    // The named server, unless it holds a shard of this unit already: it
    // never could take this one, and waiting for it would stall the
    // drain for good; such a unit is placed as if none was named.
    if !drain_to.is_empty() && !holders.contains(drain_to) {
        return by_id.get(drain_to).copied().filter(|s| fits(s));
    }
    let mut domain_use: HashMap<&str, usize> = HashMap::new();
    for l in map.shards.iter().filter(|l| l.index != index) {
        if let Some(s) = by_id.get(l.blob_id.as_str()) {
            *domain_use.entry(s.failure_domain.as_str()).or_default() += 1;
        }
    }
    let use_of = |s: &BlobServer| {
        domain_use
            .get(s.failure_domain.as_str())
            .copied()
            .unwrap_or(0)
    };
    let load_of = |s: &BlobServer| load.get(&s.id).copied().unwrap_or(0);
    servers.iter().filter(|s| fits(s)).min_by(|a, b| {
        use_of(a)
            .cmp(&use_of(b))
            .then(load_of(a).cmp(&load_of(b)))
            .then(fill_order(a, b))
            .then(a.id.cmp(&b.id))
    })
}

/// `a` against `b` by the share of capacity stored (a server reporting
/// no capacity counts as full).
fn fill_order(a: &BlobServer, b: &BlobServer) -> std::cmp::Ordering {
    let fill = |s: &BlobServer, other: &BlobServer| {
        if s.capacity_bytes == 0 {
            u128::MAX
        } else {
            u128::from(s.bytes_stored) * u128::from(other.capacity_bytes.max(1))
        }
    };
    fill(a, b).cmp(&fill(b, a))
}

/// The job that moves `u`'s shard off `from` (the server it is on) onto
/// `to`. None when it cannot be read: `from` is down or silent and fewer
/// than k other shards are readable.
pub fn move_job(
    u: &UnitOnBlob,
    from: &BlobServer,
    to: &BlobServer,
    servers: &[BlobServer],
    fresh_since_ms: i64,
) -> Option<Job> {
    let map = &u.map;
    let k = map.data_shards as usize;
    let width = map.data_shards + map.parity_shards;
    let here = map
        .shards
        .iter()
        .find(|l| l.index == u.index && l.shard_id == u.shard_id && l.blob_id == from.id)?;
    if k == 0 || u.index >= width {
        return None;
    }
    let by_id: HashMap<&str, &BlobServer> = servers.iter().map(|s| (s.id.as_str(), s)).collect();
    // Shards of other indexes on servers that hold named shards and are
    // not down, one per index, data shards first.
    let readable = |id: &str| {
        by_id.get(id).is_some_and(|s| {
            s.state != BlobState::Down && matches!(s.lifecycle, Lifecycle::In | Lifecycle::Draining)
        })
    };
    let others: Vec<Source> = map
        .shards
        .iter()
        .filter(|l| l.index != u.index && l.index < width && readable(&l.blob_id))
        .map(|l| (l.index, l))
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .filter_map(|(index, l)| {
            Some(Source {
                index,
                address: by_id.get(l.blob_id.as_str())?.address.clone(),
                shard_id: l.shard_id.clone(),
            })
        })
        .take(k + 1)
        .collect();
    let answers = from.state != BlobState::Down
        && from.lifecycle != Lifecycle::Removed
        && from.last_heartbeat_ms >= fresh_since_ms;
    let (sources, copy) = if answers {
        let own = Source {
            index: u.index,
            address: from.address.clone(),
            shard_id: u.shard_id.clone(),
        };
        // The fallback must be whole (k shards) or absent.
        let fallback = if others.len() >= k {
            others
        } else {
            Vec::new()
        };
        (std::iter::once(own).chain(fallback).collect(), true)
    } else if others.len() >= k {
        (others, false)
    } else {
        return None;
    };
    Some(Job {
        unit: u.unit.clone(),
        map: map.clone(),
        plan: Plan {
            sources,
            targets: vec![Target {
                index: u.index,
                blob_id: to.id.clone(),
                address: to.address.clone(),
                old_shard_id: u.shard_id.clone(),
                expected_checksum: here.checksum.clone(),
            }],
            unplaced: Vec::new(),
        },
        copy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::model::{ShardLocation, Unit};

    const NOW: i64 = 1_000_000;

    fn server(id: &str, domain: &str, stored: u64) -> BlobServer {
        BlobServer {
            id: id.into(),
            address: format!("{id}:7000"),
            failure_domain: domain.into(),
            capacity_bytes: 1000,
            free_bytes: 1000 - stored,
            bytes_stored: stored,
            state: BlobState::Active,
            last_heartbeat_ms: NOW,
            ..Default::default()
        }
    }

    /// A 2+2 map with index i on `blobs[i]`.
    fn map(blobs: &[&str]) -> ShardMap {
        ShardMap {
            data_shards: 2,
            parity_shards: 2,
            segment_size: 1 << 20,
            shards: blobs
                .iter()
                .enumerate()
                .map(|(i, b)| ShardLocation {
                    index: i as u32,
                    blob_id: (*b).into(),
                    shard_id: format!("s{i}"),
                    checksum: vec![i as u8; 4],
                })
                .collect(),
        }
    }

    fn on(map: ShardMap, index: u32) -> UnitOnBlob {
        UnitOnBlob {
            unit: Unit::version("b", "k", "v", 0),
            shard_id: format!("s{index}"),
            map,
            index,
        }
    }

    fn pick<'a>(
        m: &ShardMap,
        servers: &'a [BlobServer],
        load: &[(&str, usize)],
    ) -> Option<&'a str> {
        let load = load.iter().map(|(id, n)| (id.to_string(), *n)).collect();
        target(m, 0, "", servers, NOW, &load).map(|s| s.id.as_str())
    }

    #[test]
    fn a_drained_shard_goes_to_an_unused_domain_then_the_least_loaded_then_the_emptiest() {
        // 2+2 on d0..d3; d (index 0) drains. Candidates: e in d1 (used by
        // the unit), f and g in d9 (unused).
        let mut servers = vec![
            server("d", "d0", 500),
            server("b1", "d1", 0),
            server("b2", "d2", 0),
            server("b3", "d3", 0),
            server("e", "d1", 0),
            server("f", "d9", 300),
            server("g", "d9", 200),
        ];
        servers[0].lifecycle = Lifecycle::Draining;
        let m = map(&["d", "b1", "b2", "b3"]);
        // The draining server's own domain does not count: d0 is free.
        assert_eq!(pick(&m, &servers, &[]), Some("g"));
        // g already has a move this round: f, as unused a domain, next.
        assert_eq!(pick(&m, &servers, &[("g", 1)]), Some("f"));
        // Both loaded alike: the emptier again.
        assert_eq!(pick(&m, &servers, &[("g", 1), ("f", 1)]), Some("g"));
        // An emptier server in a domain the unit uses loses to them.
        servers[4].bytes_stored = 0;
        servers[5].bytes_stored = 900;
        servers[6].bytes_stored = 900;
        assert_eq!(pick(&m, &servers, &[]), Some("f"));
        // Fill is relative to capacity: a bigger server holding more
        // bytes can be the emptier.
        servers[6].capacity_bytes = 10_000;
        servers[6].free_bytes = 9_100;
        assert_eq!(pick(&m, &servers, &[]), Some("g"));
    }

    #[test]
    fn only_fresh_in_service_servers_holding_no_shard_of_the_unit_take_one() {
        let mut servers = vec![
            server("d", "d0", 0),
            server("b1", "d1", 0),
            server("b2", "d2", 0),
            server("b3", "d3", 0),
            server("x", "d9", 0),
        ];
        servers[0].lifecycle = Lifecycle::Draining;
        let m = map(&["d", "b1", "b2", "b3"]);
        assert_eq!(pick(&m, &servers, &[]), Some("x"));
        let spoils: [fn(&mut BlobServer); 6] = [
            |s: &mut BlobServer| s.lifecycle = Lifecycle::Draining,
            |s: &mut BlobServer| s.lifecycle = Lifecycle::Drained,
            |s: &mut BlobServer| s.lifecycle = Lifecycle::Removed,
            |s: &mut BlobServer| s.state = BlobState::Down,
            |s: &mut BlobServer| s.last_heartbeat_ms = NOW - 1,
            |s: &mut BlobServer| s.free_bytes = 0,
        ];
        for spoil in spoils {
            let mut servers = servers.clone();
            spoil(&mut servers[4]);
            // Every other server holds a shard of the unit: wait.
            assert_eq!(pick(&m, &servers, &[]), None);
        }
    }

    #[test]
    fn with_a_named_target_only_that_server_is_taken() {
        let mut servers = vec![
            server("d", "d0", 0),
            server("b1", "d1", 0),
            server("b2", "d2", 0),
            server("b3", "d3", 0),
            server("new", "d1", 900),
            server("roomy", "d9", 0),
        ];
        servers[0].lifecycle = Lifecycle::Draining;
        let m = map(&["d", "b1", "b2", "b3"]);
        let none = HashMap::new();
        let t = target(&m, 0, "new", &servers, NOW, &none).map(|s| s.id.as_str());
        assert_eq!(t, Some("new"), "the operator's choice, domain or not");
        // Not usable or silent now: wait for it.
        servers[4].state = BlobState::Down;
        assert!(target(&m, 0, "new", &servers, NOW, &none).is_none());
        servers[4].state = BlobState::Active;
        servers[4].last_heartbeat_ms = NOW - 1;
        assert!(target(&m, 0, "new", &servers, NOW, &none).is_none());
        servers[4].last_heartbeat_ms = NOW;
        assert!(target(&m, 0, "unknown", &servers, NOW, &none).is_none());
        // It holds a shard of this unit already: it never could take
        // this one; placed by the usual rules instead of stalling.
        let m2 = map(&["d", "new", "b2", "b3"]);
        let t = target(&m2, 0, "new", &servers, NOW, &none).map(|s| s.id.as_str());
        assert_eq!(t, Some("roomy"));
    }

    #[test]
    fn a_move_copies_from_an_answering_server_with_k_others_to_fall_back_on() {
        let mut servers = vec![
            server("d", "d0", 0),
            server("b1", "d1", 0),
            server("b2", "d2", 0),
            server("b3", "d3", 0),
            server("t", "d9", 0),
        ];
        servers[0].lifecycle = Lifecycle::Draining;
        let u = on(map(&["b1", "d", "b2", "b3"]), 1);
        let job = move_job(&u, &servers[0], &servers[4], &servers, NOW).expect("job");
        assert!(job.copy);
        let src: Vec<(u32, &str)> = job
            .plan
            .sources
            .iter()
            .map(|s| (s.index, s.address.as_str()))
            .collect();
        // Its own shard first, then k + 1 others in index order.
        assert_eq!(
            src,
            vec![
                (1, "d:7000"),
                (0, "b1:7000"),
                (2, "b2:7000"),
                (3, "b3:7000")
            ]
        );
        let t = &job.plan.targets[0];
        assert_eq!((t.index, t.blob_id.as_str()), (1, "t"));
        assert_eq!(t.old_shard_id, "s1");
        assert_eq!(t.expected_checksum, vec![1u8; 4]);
        // Fewer than k others readable (two down): the copy alone.
        servers[1].state = BlobState::Down;
        servers[2].state = BlobState::Down;
        let job = move_job(&u, &servers[0], &servers[4], &servers, NOW).expect("job");
        assert_eq!(job.plan.sources.len(), 1);
        assert!(job.copy);
    }

    #[test]
    fn a_move_off_a_down_or_silent_server_reconstructs_from_k_others() {
        let mut servers = vec![
            server("d", "d0", 0),
            server("b1", "d1", 0),
            server("b2", "d2", 0),
            server("b3", "d3", 0),
            server("t", "d9", 0),
        ];
        servers[0].lifecycle = Lifecycle::Draining;
        servers[0].state = BlobState::Down;
        // b3 is removed: its shard is not read.
        servers[3].lifecycle = Lifecycle::Removed;
        let u = on(map(&["d", "b1", "b2", "b3"]), 0);
        let job = move_job(&u, &servers[0], &servers[4], &servers, NOW).expect("job");
        assert!(!job.copy);
        let idx: Vec<u32> = job.plan.sources.iter().map(|s| s.index).collect();
        assert_eq!(idx, vec![1, 2]);
        // Silent (not yet judged down): the same.
        servers[0].state = BlobState::Active;
        servers[0].last_heartbeat_ms = NOW - 1;
        assert!(
            !move_job(&u, &servers[0], &servers[4], &servers, NOW)
                .expect("job")
                .copy
        );
        // Fewer than k readable: nothing to do yet.
        servers[2].state = BlobState::Down;
        assert!(move_job(&u, &servers[0], &servers[4], &servers, NOW).is_none());
        // A shard the map no longer names there: no job.
        servers[0].last_heartbeat_ms = NOW;
        let mut stale = u.clone();
        stale.shard_id = "gone".into();
        assert!(move_job(&stale, &servers[0], &servers[4], &servers, NOW).is_none());
    }
}
