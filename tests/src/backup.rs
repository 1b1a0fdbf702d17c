//! Helpers for the backup, restore and quorum-loss tests (issue 18): the
//! admin CLI run without the admin flags (offline `hamster restore`), a
//! meta-server's restore flags, a meta-server wiped and started again as
//! a new member under a new Raft id, a wait for a node that must refuse
//! to start, a PUT load that remembers when each write was acknowledged,
//! and the secret bytes a backup file must never hold.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use base64::Engine;
use tokio::task::JoinHandle;

use crate::durability::CliRun;
use crate::s3::pattern;
use crate::{Cluster, Kind, Node, files_under, path_str};

impl Cluster {
    /// Runs `hamster ARGS` with no admin flags added (offline commands:
    /// `restore`), logged to logs/hamster.log; never panics on the
    /// command's own failure.
    pub fn cli(&self, args: &[&str]) -> CliRun {
        self.cli_run(args, Vec::new())()
    }

    /// A meta node's data directory.
    pub fn meta_data_dir(&self, node: Node) -> PathBuf {
        assert_eq!(node.kind(), Kind::Meta, "not a meta-server");
        self.node(node).dir.join("data")
    }

    /// Deletes a (stopped) meta node's data directory, as a lost disk.
    pub fn destroy_meta_data(&self, node: Node) {
        assert!(!self.is_running(node), "{} is running", self.node(node).id);
        let dir = self.meta_data_dir(node);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .unwrap_or_else(|e| panic!("remove {}: {e}", dir.display()));
        }
    }

    /// The flags `hamster restore` takes to seed `data_dir` for meta node
    /// `node` (its Raft id, address, master key, trust and certificate).
    pub fn restore_target(&self, node: Node, data_dir: &Path) -> Vec<String> {
        let n = self.node(node);
        vec![
            format!("--data-dir={}", path_str(data_dir)),
            format!("--raft-id={}", n.raft_id),
            format!("--listen={}", n.addr),
            format!(
                "--master-key-file={}",
                path_str(&self.pki_dir().join("master.key"))
            ),
            format!("--trust={}", path_str(&n.dir.join("trust.pem"))),
            format!("--tls-cert={}", path_str(&n.dir.join("node.crt"))),
        ]
    }

    /// Makes a stopped meta node a blank joiner under Raft id `raft_id`:
    /// its data destroyed, no --initial-members (a wiped node started with
    /// them would found a second cluster); same address, certificate and
    /// name. Start it, then `hamster member add` it.
    pub fn as_new_member(&mut self, node: Node, raft_id: u64) {
        self.destroy_meta_data(node);
        self.set_arg(node, "--initial-members", None);
        self.set_arg(node, "--raft-id", Some(&raft_id.to_string()));
        self.proc_mut(node).raft_id = raft_id;
        self.next_raft_id = self.next_raft_id.max(raft_id + 1);
    }

    /// Removes every exact occurrence of a valueless flag
    /// (`--force-new-cluster`) from a prepared node's arguments.
    pub fn remove_flag(&mut self, node: Node, flag: &str) {
        self.proc_mut(node).args.retain(|a| a != flag);
    }

    /// Starts a blank meta node (see [`Cluster::as_new_member`]) and adds
    /// it to the cluster with `hamster member add`.
    pub async fn add_member(&mut self, node: Node) -> CliRun {
        self.spawn(node);
        self.wait_healthy(node).await;
        let n = self.node(node);
        let (raft_id, name, addr) = (n.raft_id.to_string(), n.id.clone(), n.addr.to_string());
        self.admin_cli(&[
            "member",
            "add",
            "--raft-id",
            &raft_id,
            "--node-id",
            &name,
            "--address",
            &addr,
        ])
    }

    /// Waits up to `limit` for a started node to exit (one that must
    /// refuse to start); answers how it exited, None if it still runs.
    /// The handle is left stopped, ready for [`Cluster::restart`].
    pub async fn wait_exit(&mut self, node: Node, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            let child = self.proc_mut(node).child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.proc_mut(node).child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every secret a backup must not hold, by name: the master key (raw,
    /// hex, base64), the CA's, the admin's and every node's private key
    /// (PEM body, DER, private scalar), and each S3 secret in `s3_secrets`.
    pub fn secret_needles(&self, s3_secrets: &[&str]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let pki = self.pki_dir();
        let kek = std::fs::read(pki.join("master.key")).expect("master key");
        out.push(("master key".into(), kek.clone()));
        out.push(("master key (hex)".into(), hex::encode(&kek).into_bytes()));
        let b64 = base64::engine::general_purpose::STANDARD.encode(&kek);
        out.push(("master key (base64)".into(), b64.into_bytes()));
        let mut keys = vec![pki.join("ca.key"), pki.join("admin.key")];
        keys.extend(
            files_under(&self.root().join("nodes"))
                .into_iter()
                .filter(|p| p.file_name().is_some_and(|n| n == "node.key")),
        );
        for path in keys {
            let pem = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.extend(pem_needles(&path.display().to_string(), &pem));
        }
        for (i, s) in s3_secrets.iter().enumerate() {
            out.push((format!("S3 secret {i}"), s.as_bytes().to_vec()));
        }
        out
    }
}

/// A private key PEM's secret forms: its base64 body (one string), its
/// DER, and the 32-byte private scalar in it (the first OCTET STRING of
/// 32 bytes, as PKCS#8 EC and Ed25519 keys carry it).
fn pem_needles(name: &str, pem: &str) -> Vec<(String, Vec<u8>)> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(&body)
        .unwrap_or_else(|e| panic!("{name}: not PEM: {e}"));
    let mut out = vec![
        (format!("{name} (PEM body)"), body.into_bytes()),
        (format!("{name} (DER)"), der.clone()),
    ];
    if let Some(at) = der.windows(2).position(|w| w == [0x04, 0x20])
        && der.len() >= at + 2 + 32
    {
        out.push((
            format!("{name} (private scalar)"),
            der[at + 2..at + 34].to_vec(),
        ));
    }
    out
}

