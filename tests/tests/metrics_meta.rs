//! The meta tier's metrics and admin audit log (issue 23) on a 3-node
//! cluster of real processes: one leader in `hamster_raft_is_leader`,
//! commit and applied indexes that move with writes, the admin calls of
//! the CLI in the audit logs with the admin's identity and never the
//! secret it printed, and a new leader reported after SIGKILL.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hamster_tests::scrape::{scrape, value};
use hamster_tests::{Cluster, Kind, Node, free_port, path_str};
use serde_json::Value;

struct Metas {
    c: Cluster,
    nodes: Vec<Node>,
    metrics: HashMap<Node, SocketAddr>,
    audit: Vec<PathBuf>,
}

/// Three founding meta-servers, each with its own metrics port and audit log.
async fn start() -> Metas {
    let mut c = Cluster::new();
    let mut nodes = Vec::new();
    let mut metrics = HashMap::new();
    let mut audit = Vec::new();
    for i in 1..=3 {
        let n = c.prepare(Kind::Meta, &format!("meta-{i}"));
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let log = c.root().join(format!("logs/audit-meta-{i}.jsonl"));
        c.add_args(
            n,
            &[
                &format!("--metrics-listen={addr}"),
                &format!("--audit-log={}", path_str(&log)),
            ],
        );
        metrics.insert(n, addr);
        audit.push(log);
        nodes.push(n);
    }
    let members: Vec<String> = nodes.iter().map(|n| c.member(*n)).collect();
    for &n in &nodes {
        c.add_args(n, &[&format!("--initial-members={}", members.join(","))]);
        c.spawn_prepared(n);
    }
    for &n in &nodes {
        c.wait_healthy(n).await;
    }
    c.wait_leader(&nodes).await;
    Metas {
        c,
        nodes,
        metrics,
        audit,
    }
}

impl Metas {
    async fn text(&self, n: Node) -> String {
        scrape(self.metrics[&n]).await.unwrap_or_default()
    }

    /// Polls until `f` holds of the running nodes' metrics (30 s at most).
    async fn until(
        &self,
        what: &str,
        f: impl Fn(&[(Node, String)]) -> bool,
    ) -> Vec<(Node, String)> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut all = Vec::new();
            for &n in self.nodes.iter().filter(|n| self.c.is_running(**n)) {
                all.push((n, self.text(n).await));
            }
            if f(&all) {
                return all;
            }
            assert!(Instant::now() < deadline, "never: {what}\n{all:#?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every audit line of every node so far.
    fn audit_lines(&self) -> Vec<Value> {
        self.audit
            .iter()
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .unwrap_or_default()
                    .lines()
                    .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
                    .collect::<Vec<Value>>()
            })
            .collect()
    }
}

fn leaders(all: &[(Node, String)]) -> Vec<Node> {
    all.iter()
        .filter(|(_, t)| value(t, "hamster_raft_is_leader", &[]) == 1.0)
        .map(|(n, _)| *n)
        .collect()
}

