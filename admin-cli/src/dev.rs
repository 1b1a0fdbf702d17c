//! `hamster dev --dir DIR`: a whole cluster as local processes on
//! loopback — 3 meta-servers, 6 blob-servers and a gateway by default —
//! for trying Hamster on a machine without a Docker engine.
//!
//! The first run makes everything in DIR: the PKI (`pki/`), one identity
//! per node (`nodes/ID/`), and, once the meta tier runs, a first S3 access
//! key (`access-key.json`, 0600). Later runs reuse all of it and the data
//! (`data/ID/`). Logs go to `logs/ID.log`, each gateway's access log to
//! `logs/access-gateway-N.jsonl` and each meta-server's admin audit log
//! to `logs/audit-meta-N.jsonl`; the endpoint and credentials to `env`
//! (0600, shell-sourceable). Every node serves Prometheus metrics on its
//! own port ([`plan`]); `prometheus.yml` lists them all.
//!
//! It runs in the foreground ([`supervise`]): a child that dies is
//! reported and restarted (not with `--no-restart`); Ctrl-C or SIGTERM
//! stops every child, and a SIGKILLed `hamster dev` takes them with it
//! (they run with `--exit-with-parent=PID`, its own pid).
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

pub mod plan;
pub mod prometheus;
pub mod supervise;
pub mod topology;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hamster_proto::Role;
use hamster_proto::pb::{self, admin_client::AdminClient};
use hamster_proto::secrets::write_private;

use crate::cert::provision_node;
use crate::conn::AdminConn;
use crate::dev::plan::{HOST, Plan};
use crate::dev::supervise::{Running, Spawner, stop_all};
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
    /// First port of the cluster's listeners: meta-servers take BASE+1..,
    /// blob-servers BASE+101.., gateways BASE+201.. (gRPC); their metrics
    /// BASE+301.., BASE+401.., BASE+501...
    #[arg(long, default_value_t = 7400)]
    pub base_port: u16,
    /// The first gateway's S3 port (the next gateways take the next ones).
    #[arg(long, default_value_t = 9000)]
    pub s3_port: u16,
    /// Where the server binaries are (default: beside this one).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Leave a node that dies down (to watch the cluster without it)
    /// instead of restarting it.
    #[arg(long)]
    pub no_restart: bool,
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

pub async fn run(a: &DevArgs) -> anyhow::Result<()> {
    let dir = std::fs::canonicalize(&{
        std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
        a.dir.clone()
    })?;
    // A restore cut short mid-swap may have left some meta dirs restored
    // and others old: starting them would diverge silently.
    crate::restore::journal::refuse_if_pending(&dir)?;
    let pki = dir.join("pki");
    // The key `hamster init` wrote goes where the runbook looks for it.
    let (key, next_key) = (
        dir.join("keys").join(MASTER_KEY),
        dir.join("keys").join(NEXT_KEY),
    );
    let Plan { nodes, metas, topo } = plan::plan(a, &dir, &pki, &key, &next_key)?;
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
    if !key.exists() && pki.join(MASTER_KEY).exists() {
        std::fs::rename(pki.join(MASTER_KEY), &key).context("moving the master key to keys/")?;
    }

    // Before any child: a restore reads it while nothing runs.
    topo.write(&dir)?;
    prometheus::write(&dir, &plan::scrape_jobs(&topo))?;
    let spawner = Spawner {
        dir: &dir,
        bins: &bins,
        nodes: &nodes,
    };
    let mut running: Vec<Running> = Vec::new();
    let result = start_all(&spawner, &pki, &metas, a, &mut running).await;
    if let Err(e) = result {
        stop_all(&mut running).await;
        return Err(e);
    }
    println!(
        "Hamster is running: {} meta, {} blob, {} gateway",
        a.metas, a.blobs, a.gateways
    );
    println!("  S3 endpoint   http://{HOST}:{}", a.s3_port);
    println!("  credentials   source {}", s(&dir.join("env")));
    println!(
        "  logs          {} (access-gateway-N.jsonl, audit-meta-N.jsonl)",
        s(&dir.join("logs"))
    );
    println!(
        "  metrics       prometheus --config.file {}",
        s(&dir.join(prometheus::FILE))
    );
    if a.no_restart {
        println!("A node that dies stays down (--no-restart).");
    } else {
        println!("A node that dies is restarted (--no-restart keeps it down).");
    }
    println!("Ctrl-C stops every process; a second run reuses the data and keys.");

    let outcome = spawner.supervise(&mut running, !a.no_restart).await;
    println!("stopping…");
    stop_all(&mut running).await;
    outcome
}

async fn start_all(
    spawner: &Spawner<'_>,
    pki: &Path,
    metas: &[String],
    a: &DevArgs,
    running: &mut Vec<Running>,
) -> anyhow::Result<()> {
    let admin = AdminConn {
        admin_cert: pki.join(ADMIN_CERT),
        admin_key: pki.join(ADMIN_KEY),
        trust: pki.join(TRUST),
    };
    for (i, n) in spawner.nodes.iter().enumerate() {
        let node_dir = spawner.dir.join("nodes").join(&n.id);
        if !node_dir.join("node.crt").exists() {
            provision_node(pki, n.role, &n.id, &node_dir)?;
        }
        running.push(spawner.spawn(i)?);
        // The meta tier first: the others register with it.
        if i + 1 == usize::from(a.metas) {
            wait_for_leader(&admin, &metas[0]).await?;
        }
    }
    wait_for_blobs(&admin, &metas[0], usize::from(a.blobs)).await?;
    let (id, secret) = access_key(spawner.dir, &admin, &metas[0]).await?;
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
    let env_file = spawner.dir.join("env");
    let _ = std::fs::remove_file(&env_file);
    write_private(&env_file, env.as_bytes())?;
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
