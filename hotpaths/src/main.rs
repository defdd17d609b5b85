//! `hotpaths`: the regression alarm. Counts with callgrind the instructions per request of the
//! hot paths, through the real suite started in-process, and compares them with a committed
//! baseline (`make perf-check`; `make perf-baseline` rewrites it when a rise is intended).
#![forbid(unsafe_code)]

mod baseline;
mod callgrind;
mod drive;
mod suite;

use std::{path::PathBuf, process::ExitCode, time::Instant};

use clap::{Parser, Subcommand};

use crate::{
    baseline::{Baseline, judge},
    callgrind::Counts,
    drive::HotPath,
};

#[derive(Parser, Debug)]
#[command(name = "hotpaths", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What the counting commands share.
#[derive(clap::Args, Debug)]
struct Counting {
    /// The valgrind to run.
    #[arg(long, env = "VALGRIND", default_value = "valgrind")]
    valgrind: String,
    /// The baseline file.
    #[arg(long, default_value = "hotpaths/baseline.json")]
    baseline: PathBuf,
    /// Only these paths (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    paths: Vec<HotPath>,
}

impl Counting {
    fn paths(&self) -> Vec<HotPath> {
        if self.paths.is_empty() {
            HotPath::ALL.to_vec()
        } else {
            self.paths.clone()
        }
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start the suite in this process and send one path a fixed number of times (what
    /// callgrind runs).
    Drive {
        #[arg(value_enum)]
        path: HotPath,
        #[arg(long, default_value_t = 20)]
        requests: u32,
    },
    /// Count every path and fail (exit 1) if one rose by more than the baseline's threshold.
    Check {
        #[command(flatten)]
        counting: Counting,
        /// Overrides the baseline's threshold (percent).
        #[arg(long)]
        threshold: Option<f64>,
    },
    /// Count every path and write the figures as the new baseline (a rise that is intended).
    Update {
        #[command(flatten)]
        counting: Counting,
        /// Requests of the short callgrind run.
        #[arg(long, default_value_t = 20)]
        short: u32,
        /// Requests of the long callgrind run.
        #[arg(long, default_value_t = 520)]
        long: u32,
        /// A path fails the check when it rose by more than this (percent).
        #[arg(long, default_value_t = 3.0)]
        threshold: f64,
    },
    /// Count every path `repeat` times and print the spread (how noisy the figure is here).
    Spread {
        #[command(flatten)]
        counting: Counting,
        #[arg(long, default_value_t = 3)]
        repeat: u32,
    },
}

fn main() -> ExitCode {
    let started = Instant::now();
    let code = match Cli::parse().command {
        Command::Drive { path, requests } => {
            // One thread drives the whole suite: fewer scheduling paths, steadier counts.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            return match runtime.map(|r| r.block_on(drive::drive(path, requests))) {
                Ok(Ok(())) => ExitCode::SUCCESS,
                Ok(Err(e)) => fail(&e.to_string()),
                Err(e) => fail(&format!("runtime: {e}")),
            };
        }
        Command::Check {
            counting,
            threshold,
        } => check(&counting, threshold),
        Command::Update {
            counting,
            short,
            long,
            threshold,
        } => update(&counting, Counts { short, long }, threshold),
        Command::Spread { counting, repeat } => spread(&counting, repeat),
    };
    eprintln!("hotpaths: {:.0} s", started.elapsed().as_secs_f64());
    code
}

fn fail(why: &str) -> ExitCode {
    eprintln!("hotpaths: {why}");
    ExitCode::from(2)
}

fn counts_of(b: &Baseline) -> Counts {
    Counts {
        short: b.requests[0],
        long: b.requests[1],
    }
}

fn check(c: &Counting, threshold: Option<f64>) -> ExitCode {
    let base = match Baseline::read(&c.baseline) {
        Ok(b) => b,
        Err(e) => return fail(&format!("{e} (make perf-baseline writes it)")),
    };
    let threshold = threshold.unwrap_or(base.threshold_percent);
    println!(
        "{:<16} {:>14} {:>14} {:>8}   (instructions per request, callgrind; fails above +{threshold}%)",
        "path", "baseline", "now", "change"
    );
    let mut failed = Vec::new();
    for path in c.paths() {
        let now = match callgrind::per_request(&c.valgrind, path, counts_of(&base)) {
            Ok(n) => n,
            Err(e) => return fail(&e),
        };
        let v = judge(&base, path.name(), now, threshold);
        let shown = |n: Option<u64>| n.map_or("-".into(), |n| n.to_string());
        let change = v.change.map_or("new".into(), |c| format!("{c:+.2}%"));
        println!(
            "{:<16} {:>14} {:>14} {:>8}{}",
            v.path,
            shown(v.baseline),
            v.now,
            change,
            if v.failed { "   FAIL" } else { "" }
        );
        if v.failed {
            failed.push(v);
        }
    }
    if failed.is_empty() {
        println!(
            "hotpaths: every path within +{threshold}% of {}",
            c.baseline.display()
        );
        return ExitCode::SUCCESS;
    }
    for v in &failed {
        match (v.baseline, v.change) {
            (Some(b), Some(change)) => eprintln!(
                "hotpaths: REGRESSION {}: {} instructions per request, baseline {b}: {change:+.2}% (threshold +{threshold}%)",
                v.path, v.now
            ),
            _ => eprintln!(
                "hotpaths: {}: no baseline figure in {} (now {})",
                v.path,
                c.baseline.display(),
                v.now
            ),
        }
    }
    eprintln!(
        "hotpaths: if the rise is intended, `make perf-baseline` rewrites {} (commit it, saying why)",
        c.baseline.display()
    );
    ExitCode::FAILURE
}

fn update(c: &Counting, counts: Counts, threshold: f64) -> ExitCode {
    if counts.long <= counts.short {
        return fail("--long must exceed --short");
    }
    let mut base = Baseline::read(&c.baseline).unwrap_or(Baseline {
        threshold_percent: threshold,
        requests: [counts.short, counts.long],
        made_with: Default::default(),
        instructions_per_request: Default::default(),
    });
    base.threshold_percent = threshold;
    base.requests = [counts.short, counts.long];
    base.made_with = baseline::made_with(&c.valgrind);
    for path in c.paths() {
        match callgrind::per_request(&c.valgrind, path, counts) {
            Ok(n) => {
                println!("{:<16} {n:>14}", path.name());
                base.instructions_per_request.insert(path.name().into(), n);
            }
            Err(e) => return fail(&e),
        }
    }
    match base.write(&c.baseline) {
        Ok(()) => {
            println!("hotpaths: wrote {}", c.baseline.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn spread(c: &Counting, repeat: u32) -> ExitCode {
    let counts = Baseline::read(&c.baseline)
        .map(|b| counts_of(&b))
        .unwrap_or(Counts {
            short: 20,
            long: 520,
        });
    for path in c.paths() {
        let mut runs = Vec::new();
        for _ in 0..repeat {
            match callgrind::per_request(&c.valgrind, path, counts) {
                Ok(n) => runs.push(n),
                Err(e) => return fail(&e),
            }
        }
        let (min, max) = (runs.iter().min(), runs.iter().max());
        if let (Some(&min), Some(&max)) = (min, max) {
            println!(
                "{:<16} {runs:?}  spread {:.2}%",
                path.name(),
                (max - min) as f64 / min.max(1) as f64 * 100.0
            );
        }
    }
    ExitCode::SUCCESS
}
