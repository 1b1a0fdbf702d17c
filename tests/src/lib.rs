//! The harness for multi-process tests: it runs the real, built binaries.
//!
//! A [`Cluster`] lives in a temp dir. It bootstraps with `hamster init`,
//! gives each node a key and CSR made by `hamster cert request` in the
//! node's own directory and a certificate from `hamster cert sign`, starts
//! the node on an ephemeral loopback port with its log in a file, and waits
//! for its `Health` answer over mTLS. Each start hands back a [`Node`]
//! handle; nodes can be SIGKILLed, restarted on the same port and data, and
//! sent signals through it. When a test panics, the tail of every node's
//! log is printed (and with HAMSTER_KEEP_FAILED set, its directory is
//! kept); every child is killed on drop.
//!
//! Modules: [`meta`] (meta-tier calls: status, leader, test commits),
//! [`s3`] (a whole cluster with a gateway, an S3 client, S3 error checks),
//! [`durability`] (shard files on disk, damage, `hamster repair` and the
//! durability view), [`blobs`] (the blob-server lifecycle: `hamster blob
//! list`, what the maps of a bucket name), [`load`] (a PUT/GET load that
//! checks every byte and times each request), [`bench`] (what the
//! benchmark binaries share), [`dev`] (`hamster dev` runs and the CLI with
//! their env file),
//! [`lock`] (object-lock builders), [`authz`] (access keys with their own
//! clients, the admin CLI's bucket commands, the rights cache window),
//! [`backup`] (offline CLI runs, meta
//! nodes wiped and re-added, a load that records acknowledgements, the
//! secrets a backup must not hold), [`clients`] (real S3 clients run
//! against a cluster), [`sigv4`] (a hand signer for requests
//! an SDK will not send), [`steps`] (named steps of one long scenario, each
//! failure reported by name), [`fuzz`] (the fuzz harness of every parser
//! of network and disk bytes, ADR 0033), [`stall`] (nodes SIGSTOPped
//! behind a guard that resumes them), [`scrape`] (a cluster with metrics on
//! every node, and the values of its Prometheus series).
//!
//! Binaries come from the cargo target dir of the test executable (or
//! `HAMSTER_BIN_DIR`): run `cargo build --workspace` first, as the README's
//! test command does.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hamster_proto::pb::node_client::NodeClient;
use hamster_proto::pb::{HealthRequest, HealthResponse};
use hamster_proto::tls::{NodeTls, TlsPaths};
use hamster_proto::{Role, transport};
use tonic::transport::Channel;

pub mod authz;
pub mod backup;
pub mod bench;
pub mod blobs;
pub mod clients;
pub mod dev;
pub mod durability;
pub mod fuzz;
pub mod limits;
pub mod load;
pub mod lock;
pub mod meta;
pub mod s3;
pub mod scrape;
pub mod sigv4;
pub mod stall;
pub mod steps;

pub use steps::Steps;

/// How long a node gets to answer its first health call.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of each log printed when a test fails.
const TAIL_LINES: usize = 60;

/// The kinds of server process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Meta,
    Blob,
    Gateway,
}

impl Kind {
    pub fn binary(self) -> &'static str {
        match self {
            Kind::Meta => "meta-server",
            Kind::Blob => "blob-server",
            Kind::Gateway => "gateway",
        }
    }

    pub fn role(self) -> Role {
        match self {
            Kind::Meta => Role::Meta,
            Kind::Blob => Role::Blob,
            Kind::Gateway => Role::Gateway,
        }
    }

    fn holds_master_key(self) -> bool {
        matches!(self, Kind::Meta | Kind::Gateway)
    }
}

/// A handle on one node of a [`Cluster`]: what every start hands back and
/// every kill, restart, signal or call takes, so a node cannot be confused
/// with a count or a position in some other list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    idx: usize,
    kind: Kind,
}

impl Node {
    pub fn kind(self) -> Kind {
        self.kind
    }
}

