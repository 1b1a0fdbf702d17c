//! Rebalance (ADR 0025), pure: how evenly the usable blob-servers are
//! filled, and which shards to move so the fullest comes back within the
//! band. The mover reads, plans here, and runs the moves.
//!
//! Bytes are those the metadata names ([`weigh`]). A usable server (in
//! service, not down) is given its capacity's share
//! of everything the usable servers store: target = total stored ×
//! capacity ÷ total capacity. It is within the band when |stored −
//! target| ≤ max(band × target, slack): the slack keeps small or young
//! clusters from shuffling noise. Moves go from the most-over server into
//! servers under their target and never past it (so nothing moves back),
//! never raising the unit's shards per failure domain, each shard's size
//! estimated from the source's average, until the source is predicted
//! within the band.

use std::collections::{HashMap, HashSet};

use hamster_proto::pb;

use crate::state::model::{BlobServer, ShardMap, Unit};
use crate::state::reads::UnitOnBlob;

/// How far a server's stored bytes may stray from its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Band {
    pub pct: u32,
    pub slack_bytes: u64,
}

impl Band {
    /// The distance from `target` that is still within the band.
    pub fn tolerance(self, target: u64) -> u64 {
        let pct = u128::from(target) * u128::from(self.pct) / 100;
        u64::try_from(pct).unwrap_or(u64::MAX).max(self.slack_bytes)
    }

    pub fn within(self, stored: u64, target: u64) -> bool {
        stored.abs_diff(target) <= self.tolerance(target)
    }
}

/// A usable server's bytes against its target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    pub id: String,
    pub stored: u64,
    pub target: u64,
}

/// The servers as the balance weighs them: only the shards the metadata
/// names count, at the server's average shard size (shards named × bytes
/// stored ÷ shards stored). Orphans waiting for the sweep — a returned
/// server's stale copies, say — are on disk but no move can touch them:
/// counted, they would hold the band out of reach for a day.
pub fn weigh(servers: &[BlobServer], named: &HashMap<String, u64>) -> Vec<BlobServer> {
    servers
        .iter()
        .map(|s| {
            let n = named.get(&s.id).copied().unwrap_or(0);
            let avg = s.bytes_stored.checked_div(s.shards_stored).unwrap_or(0);
            BlobServer {
                shards_stored: n,
                bytes_stored: n.saturating_mul(avg),
                ..s.clone()
            }
        })
        .collect()
}

/// Each usable server's share (in the order given). Servers leaving
/// service or down hold no share: their bytes are not the mover's to
/// spread, and a down server's may be gone.
pub fn shares(servers: &[BlobServer]) -> Vec<Share> {
    let usable: Vec<&BlobServer> = servers.iter().filter(|s| s.usable()).collect();
    let stored: u128 = usable.iter().map(|s| u128::from(s.bytes_stored)).sum();
    let capacity: u128 = usable.iter().map(|s| u128::from(s.capacity_bytes)).sum();
    usable
        .into_iter()
        .map(|s| Share {
            id: s.id.clone(),
            stored: s.bytes_stored,
            // No capacity reported anywhere yet: no target but 0.
            target: (stored * u128::from(s.capacity_bytes))
                .checked_div(capacity)
                .map_or(0, |t| u64::try_from(t).unwrap_or(u64::MAX)),
        })
        .collect()
}

/// `Admin`'s view of the balance: every usable server's row; moving
/// while any is outside the band (the mover is at it or will be).
pub fn view(servers: &[BlobServer], band: Band) -> pb::Balance {
    let rows: Vec<pb::BlobBalance> = shares(servers)
        .into_iter()
        .map(|s| pb::BlobBalance {
            within_band: band.within(s.stored, s.target),
            id: s.id,
            bytes_stored: s.stored,
            target_bytes: s.target,
        })
        .collect();
    let within_band = rows.iter().all(|r| r.within_band);
    pb::Balance {
        band_pct: band.pct,
        slack_bytes: band.slack_bytes,
        within_band,
        servers: rows,
        moving: !within_band,
    }
}

/// One shard to move for balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub shard: UnitOnBlob,
    pub from: String,
    pub to: String,
}

