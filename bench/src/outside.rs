//! The run of `outside`: start-up and idle memory on a quiet machine, then every stack up at once
//! and runs alternating between them, closed loop (wrk, h2load) and then open loop (loadgen).
//!
//! Each HTTP run of the suite comes right after a run of the bare pair, and its ratio is to that
//! run: this machine's speed moves by 20% for tens of seconds at a time, and a ratio to a run half
//! a minute earlier carried that. Writes `target/bench/outside.md`.

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    Args,
    http1::{next_page_link, signed_in_reader},
    load::{Run, h2load_get_book, wrk, wrk_duet, wrk_with},
    open_loop::{OpenLoop, open_loop},
    procfs::rss_mib,
    report::{self, JUDGED_AT, LatencyRow},
    stack::{Stack, bare, bare_tonic, suite, time_to_serving},
    stats::median_min_max,
};

/// Scenarios 1..=BARE_PAIRED (the suite over HTTP) each follow a run of the bare pair
/// (scenario 0); the gRPC pair runs back to back, bare tonic first.
const BARE_PAIRED: usize = 5;
const GRPC_BARE: usize = 6;
const GRPC_SUITE: usize = 7;

const SERVICES: [&str; 3] = ["marketplace", "recommendations", "users"];

/// A closed-loop scenario: the request, the stack's name, one run of it.
type Scenario<'a> = (&'static str, &'a str, Box<dyn Fn() -> Run + 'a>);

/// Where the binaries are, where this run's scratch files go, where the report goes.
struct Paths {
    bins: PathBuf,
    scratch: PathBuf,
    out: PathBuf,
}

impl Paths {
    fn of(args: &Args) -> Paths {
        // target/release/outside -> target/release
        let release = std::env::current_exe()
            .ok()
            .and_then(|e| Some(e.parent()?.to_path_buf()))
            .unwrap_or_else(|| PathBuf::from("target/release"));
        let bins = args.bin_dir.clone().unwrap_or(release.clone());
        let dir = release
            .parent()
            .map_or_else(|| PathBuf::from("target/bench"), |t| t.join("bench"));
        let out = args.out.clone().unwrap_or_else(|| dir.join("outside.md"));
        // Databases and load scripts of this run; removed at the end.
        let scratch = dir.join("outside-run");
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).expect("target/bench/outside-run");
        for b in [
            "marketplace",
            "recommendations",
            "users",
            "gateway",
            "bare_marketplace",
            "bare_gateway",
        ] {
            assert!(
                bins.join(b).exists(),
                "{} is missing: run `cargo build --release --bins` (make bench does)",
                bins.join(b).display()
            );
        }
        Paths { bins, scratch, out }
    }
}

/// The whole benchmark: measures, prints and writes the report.
pub fn run(args: &Args) {
    let paths = Paths::of(args);
    let mut report = report::header(args);
    let (starts, idle) = startup(args, &paths);
    report::startup(&mut report, args.starts, &starts, &idle);
    println!("{report}");

    let bins = &paths.bins;
    let bare = bare(bins);
    let prod = suite(
        bins,
        "suite, JSON access logs (as deployed)",
        &[],
        &paths.scratch,
    );
    let quiet = suite(
        bins,
        "suite, RUST_LOG=warn (access logs off)",
        &[("RUST_LOG", "warn".into())],
        &paths.scratch,
    );
    let (bare_grpc, bare_tonic) = bare_tonic(bins);
    std::thread::sleep(Duration::from_millis(500));
    let prod_grpc = prod.marketplace_grpc();
    let reader = signed_in_reader(prod.http);
    let b = Bench {
        args,
        scratch: &paths.scratch,
        bare: &bare,
        prod: &prod,
        quiet: &quiet,
    };
    let scenarios = b.scenarios(&reader, &bare_grpc, bare_tonic.pid(), &prod_grpc);
    let (results, before) = closed_loop(args.rounds, &scenarios);
    let names: Vec<(&str, &str)> = scenarios.iter().map(|(w, s, _)| (*w, *s)).collect();
    report::throughput(&mut report, &names, &results);
    let duet = observability_duet(args, &prod, &quiet, &paths.scratch);
    report::targets(&mut report, ratio_targets(&results, &before, duet));
    b.latency(&mut report, bins, &results);
    drop(scenarios);
    drop((bare, prod, quiet, bare_tonic));

    println!("{report}");
    std::fs::create_dir_all(paths.out.parent().unwrap_or(Path::new("."))).expect("report dir");
    std::fs::File::create(&paths.out)
        .and_then(|mut f| f.write_all(report.as_bytes()))
        .expect("write the report");
    let _ = std::fs::remove_dir_all(&paths.scratch);
    eprintln!("report written to {}", paths.out.display());
}

