//! Helpers for the per-key authorization tests (ADR 0027): access keys
//! with their own S3 clients, the admin CLI's bucket commands, and
//! waiting out the gateway's rights cache.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::durability::CliRun;
use crate::s3::S3Cluster;

/// How long a change of rights may take to reach a gateway: it caches a
/// key's rights with its secret for 5 s (ADR 0027); this allows twice
/// that. Writes are refused at apply at once, whatever the cache says.
pub const CACHE_WINDOW: Duration = Duration::from_secs(10);

/// An access key and an S3 client that signs with it.
pub struct Tenant {
    pub id: String,
    pub secret: String,
    /// The key's name: S3's DisplayName of what it owns.
    pub name: String,
    pub s3: aws_sdk_s3::Client,
}

impl S3Cluster {
    /// `hamster key create --name NAME EXTRA...` and a client for the key.
    pub fn tenant(&self, name: &str, extra: &[&str]) -> Tenant {
        let (id, secret) = self.c.create_access_key_with(name, extra);
        let s3 = self.c.s3_client(self.gw, &id, &secret);
        Tenant {
            id,
            secret,
            name: name.into(),
            s3,
        }
    }

    /// `hamster ARGS <admin flags>`; panics (with its output) if it fails.
    pub fn admin(&self, args: &[&str]) -> String {
        let run = self.c.admin_cli(args);
        assert!(run.ok(), "hamster {args:?} failed: {run}");
        run.stdout
    }

    /// `hamster ARGS <admin flags>`, expected to fail: the run, to check
    /// what it says.
    pub fn admin_refused(&self, args: &[&str]) -> CliRun {
        let run = self.c.admin_cli(args);
        assert!(!run.ok(), "hamster {args:?} should have failed: {run}");
        run
    }

    /// `hamster ARGS --json <admin flags>`'s JSON answer.
    pub fn admin_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.admin(&all);
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("hamster {args:?}: {e}: {out}"))
    }
}

/// Polls `ok` until it holds, for at most [`CACHE_WINDOW`]; answers how
/// long it took. Panics naming `what` if it never does.
pub async fn within_cache_window<F, Fut>(what: &str, mut ok: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if ok().await {
            let took = start.elapsed();
            eprintln!("{what}: after {took:.1?}");
            return took;
        }
        assert!(
            start.elapsed() < CACHE_WINDOW,
            "{what}: not within {CACHE_WINDOW:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
