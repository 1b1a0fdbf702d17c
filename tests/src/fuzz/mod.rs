//! Fuzzing on stable Rust (ADR 0033): every parser that takes bytes from
//! the network or the disk, run on mutated valid encodings.
//!
//! A [`Target`] makes its fixture (keys, a CA, a store on disk) and seed
//! corpus once, then runs inputs. [`run`] mutates corpus entries
//! ([`mutate`]), runs each input under `catch_unwind` with the counting
//! allocator armed ([`alloc`]), and keeps an input in the corpus when it
//! ends in an outcome class (accepted, or a kind of refusal) not seen
//! before — a cheap stand-in for coverage. A panic, or an allocation over
//! [`MAX_SINGLE_ALLOC`] or [`MAX_LIVE`] live bytes, is a finding: the
//! target and the input as hex. Targets by tier: [`blob`] (shard files),
//! [`proto`] (envelopes, join tokens, CSRs and PEM), [`meta`] (Raft
//! messages and records, backup files), [`gateway`] (S3 headers).
//!
//! The binary `fuzz-all` and the test `tests/fuzz.rs` install
//! [`alloc::Counting`] as their global allocator; without it the
//! allocation limits are not checked (the panics still are).

pub mod alloc;
pub mod blob;
pub mod gateway;
pub mod meta;
pub mod mutate;
pub mod proto;

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A single allocation above this is a finding.
pub const MAX_SINGLE_ALLOC: usize = 64 << 20;
/// Live bytes above this (more than at the input's start) are a finding.
pub const MAX_LIVE: usize = 256 << 20;
/// At most this many inputs are kept in a target's corpus.
const MAX_CORPUS: usize = 1024;
/// Findings kept per target (each is also counted).
const MAX_FINDINGS: usize = 8;

/// What an input came to: 0 accepted, else a class of refusal. Inputs
/// reaching a new class join the corpus.
pub type Outcome = u64;

/// One input's run; panics if the parser broke a property.
pub type RunFn = Box<dyn FnMut(&[u8]) -> Outcome>;

/// A target ready to run: its seeds, tokens and the function.
pub struct Harness {
    pub seeds: Vec<Vec<u8>>,
    /// Words the mutations insert (JSON punctuation, header words).
    pub tokens: Vec<&'static [u8]>,
    pub run: RunFn,
}

/// A parser under test.
pub struct Target {
    pub name: &'static str,
    /// Makes the fixture and seeds (once per run).
    pub make: fn() -> Harness,
}

/// Every target, in a fixed order.
pub fn targets() -> Vec<Target> {
    let mut all = Vec::new();
    all.extend(blob::targets());
    all.extend(proto::targets());
    all.extend(meta::targets());
    all.extend(gateway::targets());
    all
}

/// The class of a result: 0 for Ok, else the start of the error's
/// message up to the first detail (`:` or a quote), without digits, so
/// "missing field" and "invalid type" differ but each line, column or
/// block number does not.
pub fn outcome<T, E: fmt::Display>(r: &Result<T, E>) -> Outcome {
    match r {
        Ok(_) => 0,
        Err(e) => class(&e.to_string()),
    }
}

/// The class of a refusal's message (see [`outcome`]).
pub fn class(message: &str) -> Outcome {
    let head = message
        .split([':', '`', '"', '\''])
        .next()
        .unwrap_or_default();
    let mut h = DefaultHasher::new();
    for c in head.chars().filter(|c| !c.is_ascii_digit()) {
        c.hash(&mut h);
    }
    h.finish() | 1
}

/// A panic or an allocation over the limits, with its input.
#[derive(Clone, Debug)]
pub struct Finding {
    pub target: &'static str,
    pub what: String,
    pub input: Vec<u8>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "target {}: {}\n  input ({} bytes, hex): {}",
            self.target,
            self.what,
            self.input.len(),
            hex::encode(&self.input)
        )
    }
}

/// What a target's run came to.
#[derive(Debug)]
pub struct Report {
    pub target: &'static str,
    pub inputs: u64,
    pub accepted: u64,
    pub classes: usize,
    pub corpus: usize,
    pub elapsed: Duration,
    pub largest_alloc: usize,
    pub findings: u64,
    pub kept: Vec<Finding>,
}

