//! `DIR/topology.json`: what `hamster dev` runs — every node's name,
//! address and data dir, each meta-server's raft id and TLS files, and
//! the key files. `hamster dev` rewrites it at every start, before any
//! child starts; `hamster restore --dir DIR` reads it to know the meta
//! tier it rebuilds (members, data dirs, the node facts it checks).
//! Each node's `metrics_addr` (its `--metrics-listen`) came later: a file
//! without it still reads (empty).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The file's name in a dev dir.
pub const FILE: &str = "topology.json";
/// The format this binary writes and reads.
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub version: u32,
    pub metas: Vec<MetaEntry>,
    pub blobs: Vec<BlobEntry>,
    pub gateways: Vec<GatewayEntry>,
    pub master_key_file: PathBuf,
    /// May not exist: it is the key a rotation would move to.
    pub next_master_key_file: PathBuf,
    pub pki_dir: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaEntry {
    pub raft_id: u64,
    /// The id in its certificate (hamster://meta/NAME).
    pub name: String,
    pub addr: String,
    pub data_dir: PathBuf,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub trust: PathBuf,
    #[serde(default)]
    pub metrics_addr: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobEntry {
    pub name: String,
    pub addr: String,
    pub data_dir: PathBuf,
    #[serde(default)]
    pub metrics_addr: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayEntry {
    pub name: String,
    pub addr: String,
    pub s3_addr: String,
    #[serde(default)]
    pub metrics_addr: String,
}

impl Topology {
    /// A topology with no node yet, for these key files and PKI dir.
    pub fn new(master_key_file: &Path, next_master_key_file: &Path, pki_dir: &Path) -> Self {
        Self {
            version: VERSION,
            metas: Vec::new(),
            blobs: Vec::new(),
            gateways: Vec::new(),
            master_key_file: master_key_file.to_path_buf(),
            next_master_key_file: next_master_key_file.to_path_buf(),
            pki_dir: pki_dir.to_path_buf(),
        }
    }

    /// Adds meta-server `i` (raft id `i`, `meta-i`) at `addr`, laid out as
    /// `hamster dev` lays out nodes in `dir`; answers its data dir.
    pub fn add_meta(&mut self, dir: &Path, i: u16, addr: String, metrics_addr: String) -> PathBuf {
        let name = format!("meta-{i}");
        let node = dir.join("nodes").join(&name);
        let data_dir = dir.join("data").join(&name);
        self.metas.push(MetaEntry {
            raft_id: u64::from(i),
            name,
            addr,
            data_dir: data_dir.clone(),
            tls_cert: node.join("node.crt"),
            tls_key: node.join("node.key"),
            trust: node.join("trust.pem"),
            metrics_addr,
        });
        data_dir
    }

    /// Writes `dir/topology.json` so that a crash leaves the old file or
    /// the new one, never a mix.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(FILE);
        let json = serde_json::to_vec_pretty(self)?;
        hamster_proto::trust_sync::replace_file(&path, &json, 0o644)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Reads `dir/topology.json`; refuses a newer format or one without
    /// a meta-server.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(FILE);
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "reading {} (written by `hamster dev` at every start; run it once with this \
                 version of hamster)",
                path.display()
            )
        })?;
        let t: Topology = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a dev topology", path.display()))?;
        anyhow::ensure!(
            t.version <= VERSION,
            "{} is version {}, newer than this hamster knows ({VERSION})",
            path.display(),
            t.version
        );
        anyhow::ensure!(
            !t.metas.is_empty(),
            "{} names no meta-server",
            path.display()
        );
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(dir: &Path) -> Topology {
        Topology {
            version: VERSION,
            metas: vec![MetaEntry {
                raft_id: 1,
                name: "meta-1".into(),
                addr: "127.0.0.1:7401".into(),
                data_dir: dir.join("data/meta-1"),
                tls_cert: dir.join("nodes/meta-1/node.crt"),
                tls_key: dir.join("nodes/meta-1/node.key"),
                trust: dir.join("nodes/meta-1/trust.pem"),
                metrics_addr: "127.0.0.1:7701".into(),
            }],
            blobs: vec![BlobEntry {
                name: "blob-1".into(),
                addr: "127.0.0.1:7501".into(),
                data_dir: dir.join("data/blob-1"),
                metrics_addr: "127.0.0.1:7801".into(),
            }],
            gateways: vec![GatewayEntry {
                name: "gateway-1".into(),
                addr: "127.0.0.1:7601".into(),
                s3_addr: "127.0.0.1:9000".into(),
                metrics_addr: "127.0.0.1:7901".into(),
            }],
            master_key_file: dir.join("keys/master.key"),
            next_master_key_file: dir.join("keys/master.next.key"),
            pki_dir: dir.join("pki"),
        }
    }

    #[test]
    fn a_written_topology_reads_back_and_a_rewrite_replaces_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut t = sample(dir.path());
        t.write(dir.path()).expect("write");
        assert_eq!(Topology::read(dir.path()).expect("read"), t);
        t.metas[0].addr = "127.0.0.1:8401".into();
        t.write(dir.path()).expect("rewrite");
        assert_eq!(Topology::read(dir.path()).expect("read"), t);
    }

    #[test]
    fn a_meta_server_is_laid_out_as_dev_provisions_it() {
        let dir = Path::new("/dev-dir");
        let mut t = Topology::new(
            &dir.join("keys/master.key"),
            &dir.join("keys/master.next.key"),
            &dir.join("pki"),
        );
        let data = t.add_meta(dir, 2, "127.0.0.1:7402".into(), "127.0.0.1:7702".into());
        assert_eq!(data, dir.join("data/meta-2"));
        assert_eq!(t.metas[0].raft_id, 2);
        assert_eq!(t.metas[0].name, "meta-2");
        assert_eq!(t.metas[0].tls_cert, dir.join("nodes/meta-2/node.crt"));
        assert_eq!(t.metas[0].trust, dir.join("nodes/meta-2/trust.pem"));
        assert_eq!(t.metas[0].metrics_addr, "127.0.0.1:7702");
    }

    #[test]
    fn a_topology_written_before_metrics_addresses_still_reads() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut v = serde_json::to_value(sample(dir.path())).expect("json");
        for tier in ["metas", "blobs", "gateways"] {
            v[tier][0]
                .as_object_mut()
                .expect("entry")
                .remove("metrics_addr");
        }
        std::fs::write(dir.path().join(FILE), v.to_string()).expect("write");
        let t = Topology::read(dir.path()).expect("read");
        assert_eq!(t.metas[0].metrics_addr, "");
        assert_eq!(t.gateways[0].metrics_addr, "");
    }

    #[test]
    fn a_newer_or_empty_topology_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut t = sample(dir.path());
        t.version = VERSION + 1;
        t.write(dir.path()).expect("write");
        let e = Topology::read(dir.path()).expect_err("newer");
        assert!(e.to_string().contains("newer"), "{e}");
        t.version = VERSION;
        t.metas.clear();
        t.write(dir.path()).expect("write");
        assert!(Topology::read(dir.path()).is_err());
        assert!(Topology::read(&dir.path().join("absent")).is_err());
    }
}