/// One server process and everything needed to start it again.
pub struct NodeProc {
    pub kind: Kind,
    pub id: String,
    pub addr: SocketAddr,
    /// Gateways: the S3 endpoint.
    pub s3_addr: Option<SocketAddr>,
    /// Meta nodes: the Raft id.
    pub raft_id: u64,
    /// The node's own directory: its key, certificate, trust and data.
    pub dir: PathBuf,
    pub log: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl NodeProc {
    pub fn tls_paths(&self) -> TlsPaths {
        TlsPaths {
            cert: self.dir.join("node.crt"),
            key: self.dir.join("node.key"),
            trust: self.dir.join("trust.pem"),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// A set of real processes in one temp dir.
pub struct Cluster {
    root: tempfile::TempDir,
    bins: PathBuf,
    /// RUST_LOG given to every node.
    pub log_level: String,
    /// Extra flags for every meta-server (snapshot policy, timeouts).
    pub meta_args: Vec<String>,
    /// Extra flags for every blob-server (scrub and repair rates).
    pub blob_args: Vec<String>,
    nodes: Vec<NodeProc>,
    next_raft_id: u64,
}

/// Where the built binaries are.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HAMSTER_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // target/debug/deps/<test-exe> -> target/debug; a binary of this
    // crate (the benchmarks) sits in target/<profile> itself.
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("exe dir");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Every file under `dir`, recursively (none if it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A free loopback port. Another process could take it before the node
/// binds; the window is small and a node that fails to bind says so in its log.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind ephemeral port");
    l.local_addr().expect("local addr").port()
}

impl Cluster {
    /// A new cluster directory, bootstrapped with `hamster init`.
    pub fn new() -> Self {
        let root = tempfile::Builder::new()
            .prefix("hamster-test-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir_all(root.path().join("logs")).expect("logs dir");
        let bins = bin_dir();
        for b in ["hamster", "meta-server", "blob-server", "gateway"] {
            assert!(
                bins.join(b).exists(),
                "{} missing: run `cargo build --workspace` before the tests",
                bins.join(b).display()
            );
        }
        let cluster = Self {
            root,
            bins,
            log_level: "info".into(),
            meta_args: Vec::new(),
            blob_args: Vec::new(),
            nodes: Vec::new(),
            next_raft_id: 1,
        };
        let pki = cluster.pki_dir();
        cluster.hamster(&["init", "--dir", path_str(&pki)]);
        cluster
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The `hamster init` directory: CA, admin identity, master key, access key.
    pub fn pki_dir(&self) -> PathBuf {
        self.root.path().join("pki")
    }

    /// Runs the admin CLI, appending its output to logs/hamster.log.
    /// Panics if it fails; returns its stdout.
    pub fn hamster(&self, args: &[&str]) -> String {
        let (ok, out) = self.hamster_status(args);
        assert!(ok, "hamster {args:?} failed:\n{out}");
        out
    }

    /// Runs the admin CLI; returns whether it succeeded and its output.
    pub fn hamster_status(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(self.bins.join("hamster"))
            .args(args)
            .env("RUST_LOG", &self.log_level)
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("run hamster");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("logs/hamster.log"))
            .expect("cli log");
        let _ = writeln!(log, "$ hamster {}\n{text}", args.join(" "));
        (out.status.success(), text)
    }

    /// Makes a node's key and CSR in its own directory, has the CA sign it,
    /// and gives it the cluster trust bundle. Returns the node directory.
    pub fn provision(&self, kind: Kind, id: &str) -> PathBuf {
        let dir = self.root.path().join("nodes").join(id);
        std::fs::create_dir_all(&dir).expect("node dir");
        let (key, csr, crt) = (
            dir.join("node.key"),
            dir.join("node.csr"),
            dir.join("node.crt"),
        );
        let role = kind.role().to_string();
        self.hamster(&[
            "cert",
            "request",
            "--role",
            &role,
            "--id",
            id,
            "--key-out",
            path_str(&key),
            "--csr-out",
            path_str(&csr),
        ]);
        let pki = self.pki_dir();
        self.hamster(&[
            "cert",
            "sign",
            "--ca-dir",
            path_str(&pki),
            "--csr",
            path_str(&csr),
            "--role",
            &role,
            "--id",
            id,
            "--out",
            path_str(&crt),
        ]);
        std::fs::copy(pki.join("trust.pem"), dir.join("trust.pem")).expect("trust");
        dir
    }

    /// Provisions and starts a node. A meta node started this way founds
    /// a one-node cluster of its own.
    pub fn start(&mut self, kind: Kind, id: &str) -> Node {
        let node = self.prepare(kind, id);
        if kind == Kind::Meta {
            let member = self.member(node);
            self.proc_mut(node)
                .args
                .push(format!("--initial-members={member}"));
        }
        self.spawn(node);
        node
    }

    /// The process behind a handle.
    pub fn node(&self, node: Node) -> &NodeProc {
        &self.nodes[node.idx]
    }

    fn proc_mut(&mut self, node: Node) -> &mut NodeProc {
        &mut self.nodes[node.idx]
    }

    /// Every node's process, in the order they were prepared.
    pub fn procs(&self) -> impl Iterator<Item = &NodeProc> {
        self.nodes.iter()
    }

    /// Handles on every node, in the order they were prepared.
    pub fn handles(&self) -> Vec<Node> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(idx, n)| Node { idx, kind: n.kind })
            .collect()
    }

    /// Adds flags to a prepared node.
    pub fn add_args(&mut self, node: Node, args: &[&str]) {
        self.proc_mut(node)
            .args
            .extend(args.iter().map(|a| a.to_string()));
    }

    /// Replaces (or, with None, removes) a flag of a prepared node, in
    /// either its `--flag value` or `--flag=value` form.
    pub fn set_arg(&mut self, node: Node, flag: &str, value: Option<&str>) {
        let args = &mut self.proc_mut(node).args;
        let mut out = Vec::with_capacity(args.len());
        let mut it = args.drain(..);
        while let Some(a) = it.next() {
            if a == flag {
                it.next();
            } else if !a.starts_with(&format!("{flag}=")) {
                out.push(a);
            }
        }
        drop(it);
        if let Some(v) = value {
            out.push(format!("{flag}={v}"));
        }
        *args = out;
    }

    /// Starts a node made with [`Cluster::prepare`].
    pub fn spawn_prepared(&mut self, node: Node) {
        self.spawn(node);
    }

    /// Starts `n` meta-servers founding one cluster (raft ids in order).
    pub fn start_meta_cluster(&mut self, n: usize) -> Vec<Node> {
        let metas: Vec<Node> = (0..n)
            .map(|_| {
                let name = format!("meta-{}", self.next_raft_id);
                self.prepare(Kind::Meta, &name)
            })
            .collect();
        let members: Vec<String> = metas.iter().map(|m| self.member(*m)).collect();
        for &m in &metas {
            self.proc_mut(m)
                .args
                .push(format!("--initial-members={}", members.join(",")));
            self.spawn(m);
        }
        metas
    }

    /// `hamster token create` for `role`, `uses` joins within `ttl`
    /// seconds, written to ROOT/NAME.token: its path.
    pub fn join_token(&self, role: &str, uses: u32, ttl: u64, name: &str) -> PathBuf {
        let out = self.root().join(format!("{name}.token"));
        let mut args = vec![
            "token".to_string(),
            "create".into(),
            "--role".into(),
            role.into(),
            "--uses".into(),
            uses.to_string(),
            "--ttl-secs".into(),
            ttl.to_string(),
            "--out".into(),
            out.display().to_string(),
        ];
        args.extend(self.admin_flags());
        self.hamster(&args.iter().map(String::as_str).collect::<Vec<_>>());
        out
    }

    /// Starts one meta-server with a join port (and the CA key to sign
    /// with) and waits for it to lead: the node and the join address.
    pub async fn start_join_meta(&mut self) -> (Node, String) {
        let join = format!("127.0.0.1:{}", free_port());
        let pki = self.pki_dir();
        self.meta_args.extend([
            format!("--join-listen={join}"),
            format!("--ca-dir={}", pki.display()),
        ]);
        let meta = self.start(Kind::Meta, "meta-1");
        self.wait_leader(&[meta]).await;
        (meta, join)
    }

    /// Starts a meta-server that belongs to no cluster yet: it waits to be
    /// added with `Admin.AddMember`.
    pub fn start_meta_joiner(&mut self) -> Node {
        let name = format!("meta-{}", self.next_raft_id);
        let node = self.prepare(Kind::Meta, &name);
        self.spawn(node);
        node
    }

    /// "ID=NAME@ADDR" of a meta node, as --initial-members takes it.
    pub fn member(&self, node: Node) -> String {
        let n = self.node(node);
        format!("{}={}@{}", n.raft_id, n.id, n.addr)
    }

    /// Provisions a node and records how to start it, without starting it.
    pub fn prepare(&mut self, kind: Kind, id: &str) -> Node {
        let dir = self.provision(kind, id);
        self.prepare_in(kind, id, dir)
    }

    /// Records a node that gets its certificate by joining with the token
    /// in `token_file` through the meta join port `join` (nothing is
    /// provisioned for it: it makes its own key).
    pub fn prepare_joiner(&mut self, kind: Kind, id: &str, token_file: &Path, join: &str) -> Node {
        let dir = self.root.path().join("nodes").join(id);
        std::fs::create_dir_all(&dir).expect("node dir");
        let node = self.prepare_in(kind, id, dir);
        self.proc_mut(node).args.extend([
            format!("--join={join}"),
            format!("--join-token-file={}", path_str(token_file)),
            format!("--node-id={id}"),
        ]);
        node
    }

    /// Whether `node` has exited (for nodes expected to refuse to start).
    pub fn has_exited(&mut self, node: Node) -> bool {
        matches!(
            self.proc_mut(node).child.as_mut().map(|c| c.try_wait()),
            Some(Ok(Some(_))) | None
        )
    }

    fn prepare_in(&mut self, kind: Kind, id: &str, dir: PathBuf) -> Node {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let mut args = vec![
            "--listen".into(),
            addr.to_string(),
            "--tls-cert".into(),
            path_string(&dir.join("node.crt")),
            "--tls-key".into(),
            path_string(&dir.join("node.key")),
            "--trust".into(),
            path_string(&dir.join("trust.pem")),
        ];
        if kind.holds_master_key() {
            args.push("--master-key-file".into());
            args.push(path_string(&self.pki_dir().join("master.key")));
        }
        if kind == Kind::Blob {
            args.push("--data-dir".into());
            args.push(path_string(&dir.join("data")));
            args.push(format!("--failure-domain=fd-{id}"));
            args.push("--heartbeat-secs=1".into());
            let meta = self.meta_addrs();
            if !meta.is_empty() {
                args.push(format!("--meta={}", meta.join(",")));
            }
            args.extend(self.blob_args.iter().cloned());
        }
        let mut s3_addr = None;
        if kind == Kind::Gateway {
            let s3: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
            s3_addr = Some(s3);
            args.push(format!("--s3-listen={s3}"));
            args.push("--blob-down-after-secs=3".into());
            args.push(format!("--meta={}", self.meta_addrs().join(",")));
        }
        let mut raft_id = 0;
        if kind == Kind::Meta {
            raft_id = self.next_raft_id;
            self.next_raft_id += 1;
            args.push("--data-dir".into());
            args.push(path_string(&dir.join("data")));
            args.push(format!("--raft-id={raft_id}"));
            args.extend(self.meta_args.iter().cloned());
        }
        let log = self.root.path().join("logs").join(format!("{id}.log"));
        self.nodes.push(NodeProc {
            kind,
            id: id.to_string(),
            addr,
            s3_addr,
            raft_id,
            dir,
            log,
            args,
            child: None,
        });
        Node {
            idx: self.nodes.len() - 1,
            kind,
        }
    }

    /// Where the meta-servers prepared so far listen.
    pub fn meta_addrs(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.kind == Kind::Meta)
            .map(|n| n.addr.to_string())
            .collect()
    }

    /// Loads the TLS identity of a provisioned node (to call as that node).
    pub fn identity(&self, dir: &Path) -> Arc<NodeTls> {
        NodeTls::load(&TlsPaths {
            cert: dir.join("node.crt"),
            key: dir.join("node.key"),
            trust: dir.join("trust.pem"),
        })
        .expect("node tls")
    }

    pub fn is_running(&self, node: Node) -> bool {
        self.node(node).child.is_some()
    }

    fn spawn(&mut self, node: Node) {
        let node = &mut self.nodes[node.idx];
        assert!(node.child.is_none(), "{} is already running", node.id);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("node log");
        let err = log.try_clone().expect("log fd");
        let child = Command::new(self.bins.join(node.kind.binary()))
            .args(&node.args)
            .env("RUST_LOG", &self.log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn node");
        node.child = Some(child);
    }

    /// SIGKILL: no shutdown handler runs, as in a crash.
    pub fn kill(&mut self, node: Node) {
        if let Some(mut child) = self.proc_mut(node).child.take() {
            let _ = child.kill(); // std sends SIGKILL
            let _ = child.wait();
        }
    }

    /// Starts a killed node again with the same port, files and data.
    pub fn restart(&mut self, node: Node) {
        self.spawn(node);
    }

    /// SIGKILLs each of `nodes`.
    pub fn kill_all(&mut self, nodes: &[Node]) {
        for &n in nodes {
            self.kill(n);
        }
    }

    /// Restarts each of `nodes`, then waits until each is healthy.
    pub async fn restart_all(&mut self, nodes: &[Node]) {
        for &n in nodes {
            self.restart(n);
        }
        for &n in nodes {
            self.wait_healthy(n).await;
        }
    }

    pub fn signal(&self, node: Node, sig: rustix::process::Signal) {
        let pid = self.node(node).pid().expect("node is running");
        let pid = rustix::process::Pid::from_raw(pid as i32).expect("pid");
        rustix::process::kill_process(pid, sig).expect("signal");
    }

    /// The admin identity from `hamster init`.
    pub fn admin_tls(&self) -> Arc<NodeTls> {
        let pki = self.pki_dir();
        NodeTls::load(&TlsPaths {
            cert: pki.join("admin.crt"),
            key: pki.join("admin.key"),
            trust: pki.join("trust.pem"),
        })
        .expect("admin tls")
    }

    /// A channel to `node` as `client`, expecting the node's role.
    pub fn channel(&self, node: Node, client: &Arc<NodeTls>) -> Channel {
        let n = self.node(node);
        transport::channel(&n.addr.to_string(), client, &[n.kind.role()]).expect("channel")
    }

    pub async fn health(
        &self,
        node: Node,
        client: &Arc<NodeTls>,
    ) -> Result<HealthResponse, tonic::Status> {
        let mut c = NodeClient::new(self.channel(node, client));
        match tokio::time::timeout(Duration::from_secs(5), c.health(HealthRequest {})).await {
            Ok(r) => r.map(tonic::Response::into_inner),
            Err(_) => Err(tonic::Status::deadline_exceeded("health timed out")),
        }
    }

    /// Waits until `node` answers Health to the admin identity.
    pub async fn wait_healthy(&mut self, node: Node) -> HealthResponse {
        let admin = self.admin_tls();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.proc_mut(node).child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("{} exited during start-up: {status}", self.node(node).id);
            }
            match self.health(node, &admin).await {
                Ok(h) => return h,
                Err(e) if Instant::now() > deadline => {
                    panic!(
                        "{} not healthy after {START_TIMEOUT:?}: {e}",
                        self.node(node).id
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Everything every process wrote, CLI runs included.
    pub fn all_logs(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.root.path().join("logs")) {
            for e in entries.flatten() {
                out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        out
    }

    pub fn log(&self, node: Node) -> String {
        std::fs::read_to_string(&self.node(node).log).unwrap_or_default()
    }

    fn print_tails(&self) {
        let mut logs: Vec<PathBuf> = self.nodes.iter().map(|n| n.log.clone()).collect();
        logs.push(self.root.path().join("logs/hamster.log"));
        for path in logs {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(TAIL_LINES)..];
            eprintln!("----- tail of {} -----", path.display());
            for l in tail {
                eprintln!("{l}");
            }
        }
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_tails();
            // HAMSTER_KEEP_FAILED=1: leave a failed run's logs and data to read.
            if std::env::var_os("HAMSTER_KEEP_FAILED").is_some() {
                self.root.disable_cleanup(true);
                eprintln!("kept {}", self.root.path().display());
            }
        }
        for node in self.handles() {
            self.kill(node);
        }
    }
}

/// Replaces a file atomically (write a sibling, rename over), as an
/// operator's tooling should when a running node may re-read it.
pub fn replace_file(path: &Path, data: &[u8]) {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).expect("create");
    f.write_all(data).expect("write");
    f.sync_all().expect("sync");
    std::fs::rename(&tmp, path).expect("rename");
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn path_string(p: &Path) -> String {
    path_str(p).to_string()
}
