//! The gateway's view of the cluster, as the meta tier's registry answers
//! it: the blob-servers, the erasure profile and the master key new
//! writes use. Refreshed every few seconds, and on demand when a
//! placement finds too few servers or a commit is refused for its key or
//! for a retired server. A server whose last heartbeat is older than
//! `down_after` is treated as down: no new shards go to it (reads still
//! try it). Older means behind the newest heartbeat the registry holds,
//! not behind this gateway's clock: heartbeats are Raft writes, so while
//! the meta tier elects a leader every one of them pauses, and a server
//! is down only when it fell silent while others did not ([`fresh_since`]).
//! Only an "active" server takes new shards; a removed one is
//! never asked for anything (its shards are rebuilt from the others).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hamster_proto::pb;
use hamster_proto::pb::registry_client::RegistryClient;

use crate::meta::{MetaError, MetaTier};
use crate::pipeline::placement::Candidate;
use crate::pipeline::profile::{default_profile, for_object};

const REFRESH: Duration = Duration::from_secs(2);

pub struct ClusterView {
    meta: Arc<MetaTier>,
    down_after: Duration,
    servers: RwLock<Vec<pb::BlobServer>>,
    /// The cluster's erasure profile, if set (`hamster profile set`).
    profile: RwLock<Option<(usize, usize)>>,
    /// The master key new writes use, as the meta tier last said.
    write_key: RwLock<String>,
    /// Objects of a known size up to this are mirrored (`--mirror-max-bytes`).
    mirror_max: u64,
}

impl ClusterView {
    pub fn new(meta: Arc<MetaTier>, down_after: Duration, mirror_max: u64) -> Arc<Self> {
        Arc::new(Self {
            mirror_max,
            meta,
            down_after,
            servers: RwLock::new(Vec::new()),
            profile: RwLock::new(None),
            write_key: RwLock::new(String::new()),
        })
    }

    /// Keeps the view fresh until the process ends.
    pub fn spawn_refresh(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(b) = me.upgrade() {
                if let Err(e) = b.refresh().await {
                    tracing::debug!(error = %e, "cluster view refresh failed");
                }
                drop(b);
                tokio::time::sleep(REFRESH).await;
            }
        });
    }

    pub async fn refresh(&self) -> Result<(), MetaError> {
        let list = self
            .meta
            .call(|ch| async move {
                RegistryClient::new(ch)
                    .list_blobs(pb::ListBlobsRequest {})
                    .await
            })
            .await?;
        if let Ok(mut s) = self.servers.write() {
            *s = list.servers;
        }
        if let Ok(mut p) = self.profile.write() {
            *p = (list.data_shards > 0)
                .then_some((list.data_shards as usize, list.parity_shards as usize));
        }
        if let Ok(mut w) = self.write_key.write() {
            *w = list.write_kek_fingerprint;
        }
        Ok(())
    }

    /// The fingerprint of the cluster's write key ("" if not yet known).
    pub fn write_key(&self) -> String {
        self.write_key.read().map(|w| w.clone()).unwrap_or_default()
    }

    fn snapshot(&self) -> Vec<pb::BlobServer> {
        self.servers.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// k+m for a new object: the profile the cluster set, else the
    /// default for the servers that stay in it ([`staying`]).
    fn profile(&self) -> Option<(usize, usize)> {
        self.profile
            .read()
            .ok()
            .and_then(|p| *p)
            .or_else(|| default_profile(staying(&self.snapshot())))
    }

    /// k+m for a new object of `size` bytes (None: unknown until read;
    /// a tiny one is mirrored, [`for_object`]) and its placement
    /// candidates; None while no blob-server is registered. The registry
    /// is asked again first if the view looks short: no blob-server seen
    /// yet (just started), or fewer active than the cluster's k+m.
    pub async fn placement(&self, size: Option<u64>) -> Option<((usize, usize), Vec<Candidate>)> {
        let short = |c: &[Candidate], p: Option<(usize, usize)>| {
            p.is_none_or(|(k, m)| c.iter().filter(|c| c.active).count() < k + m)
        };
        let mut c = self.candidates();
        if short(&c, self.profile()) {
            if let Err(e) = self.refresh().await {
                tracing::debug!(error = %e, "registry refresh before placement failed");
            }
            c = self.candidates();
        }
        let profile = for_object(self.profile()?, size, self.mirror_max);
        Some((profile, c))
    }

    /// Servers that may take new shards.
    fn candidates(&self) -> Vec<Candidate> {
        let servers = self.snapshot();
        let fresh = fresh_since(&servers, crate::now_ms(), self.down_after);
        servers
            .into_iter()
            .map(|s| Candidate {
                active: s.state == "active" && s.last_heartbeat_ms >= fresh,
                id: s.id,
                address: s.address,
                failure_domain: s.failure_domain,
                free_bytes: s.free_bytes,
            })
            .collect()
    }

    /// Blob id → address, for reads and for freeing shards; removed
    /// servers are left out (see `reachable`).
    pub fn addresses(&self) -> HashMap<String, String> {
        reachable(self.snapshot())
    }
}

/// The oldest heartbeat time (ms) of a server that may take new shards:
/// `down_after` before the newest heartbeat of a server still in the
/// cluster, or before `now` if that is earlier (a meta leader's clock
/// ahead of ours). A pause of every heartbeat (a meta election, a meta
/// tier out of reach, a view not refreshed) marks no one down; a server
/// that fell silent while the others went on is.
fn fresh_since(servers: &[pb::BlobServer], now_ms: i64, down_after: Duration) -> i64 {
    let newest = servers
        .iter()
        .filter(|s| s.state != "removed")
        .map(|s| s.last_heartbeat_ms)
        .max()
        .unwrap_or(now_ms);
    newest
        .min(now_ms)
        .saturating_sub(i64::try_from(down_after.as_millis()).unwrap_or(i64::MAX))
}

