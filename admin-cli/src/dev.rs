//! `hamster dev --dir DIR`: a whole cluster as local processes on
//! loopback — 3 meta-servers, 6 blob-servers and a gateway by default —
//! for trying Hamster on a machine without a Docker engine.
//!
//! The first run makes everything in DIR: the PKI (`pki/`), one identity
//! per node (`nodes/ID/`), and, once the meta tier runs, a first S3 access
//! key (`access-key.json`, 0600). Later runs reuse all of it and the data
//! (`data/ID/`). Logs go to `logs/ID.log`; the endpoint and credentials to
//! `env` (0600, shell-sourceable). It runs in the foreground and stops
//! every child on Ctrl-C or SIGTERM.
//!
//! Master keys live in `keys/`: every key holder (meta-servers, gateways)
//! gets `keys/master.key` as its current key and `keys/master.next.key`
//! as its next, which need not exist. SIGHUP to `hamster dev` is passed
//! to every child, so the rotation runbook works here: write the next
//! key, `kill -HUP`, `hamster rotate-key`, then promote it. `pki/` is
//! every meta-server's `--ca-dir`, so `hamster rotate-ca` works here too.
//!
//! Every start first writes `topology.json` ([`topology`]): each node's
//! name, address and data dir, the meta-servers' raft ids and TLS files.
//! `hamster restore --dir DIR` reads it to rebuild every meta-server's
//! data dir from a backup; the next `hamster dev --dir DIR` then starts
//! from them (a restored node is initialized, so it ignores the
//! `--initial-members` dev passes). While `restore.pending` (a restore
//! interrupted mid-swap) exists, it refuses to start.

pub mod topology;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hamster_proto::Role;
use hamster_proto::pb::{self, admin_client::AdminClient};
use hamster_proto::secrets::write_private;
use tokio::process::{Child, Command};

use crate::cert::provision_node;
use crate::conn::AdminConn;
use crate::dev::topology::{BlobEntry, GatewayEntry, Topology};
use crate::init::{ADMIN_CERT, ADMIN_KEY, InitArgs, MASTER_KEY, TRUST};

/// The next master key's file name in `keys/`.
pub const NEXT_KEY: &str = "master.next.key";

#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Where the cluster lives (created on the first run, reused after).
    #[arg(long, env = "HAMSTER_DEV_DIR")]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 3)]
    pub metas: u16,
    #[arg(long, default_value_t = 6)]
    pub blobs: u16,
    #[arg(long, default_value_t = 1)]
    pub gateways: u16,
    /// First port of the cluster's gRPC listeners: meta-servers take
    /// BASE+1.., blob-servers BASE+101.., gateways BASE+201...
    #[arg(long, default_value_t = 7400)]
    pub base_port: u16,
    /// The first gateway's S3 port (the next gateways take the next ones).
    #[arg(long, default_value_t = 9000)]
    pub s3_port: u16,
    /// Where the server binaries are (default: beside this one).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}

struct Node {
    id: String,
    binary: &'static str,
    role: Role,
    args: Vec<String>,
}

struct Running {
    id: String,
    child: Child,
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

pub async fn run(a: &DevArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.metas >= 1 && a.blobs >= 1 && a.gateways >= 1,
        "need at least one of each tier"
    );
    let dir = std::fs::canonicalize(&{
        std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
        a.dir.clone()
    })?;
    // A restore cut short mid-swap may have left some meta dirs restored
    // and others old: starting them would diverge silently.
    crate::restore::journal::refuse_if_pending(&dir)?;
    let pki = dir.join("pki");
    if !pki.join(TRUST).exists() {
        crate::init::run(&InitArgs {
            dir: pki.clone(),
            admin_id: "admin".into(),
        })?;
    }
    let bins = match &a.bin_dir {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("binary directory")?
            .to_path_buf(),
    };
    for logs in ["logs", "data", "keys"] {
        std::fs::create_dir_all(dir.join(logs))?;
    }
    // The key `hamster init` wrote goes where the runbook looks for it.
    let (key, next_key) = (
        dir.join("keys").join(MASTER_KEY),
        dir.join("keys").join(NEXT_KEY),
    );
    if !key.exists() && pki.join(MASTER_KEY).exists() {
        std::fs::rename(pki.join(MASTER_KEY), &key).context("moving the master key to keys/")?;
    }
    let key_flags = || {
        vec![
            format!("--master-key-file={}", s(&key)),
            format!("--next-master-key-file={}", s(&next_key)),
        ]
    };

