//! What a restore writes and whom it checks against: the members of the
//! new meta tier, the data dirs to seed, and the node files (master keys,
//! trust, certificate) that say what the nodes hold now. Read from a
//! `hamster dev` topology (`--dir`) or from one meta-server's flags
//! (`--data-dir`). Nothing here writes.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use hamster_meta::backup::restore::Member;
use hamster_proto::{PeerIdentity, Role, pki};

use super::RestoreArgs;
use crate::dev::topology::Topology;

/// The node files a restore is checked against.
#[derive(Debug, Clone)]
pub struct FactPaths {
    pub master_key: PathBuf,
    /// May name a file that does not exist: then no next key.
    pub next_key: Option<PathBuf>,
    pub trust: PathBuf,
    pub cert: PathBuf,
}

#[derive(Debug)]
pub struct Target {
    pub members: Vec<Member>,
    /// (raft id, data dir) of every node to write.
    pub seed: Vec<(u64, PathBuf)>,
    pub facts: FactPaths,
    /// `--dir`: the dev dir and the meta addresses that must not answer.
    pub dev: Option<(PathBuf, Vec<String>)>,
    /// `--initial-members` was given: the same command runs on every member.
    pub every_member: bool,
    /// `--initial-members` with a lower raft id than this node's: that
    /// member is seeded with the state (and the whole membership), and
    /// this one is left empty to receive it by Raft.
    pub awaits: Option<Member>,
}

pub fn resolve(a: &RestoreArgs) -> anyhow::Result<Target> {
    match (&a.dir, &a.node.data_dir) {
        (Some(dir), None) => dev(dir),
        (None, Some(data_dir)) => node(a, data_dir),
        _ => bail!("give exactly one of --dir (a hamster dev dir) or --data-dir"),
    }
}

fn dev(dir: &Path) -> anyhow::Result<Target> {
    let topo = Topology::read(dir)?;
    let first = &topo.metas[0];
    Ok(Target {
        members: topo
            .metas
            .iter()
            .map(|m| Member {
                raft_id: m.raft_id,
                name: m.name.clone(),
                addr: m.addr.clone(),
            })
            .collect(),
        seed: topo
            .metas
            .iter()
            .map(|m| (m.raft_id, m.data_dir.clone()))
            .collect(),
        facts: FactPaths {
            master_key: topo.master_key_file.clone(),
            next_key: Some(topo.next_master_key_file.clone()),
            trust: first.trust.clone(),
            cert: first.tls_cert.clone(),
        },
        dev: Some((
            dir.to_path_buf(),
            topo.metas.iter().map(|m| m.addr.clone()).collect(),
        )),
        every_member: false,
        awaits: None,
    })
}

