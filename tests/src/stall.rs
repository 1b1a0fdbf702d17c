//! Peers that stop answering without closing their sockets: a node
//! SIGSTOPped (as if powered off behind a live switch, or partitioned)
//! and resumed by a guard, so a failing test never leaves it stopped.

use rustix::process::{Pid, Signal, kill_process};

use crate::{Cluster, Node};

/// A stopped node; SIGCONT when dropped (or [`Frozen::thaw`]).
pub struct Frozen {
    pid: Option<Pid>,
}

impl Frozen {
    /// Resumes the node now.
    pub fn thaw(mut self) {
        self.resume();
    }

    fn resume(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = kill_process(pid, Signal::CONT);
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        self.resume();
    }
}

impl Cluster {
    /// SIGSTOPs `node`: its sockets stay open, the kernel still accepts
    /// connections and acknowledges bytes, but nothing answers.
    pub fn freeze(&self, node: Node) -> Frozen {
        let pid = self.node(node).pid().expect("node is running");
        let pid = Pid::from_raw(pid as i32).expect("pid");
        kill_process(pid, Signal::STOP).expect("SIGSTOP");
        Frozen { pid: Some(pid) }
    }
}
