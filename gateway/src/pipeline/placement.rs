//! Placement: which blob-servers get the k+m shards of an object.
//!
//! - k+m *distinct* servers, only active ones with free space.
//! - Spread across failure domains: domains take turns, so no domain holds
//!   more than ceil((k+m) / domains) shards — with at least k+m domains,
//!   one shard each, and losing a domain costs at most that many shards.
//! - Weighted by free space: each server draws a key u^(1/free) with u
//!   uniform in (0,1) (Efraimidis–Spirakis sampling); the larger keys win,
//!   so emptier servers fill faster without starving the rest.

use rand::Rng;

/// A blob-server as the registry lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub address: String,
    pub failure_domain: String,
    pub free_bytes: u64,
    pub active: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlacementError {
    #[error("{need} shards need {need} blob-servers with free space; {have} available")]
    NotEnoughServers { need: usize, have: usize },
}

/// Picks `n` distinct servers; the result's order is the shard order.
pub fn place<R: Rng>(
    candidates: &[Candidate],
    n: usize,
    rng: &mut R,
) -> Result<Vec<Candidate>, PlacementError> {
    let usable: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.active && c.free_bytes > 0)
        .collect();
    if usable.len() < n {
        return Err(PlacementError::NotEnoughServers {
            need: n,
            have: usable.len(),
        });
    }
    // Weighted keys: log(u) / w orders the same as u^(1/w), without underflow.
    let mut keyed: Vec<(f64, &Candidate)> = usable
        .into_iter()
        .map(|c| {
            let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
            (u.ln() / c.free_bytes as f64, c)
        })
        .collect();
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
    // Group by domain, keeping each domain's servers in key order; domains
    // in the order of their best server.
    let mut domains: Vec<(&str, Vec<&Candidate>)> = Vec::new();
    for (_, c) in keyed {
        match domains.iter_mut().find(|(d, _)| *d == c.failure_domain) {
            Some((_, list)) => list.push(c),
            None => domains.push((&c.failure_domain, vec![c])),
        }
    }
    // Round-robin over domains.
    let mut chosen = Vec::with_capacity(n);
    let mut round = 0;
    while chosen.len() < n {
        for (_, list) in &domains {
            if let Some(c) = list.get(round)
                && chosen.len() < n
            {
                chosen.push((*c).clone());
            }
        }
        round += 1;
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::SeedableRng;

    use super::*;

    fn server(id: &str, domain: &str, free: u64) -> Candidate {
        Candidate {
            id: id.into(),
            address: format!("{id}:1"),
            failure_domain: domain.into(),
            free_bytes: free,
            active: true,
        }
    }

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    #[test]
    fn shards_go_to_distinct_servers_spread_over_domains() {
        let servers: Vec<Candidate> = (0..6)
            .map(|i| server(&format!("b{i}"), &format!("rack-{}", i % 3), 1 << 30))
            .collect();
        let mut r = rng();
        for _ in 0..200 {
            let six = place(&servers, 6, &mut r).expect("place");
            let mut ids: Vec<_> = six.iter().map(|c| c.id.clone()).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), 6, "distinct");
            let mut per_domain: HashMap<&str, usize> = HashMap::new();
            for c in &six {
                *per_domain.entry(&c.failure_domain).or_default() += 1;
            }
            assert!(per_domain.values().all(|n| *n == 2), "{per_domain:?}");
            // Three shards: one per domain.
            let three = place(&servers, 3, &mut r).expect("place");
            let domains: std::collections::HashSet<_> =
                three.iter().map(|c| &c.failure_domain).collect();
            assert_eq!(domains.len(), 3);
        }
    }

    #[test]
    fn full_down_and_missing_servers_are_never_chosen() {
        let mut servers: Vec<Candidate> =
            (0..4).map(|i| server(&format!("b{i}"), "d", 100)).collect();
        servers[1].free_bytes = 0;
        servers[2].active = false;
        assert_eq!(
            place(&servers, 3, &mut rng()),
            Err(PlacementError::NotEnoughServers { need: 3, have: 2 })
        );
        let two = place(&servers, 2, &mut rng()).expect("place");
        assert!(two.iter().all(|c| c.id == "b0" || c.id == "b3"));
    }

    #[test]
    fn emptier_servers_are_chosen_more_often() {
        // One domain per server, so only the weights decide who goes first.
        let servers = vec![
            server("big", "a", 900),
            server("small", "b", 100),
            server("c", "c", 500),
        ];
        let mut r = rng();
        let mut first: HashMap<String, usize> = HashMap::new();
        for _ in 0..20_000 {
            let p = place(&servers, 1, &mut r).expect("place");
            *first.entry(p[0].id.clone()).or_default() += 1;
        }
        // Probability of being first is proportional to free space: 0.6 / 0.0667 / 0.333.
        let share = |id: &str| first.get(id).copied().unwrap_or(0) as f64 / 20_000.0;
        assert!((share("big") - 0.6).abs() < 0.02, "{first:?}");
        assert!((share("small") - 0.0667).abs() < 0.02, "{first:?}");
    }
}
