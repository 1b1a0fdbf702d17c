//! `hamster restore --from FILE`: a new meta tier from a backup (ADR
//! 0026). Offline: the meta-servers it writes for are stopped. The file is
//! verified whole (checksum, SQLite check, index) and checked against what
//! the node holds now (master keys, trust, revoked blob-servers) before
//! any data dir is written; a refusal changes nothing.
//!
//! - [`target`]: the two forms — `--dir DIR` (a `hamster dev` dir: every
//!   meta-server, from `DIR/topology.json`) and `--data-dir PATH --raft-id
//!   N …` (one meta-server of a real cluster, alone or with
//!   `--initial-members`).
//! - [`checks`]: `--check`, the restore's checks on a throwaway copy.
//! - [`aside`]: `--dir` writes new data dirs beside the old ones and
//!   swaps them in at the end, journaled ([`journal`]); the old ones are
//!   kept, never deleted.
//! - [`staging`]: `--data-dir` seeds a staging dir inside the data dir
//!   and renames the files in at the end, state.db last.
//! - [`awaits`]: `--initial-members`: the lowest raft id is seeded with
//!   the state and the whole membership; every other member is left empty
//!   to receive it from that one by Raft, so the state exists once.
//! - [`print`]: the report and the next steps.
//!
//! `--check` verifies and judges, prints, and writes nothing.

pub mod aside;
pub mod awaits;
pub mod checks;
pub mod journal;
pub mod print;
pub mod staging;
pub mod target;

use std::path::{Path, PathBuf};

use anyhow::Context;
use hamster_meta::backup::restore::{self, NodeFacts, Plan, Report};
use tokio::signal::unix::{Signal, SignalKind, signal};

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup file (`hamster backup`).
    #[arg(long)]
    pub from: PathBuf,
    /// Restore a backup older than a rotation (master key, CA) or a
    /// blob-server removal the nodes have completed; see the runbook.
    #[arg(long)]
    pub accept_older: bool,
    /// Verify the file and judge it against the node; write nothing.
    #[arg(long)]
    pub check: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// A `hamster dev` dir: every meta-server's data dir is rebuilt (the
    /// old ones are moved to `data/meta-N.pre-restore-SECS`).
    #[arg(
        long,
        conflicts_with = "data_dir",
        required_unless_present = "data_dir"
    )]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub node: NodeTarget,
}