type PerProcess = BTreeMap<&'static str, Vec<f64>>;

/// Exec → SERVING of each service alone (ms) and idle RSS of a whole suite (MiB), `args.starts`
/// times each.
fn startup(args: &Args, paths: &Paths) -> (PerProcess, PerProcess) {
    let mut starts = PerProcess::new();
    let mut idle = PerProcess::new();
    for _ in 0..args.starts {
        let s = suite(&paths.bins, "suite", &[], &paths.scratch);
        for p in &s.procs {
            idle.entry(p.name).or_default().push(rss_mib(p.pid()));
        }
        drop(s);
        for svc in SERVICES {
            let ms = time_to_serving(&paths.bins, svc, &paths.scratch);
            starts.entry(svc).or_default().push(ms);
        }
    }
    (starts, idle)
}

/// Every scenario `rounds` times, alternating; the runs of each, and the bare pair's run made
/// just before each HTTP run of the suite (both indexed by scenario).
fn closed_loop(rounds: usize, scenarios: &[Scenario]) -> (Vec<Vec<Run>>, Vec<Vec<Run>>) {
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); scenarios.len()];
    let mut before: Vec<Vec<Run>> = vec![Vec::new(); scenarios.len()];
    let say = |round: usize, what: &str, stack: &str, r: &Run| {
        eprintln!(
            "round {}: {what} on {stack}: {:.1} µs CPU/request, {:.0} req/s",
            round + 1,
            r.cpu_us,
            r.rps
        );
    };
    for round in 0..rounds {
        for (i, (what, stack, run)) in scenarios.iter().enumerate().skip(1) {
            if i <= BARE_PAIRED {
                let (bare_what, bare_stack, bare_run) = &scenarios[0];
                let r = bare_run();
                say(round, bare_what, bare_stack, &r);
                before[i].push(r);
                results[0].push(r);
            }
            let r = run();
            say(round, what, stack, &r);
            results[i].push(r);
        }
    }
    (results, before)
}

/// Ratios per round, for their median and range: an HTTP run of the suite to the bare run just
/// before it; GetBook to the bare tonic run just before it; two runs of the suite as the ratio of
/// their ratios to their own bare runs.
fn ratio_targets(
    results: &[Vec<Run>],
    before: &[Vec<Run>],
    duet: Vec<f64>,
) -> Vec<(&'static str, Vec<f64>, Option<f64>)> {
    let to_bare = |a: usize| -> Vec<f64> {
        let reference = match a {
            1..=BARE_PAIRED => &before[a],
            GRPC_SUITE => &results[GRPC_BARE],
            _ => unreachable!("scenario {a} has no reference run"),
        };
        results[a]
            .iter()
            .zip(reference)
            .map(|(x, y)| x.cpu_us / y.cpu_us)
            .collect()
    };
    vec![
        (
            "GET one book, as deployed ÷ bare pair",
            to_bare(1),
            Some(1.5),
        ),
        (
            "GET one book, access logs off ÷ bare pair",
            to_bare(2),
            Some(1.25),
        ),
        ("home page ÷ bare pair's GET", to_bare(3), Some(3.0)),
        (
            "home page signed in ÷ bare pair's GET",
            to_bare(4),
            Some(3.0),
        ),
        (
            "a later grid page signed in (nothing kept) ÷ bare pair's GET",
            to_bare(5),
            None,
        ),
        (
            "direct GetBook ÷ bare tonic",
            to_bare(GRPC_SUITE),
            Some(1.5),
        ),
        (
            "observability: spans and access logs (as deployed ÷ RUST_LOG=warn, run at once)",
            duet,
            Some(1.10),
        ),
    ]
}