    let host = "127.0.0.1";
    let meta_addr = |i: u16| format!("{host}:{}", a.base_port + i);
    let metas: Vec<String> = (1..=a.metas).map(meta_addr).collect();
    let members: Vec<String> = (1..=a.metas)
        .map(|i| format!("{i}=meta-{i}@{}", meta_addr(i)))
        .collect();
    let mut nodes = Vec::new();
    let mut topo = Topology::new(&key, &next_key, &pki);
    for i in 1..=a.metas {
        let data = topo.add_meta(&dir, i, meta_addr(i));
        nodes.push(Node {
            id: format!("meta-{i}"),
            binary: "meta-server",
            role: Role::Meta,
            args: vec![
                format!("--listen={}", meta_addr(i)),
                format!("--raft-id={i}"),
                format!("--initial-members={}", members.join(",")),
                format!("--data-dir={}", s(&data)),
                // The init directory: `hamster rotate-ca` mints there.
                format!("--ca-dir={}", s(&pki)),
            ]
            .into_iter()
            .chain(key_flags())
            .collect(),
        });
    }
    for i in 1..=a.blobs {
        topo.blobs.push(BlobEntry {
            name: format!("blob-{i}"),
            addr: format!("{host}:{}", a.base_port + 100 + i),
            data_dir: dir.join("data").join(format!("blob-{i}")),
        });
        nodes.push(Node {
            id: format!("blob-{i}"),
            binary: "blob-server",
            role: Role::Blob,
            args: vec![
                format!("--listen={host}:{}", a.base_port + 100 + i),
                format!(
                    "--data-dir={}",
                    s(&dir.join("data").join(format!("blob-{i}")))
                ),
                format!("--failure-domain=fd-{i}"),
                format!("--meta={}", metas.join(",")),
            ],
        });
    }
    for i in 1..=a.gateways {
        topo.gateways.push(GatewayEntry {
            name: format!("gateway-{i}"),
            addr: format!("{host}:{}", a.base_port + 200 + i),
            s3_addr: format!("{host}:{}", a.s3_port + i - 1),
        });
        nodes.push(Node {
            id: format!("gateway-{i}"),
            binary: "gateway",
            role: Role::Gateway,
            args: vec![
                format!("--listen={host}:{}", a.base_port + 200 + i),
                format!("--s3-listen={host}:{}", a.s3_port + i - 1),
                format!("--meta={}", metas.join(",")),
            ]
            .into_iter()
            .chain(key_flags())
            .collect(),
        });
    }

    // Before any child: a restore reads it while nothing runs.
    topo.write(&dir)?;
    let mut running: Vec<Running> = Vec::new();
    let result = start_all(&dir, &pki, &bins, &nodes, &metas, a, &mut running).await;
    if let Err(e) = result {
        stop_all(&mut running).await;
        return Err(e);
    }
    println!(
        "Hamster is running: {} meta, {} blob, {} gateway",
        a.metas, a.blobs, a.gateways
    );
    println!("  S3 endpoint   http://{host}:{}", a.s3_port);
    println!("  credentials   source {}", s(&dir.join("env")));
    println!("  logs          {}", s(&dir.join("logs")));
    println!("Ctrl-C stops every process; a second run reuses the data and keys.");

    // Until a signal, or until a child dies on its own; SIGHUP is passed on.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let outcome = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break None,
            _ = term.recv() => break None,
            _ = hup.recv() => {
                println!("SIGHUP: passing it to every process");
                signal_all(&running, rustix::process::Signal::HUP);
            }
            () = tokio::time::sleep(Duration::from_millis(500)) => {
                if let Some(died) = running
                    .iter_mut()
                    .find_map(|r| Some((r.id.clone(), r.child.try_wait().ok()??)))
                {
                    break Some(died);
                }
            }
        }
    };
    println!("stopping…");
    stop_all(&mut running).await;
    match outcome {
        None => Ok(()),
        Some((id, status)) => bail!(
            "{id} exited ({status}); see {}",
            s(&dir.join("logs").join(format!("{id}.log")))
        ),
    }
}