/// Plans moves across calls (source by source), keeping the predicted
/// sizes of every server as moves are planned.
pub struct Rebalancer<'a> {
    band: Band,
    by_id: HashMap<&'a str, &'a BlobServer>,
    /// Usable, heard from recently, with free space: may give or take.
    able: Vec<&'a BlobServer>,
    target: HashMap<&'a str, u64>,
    predicted: HashMap<&'a str, u64>,
    /// A unit moves one shard a round (two could pick the same server).
    planned: HashSet<Unit>,
}

impl<'a> Rebalancer<'a> {
    pub fn new(servers: &'a [BlobServer], band: Band, fresh_since_ms: i64) -> Self {
        let by_id: HashMap<&str, &BlobServer> =
            servers.iter().map(|s| (s.id.as_str(), s)).collect();
        let mut target = HashMap::new();
        let mut predicted = HashMap::new();
        for s in shares(servers) {
            if let Some((id, _)) = by_id.get_key_value(s.id.as_str()) {
                target.insert(*id, s.target);
                predicted.insert(*id, s.stored);
            }
        }
        let able = servers
            .iter()
            .filter(|s| super::plan::eligible(s, fresh_since_ms))
            .collect();
        Self {
            band,
            by_id,
            able,
            target,
            predicted,
            planned: HashSet::new(),
        }
    }

    /// `id`'s predicted bytes and target (None: not a usable server).
    fn at(&self, id: &str) -> Option<(u64, u64)> {
        Some((*self.predicted.get(id)?, *self.target.get(id)?))
    }

    /// How far `id` is predicted above the top of its band (0: within
    /// or under).
    fn excess(&self, id: &str) -> u64 {
        self.at(id).map_or(0, |(p, t)| {
            p.saturating_sub(t.saturating_add(self.band.tolerance(t)))
        })
    }

    /// Whether some server that may take shards is predicted below the
    /// bottom of its band.
    fn someone_short(&self) -> bool {
        self.able.iter().any(|s| {
            self.at(&s.id)
                .is_some_and(|(p, t)| p < t.saturating_sub(self.band.tolerance(t)))
        })
    }

    /// Whether `id` should give shards: it is above its band, or it is
    /// above its target while another server is below its band (the
    /// fullest servers may all sit inside the band while a new, empty one
    /// does not: they give until they reach their target, never below).
    fn gives(&self, id: &str) -> bool {
        self.excess(id) > 0 || (self.at(id).is_some_and(|(p, t)| p > t) && self.someone_short())
    }