/// GET one book's address on `s`'s gateway.
fn book_url(s: &Stack) -> String {
    format!("http://127.0.0.1:{}/api/v1/books/1", s.http)
}

/// What spans and access logs cost: GET one book on the suite as deployed and on the suite with
/// `RUST_LOG=warn`, loaded at once ([`wrk_duet`]) `args.rounds` times; the ratios of their CPU per
/// request. (Each divided by a different bare run made seconds apart, the ratio of two ratios
/// spread 0.77-1.49 over five rounds; made at once, 1.03-1.13 over six.)
fn observability_duet(args: &Args, prod: &Stack, quiet: &Stack, scratch: &Path) -> Vec<f64> {
    let (prod_url, quiet_url) = (book_url(prod), book_url(quiet));
    let pids = |s: &Stack| s.pids(&["gateway", "marketplace"]);
    let (prod_pids, quiet_pids) = (pids(prod), pids(quiet));
    (0..args.rounds)
        .map(|round| {
            let (p, q) = wrk_duet(
                args,
                (&prod_url, &prod_pids),
                (&quiet_url, &quiet_pids),
                scratch,
            );
            eprintln!(
                "round {}: at once, GET one book as deployed {:.1} µs CPU/request, RUST_LOG=warn {:.1}: {:.3}",
                round + 1,
                p.cpu_us,
                q.cpu_us,
                p.cpu_us / q.cpu_us
            );
            p.cpu_us / q.cpu_us
        })
        .collect()
}

/// The stacks under load and what every run needs.
struct Bench<'a> {
    args: &'a Args,
    scratch: &'a Path,
    bare: &'a Stack,
    prod: &'a Stack,
    quiet: &'a Stack,
}