async fn start_all(
    dir: &Path,
    pki: &Path,
    bins: &Path,
    nodes: &[Node],
    metas: &[String],
    a: &DevArgs,
    running: &mut Vec<Running>,
) -> anyhow::Result<()> {
    let admin = AdminConn {
        admin_cert: pki.join(ADMIN_CERT),
        admin_key: pki.join(ADMIN_KEY),
        trust: pki.join(TRUST),
    };
    for (i, n) in nodes.iter().enumerate() {
        let node_dir = dir.join("nodes").join(&n.id);
        if !node_dir.join("node.crt").exists() {
            provision_node(pki, n.role, &n.id, &node_dir)?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("logs").join(format!("{}.log", n.id)))?;
        let child = Command::new(bins.join(n.binary))
            .args(&n.args)
            .arg(format!("--tls-cert={}", s(&node_dir.join("node.crt"))))
            .arg(format!("--tls-key={}", s(&node_dir.join("node.key"))))
            .arg(format!("--trust={}", s(&node_dir.join("trust.pem"))))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} ({})", n.id, s(&bins.join(n.binary))))?;
        running.push(Running {
            id: n.id.clone(),
            child,
        });
        // The meta tier first: the others register with it.
        if i + 1 == usize::from(a.metas) {
            wait_for_leader(&admin, &metas[0]).await?;
        }
    }
    wait_for_blobs(&admin, &metas[0], usize::from(a.blobs)).await?;
    let (id, secret) = access_key(dir, &admin, &metas[0]).await?;
    let env = format!(
        "export AWS_ACCESS_KEY_ID={id}\nexport AWS_SECRET_ACCESS_KEY={secret}\nexport AWS_DEFAULT_REGION=us-east-1\n\
         export AWS_ENDPOINT_URL=http://127.0.0.1:{}\nexport HAMSTER_ADMIN_CERT={}\nexport HAMSTER_ADMIN_KEY={}\n\
         export HAMSTER_TRUST={}\nexport HAMSTER_META={}\n",
        a.s3_port,
        s(&admin.admin_cert),
        s(&admin.admin_key),
        s(&admin.trust),
        metas.join(","),
    );
    let _ = std::fs::remove_file(dir.join("env"));
    write_private(&dir.join("env"), env.as_bytes())?;
    wait_for_s3(a.s3_port).await
}

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> anyhow::Result<T> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_for_leader(admin: &AdminConn, meta: &str) -> anyhow::Result<()> {
    let ch = admin.channel(meta)?;
    until("a meta leader", async || {
        let st = AdminClient::new(ch.clone())
            .status(pb::StatusRequest {})
            .await
            .ok()?;
        (st.into_inner().leader_raft_id != 0).then_some(())
    })
    .await
}

async fn wait_for_blobs(admin: &AdminConn, meta: &str, n: usize) -> anyhow::Result<()> {
    let ch = hamster_proto::transport::channel(meta, &admin.tls()?, &[Role::Meta])?;
    until("the blob-servers to register", async || {
        let r = pb::registry_client::RegistryClient::new(ch.clone())
            .list_blobs(pb::ListBlobsRequest {})
            .await
            .ok()?;
        (r.into_inner().servers.len() >= n).then_some(())
    })
    .await
}

/// The first access key: made once, then read back from DIR.
async fn access_key(dir: &Path, admin: &AdminConn, meta: &str) -> anyhow::Result<(String, String)> {
    let path = dir.join("access-key.json");
    if !path.exists() {
        let r = AdminClient::new(admin.channel(meta)?)
            .create_access_key(pb::CreateAccessKeyRequest {
                name: "dev".into(),
                can_create_bucket: None,
            })
            .await
            .context("creating the first access key")?
            .into_inner();
        let id = r.key.map(|k| k.access_key_id).unwrap_or_default();
        let json =
            serde_json::json!({ "access_key_id": id, "secret_access_key": r.secret_access_key });
        write_private(&path, serde_json::to_string_pretty(&json)?.as_bytes())?;
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    let field = |f: &str| v[f].as_str().map(str::to_string).context("access-key.json");
    Ok((field("access_key_id")?, field("secret_access_key")?))
}

async fn wait_for_s3(port: u16) -> anyhow::Result<()> {
    until("the S3 endpoint", async || {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await
}

fn signal_all(running: &[Running], sig: rustix::process::Signal) {
    for r in running {
        if let Some(pid) = r
            .child
            .id()
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
        {
            let _ = rustix::process::kill_process(pid, sig);
        }
    }
}

/// SIGTERM to every child, then SIGKILL to any still running after 10 s.
async fn stop_all(running: &mut [Running]) {
    signal_all(running, rustix::process::Signal::TERM);
    for r in running.iter_mut() {
        match tokio::time::timeout(Duration::from_secs(10), r.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("{} did not stop in 10 s; killing it", r.id);
                let _ = r.child.kill().await;
            }
        }
    }
}
