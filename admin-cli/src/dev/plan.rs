//! What `hamster dev` runs: every node's binary and flags, and the ports
//! they take. From `--base-port` BASE: meta-servers listen on BASE+1..,
//! blob-servers on BASE+101.., gateways on BASE+201..; their metrics
//! (`--metrics-listen`) on BASE+301.., BASE+401.., BASE+501... S3 is on
//! `--s3-port` and the next ports.

use std::path::Path;

use hamster_proto::Role;

use crate::dev::DevArgs;
use crate::dev::prometheus::Target;
use crate::dev::topology::{BlobEntry, GatewayEntry, Topology};

/// Every address is on loopback: a dev cluster is one machine's.
pub const HOST: &str = "127.0.0.1";
/// At most this many nodes per tier: each tier's ports are a block of 100.
pub const MAX_PER_TIER: u16 = 99;
/// The highest offset from BASE a port takes.
const TOP_OFFSET: u16 = 500 + MAX_PER_TIER;

/// One child process: its name (`blob-3`), binary and flags (all but the
/// TLS files, which follow from the name).
pub struct Node {
    pub id: String,
    pub binary: &'static str,
    pub role: Role,
    pub args: Vec<String>,
}

/// The nodes in start order (meta tier first), the meta-servers'
/// addresses, and the topology to write.
pub struct Plan {
    pub nodes: Vec<Node>,
    pub metas: Vec<String>,
    pub topo: Topology,
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn addr(port: u16) -> String {
    format!("{HOST}:{port}")
}

/// The cluster `a` describes, laid out in `dir`.
pub fn plan(
    a: &DevArgs,
    dir: &Path,
    pki: &Path,
    key: &Path,
    next_key: &Path,
) -> anyhow::Result<Plan> {
    anyhow::ensure!(
        a.metas >= 1 && a.blobs >= 1 && a.gateways >= 1,
        "need at least one of each tier"
    );
    anyhow::ensure!(
        a.metas.max(a.blobs).max(a.gateways) <= MAX_PER_TIER,
        "at most {MAX_PER_TIER} nodes per tier (each tier has a block of 100 ports)"
    );
    anyhow::ensure!(
        a.base_port <= u16::MAX - TOP_OFFSET,
        "--base-port must leave room for BASE+{TOP_OFFSET}"
    );
    anyhow::ensure!(
        a.s3_port <= u16::MAX - a.gateways,
        "--s3-port must leave room for every gateway"
    );
    let logs = dir.join("logs");
    let key_flags = [
        format!("--master-key-file={}", s(key)),
        format!("--next-master-key-file={}", s(next_key)),
    ];
    let port = |tier: u16, i: u16| a.base_port + tier + i;
    let metas: Vec<String> = (1..=a.metas).map(|i| addr(port(0, i))).collect();
    let members: Vec<String> = (1..=a.metas)
        .map(|i| format!("{i}=meta-{i}@{}", addr(port(0, i))))
        .collect();
    let mut nodes = Vec::new();
    let mut topo = Topology::new(key, next_key, pki);
    for i in 1..=a.metas {
        let metrics = addr(port(300, i));
        let data = topo.add_meta(dir, i, addr(port(0, i)), metrics.clone());
        let mut args = vec![
            format!("--listen={}", addr(port(0, i))),
            format!("--raft-id={i}"),
            // Ignored once the node is initialized: a restart keeps its
            // data dir and raft id.
            format!("--initial-members={}", members.join(",")),
            format!("--data-dir={}", s(&data)),
            // The init directory: `hamster rotate-ca` mints there.
            format!("--ca-dir={}", s(pki)),
            format!("--metrics-listen={metrics}"),
            format!(
                "--audit-log={}",
                s(&logs.join(format!("audit-meta-{i}.jsonl")))
            ),
        ];
        args.extend(key_flags.iter().cloned());
        nodes.push(Node {
            id: format!("meta-{i}"),
            binary: "meta-server",
            role: Role::Meta,
            args,
        });
    }
    for i in 1..=a.blobs {
        let entry = BlobEntry {
            name: format!("blob-{i}"),
            addr: addr(port(100, i)),
            data_dir: dir.join("data").join(format!("blob-{i}")),
            metrics_addr: addr(port(400, i)),
        };
        nodes.push(Node {
            id: entry.name.clone(),
            binary: "blob-server",
            role: Role::Blob,
            args: vec![
                format!("--listen={}", entry.addr),
                format!("--data-dir={}", s(&entry.data_dir)),
                format!("--failure-domain=fd-{i}"),
                format!("--meta={}", metas.join(",")),
                format!("--metrics-listen={}", entry.metrics_addr),
            ],
        });
        topo.blobs.push(entry);
    }
    for i in 1..=a.gateways {
        let entry = GatewayEntry {
            name: format!("gateway-{i}"),
            addr: addr(port(200, i)),
            s3_addr: addr(a.s3_port + i - 1),
            metrics_addr: addr(port(500, i)),
        };
        let mut args = vec![
            format!("--listen={}", entry.addr),
            format!("--s3-listen={}", entry.s3_addr),
            format!("--meta={}", metas.join(",")),
            format!("--metrics-listen={}", entry.metrics_addr),
            format!(
                "--access-log={}",
                s(&logs.join(format!("access-gateway-{i}.jsonl")))
            ),
        ];
        args.extend(key_flags.iter().cloned());
        nodes.push(Node {
            id: entry.name.clone(),
            binary: "gateway",
            role: Role::Gateway,
            args,
        });
        topo.gateways.push(entry);
    }
    Ok(Plan { nodes, metas, topo })
}

/// The scrape jobs for `prometheus.yml`: one per tier, every node.
pub fn scrape_jobs(t: &Topology) -> Vec<(&'static str, Vec<Target<'_>>)> {
    vec![
        (
            "hamster-meta",
            t.metas
                .iter()
                .map(|m| Target {
                    node: &m.name,
                    addr: &m.metrics_addr,
                })
                .collect(),
        ),
        (
            "hamster-blob",
            t.blobs
                .iter()
                .map(|b| Target {
                    node: &b.name,
                    addr: &b.metrics_addr,
                })
                .collect(),
        ),
        (
            "hamster-gateway",
            t.gateways
                .iter()
                .map(|g| Target {
                    node: &g.name,
                    addr: &g.metrics_addr,
                })
                .collect(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::path::PathBuf;

    fn args(metas: u16, blobs: u16, gateways: u16) -> DevArgs {
        DevArgs {
            dir: PathBuf::from("/d"),
            metas,
            blobs,
            gateways,
            base_port: 7400,
            s3_port: 9000,
            bin_dir: None,
            no_restart: false,
        }
    }

    fn flag<'a>(n: &'a Node, name: &str) -> Option<&'a str> {
        n.args
            .iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")))
    }

    #[test]
    fn every_node_has_its_own_metrics_port_and_its_logs_in_dir() {
        let d = Path::new("/d");
        let p = plan(
            &args(3, 6, 2),
            d,
            &d.join("pki"),
            &d.join("k"),
            &d.join("n"),
        )
        .expect("plan");
        assert_eq!(p.nodes.len(), 11);
        let mut ports = HashSet::new();
        for n in &p.nodes {
            for f in ["listen", "metrics-listen", "s3-listen"] {
                if let Some(a) = flag(n, f) {
                    assert!(ports.insert(a.to_string()), "{a} taken twice");
                }
            }
        }
        let by = |id: &str| p.nodes.iter().find(|n| n.id == id).expect(id);
        assert_eq!(flag(by("meta-2"), "metrics-listen"), Some("127.0.0.1:7702"));
        assert_eq!(flag(by("blob-6"), "metrics-listen"), Some("127.0.0.1:7806"));
        assert_eq!(
            flag(by("gateway-2"), "metrics-listen"),
            Some("127.0.0.1:7902")
        );
        assert_eq!(flag(by("gateway-2"), "s3-listen"), Some("127.0.0.1:9001"));
        assert_eq!(
            flag(by("gateway-2"), "access-log"),
            Some("/d/logs/access-gateway-2.jsonl")
        );
        assert_eq!(
            flag(by("meta-3"), "audit-log"),
            Some("/d/logs/audit-meta-3.jsonl")
        );
        assert_eq!(p.topo.blobs[5].metrics_addr, "127.0.0.1:7806");
        let jobs = scrape_jobs(&p.topo);
        let sizes: Vec<_> = jobs.iter().map(|(j, t)| (*j, t.len())).collect();
        assert_eq!(
            sizes,
            [
                ("hamster-meta", 3),
                ("hamster-blob", 6),
                ("hamster-gateway", 2)
            ]
        );
    }

    #[test]
    fn tiers_that_would_share_ports_are_refused() {
        let d = Path::new("/d");
        let refused = |a: DevArgs| plan(&a, d, d, d, d).is_err();
        assert!(refused(args(0, 6, 1)));
        assert!(refused(args(3, MAX_PER_TIER + 1, 1)));
        assert!(refused(DevArgs {
            base_port: 65_000,
            ..args(3, 6, 1)
        }));
        assert!(!refused(args(3, MAX_PER_TIER, 1)));
    }
}