/// The names of the needles found in `hay`.
pub fn leaked(hay: &[u8], needles: &[(String, Vec<u8>)]) -> Vec<String> {
    needles
        .iter()
        .filter(|(_, n)| contains(hay, n))
        .map(|(name, _)| name.clone())
        .collect()
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, _)) = needle.split_first() else {
        return true;
    };
    let mut from = 0;
    while let Some(p) = hay[from..].iter().position(|&b| b == first) {
        let at = from + p;
        if hay.len() - at < needle.len() {
            return false;
        }
        if &hay[at..at + needle.len()] == needle {
            return true;
        }
        from = at + 1;
    }
    false
}

/// One write of an [`AckedLoad`]: what was PUT, and when the answer came.
#[derive(Clone, Debug)]
pub struct Acked {
    pub key: String,
    pub data: Vec<u8>,
    pub acked: Instant,
}

/// What an [`AckedLoad`] did.
#[derive(Debug, Default)]
pub struct AckedReport {
    pub acked: Vec<Acked>,
    /// The first failures, verbatim.
    pub errors: Vec<String>,
    pub failed: u64,
}

/// A PUT load of new keys only (`{prefix}{stream}/{n}`, never
/// overwritten, so no write frees a shard an older state names) that
/// records when each PUT was acknowledged: a point-in-time copy must hold
/// every write acknowledged before it was asked for.
pub struct AckedLoad {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<AckedReport>>,
}

impl AckedLoad {
    pub fn start(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str, streams: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..streams)
            .map(|w| {
                let (c, stop) = (client.clone(), stop.clone());
                let (bucket, prefix) = (bucket.to_string(), prefix.to_string());
                tokio::spawn(async move {
                    let mut r = AckedReport::default();
                    let mut n = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("{prefix}{w}/{n}");
                        // Small to 200 KB: many writes, none slow.
                        let len = [13, 4_000, 60_000, 200_000][n % 4];
                        let data = pattern(len, (n * 31 + w) as u8);
                        n += 1;
                        let put = c
                            .put_object()
                            .bucket(&bucket)
                            .key(&key)
                            .body(ByteStream::from(data.clone()))
                            .send()
                            .await;
                        match put {
                            Ok(_) => r.acked.push(Acked {
                                key,
                                data,
                                acked: Instant::now(),
                            }),
                            Err(e) => {
                                r.failed += 1;
                                if r.errors.len() < 5 {
                                    r.errors.push(format!("PUT {key}: {e:?}"));
                                }
                            }
                        }
                    }
                    r
                })
            })
            .collect();
        Self { stop, tasks }
    }

    /// Stops every stream after its current PUT and adds up.
    pub async fn stop(self) -> AckedReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut out = AckedReport::default();
        for t in self.tasks {
            match t.await {
                Ok(r) => {
                    out.acked.extend(r.acked);
                    out.errors.extend(r.errors);
                    out.failed += r.failed;
                }
                Err(e) => {
                    out.failed += 1;
                    out.errors.push(format!("a load stream panicked: {e}"));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_finds_a_needle_anywhere_and_only_whole() {
        let hay = b"abcabdabe";
        assert!(contains(hay, b"abd"));
        assert!(contains(hay, b"abe"));
        assert!(!contains(hay, b"abf"));
        assert!(!contains(hay, b"bea"));
        assert!(contains(hay, b""));
    }

    #[test]
    fn a_pkcs8_key_gives_its_scalar() {
        // A P-256 PKCS#8 header, then OCTET STRING(32) of the scalar.
        let mut der =
            hex::decode("308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420")
                .expect("hex");
        der.extend([0xab; 32]);
        der.extend([0xa1, 0x44]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
        let got = pem_needles("k", &pem);
        let scalar = got
            .iter()
            .find(|(n, _)| n.contains("scalar"))
            .expect("scalar");
        assert_eq!(scalar.1, vec![0xab; 32]);
    }
}
