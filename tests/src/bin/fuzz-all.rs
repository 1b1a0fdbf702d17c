//! Runs every fuzz target (ADR 0033): `fuzz-all [INPUTS] [FILTER]`.
//!
//! INPUTS per target (default 1,000,000); FILTER keeps targets whose
//! name contains it. HAMSTER_FUZZ_SEED sets the seed (default: the
//! time; printed, so a run can be repeated). Prints a line per target
//! (inputs, inputs/s, accepted, outcome classes, corpus, largest single
//! allocation, findings) and every finding with its input as hex; exits
//! 1 if there was any.

use hamster_tests::fuzz::{self, alloc::Counting};

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let inputs: u64 = match args.next() {
        Some(n) => n.replace('_', "").parse()?,
        None => 1_000_000,
    };
    let filter = args.next().unwrap_or_default();
    let seed = match std::env::var("HAMSTER_FUZZ_SEED") {
        Ok(s) => s.parse()?,
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64,
    };
    println!("fuzz-all: {inputs} inputs per target, seed {seed} (HAMSTER_FUZZ_SEED)");
    let mut findings = 0;
    let mut total = 0u64;
    let start = std::time::Instant::now();
    for target in fuzz::targets() {
        if !target.name.contains(&filter) {
            continue;
        }
        let report = fuzz::run(&target, inputs, seed);
        println!("{report}");
        for f in &report.kept {
            println!("  FINDING {f}");
        }
        findings += report.findings;
        total += report.inputs;
    }
    println!(
        "fuzz-all: {total} inputs in {:.1} s, {findings} findings",
        start.elapsed().as_secs_f64()
    );
    if findings > 0 {
        std::process::exit(1);
    }
    Ok(())
}
