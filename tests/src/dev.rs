//! `hamster dev` as a test drives it: a run in the foreground on free
//! ports, stopped by SIGTERM (which must leave no child behind), its env
//! file, and the admin CLI run with that env as a user who sourced it.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::bin_dir;

/// A base port with the ports `hamster dev` will use free right now, and
/// the S3 port: (base, s3). The default cluster (3 meta, 6 blob, 1
/// gateway) listens on BASE+1.., +101.., +201 and serves metrics on
/// BASE+301.., +401.., +501.
pub fn free_ports() -> (u16, u16) {
    for _ in 0..200 {
        let base = 20_000 + (rand::random::<u16>() % 20_000);
        let s3 = base + 300;
        let mut ports: Vec<u16> = Vec::new();
        for tier in [0, 300] {
            ports.extend((1..=3).map(|i| base + tier + i));
            ports.extend((101..=106).map(|i| base + tier + i));
            ports.push(base + tier + 201);
        }
        ports.push(s3);
        if ports
            .iter()
            .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        {
            return (base, s3);
        }
    }
    panic!("no free port range");
}

/// Processes whose command line names `dir` (the children of a dev run).
pub fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&needle) && !cmd.contains("hamster dev") {
                out.push(cmd);
            }
        }
    }
    out
}

/// The pid of the child whose command line has the argument `arg`
/// (e.g. `--data-dir=DIR/data/blob-2`), if one runs.
pub fn pid_with_arg(arg: &str) -> Option<Pid> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .find_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            cmd.split(|b| *b == 0)
                .any(|a| a == arg.as_bytes())
                .then(|| Pid::from_raw(pid))?
        })
}

/// One `hamster dev --dir DIR` run; killed on drop if not stopped.
pub struct Dev {
    child: Child,
    out: PathBuf,
}

impl Dev {
    /// Starts run number `n` (its output goes to `dev-N.out` beside DIR)
    /// and waits for "Hamster is running".
    pub fn start(dir: &Path, base: u16, s3: u16, n: usize) -> Self {
        let out = dir.parent().expect("parent").join(format!("dev-{n}.out"));
        let child = Command::new(bin_dir().join("hamster"))
            .args(["dev", "--dir"])
            .arg(dir)
            .args([
                "--base-port",
                &base.to_string(),
                "--s3-port",
                &s3.to_string(),
            ])
            .arg("--bin-dir")
            .arg(bin_dir())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("out"))
            .stderr(std::fs::File::create(out.with_extension("err")).expect("err"))
            .spawn()
            .expect("hamster dev");
        let mut d = Self { child, out };
        let deadline = Instant::now() + Duration::from_secs(90);
        while !std::fs::read_to_string(&d.out)
            .unwrap_or_default()
            .contains("Hamster is running")
        {
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("hamster dev exited ({st}):\n{}", d.output(dir));
            }
            assert!(
                Instant::now() < deadline,
                "hamster dev never came up:\n{}",
                d.output(dir)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        d
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32).expect("pid")
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its output and the tail of every node's log (not the JSON access
    /// and audit logs).
    pub fn output(&self, dir: &Path) -> String {
        let mut s = std::fs::read_to_string(&self.out).unwrap_or_default();
        s += &std::fs::read_to_string(self.out.with_extension("err")).unwrap_or_default();
        for e in std::fs::read_dir(dir.join("logs"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        {
            let log = std::fs::read_to_string(e.path()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            s += &format!(
                "\n--- {}\n{}",
                e.path().display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        s
    }

    /// SIGTERM; it must exit 0 and leave no child running.
    pub fn stop(mut self, dir: &Path) {
        kill_process(self.pid(), Signal::TERM).expect("SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                assert!(
                    st.success(),
                    "hamster dev exited with {st}:\n{}",
                    self.output(dir)
                );
                break;
            }
            assert!(Instant::now() < deadline, "hamster dev did not stop");
            std::thread::sleep(Duration::from_millis(100));
        }
        let left = processes_using(dir);
        assert!(left.is_empty(), "children left running: {left:?}");
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// The variables of DIR/env.
pub fn env(dir: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(dir.join("env"))
        .expect("env file")
        .lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The admin CLI with the dev cluster's HAMSTER_* variables: its stdout,
/// or its stdout and stderr when it fails.
pub fn hamster_ok(env: &HashMap<String, String>, args: &[&str]) -> Result<String, String> {
    let out = Command::new(bin_dir().join("hamster"))
        .args(args)
        .envs(env.iter().filter(|(k, _)| k.starts_with("HAMSTER_")))
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("hamster");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(text + &String::from_utf8_lossy(&out.stderr))
    }
}

/// [`hamster_ok`], panicking with the output if it fails.
pub fn hamster(env: &HashMap<String, String>, args: &[&str]) -> String {
    hamster_ok(env, args).unwrap_or_else(|e| panic!("hamster {args:?}: {e}"))
}

/// [`hamster`] whose stdout is one JSON object.
pub fn hamster_json(env: &HashMap<String, String>, args: &[&str]) -> serde_json::Value {
    let out = hamster(env, args);
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("hamster {args:?} printed no JSON object ({e}):\n{out}"))
}