    /// Servers that should give a shard, furthest above target first
    /// (then by id).
    pub fn sources(&self) -> Vec<&'a str> {
        let mut over: Vec<(&str, u64)> = self
            .able
            .iter()
            .filter(|s| s.shards_stored > 0 && self.gives(&s.id))
            .map(|s| {
                let above = self.at(&s.id).map_or(0, |(p, t)| p.saturating_sub(t));
                (s.id.as_str(), above)
            })
            .collect();
        over.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        over.into_iter().map(|(id, _)| id).collect()
    }

    /// Whether `id` has given enough (see [`Self::gives`]).
    pub fn satisfied(&self, id: &str) -> bool {
        !self.gives(id)
    }

    /// Moves of the shards in `units` (all on `source`), in order, up to
    /// `max`, until `source` has given enough. A unit no destination fits
    /// is passed over.
    pub fn plan_from(&mut self, source: &str, units: &[UnitOnBlob], max: usize) -> Vec<Move> {
        let mut out = Vec::new();
        let Some(src) = self.able.iter().copied().find(|s| s.id == source) else {
            return out;
        };
        let Some(size) = src.bytes_stored.checked_div(src.shards_stored) else {
            return out;
        };
        // An empty shard still costs a file: never estimate zero.
        let size = size.max(1);
        for u in units {
            if out.len() >= max || self.satisfied(source) {
                break;
            }
            let on_source = u
                .map
                .shards
                .iter()
                .any(|l| l.index == u.index && l.shard_id == u.shard_id && l.blob_id == source);
            if !on_source || self.planned.contains(&u.unit) {
                continue;
            }
            let Some(dest) = self.destination(src, &u.map, size) else {
                continue;
            };
            if let Some(p) = self.predicted.get_mut(src.id.as_str()) {
                *p = p.saturating_sub(size);
            }
            if let Some(p) = self.predicted.get_mut(dest.id.as_str()) {
                *p = p.saturating_add(size);
            }
            self.planned.insert(u.unit.clone());
            out.push(Move {
                shard: u.clone(),
                from: src.id.clone(),
                to: dest.id.clone(),
            });
        }
        out
    }

    /// The server furthest under its target that takes a shard of `size`
    /// from `src` for this map and stays at or under its target; none
    /// holds a shard of the unit, and the unit's most-used failure
    /// domain is used no more than before.
    fn destination(&self, src: &BlobServer, map: &ShardMap, size: u64) -> Option<&'a BlobServer> {
        let holders: HashSet<&str> = map.shards.iter().map(|l| l.blob_id.as_str()).collect();
        let domain = |id: &str| -> String {
            match self.by_id.get(id) {
                Some(s) => s.failure_domain.clone(),
                // An unknown server is a domain of its own.
                None => format!("\0{id}"),
            }
        };
        let mut use_of: HashMap<String, usize> = HashMap::new();
        for l in &map.shards {
            *use_of.entry(domain(&l.blob_id)).or_default() += 1;
        }
        let most = use_of.values().copied().max().unwrap_or(0);
        let room = |s: &BlobServer| {
            let (t, p) = (
                self.target.get(s.id.as_str())?,
                self.predicted.get(s.id.as_str())?,
            );
            t.checked_sub(p.checked_add(size)?)
        };
        self.able
            .iter()
            .copied()
            .filter(|s| s.id != src.id && !holders.contains(s.id.as_str()) && s.free_bytes > size)
            .filter(|s| {
                s.failure_domain == src.failure_domain
                    || use_of.get(&s.failure_domain).copied().unwrap_or(0) < most
            })
            .filter_map(|s| Some((s, room(s)?)))
            .max_by(|(a, ra), (b, rb)| ra.cmp(rb).then(b.id.cmp(&a.id)))
            .map(|(s, _)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::model::{BlobState, Lifecycle, ShardLocation};

    const NOW: i64 = 1_000_000;
    const GB: u64 = 1 << 30;
    const MB: u64 = 1 << 20;

    fn server(id: &str, domain: &str, capacity: u64, stored: u64, shards: u64) -> BlobServer {
        BlobServer {
            id: id.into(),
            address: format!("{id}:7000"),
            failure_domain: domain.into(),
            capacity_bytes: capacity,
            free_bytes: capacity - stored,
            state: BlobState::Active,
            last_heartbeat_ms: NOW,
            shards_stored: shards,
            bytes_stored: stored,
            ..Default::default()
        }
    }

    const BAND: Band = Band {
        pct: 10,
        slack_bytes: 64 * MB,
    };

    #[test]
    fn the_band_is_a_share_of_the_target_or_the_slack_whichever_is_wider() {
        assert_eq!(BAND.tolerance(10 * GB), GB);
        assert_eq!(BAND.tolerance(100 * MB), 64 * MB);
        assert!(BAND.within(11 * GB, 10 * GB));
        assert!(BAND.within(9 * GB, 10 * GB));
        assert!(!BAND.within(11 * GB + 1, 10 * GB));
        assert!(!BAND.within(9 * GB - 1, 10 * GB));
        // A young cluster: tiny amounts sit within the slack.
        assert!(BAND.within(60 * MB, 0));
        assert!(!BAND.within(65 * MB, 0));
    }

    #[test]
    fn only_named_shards_weigh_at_the_servers_average_size() {
        // "a" came back from an outage with 40 stale copies its shards
        // were rebuilt from: on disk, but no move can take them.
        let servers = vec![
            server("a", "d1", 100 * GB, 70 * MB, 70),
            server("b", "d2", 100 * GB, 30 * MB, 30),
        ];
        let named = HashMap::from([("a".to_string(), 30), ("b".to_string(), 30)]);
        let w = weigh(&servers, &named);
        let got: Vec<(u64, u64)> = w
            .iter()
            .map(|s| (s.shards_stored, s.bytes_stored))
            .collect();
        assert_eq!(got, vec![(30, 30 * MB), (30, 30 * MB)]);
        // A server with nothing stored weighs nothing, whatever is named.
        let fresh = weigh(
            &[server("c", "d3", GB, 0, 0)],
            &HashMap::from([("c".into(), 5)]),
        );
        assert_eq!(fresh[0].bytes_stored, 0);
        // Everything else is kept as it was.
        assert_eq!(w[0].capacity_bytes, servers[0].capacity_bytes);
        assert_eq!(w[0].last_heartbeat_ms, servers[0].last_heartbeat_ms);
        let band = Band {
            pct: 10,
            slack_bytes: MB,
        };
        // On the raw counts "a" looks far over; weighed, a and b are even.
        let raw = view(&servers, band);
        let weighed = view(&w, band);
        assert!(!raw.servers[0].within_band);
        assert!(weighed.servers[0].within_band && weighed.servers[1].within_band);
    }

    #[test]
    fn targets_follow_capacity_and_only_usable_servers_count() {
        let mut servers = vec![
            server("a", "d1", 100 * GB, 30 * GB, 30),
            server("b", "d2", 200 * GB, 30 * GB, 30),
            server("c", "d3", 100 * GB, 0, 0),
            // Leaving or down: no share, and their bytes are not spread.
            server("x", "d4", 100 * GB, 50 * GB, 50),
            server("y", "d5", 100 * GB, 50 * GB, 50),
            server("z", "d6", 100 * GB, 50 * GB, 50),
        ];
        servers[3].lifecycle = Lifecycle::Draining;
        servers[4].lifecycle = Lifecycle::Removed;
        servers[5].state = BlobState::Down;
        let s = shares(&servers);
        let got: Vec<(&str, u64)> = s.iter().map(|s| (s.id.as_str(), s.target)).collect();
        // 60 GB over 400 GB of capacity: 15 % each.
        assert_eq!(got, vec![("a", 15 * GB), ("b", 30 * GB), ("c", 15 * GB)]);
        let v = view(&servers, BAND);
        assert_eq!((v.band_pct, v.slack_bytes), (10, 64 * MB));
        let within: Vec<(&str, bool)> = v
            .servers
            .iter()
            .map(|r| (r.id.as_str(), r.within_band))
            .collect();
        assert_eq!(within, vec![("a", false), ("b", true), ("c", false)]);
        assert!(!v.within_band && v.moving);
        // No capacity reported yet: every target is 0, the slack decides.
        let empty = vec![server("a", "d1", 0, 0, 0), server("b", "d2", 0, 0, 0)];
        let v = view(&empty, BAND);
        assert!(v.within_band && !v.moving, "{v:?}");
    }

    /// A 2+1 map with index i on `blobs[i]`.
    fn map(blobs: &[&str]) -> ShardMap {
        ShardMap {
            data_shards: 2,
            parity_shards: 1,
            segment_size: 1 << 20,
            shards: blobs
                .iter()
                .enumerate()
                .map(|(i, b)| ShardLocation {
                    index: i as u32,
                    blob_id: (*b).into(),
                    shard_id: format!("{b}-s{i}"),
                    checksum: vec![i as u8],
                })
                .collect(),
        }
    }

    /// Units with a shard on `on`, each with the given map.
    fn units(on: &str, maps: Vec<ShardMap>) -> Vec<UnitOnBlob> {
        maps.into_iter()
            .enumerate()
            .map(|(n, map)| {
                let l = map
                    .shards
                    .iter()
                    .find(|l| l.blob_id == on)
                    .expect("a shard on the source")
                    .clone();
                UnitOnBlob {
                    unit: Unit::version("b", &format!("k{n:04}"), "v", 0),
                    map,
                    index: l.index,
                    shard_id: l.shard_id,
                }
            })
            .collect()
    }

    #[test]
    fn moves_fill_the_emptiest_servers_and_stop_within_the_band() {
        // Three loaded servers (30 GB each in 1 GB shards), two new empty
        // ones; all the same size, each its own domain. Target: 18 GB.
        let servers = vec![
            server("a", "da", 100 * GB, 30 * GB, 30),
            server("b", "db", 100 * GB, 30 * GB, 30),
            server("c", "dc", 100 * GB, 30 * GB, 30),
            server("n1", "dn1", 100 * GB, 0, 0),
            server("n2", "dn2", 100 * GB, 0, 0),
        ];
        let mut rb = Rebalancer::new(&servers, BAND, NOW);
        assert_eq!(rb.sources(), vec!["a", "b", "c"]);
        let on_a = units("a", (0..30).map(|_| map(&["a", "b", "c"])).collect());
        let moves = rb.plan_from("a", &on_a, 100);
        // Into its band after 11 shards of 1 GB, but n1 and n2 are still
        // below theirs: a gives on down to its target, 18 GB.
        assert_eq!(moves.len(), 12, "{moves:?}");
        assert!(rb.satisfied("a"));
        assert!(moves.iter().all(|m| m.from == "a" && m.shard.index == 0));
        let to_n1 = moves.iter().filter(|m| m.to == "n1").count();
        let to_n2 = moves.iter().filter(|m| m.to == "n2").count();
        // Alternating: always the one furthest under its target.
        assert_eq!((to_n1, to_n2), (6, 6));
        // `max` bounds a round.
        let mut rb = Rebalancer::new(&servers, BAND, NOW);
        assert_eq!(rb.plan_from("a", &on_a, 3).len(), 3);
        assert!(!rb.satisfied("a"));
    }

    #[test]
    fn servers_inside_their_band_still_give_to_one_below_its_band() {
        // Seen on a real cluster: the fullest servers sit inside their
        // band (+8 % of 100 GB with a 10 % band) while a newer one is 25 %
        // short. Nobody is above the band, yet the balance is out of it.
        let servers = vec![
            server("a", "da", 400 * GB, 108 * GB, 108),
            server("b", "db", 400 * GB, 108 * GB, 108),
            server("c", "dc", 400 * GB, 109 * GB, 109),
            server("n", "dn", 400 * GB, 75 * GB, 75),
        ];
        let mut rb = Rebalancer::new(&servers, BAND, NOW);
        assert!(!view(&servers, BAND).within_band);
        // Furthest above target first.
        assert_eq!(rb.sources(), vec!["c", "a", "b"]);
        let mut moved = 0;
        for src in rb.sources() {
            let on = units(src, (0..20).map(|_| map(&[src, "x", "y"])).collect());
            let moves = rb.plan_from(src, &on, 100);
            assert!(moves.iter().all(|m| m.to == "n"), "{moves:?}");
            moved += moves.len();
        }
        // Each gives only down to its target (100 GB); n ends within its
        // band (at least 90 GB), and nobody goes below target.
        assert!((15..=25).contains(&moved), "{moved}");
        assert!(rb.sources().is_empty());
        for id in ["a", "b", "c"] {
            assert!(rb.at(id).is_some_and(|(p, t)| p >= t), "{id}");
        }
        let (p, t) = rb.at("n").expect("n");
        assert!(BAND.within(p, t), "{p} vs {t}");
    }

    #[test]
    fn a_destination_is_never_filled_past_its_target() {
        // 90 GB over three servers of one size: target 30 GB each, band
        // 3 GB. a holds 40 GB in 4 GB shards, b 24 GB, n 26 GB. b is
        // furthest under and takes one; then only n has room for a whole
        // shard (exactly to its target), and a is within its band.
        let servers = vec![
            server("a", "da", 100 * GB, 40 * GB, 10),
            server("b", "db", 100 * GB, 24 * GB, 6),
            server("n", "dn", 100 * GB, 26 * GB, 7),
        ];
        let mut rb = Rebalancer::new(&servers, BAND, NOW);
        let on_a = units("a", (0..5).map(|_| map(&["a", "x1", "x2"])).collect());
        let to: Vec<String> = rb
            .plan_from("a", &on_a, 10)
            .into_iter()
            .map(|m| m.to)
            .collect();
        assert_eq!(to, vec!["b", "n"]);
        assert!(rb.satisfied("a"));
        // Shards of 7 GB: a (63 GB) gives b four (28 GB: a fifth would
        // pass its 30 GB); c at 27 GB has no room for one. a stays over.
        let servers = vec![
            server("a", "da", 100 * GB, 63 * GB, 9),
            server("b", "db", 100 * GB, 0, 0),
            server("c", "dc", 100 * GB, 27 * GB, 27),
        ];
        let mut rb = Rebalancer::new(&servers, BAND, NOW);
        let on_a = units("a", (0..9).map(|_| map(&["a", "x1", "x2"])).collect());
        let moves = rb.plan_from("a", &on_a, 100);
        assert_eq!(moves.len(), 4, "{moves:?}");
        assert!(moves.iter().all(|m| m.to == "b"));
        assert!(!rb.satisfied("a"));
        // Every server within its band: no source at all.
        let even = vec![
            server("a", "da", 100 * GB, 31 * GB, 31),
            server("b", "db", 100 * GB, 29 * GB, 29),
        ];
        assert!(Rebalancer::new(&even, BAND, NOW).sources().is_empty());
    }

    #[test]
    fn a_move_keeps_the_unit_spread_over_failure_domains() {
        // a and n1 share domain d1; b: d2, c: d3, n2: d4. Target 11 GB.
        let mut servers = vec![
            server("a", "d1", 100 * GB, 30 * GB, 30),
            server("b", "d2", 100 * GB, 10 * GB, 10),
            server("c", "d3", 100 * GB, 10 * GB, 10),
            server("n1", "d1", 100 * GB, 0, 0),
            server("n2", "d4", 100 * GB, 5 * GB, 5),
        ];
        // Unit on a, b, c: n1 (the source's own domain: no change) and
        // n2 (an unused one) both keep the spread; n1 is emptier.
        let mut rb = Rebalancer::new(&servers, BAND, NOW);
        let m = rb.plan_from("a", &units("a", vec![map(&["a", "b", "c"])]), 1);
        assert_eq!(m[0].to, "n1");
        // Two more empty servers in d3. Unit on a, c, c2: d3 holds two
        // shards, the most; c3 would make it three, so n1 is chosen
        // though c3 is as empty and comes first by id.
        servers.push(server("c2", "d3", 100 * GB, 0, 0));
        servers.push(server("c3", "d3", 100 * GB, 0, 0));
        let mut rb = Rebalancer::new(&servers, BAND, NOW);
        let m = rb.plan_from("a", &units("a", vec![map(&["a", "c", "c2"])]), 1);
        assert_eq!(m[0].to, "n1", "{m:?}");
        // Unit on a, c, n1: c3 (d3: one shard, like d1) is allowed.
        let mut rb = Rebalancer::new(&servers, BAND, NOW);
        let m = rb.plan_from("a", &units("a", vec![map(&["a", "c", "n1"])]), 1);
        assert_eq!(m[0].to, "c2", "{m:?}");
    }

    #[test]
    fn only_fresh_in_service_servers_give_or_take() {
        let mut servers = vec![
            server("a", "da", 100 * GB, 30 * GB, 30),
            server("n1", "dn1", 100 * GB, 0, 0),
            server("n2", "dn2", 100 * GB, 0, 0),
        ];
        // n1 silent since before `fresh`, n2 draining: no destination.
        servers[1].last_heartbeat_ms = NOW - 1;
        servers[2].lifecycle = Lifecycle::Draining;
        let mut rb = Rebalancer::new(&servers, BAND, NOW);
        let on_a = units("a", vec![map(&["a", "x", "y"])]);
        assert!(rb.plan_from("a", &on_a, 10).is_empty());
        // A silent source gives nothing either.
        servers[1].last_heartbeat_ms = NOW;
        servers[0].last_heartbeat_ms = NOW - 1;
        let rb = Rebalancer::new(&servers, BAND, NOW);
        assert!(rb.sources().is_empty());
    }

    #[test]
    fn a_unit_moves_one_shard_a_round_and_only_from_the_source() {
        let servers = vec![
            server("a", "da", 100 * GB, 30 * GB, 30),
            server("n1", "dn1", 100 * GB, 0, 0),
            server("n2", "dn2", 100 * GB, 0, 0),
        ];
        let mut rb = Rebalancer::new(&servers, BAND, NOW);
        let mut twice = units("a", vec![map(&["a", "a", "x"])]);
        let mut second = twice[0].clone();
        second.index = 1;
        second.shard_id = "a-s1".into();
        twice.push(second);
        // An entry whose shard the map no longer names on `a`: skipped.
        let mut stale = units("a", vec![map(&["a", "y", "z"])]);
        stale[0].shard_id = "old".into();
        stale[0].unit.key = "other".into();
        twice.extend(stale);
        let moves = rb.plan_from("a", &twice, 10);
        assert_eq!(moves.len(), 1, "{moves:?}");
        assert_eq!(
            (moves[0].shard.index, moves[0].shard.shard_id.as_str()),
            (0, "a-s0")
        );
    }
}