/// One meta-server of a real cluster, named as its own flags name it.
/// `--dir` takes all of this from the dev topology instead.
#[derive(Debug, clap::Args)]
pub struct NodeTarget {
    /// The meta-server's data dir; it must hold no state.db or raft-log.db.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The meta-server's --raft-id.
    #[arg(long, requires = "data_dir")]
    pub raft_id: Option<u64>,
    /// The meta-server's --listen (its address in the new cluster unless
    /// --advertise is given).
    #[arg(long, requires = "data_dir")]
    pub listen: Option<String>,
    /// Where peers reach it (host:port).
    #[arg(long, requires = "data_dir")]
    pub advertise: Option<String>,
    /// Its node id (default: the id in --tls-cert).
    #[arg(long, requires = "data_dir")]
    pub node_id: Option<String>,
    /// The node's master key file.
    #[arg(long, env = "HAMSTER_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// The node's next master key file (need not exist).
    #[arg(long, env = "HAMSTER_NEXT_MASTER_KEY_FILE")]
    pub next_master_key_file: Option<PathBuf>,
    /// The node's trust bundle (its `.revoked` file is read too).
    #[arg(long, env = "HAMSTER_TRUST")]
    pub trust: Option<PathBuf>,
    /// The node's certificate.
    #[arg(long, env = "HAMSTER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Every member of the restored cluster, ID=NAME@HOST:PORT,... (the
    /// meta-servers' list): each member is restored from the same file
    /// with the same list, then all start. Without it the node starts as
    /// a one-node cluster that grows with `hamster member add`.
    #[arg(long, env = "HAMSTER_INITIAL_MEMBERS", value_delimiter = ',')]
    pub initial_members: Vec<String>,
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

pub async fn run(a: &RestoreArgs) -> anyhow::Result<()> {
    let t = target::resolve(a)?;
    let facts = NodeFacts::load(
        &t.facts.master_key,
        t.facts.next_key.as_deref(),
        &t.facts.trust,
        &t.facts.cert,
    )
    .context("reading what this node holds")?;
    if a.check {
        return check(a, &t, &facts).await;
    }
    match (&t.dev, &t.awaits) {
        (Some((dir, addrs)), _) => dev(a, &t, dir, addrs, facts).await,
        (None, Some(leader)) => awaits::run(a, &t, &facts, leader).await,
        (None, None) => node(a, &t, facts).await,
    }
}

/// `--dir`: every meta dir written beside the old one, then swapped in.
async fn dev(
    a: &RestoreArgs,
    t: &target::Target,
    dir: &Path,
    addrs: &[String],
    facts: NodeFacts,
) -> anyhow::Result<()> {
    target::ensure_stopped(addrs)?;
    if let Some(moved) = aside::recover(dir)? {
        eprintln!(
            "finished the swap of a restore that was interrupted ({} removed)",
            journal::path(dir).display()
        );
        for (from, to) in &moved {
            eprintln!("  moved aside    {} -> {}", from.display(), to.display());
        }
    }
    let mut stop = Interrupt::listen()?;
    let secs = unix_secs();
    let staged: Vec<PathBuf> = t
        .seed
        .iter()
        .map(|(_, d)| aside::staging(d, secs))
        .collect();
    let plan = Plan {
        backup: a.from.clone(),
        members: t.members.clone(),
        seed: t
            .seed
            .iter()
            .map(|(id, _)| *id)
            .zip(staged.clone())
            .collect(),
        accept_older: a.accept_older,
    };
    let report = match in_task(plan, facts, &mut stop).await {
        Ok(r) => r,
        Err(e) => {
            aside::discard(&staged);
            return Err(e.context(format!("{} is as it was", dir.display())));
        }
    };
    let pairs: Vec<(PathBuf, PathBuf)> =
        t.seed.iter().map(|(_, d)| d.clone()).zip(staged).collect();
    let moved = aside::swap_in(dir, &pairs, secs)?;
    done(a, t, &report, &moved);
    Ok(())
}

/// `--data-dir`, seeded: in a staging dir inside it, then renamed in.
async fn node(a: &RestoreArgs, t: &target::Target, facts: NodeFacts) -> anyhow::Result<()> {
    let (id, data) = t.seed.first().context("no data dir to write")?;
    if let Some(why) = staging::refusal(data) {
        anyhow::bail!("{why}");
    }
    awaits::refuse_marker(data)?;
    let mut stop = Interrupt::listen()?;
    let stage = staging::Staging::create(data)?;
    let plan = Plan {
        backup: a.from.clone(),
        members: t.members.clone(),
        seed: vec![(*id, stage.dir().to_path_buf())],
        accept_older: a.accept_older,
    };
    let report = match in_task(plan, facts, &mut stop).await {
        Ok(r) => r,
        Err(e) => {
            let state = stage.discard();
            return Err(e.context(state));
        }
    };
    stage.commit()?;
    done(a, t, &report, &aside::Moved::new());
    Ok(())
}

fn done(a: &RestoreArgs, t: &target::Target, report: &Report, moved: &aside::Moved) {
    let seeded: Vec<PathBuf> = t.seed.iter().map(|(_, d)| d.clone()).collect();
    print::restored(
        a,
        &print::Done {
            report,
            seeded: &seeded,
            moved,
            members: &t.members,
            dev: t.dev.as_ref().map(|(d, _)| d.as_path()),
            every_member: t.every_member,
        },
    );
}

/// SIGINT (Ctrl-C) and SIGTERM, listened to from before anything is
/// staged, so that neither kills the restore halfway.
struct Interrupt {
    int: Signal,
    term: Signal,
}

impl Interrupt {
    fn listen() -> anyhow::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

/// Runs the restore in a task of its own: on Ctrl-C it is stopped and has
/// stopped (its temp files dropped) before the caller removes what it
/// staged, rather than being dropped in the middle of a step.
async fn in_task(plan: Plan, facts: NodeFacts, stop: &mut Interrupt) -> anyhow::Result<Report> {
    let mut task = tokio::spawn(async move { restore::restore(&plan, &facts).await });
    tokio::select! {
        r = &mut task => match r {
            Ok(r) => r.map_err(anyhow::Error::from),
            Err(e) => Err(anyhow::anyhow!("the restore stopped: {e}")),
        },
        () = stop.recv() => {
            eprintln!("interrupted: stopping the restore and removing what it staged");
            task.abort();
            let _ = task.await;
            Err(anyhow::anyhow!("interrupted"))
        }
    }
}

/// `--check`: judged on a temporary copy; non-zero exit if a restore
/// would be refused.
async fn check(a: &RestoreArgs, t: &target::Target, facts: &NodeFacts) -> anyhow::Result<()> {
    let first = t.seed.first().map(|(_, d)| d.as_path());
    if let Some((dir, _)) = &t.dev
        && journal::path(dir).exists()
    {
        eprintln!(
            "a restore was interrupted mid-swap ({}); a restore finishes that swap first",
            journal::path(dir).display()
        );
    }
    let verdict = checks::judge(&a.from, facts, first, a.accept_older).await?;
    let in_use: Vec<(&Path, String)> = match t.dev {
        Some(_) => Vec::new(),
        None => t
            .seed
            .iter()
            .filter_map(|(_, d)| staging::refusal(d).map(|why| (d.as_path(), why)))
            .collect(),
    };
    print::checked(a, &verdict, &in_use, t.awaits.as_ref());
    if let Some(refusal) = &verdict.refusal {
        anyhow::bail!("{refusal}");
    }
    if let Some((_, why)) = in_use.first() {
        anyhow::bail!("{why}");
    }
    Ok(())
}