impl Report {
    pub fn per_sec(&self) -> f64 {
        self.inputs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<18} {:>9} inputs {:>9.0}/s {:>8} accepted {:>4} classes {:>5} corpus  largest alloc {:>9} B  findings {}",
            self.target,
            self.inputs,
            self.per_sec(),
            self.accepted,
            self.classes,
            self.corpus,
            self.largest_alloc,
            self.findings
        )
    }
}

thread_local! {
    static FUZZING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A panic hook that, while an input runs, records the panic instead of
/// printing it (a finding is printed with its input instead).
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if FUZZING.with(std::cell::Cell::get) {
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("panic: {msg}{at}")));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs one input: its outcome, or the finding it is.
pub fn run_one(
    target: &'static str,
    run: &mut RunFn,
    input: &[u8],
) -> (Result<Outcome, Finding>, alloc::Usage) {
    install_hook();
    FUZZING.with(|f| f.set(true));
    alloc::arm(target, input);
    let result = catch_unwind(AssertUnwindSafe(|| run(input)));
    let usage = alloc::disarm();
    FUZZING.with(|f| f.set(false));
    let finding = |what: String| Finding {
        target,
        what,
        input: input.to_vec(),
    };
    let r = match result {
        Err(_) => Err(finding(
            LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "panic".into()),
        )),
        Ok(_) if usage.largest > MAX_SINGLE_ALLOC => Err(finding(format!(
            "one allocation of {} bytes (limit {MAX_SINGLE_ALLOC})",
            usage.largest
        ))),
        Ok(_) if usage.peak > MAX_LIVE => Err(finding(format!(
            "{} bytes live at once (limit {MAX_LIVE})",
            usage.peak
        ))),
        Ok(o) => Ok(o),
    };
    (r, usage)
}

/// Runs `inputs` inputs of `target` (its seeds first), from `seed`.
pub fn run(target: &Target, inputs: u64, seed: u64) -> Report {
    let mut rng = StdRng::seed_from_u64(seed ^ hash_name(target.name));
    let Harness {
        seeds,
        tokens,
        mut run,
    } = (target.make)();
    let mut corpus: Vec<Vec<u8>> = seeds.clone();
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let mut seen = HashSet::new();
    let mut report = Report {
        target: target.name,
        inputs: 0,
        accepted: 0,
        classes: 0,
        corpus: 0,
        elapsed: Duration::ZERO,
        largest_alloc: 0,
        findings: 0,
        kept: Vec::new(),
    };
    let start = Instant::now();
    let mut queue = seeds.into_iter();
    while report.inputs < inputs {
        let input = match queue.next() {
            Some(s) => s,
            None => {
                let base = &corpus[rng.random_range(0..corpus.len())];
                let other = &corpus[rng.random_range(0..corpus.len())];
                mutate::mutate(&mut rng, base, other, &tokens)
            }
        };
        report.inputs += 1;
        let (r, usage) = run_one(target.name, &mut run, &input);
        report.largest_alloc = report.largest_alloc.max(usage.largest);
        match r {
            Ok(o) => {
                if o == 0 {
                    report.accepted += 1;
                }
                if seen.insert(o) && corpus.len() < MAX_CORPUS {
                    corpus.push(input);
                }
            }
            Err(f) => {
                report.findings += 1;
                if report.kept.len() < MAX_FINDINGS && !report.kept.iter().any(|k| k.what == f.what)
                {
                    report.kept.push(f);
                }
            }
        }
    }
    report.elapsed = start.elapsed();
    report.classes = seen.len();
    report.corpus = corpus.len();
    report
}

fn hash_name(name: &str) -> u64 {
    let mut h = DefaultHasher::new();
    name.hash(&mut h);
    h.finish()
}

/// Splits `data` at the first `n - 1` occurrences of `sep` into exactly
/// `n` fields (missing ones empty): how text targets take several inputs.
pub fn fields(data: &[u8], sep: u8, n: usize) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = data.splitn(n, |&b| b == sep).collect();
    out.resize(n, &[]);
    out
}

/// The first byte (a target's control bits) and the rest.
pub fn control(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((c, rest)) => (*c, rest),
        None => (0, data),
    }
}
