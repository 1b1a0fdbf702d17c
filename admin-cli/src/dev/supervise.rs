//! The children of `hamster dev`: started with `--exit-with-parent=PID`,
//! PID being `hamster dev`'s own (it spawns them itself, so it is their
//! parent; a child stops once its parent is another, so a SIGKILLed
//! `hamster dev` leaves none behind), watched, and restarted
//! when one dies on its own — after a backoff that doubles for a node
//! that keeps dying quickly — unless `--no-restart`. SIGHUP is passed to
//! every child; only Ctrl-C or SIGTERM stops them all.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use rustix::process::Signal;
use tokio::process::{Child, Command};

use crate::dev::plan::Node;

/// The first wait before a restart.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A node up this long is well again: its next death waits FIRST_BACKOFF.
const STABLE: Duration = Duration::from_secs(60);
/// How often the children are checked.
const POLL: Duration = Duration::from_millis(500);

/// How long to wait before restarting a node that died after running
/// for `ran`; doubles while it keeps dying within [`STABLE`].
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: FIRST_BACKOFF,
        }
    }
}

impl Backoff {
    pub fn after_death(&mut self, ran: Duration) -> Duration {
        if ran >= STABLE {
            self.next = FIRST_BACKOFF;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        wait
    }
}

/// One node's process, or when it comes back.
pub struct Running {
    pub id: String,
    node: usize,
    child: Option<Child>,
    started: Instant,
    backoff: Backoff,
    restart_at: Option<Instant>,
}

/// Where children come from: the binaries, the dev dir.
pub struct Spawner<'a> {
    pub dir: &'a Path,
    pub bins: &'a Path,
    pub nodes: &'a [Node],
}

impl Spawner<'_> {
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{id}.log"))
    }

    /// Starts node `i` (its identity must exist), output appended to
    /// its log.
    pub fn spawn(&self, i: usize) -> anyhow::Result<Running> {
        Ok(Running {
            id: self.nodes[i].id.clone(),
            node: i,
            child: Some(self.child(i)?),
            started: Instant::now(),
            backoff: Backoff::default(),
            restart_at: None,
        })
    }

    fn child(&self, i: usize) -> anyhow::Result<Child> {
        let n = &self.nodes[i];
        let node_dir = self.dir.join("nodes").join(&n.id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(&n.id))?;
        let bin = self.bins.join(n.binary);
        Command::new(&bin)
            .args(&n.args)
            .arg(format!(
                "--tls-cert={}",
                node_dir.join("node.crt").display()
            ))
            .arg(format!("--tls-key={}", node_dir.join("node.key").display()))
            .arg(format!("--trust={}", node_dir.join("trust.pem").display()))
            .arg(format!("--exit-with-parent={}", std::process::id()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} ({})", n.id, bin.display()))
    }

    /// Until Ctrl-C or SIGTERM: reports and restarts what dies, passes
    /// SIGHUP on.
    pub async fn supervise(&self, running: &mut [Running], restart: bool) -> anyhow::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(()),
                _ = term.recv() => return Ok(()),
                _ = hup.recv() => {
                    println!("SIGHUP: passing it to every process");
                    signal_all(running, Signal::HUP);
                }
                () = tokio::time::sleep(POLL) => {
                    for r in running.iter_mut() {
                        self.tend(r, restart);
                    }
                }
            }
        }
    }

    /// Notices a death, or restarts a node whose wait is over.
    fn tend(&self, r: &mut Running, restart: bool) {
        if let Some(c) = &mut r.child {
            let status = match c.try_wait() {
                Ok(Some(st)) => st,
                Ok(None) => return,
                Err(e) => {
                    eprintln!("{}: cannot check it: {e}", r.id);
                    return;
                }
            };
            r.child = None;
            let ran = r.started.elapsed();
            println!("{}", death_line(&r.id, status, ran, &self.log_path(&r.id)));
            if restart {
                let wait = r.backoff.after_death(ran);
                println!("{}: restarting in {} s", r.id, wait.as_secs());
                r.restart_at = Some(Instant::now() + wait);
            } else {
                println!(
                    "{}: stays down (--no-restart); stop hamster dev and run it again to bring it back",
                    r.id
                );
            }
            return;
        }
        if r.restart_at.is_some_and(|t| Instant::now() >= t) {
            match self.child(r.node) {
                Ok(c) => {
                    println!(
                        "{}: restarted (pid {})",
                        r.id,
                        c.id().map_or("?".into(), |p| p.to_string())
                    );
                    r.child = Some(c);
                    r.started = Instant::now();
                    r.restart_at = None;
                }
                Err(e) => {
                    let wait = r.backoff.after_death(Duration::ZERO);
                    eprintln!("{}: {e:#}; trying again in {} s", r.id, wait.as_secs());
                    r.restart_at = Some(Instant::now() + wait);
                }
            }
        }
    }
}

/// "blob-3 died (signal: 9 (SIGKILL)) after 42 s; log: DIR/logs/blob-3.log".
fn death_line(id: &str, status: ExitStatus, ran: Duration, log: &Path) -> String {
    format!(
        "{id} died ({status}) after {} s; log: {}",
        ran.as_secs(),
        log.display()
    )
}

fn signal_all(running: &[Running], sig: Signal) {
    for r in running {
        if let Some(pid) = r
            .child
            .as_ref()
            .and_then(Child::id)
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
        {
            let _ = rustix::process::kill_process(pid, sig);
        }
    }
}

/// SIGTERM to every child, then SIGKILL to any still running after 10 s.
pub async fn stop_all(running: &mut [Running]) {
    signal_all(running, Signal::TERM);
    for r in running.iter_mut() {
        let Some(c) = &mut r.child else { continue };
        if tokio::time::timeout(Duration::from_secs(10), c.wait())
            .await
            .is_err()
        {
            eprintln!("{} did not stop in 10 s; killing it", r.id);
            let _ = c.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn a_node_that_keeps_dying_waits_longer_up_to_a_cap_and_is_forgiven_once_stable() {
        let mut b = Backoff::default();
        let quick = Duration::from_secs(2);
        let waits: Vec<u64> = (0..7).map(|_| b.after_death(quick).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(b.after_death(STABLE).as_secs(), 1, "stable for a minute");
        assert_eq!(b.after_death(quick).as_secs(), 2);
    }

    #[test]
    fn a_death_names_the_node_its_status_and_its_log() {
        let line = death_line(
            "blob-3",
            ExitStatus::from_raw(9),
            Duration::from_secs(42),
            Path::new("/d/logs/blob-3.log"),
        );
        assert!(line.starts_with("blob-3 died (signal: 9"), "{line}");
        assert!(
            line.ends_with("after 42 s; log: /d/logs/blob-3.log"),
            "{line}"
        );
        let line = death_line(
            "meta-1",
            ExitStatus::from_raw(1 << 8),
            Duration::ZERO,
            Path::new("/l"),
        );
        assert!(line.contains("(exit status: 1)"), "{line}");
    }
}