impl<'a> Bench<'a> {
    /// The closed-loop scenarios, in the order the report and [`ratio_targets`] index them.
    fn scenarios(
        &self,
        reader: &'a str,
        bare_grpc: &'a str,
        bare_tonic: u32,
        prod_grpc: &'a str,
    ) -> Vec<Scenario<'a>> {
        let Bench {
            args,
            scratch,
            bare,
            prod,
            quiet,
        } = *self;
        let home = format!("http://127.0.0.1:{}/", prod.http);
        let home_signed_in = home.clone();
        let second_page = format!("{home}{}", next_page_link(prod.http, reader));
        let pages = ["gateway", "marketplace", "recommendations"];
        vec![
            (
                "GET /api/v1/books/{id}",
                bare.name,
                Box::new(move || wrk(args, &book_url(bare), true, &bare.pids(&[]), scratch)),
            ),
            (
                "GET /api/v1/books/{id}",
                prod.name,
                Box::new(move || {
                    let pids = prod.pids(&["gateway", "marketplace"]);
                    wrk(args, &book_url(prod), true, &pids, scratch)
                }),
            ),
            (
                "GET /api/v1/books/{id}",
                quiet.name,
                Box::new(move || {
                    let pids = quiet.pids(&["gateway", "marketplace"]);
                    wrk(args, &book_url(quiet), true, &pids, scratch)
                }),
            ),
            (
                "GET / (home page, visitor)",
                prod.name,
                Box::new(move || wrk(args, &home, false, &prod.pids(&pages), scratch)),
            ),
            (
                "GET / (home page, signed in: grid kept a second, for you asked every time)",
                prod.name,
                Box::new(move || {
                    let pids = prod.pids(&pages);
                    wrk_with(args, &home_signed_in, false, Some(reader), &pids, scratch)
                }),
            ),
            (
                "GET /?page_token=… (the grid's second page, signed in: nothing kept)",
                prod.name,
                Box::new(move || {
                    let pids = prod.pids(&pages);
                    wrk_with(args, &second_page, false, Some(reader), &pids, scratch)
                }),
            ),
            (
                "gRPC GetBook",
                "bare tonic",
                Box::new(move || h2load_get_book(args, bare_grpc, &[bare_tonic], scratch)),
            ),
            (
                "gRPC GetBook",
                "marketplace (as deployed)",
                Box::new(move || {
                    h2load_get_book(args, prod_grpc, &prod.pids(&["marketplace"]), scratch)
                }),
            ),
        ]
    }

    /// Latency at half the measured maximum rate, open loop, as deployed; the bare pair at the
    /// same rate shows what this machine gives without the suite. The samples are split into
    /// alternating rounds, so one stall of the machine (tens of ms here, now and then) shows in
    /// one round's p99 and in the max, not in every row.
    fn latency(&self, report: &mut String, bins: &Path, results: &[Vec<Run>]) {
        let rounds = self.args.rounds.max(1);
        let per_round = self.args.latency_samples.div_ceil(rounds as u64);
        report::latency_heading(report, rounds, per_round);
        let rows = self.latency_rows(results);
        let mut seen: Vec<Vec<OpenLoop>> = vec![Vec::new(); rows.len()];
        for round in 0..rounds {
            for ((row, step, stack), runs) in rows.iter().zip(&mut seen) {
                let l = open_loop(bins, stack, step, row.rate, per_round, round);
                eprintln!(
                    "latency {} on {} at {}/s, round {}: p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2} ms, machine {:.0}% busy, CPU µs/request: servers {:.0}, loadgen {:.0}",
                    row.what,
                    stack.name,
                    row.rate,
                    round + 1,
                    l.p50,
                    l.p99,
                    l.p999,
                    l.max,
                    l.busy * 100.0,
                    l.servers_us,
                    l.loadgen_us
                );
                runs.push(l);
            }
        }
        for ((row, _, _), runs) in rows.iter().zip(seen) {
            report::latency_row(report, row, &runs);
        }
    }

    /// The open-loop rows: the targets are judged at half the maximum; the API is also measured
    /// at 30% and 40%, suite and bare pair alike, so the report shows how each stack's p99 grows
    /// as the two cores fill up (the suite's servers and loadgen share them).
    fn latency_rows(&self, results: &[Vec<Run>]) -> Vec<(LatencyRow<'a>, &'static str, &'a Stack)> {
        let (prod, bare) = (self.prod, self.bare);
        // The share of the median maximum rate of scenario `i`.
        let row = |what, step, share: f64, i: usize, target, stack: &'a Stack| {
            let max = median_min_max(results[i].iter().map(|r| r.rps).collect()).0;
            let rate = (max * share).floor().max(1.0);
            let suite = std::ptr::eq(stack, prod);
            let row = LatencyRow {
                what,
                stack: stack.name,
                share,
                rate,
                target,
                suite,
            };
            (row, step, stack)
        };
        let api = "GET /api/v1/books/{id}";
        vec![
            row(api, "book_api", JUDGED_AT, 1, 2.0, prod),
            row(api, "book_api", JUDGED_AT, 1, 2.0, bare),
            row(
                "GET / (home page, visitor)",
                "home",
                JUDGED_AT,
                3,
                5.0,
                prod,
            ),
            row(api, "book_api", 0.4, 1, 2.0, prod),
            row(api, "book_api", 0.4, 1, 2.0, bare),
            row(api, "book_api", 0.3, 1, 2.0, prod),
            row(api, "book_api", 0.3, 1, 2.0, bare),
        ]
    }
}
