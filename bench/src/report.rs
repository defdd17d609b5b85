//! The report's tables, in the markdown `docs/bench_report.py` copies into docs/performance.md:
//! each function writes one section from what the runs measured.

use std::{collections::BTreeMap, fmt::Write as _};

use crate::{
    Args,
    load::Run,
    open_loop::{OpenLoop, WARMUP_S},
    stats::{median_min_max, verdict},
};

/// The share of the maximum rate the latency targets are judged at.
pub const JUDGED_AT: f64 = 0.5;

/// The title and what every figure below is.
pub fn header(args: &Args) -> String {
    let mut report = String::new();
    let _ = writeln!(report, "# Bookstore from outside\n");
    let _ = writeln!(
        report,
        "`make bench`, {} rounds of alternating {}-second runs (the bare pair before each HTTP run of the suite), {} connections; CPU = user + system time of the stack's server processes from /proc per request; medians (min-max).\n",
        args.rounds, args.seconds, args.connections
    );
    report
}

/// Start-up and idle memory per process: milliseconds from exec to SERVING, MiB resident.
pub fn startup(
    report: &mut String,
    starts_measured: usize,
    starts: &BTreeMap<&str, Vec<f64>>,
    idle: &BTreeMap<&str, Vec<f64>>,
) {
    let _ = writeln!(
        report,
        "## Start-up and idle memory ({starts_measured} starts)\n"
    );
    let _ = writeln!(
        report,
        "| process | exec → SERVING (ms) | target | idle RSS (MiB) | target |\n| --- | --- | --- | --- | --- |"
    );
    for name in ["marketplace", "recommendations", "users", "gateway"] {
        let (rm, rl, rh) = median_min_max(idle.get(name).cloned().unwrap_or_default());
        let rss_target = if name == "marketplace" { 24.0 } else { 16.0 };
        let start = starts.get(name).map(|v| median_min_max(v.clone()));
        let start_cell = start.map_or(
            "(the gateway is ready when it listens)".to_owned(),
            |(m, l, h)| format!("{m:.1} ({l:.1}-{h:.1})"),
        );
        let start_verdict = start.map_or("".to_owned(), |(m, _, _)| verdict(m <= 50.0, m / 50.0));
        let _ = writeln!(
            report,
            "| {name} | {start_cell} | ≤ 50 {start_verdict} | {rm:.1} ({rl:.1}-{rh:.1}) | ≤ {rss_target:.0} {} |",
            verdict(rm <= rss_target, rm / rss_target)
        );
    }
}

/// One row per closed-loop scenario: CPU per request, throughput and wrk's percentiles.
pub fn throughput(report: &mut String, scenarios: &[(&str, &str)], results: &[Vec<Run>]) {
    let _ = writeln!(report, "## CPU per request and throughput\n");
    let _ = writeln!(
        report,
        "| request | stack | CPU µs / request | requests/s | p50 / p99 (ms, closed loop) |\n| --- | --- | --- | --- | --- |"
    );
    for ((what, stack), runs) in scenarios.iter().zip(results) {
        let stat = |f: fn(&Run) -> f64| median_min_max(runs.iter().map(f).collect());
        let (c, cl, ch) = stat(|r| r.cpu_us);
        let (q, ql, qh) = stat(|r| r.rps);
        let (p50, _, _) = stat(|r| r.p50_ms);
        let (p99, _, _) = stat(|r| r.p99_ms);
        let latency = if p50.is_finite() && p99.is_finite() {
            format!("{p50:.2} / {p99:.2}")
        } else {
            "– (h2load prints no percentiles)".to_owned()
        };
        let _ = writeln!(
            report,
            "| {what} | {stack} | {c:.1} ({cl:.1}-{ch:.1}) | {q:.0} ({ql:.0}-{qh:.0}) | {latency} |"
        );
    }
}