fn has(text: &str, series: &str) -> bool {
    text.lines().any(|l| {
        l.strip_prefix(series)
            .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_metrics_follow_raft_and_admin_calls_are_audited_without_secrets() {
    let mut m = start().await;

    // --- One leader, every node's series present. ---
    let all = m
        .until("exactly one node reports is_leader 1", |all| {
            all.len() == 3 && leaders(all).len() == 1
        })
        .await;
    let leader = leaders(&all)[0];
    for (_, t) in &all {
        for s in [
            "hamster_raft_term",
            "hamster_raft_commit_index",
            "hamster_raft_applied_index",
            "hamster_raft_last_log_index",
            "hamster_raft_members",
            "hamster_under_replicated",
            "hamster_key_rotation_active",
            "hamster_ca_rotation_active",
        ] {
            assert!(has(t, s), "{s} missing:\n{t}");
        }
        assert_eq!(value(t, "hamster_raft_members", &[("kind", "voter")]), 3.0);
        assert_eq!(value(t, "hamster_key_rotation_active", &[]), 0.0);
    }
    let index_of = |all: &[(Node, String)], s: &str| -> Vec<f64> {
        all.iter().map(|(_, t)| value(t, s, &[])).collect()
    };
    let committed_before = index_of(&all, "hamster_raft_commit_index");
    let applied_before = index_of(&all, "hamster_raft_applied_index");

    // --- Admin changes through the CLI (a follower first answers
    // NotLeader, which is audited too; the leader makes the change). ---
    let out = m.c.hamster(
        &["key", "create", "--name", "audited"]
            .into_iter()
            .chain(m.c.admin_flags().iter().map(String::as_str))
            .collect::<Vec<_>>(),
    );
    let field = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("{k} not printed:\n{out}"))
            .trim()
            .to_string()
    };
    let (key_id, secret) = (field("AWS_ACCESS_KEY_ID="), field("AWS_SECRET_ACCESS_KEY="));
    assert!(secret.len() >= 20, "{out}");
    m.c.hamster(
        &["bucket", "create", "audited-bucket", "--owner", &key_id]
            .into_iter()
            .chain(m.c.admin_flags().iter().map(String::as_str))
            .collect::<Vec<_>>(),
    );

    // --- The writes moved every node's commit and applied index. ---
    let all = m
        .until("commit and applied indexes rise on every node", |all| {
            let c = index_of(all, "hamster_raft_commit_index");
            let a = index_of(all, "hamster_raft_applied_index");
            all.len() == 3 && (0..3).all(|i| c[i] > committed_before[i] && a[i] > applied_before[i])
        })
        .await;
    let lt = &all.iter().find(|(n, _)| *n == leader).expect("leader").1;
    assert!(has(lt, "hamster_raft_append_seconds_bucket"), "{lt}");
    assert!(
        has(lt, "hamster_raft_group_commit_batch_size_count"),
        "{lt}"
    );
    assert!(value(lt, "hamster_raft_group_commit_batch_size_count", &[]) > 0.0);

    // --- Both calls are in the audit log, by the admin, with what they
    // changed; the records reach the file within a second or so. ---
    let deadline = Instant::now() + Duration::from_secs(10);
    let (created, bucket) = loop {
        let lines = m.audit_lines();
        let find = |method: &str| {
            lines
                .iter()
                .find(|l| l["method"] == method && l["outcome"] == "ok")
                .cloned()
        };
        if let (Some(k), Some(b)) = (find("CreateAccessKey"), find("CreateBucket")) {
            break (k, b);
        }
        assert!(Instant::now() < deadline, "audit lines missing: {lines:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(created["admin"], "admin/admin", "{created}");
    assert_eq!(created["service"], "hamster.v1.Admin");
    assert_eq!(created["args"]["name"], "audited");
    assert_eq!(created["result"]["access_key_id"], key_id.as_str());
    assert!(created["duration_ms"].is_number());
    assert_eq!(bucket["admin"], "admin/admin");
    assert_eq!(bucket["args"]["bucket"], "audited-bucket");
    assert_eq!(bucket["args"]["owner"], key_id.as_str());
    for p in &m.audit {
        let raw = std::fs::read(p).unwrap_or_default();
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the S3 secret is in {}",
            p.display()
        );
    }

    // --- SIGKILL the leader: another node reports itself leader. ---
    let term = value(lt, "hamster_raft_term", &[]);
    m.c.kill(leader);
    let all = m
        .until("a surviving node reports is_leader 1", |all| {
            all.len() == 2 && leaders(all).len() == 1
        })
        .await;
    let new = leaders(&all)[0];
    assert_ne!(new, leader);
    let nt = &all.iter().find(|(n, _)| *n == new).expect("new leader").1;
    assert!(value(nt, "hamster_raft_term", &[]) > term, "{nt}");
}