/// The servers a default profile is sized for: registered and staying,
/// i.e. not removed and not leaving on purpose (draining, drained). A
/// server that is down still counts: an outage must not weaken the
/// redundancy of new objects (placement skips it; more servers than
/// k+m keep writes whole).
fn staying(servers: &[pb::BlobServer]) -> usize {
    servers
        .iter()
        .filter(|s| s.state != "removed" && (s.lifecycle == "in" || s.lifecycle.is_empty()))
        .count()
}

/// Blob id → address of every server that may still be asked for a
/// shard. A removed server is refused by every tier, and whatever it
/// still holds is stale: its shards count as missing, so a read
/// reconstructs them from the others and nothing is sent its way.
fn reachable(servers: Vec<pb::BlobServer>) -> HashMap<String, String> {
    servers
        .into_iter()
        .filter(|s| s.state != "removed" && s.lifecycle != "removed")
        .map(|s| (s.id, s.address))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(id: &str, state: &str, lifecycle: &str) -> pb::BlobServer {
        pb::BlobServer {
            id: id.into(),
            address: format!("{id}:7400"),
            state: state.into(),
            lifecycle: lifecycle.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_pause_of_every_heartbeat_marks_no_one_down_but_one_silent_server_is() {
        let down_after = Duration::from_secs(6);
        let now = 1_000_000;
        let beat = |id: &str, at: i64| pb::BlobServer {
            last_heartbeat_ms: at,
            ..server(id, "active", "in")
        };
        // A meta election: no heartbeat recorded for 20 s, none is down.
        let paused: Vec<_> = (0..4)
            .map(|i| beat(&format!("b{i}"), now - 20_000))
            .collect();
        let fresh = fresh_since(&paused, now, down_after);
        assert!(paused.iter().all(|s| s.last_heartbeat_ms >= fresh));
        // One server silent for 7 s while the others beat: down.
        let mut one = paused.clone();
        for s in &mut one[1..] {
            s.last_heartbeat_ms = now - 1_000;
        }
        one[0].last_heartbeat_ms = now - 8_000;
        let fresh = fresh_since(&one, now, down_after);
        assert!(one[0].last_heartbeat_ms < fresh, "the silent one is down");
        assert!(one[1..].iter().all(|s| s.last_heartbeat_ms >= fresh));
        // A removed server's recent heartbeat does not set the pace, and a
        // leader clock ahead of ours does not mark ours stale.
        let mut ahead = paused.clone();
        ahead.push(pb::BlobServer {
            last_heartbeat_ms: now + 60_000,
            ..server("gone", "removed", "removed")
        });
        assert_eq!(fresh_since(&ahead, now, down_after), now - 20_000 - 6_000);
        ahead[0].last_heartbeat_ms = now + 30_000;
        assert_eq!(fresh_since(&ahead, now, down_after), now - 6_000);
        assert_eq!(fresh_since(&[], now, down_after), now - 6_000);
    }

    #[test]
    fn the_default_profile_counts_servers_that_stay_down_or_not() {
        let mut servers: Vec<_> = (0..6)
            .map(|i| server(&format!("b{i}"), "active", "in"))
            .collect();
        assert_eq!(default_profile(staying(&servers)), Some((4, 2)));
        // One down: a transient outage keeps 4+2 for new objects.
        servers[0].state = "down".into();
        assert_eq!(default_profile(staying(&servers)), Some((4, 2)));
        // One draining, one drained, one removed: leaving on purpose.
        servers[1] = server("b1", "draining", "draining");
        assert_eq!(default_profile(staying(&servers)), Some((3, 2)));
        servers[2] = server("b2", "drained", "drained");
        servers[3] = server("b3", "removed", "removed");
        assert_eq!(staying(&servers), 3);
        assert_eq!(default_profile(staying(&servers)), Some((2, 1)));
        // An older meta tier that sends no lifecycle: state alone decides.
        let old = vec![server("x", "active", ""), server("y", "removed", "")];
        assert_eq!(staying(&old), 1);
    }

    #[test]
    fn reads_and_frees_never_go_to_a_removed_server() {
        let servers = vec![
            server("up", "active", "in"),
            server("down", "down", "in"),
            server("leaving", "draining", "draining"),
            server("empty", "drained", "drained"),
            server("gone", "removed", "removed"),
        ];
        let addrs = reachable(servers);
        // A down or draining server may still answer: its copy is the
        // one named until the move swaps it.
        for id in ["up", "down", "leaving", "empty"] {
            assert_eq!(addrs.get(id), Some(&format!("{id}:7400")), "{id}");
        }
        assert!(!addrs.contains_key("gone"));
    }

    #[test]
    fn a_shard_on_a_removed_server_is_read_as_missing() {
        use crate::pipeline::read::ObjectReader;
        let servers = vec![
            server("b0", "active", "in"),
            server("b1", "removed", "removed"),
        ];
        let map = pb::ShardMap {
            data_shards: 1,
            parity_shards: 1,
            segment_size: crate::pipeline::encrypt::SEGMENT_SIZE as u64,
            shards: vec![
                pb::ShardLocation {
                    index: 0,
                    blob_id: "b1".into(),
                    shard_id: "s0".into(),
                    ..Default::default()
                },
                pb::ShardLocation {
                    index: 1,
                    blob_id: "b0".into(),
                    shard_id: "s1".into(),
                    ..Default::default()
                },
            ],
        };
        let sources = ObjectReader::sources_of(&map, &reachable(servers));
        assert_eq!(sources[0].address, "", "never asked");
        assert_eq!(sources[1].address, "b0:7400");
    }
}