fn node(a: &RestoreArgs, data_dir: &Path) -> anyhow::Result<Target> {
    let n = &a.node;
    let raft_id = n.raft_id.context("--data-dir needs --raft-id")?;
    anyhow::ensure!(raft_id > 0, "--raft-id must be > 0");
    let need = |v: &Option<PathBuf>, flag: &str, env: &str| {
        v.clone()
            .with_context(|| format!("--data-dir needs {flag} (or {env}), as the meta-server has"))
    };
    let facts = FactPaths {
        master_key: need(
            &n.master_key_file,
            "--master-key-file",
            "HAMSTER_MASTER_KEY_FILE",
        )?,
        next_key: n.next_master_key_file.clone(),
        trust: need(&n.trust, "--trust", "HAMSTER_TRUST")?,
        cert: need(&n.tls_cert, "--tls-cert", "HAMSTER_TLS_CERT")?,
    };
    let cert_id = meta_id_of(&facts.cert)?;
    let name = n.node_id.clone().unwrap_or_else(|| cert_id.clone());
    anyhow::ensure!(
        name == cert_id,
        "--node-id {name} is not the id in {} ({cert_id}); peers would refuse this node",
        facts.cert.display()
    );
    let initial: Vec<&String> = n.initial_members.iter().filter(|s| !s.is_empty()).collect();
    let members = if initial.is_empty() {
        vec![Member {
            raft_id,
            name,
            addr: own_address(n.listen.as_deref(), n.advertise.as_deref())?,
        }]
    } else {
        let mut members = Vec::new();
        for s in initial {
            let (id, node) = hamster_meta::parse_member(s)?;
            anyhow::ensure!(
                members.iter().all(|m: &Member| m.raft_id != id),
                "--initial-members names raft id {id} twice"
            );
            members.push(Member {
                raft_id: id,
                name: node.name,
                addr: node.addr,
            });
        }
        let me = members
            .iter()
            .find(|m| m.raft_id == raft_id)
            .with_context(|| format!("--initial-members must include --raft-id {raft_id}"))?;
        anyhow::ensure!(
            me.name == name,
            "--initial-members names raft id {raft_id} {}, but this node's certificate is {name}",
            me.name
        );
        members
    };
    // The state exists once: the lowest raft id is seeded with it, the
    // others receive it from that member (their own restores would each
    // differ: restore time, trust generation, rewrap nonces).
    let awaits = members
        .iter()
        .min_by_key(|m| m.raft_id)
        .filter(|m| m.raft_id != raft_id)
        .cloned();
    Ok(Target {
        every_member: members.len() > 1,
        awaits,
        members,
        seed: vec![(raft_id, data_dir.to_path_buf())],
        facts,
        dev: None,
    })
}

/// The meta id in a node certificate (hamster://meta/ID).
fn meta_id_of(cert: &Path) -> anyhow::Result<String> {
    let pem =
        std::fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?;
    let der = pki::certs_from_pem(&pem)?
        .into_iter()
        .next()
        .with_context(|| format!("{} holds no certificate", cert.display()))?;
    let id = PeerIdentity::from_cert_der(&der)
        .with_context(|| format!("{} has no hamster identity", cert.display()))?;
    anyhow::ensure!(
        id.role == Role::Meta,
        "{} is a {} certificate, not a meta-server's",
        cert.display(),
        id.role
    );
    Ok(id.node_id)
}

/// Where peers reach this node: --advertise, else --listen (which must
/// then be an address a peer can dial, not 0.0.0.0).
fn own_address(listen: Option<&str>, advertise: Option<&str>) -> anyhow::Result<String> {
    if let Some(a) = advertise {
        return Ok(a.to_string());
    }
    let listen =
        listen.context("--data-dir needs --listen (or --advertise, or --initial-members)")?;
    if let Ok(sa) = listen.parse::<SocketAddr>() {
        anyhow::ensure!(
            !sa.ip().is_unspecified(),
            "--listen {listen} is not an address peers can reach; pass --advertise HOST:PORT"
        );
    }
    Ok(listen.to_string())
}

/// Refuses if any of `addrs` takes a TCP connection: a dev cluster must
/// be stopped before its data dirs are rebuilt.
pub fn ensure_stopped(addrs: &[String]) -> anyhow::Result<()> {
    for addr in addrs {
        let up = addr
            .to_socket_addrs()
            .into_iter()
            .flatten()
            .any(|sa| TcpStream::connect_timeout(&sa, Duration::from_millis(500)).is_ok());
        anyhow::ensure!(
            !up,
            "a meta-server answers at {addr}: stop hamster dev first (the restore is offline)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_needs_advertise() {
        assert!(own_address(Some("0.0.0.0:7400"), None).is_err());
        assert_eq!(
            own_address(Some("0.0.0.0:7400"), Some("meta-1:7400")).expect("advertise"),
            "meta-1:7400"
        );
        assert_eq!(
            own_address(Some("10.0.0.5:7400"), None).expect("listen"),
            "10.0.0.5:7400"
        );
        assert!(own_address(None, None).is_err());
    }

    #[test]
    fn a_listening_address_counts_as_running() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let e = ensure_stopped(std::slice::from_ref(&addr)).expect_err("running");
        assert!(e.to_string().contains("stop hamster dev"), "{e}");
        drop(l);
        ensure_stopped(&[addr]).expect("stopped");
    }
}