/// The ratio targets: each row a name, the ratios per round and the target of their median
/// (`None`: shown for comparison, not judged).
pub fn targets(report: &mut String, rows: Vec<(&str, Vec<f64>, Option<f64>)>) {
    let _ = writeln!(
        report,
        "\n## Targets (ratios of CPU per request, per round: each HTTP run of the suite to the bare pair's run just before it, GetBook to bare tonic's just before it; spans and access logs: the suite as deployed and the suite with RUST_LOG=warn loaded at once, half the connections each)\n"
    );
    let _ = writeln!(
        report,
        "| what | ratio | target | |\n| --- | --- | --- | --- |"
    );
    for (what, ratios, target) in rows {
        let (m, l, h) = median_min_max(ratios);
        let (target, judged) = match target {
            Some(t) => (format!("≤ {t}"), verdict(m <= t, m / t)),
            None => ("–".to_owned(), "(for comparison)".to_owned()),
        };
        let _ = writeln!(
            report,
            "| {what} | {m:.2} ({l:.2}-{h:.2}) | {target} | {judged} |"
        );
    }
}

/// One row of the open-loop table: what was sent to which stack at what share of its maximum.
pub struct LatencyRow<'a> {
    pub what: &'a str,
    pub stack: &'a str,
    pub share: f64,
    pub rate: f64,
    /// The p99 target in ms.
    pub target: f64,
    /// The suite (held to the target at [`JUDGED_AT`]) rather than the bare reference.
    pub suite: bool,
}

/// The open-loop latency table's heading, for `rounds` rounds of `per_round` samples.
pub fn latency_heading(report: &mut String, rounds: usize, per_round: u64) {
    let _ = writeln!(
        report,
        "\n## Latency at 50% of the measured maximum rate, and the API's at 30% and 40% (open loop, loadgen, {rounds} alternating rounds of {per_round} samples each after a {WARMUP_S} s ramp-up: medians (min-max) of the rounds, max of all; machine busy: the share of all cores in use after the ramp-up, servers and loadgen alike: the cores' wall time less their idle time in /proc/stat; CPU per request sent, ramp-up included, of the stack's server processes and of loadgen)\n"
    );
    let _ = writeln!(
        report,
        "| request | stack | load (share of max) | rate (req/s) | machine busy | CPU µs / request: servers, loadgen | p50 | p99 | p99.9 | max | target (p99) | |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
}

/// One open-loop row from its rounds' runs.
pub fn latency_row(report: &mut String, row: &LatencyRow, runs: &[OpenLoop]) {
    let q = |f: fn(&OpenLoop) -> f64| median_min_max(runs.iter().map(f).collect());
    let ((p50, _, _), (p99, p99_lo, p99_hi)) = (q(|l| l.p50), q(|l| l.p99));
    let p999 = q(|l| l.p999).0;
    let max = runs.iter().map(|l| l.max).fold(f64::NAN, f64::max);
    let busy = q(|l| l.busy).0 * 100.0;
    let (servers_us, loadgen_us) = (q(|l| l.servers_us).0, q(|l| l.loadgen_us).0);
    let LatencyRow {
        what,
        stack,
        share,
        rate,
        target,
        suite,
    } = *row;
    // The bare pair is the machine's reference, not held to the target; below half the
    // maximum rate the target is only shown beside the suite's figure.
    let judged = suite && share == JUDGED_AT;
    let _ = writeln!(
        report,
        "| {what} | {stack} | {:.0}% | {rate:.0} | {busy:.0}% | {servers_us:.0}, {loadgen_us:.0} | {p50:.2} ms | {p99:.2} ms ({p99_lo:.2}-{p99_hi:.2}) | {p999:.2} ms | {max:.2} ms | {} | {} |",
        share * 100.0,
        if judged {
            format!("≤ {target} ms")
        } else {
            "".to_owned()
        },
        match (judged, suite) {
            (true, _) => verdict(p99 <= target, p99 / target),
            (false, true) => "(load curve)".to_owned(),
            (false, false) => "(reference)".to_owned(),
        }
    );
}
