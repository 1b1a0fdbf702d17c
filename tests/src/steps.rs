//! Named steps of one long scenario over one cluster.
//!
//! A scenario starts its cluster once, then runs its steps in order with
//! [`Steps::run`]: each step's failure (a returned `Err` or a panic) is
//! caught, logged as `step NAME: FAILED: why`, and the next step still
//! runs, so the first failure does not hide the others. A step the rest
//! cannot do without runs with [`Steps::require`]: if it fails, the
//! scenario stops there. [`Steps::finish`] fails the test listing every
//! failed step; the panic it raises is what makes the [`crate::Cluster`]
//! print its nodes' log tails when it drops.

use std::any::Any;
use std::fmt::Debug;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures::FutureExt;

/// What a step may answer: nothing (it asserts), or a `Result` whose
/// `Err` is a failure (a step that hands a value to later steps answers
/// `Ok(value)`).
pub trait StepOutcome {
    type Value;
    fn into_result(self) -> Result<Self::Value, String>;
}

impl StepOutcome for () {
    type Value = ();
    fn into_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<T, E: Debug> StepOutcome for Result<T, E> {
    type Value = T;
    fn into_result(self) -> Result<T, String> {
        self.map_err(|e| format!("{e:?}"))
    }
}

/// The steps of one scenario and how each one went.
pub struct Steps {
    scenario: String,
    ran: Vec<String>,
    failed: Vec<(String, String)>,
    finished: bool,
}

impl Steps {
    pub fn new(scenario: &str) -> Self {
        Self {
            scenario: scenario.to_string(),
            ran: Vec::new(),
            failed: Vec::new(),
            finished: false,
        }
    }

    /// Runs a step; a failure is recorded and the scenario goes on.
    /// Answers the step's value, or None if it failed.
    pub async fn run<F, O>(&mut self, name: &str, step: F) -> Option<O::Value>
    where
        F: Future<Output = O>,
        O: StepOutcome,
    {
        let started = Instant::now();
        // The step borrows the cluster; a panic leaves nothing half-done
        // that a later step relies on except what the step itself wrote,
        // which is what the later steps are there to look at.
        let outcome = match AssertUnwindSafe(step).catch_unwind().await {
            Ok(out) => out.into_result(),
            Err(panic) => Err(panic_message(panic.as_ref())),
        };
        self.ran.push(name.to_string());
        let took = started.elapsed();
        match outcome {
            Ok(v) => {
                eprintln!("step {name}: ok ({took:.1?})");
                Some(v)
            }
            Err(why) => {
                eprintln!("step {name}: FAILED ({took:.1?}): {why}");
                self.failed.push((name.to_string(), why));
                None
            }
        }
    }

    /// Runs a step the rest of the scenario needs: if it fails, the
    /// scenario stops here, failing with every failure so far.
    pub async fn require<F, O>(&mut self, name: &str, step: F) -> O::Value
    where
        F: Future<Output = O>,
        O: StepOutcome,
    {
        match self.run(name, step).await {
            Some(v) => v,
            None => {
                self.finished = true;
                panic!("{} (stopped at {name:?})", self.report());
            }
        }
    }

    /// The names of the steps run so far, in order.
    pub fn ran(&self) -> &[String] {
        &self.ran
    }

    /// Every failed step so far: (name, why).
    pub fn failures(&self) -> &[(String, String)] {
        &self.failed
    }

    /// Ends the scenario: fails the test if any step failed, naming each.
    pub fn finish(mut self) {
        self.finished = true;
        if !self.failed.is_empty() {
            panic!("{}", self.report());
        }
        eprintln!("{}: all {} steps ok", self.scenario, self.ran.len());
    }

    fn report(&self) -> String {
        let mut out = format!(
            "{}: {} of {} steps failed:",
            self.scenario,
            self.failed.len(),
            self.ran.len()
        );
        for (name, why) in &self.failed {
            let why = why.replace('\n', "\n    ");
            out.push_str(&format!("\n  step {name}: {why}"));
        }
        out
    }
}

impl Drop for Steps {
    /// A scenario that forgot `finish` must not pass with failed steps.
    fn drop(&mut self) {
        if !self.finished && !self.failed.is_empty() && !std::thread::panicking() {
            self.finished = true;
            panic!("{}", self.report());
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panicked (no message)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step that fails by a panic, as an assertion does.
    async fn gateway_answers(status: u16) {
        assert_eq!(status, 200, "the gateway is down");
    }

    /// Four steps: the second panics, the third returns an error.
    async fn failing_scenario() -> Steps {
        let mut steps = Steps::new("demo");
        let first = steps.run("first", async {}).await;
        assert_eq!(first, Some(()));
        steps.run("panics", gateway_answers(503)).await;
        let err: Option<()> = steps
            .run("returns an error", async {
                Err::<(), _>(anyhow::anyhow!("the gateway said no"))
            })
            .await;
        assert_eq!(err, None);
        let later = steps
            .run("later", async { Ok::<_, anyhow::Error>(7) })
            .await;
        assert_eq!(later, Some(7), "a step after a failure still runs");
        steps
    }

    #[tokio::test]
    async fn a_failed_step_is_named_and_later_steps_still_run() {
        let steps = failing_scenario().await;
        assert_eq!(
            steps.ran(),
            ["first", "panics", "returns an error", "later"]
        );
        let names: Vec<&str> = steps.failures().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["panics", "returns an error"]);
        assert!(steps.failures()[0].1.contains("the gateway is down"));
        assert!(steps.failures()[1].1.contains("the gateway said no"));

        // finish fails the test, naming every failed step.
        let msg = std::panic::catch_unwind(AssertUnwindSafe(|| steps.finish()))
            .expect_err("finish must fail");
        let msg = panic_message(msg.as_ref());
        assert!(msg.contains("demo: 2 of 4 steps failed"), "{msg}");
        assert!(msg.contains("step panics: "), "{msg}");
        assert!(msg.contains("step returns an error: "), "{msg}");
        assert!(!msg.contains("step later"), "{msg}");
    }

    fn no_cluster() {
        panic!("no cluster")
    }

    #[tokio::test]
    async fn a_failed_prerequisite_stops_the_scenario() {
        let mut steps = Steps::new("demo");
        let got = AssertUnwindSafe(async {
            steps.require("setup", async { no_cluster() }).await;
            steps.run("never", async {}).await;
        })
        .catch_unwind()
        .await;
        let msg = panic_message(got.expect_err("require must stop").as_ref());
        assert!(msg.contains("stopped at \"setup\""), "{msg}");
        assert!(msg.contains("no cluster"), "{msg}");
        assert_eq!(steps.ran(), ["setup"]);
    }

    #[tokio::test]
    async fn all_steps_ok_passes() {
        let mut steps = Steps::new("demo");
        let v = steps.require("setup", async { Ok::<_, String>(3) }).await;
        steps.run("use it", async move { assert_eq!(v, 3) }).await;
        assert!(steps.failures().is_empty());
        steps.finish();
    }
}
