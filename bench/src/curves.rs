//! `make bench-curves`: latency against offered rate, the way microservice benchmarks report it.
//! For each path the offered rate is swept from a tenth of the stack's capacity to beyond it in
//! nine steps (open loop: [`crate::open_rate`]), the bare pair and the suite alternating for GET
//! one book, and four more runs per stack narrow the knee by bisection. A stack's capacity is the
//! highest offered rate it serves with its p99 under the path's bound and at least 95% of the
//! rate answered. The servers run on core 1 and the load on core 0 (`taskset`), so the load
//! never takes the servers' CPU.

use std::{fmt::Write as _, path::Path, process::Command, sync::Arc, time::Duration};

use crate::{
    open_rate::{MakeRequest, RateRun, Shape},
    stack::{Stack, bare, suite},
};

/// The steps of a sweep, as shares of the calibrated capacity.
const STEPS: [f64; 9] = [0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 1.0, 1.15, 1.3];

/// Runs that narrow each stack's capacity after the sweep: each halves the gap between the
/// highest rate served within the bound and the lowest rate above it that was not, so four take a
/// step of the ladder (15% of the calibrated rate) down to under 1%.
const PROBES: usize = 4;

/// The core the load runs on, and the one every server runs on.
const LOAD_CPU: &str = "0";
const SERVER_CPU: &str = "1";

/// One path swept: what it is, its p99 bound, and the request it sends.
struct Target {
    name: &'static str,
    bound_ms: f64,
    connections: usize,
    make: MakeRequest,
    /// Also swept on the bare pair (which serves only GET one book).
    on_bare: bool,
}

/// The result of one path: per step, the bare pair's run (when swept) and the suite's.
struct Swept {
    name: &'static str,
    bound_ms: f64,
    bare: Vec<RateRun>,
    suite: Vec<RateRun>,
}

/// Runs the sweep with `measured` seconds per step; the report in Markdown and the chart in SVG.
pub fn run(bins: &Path, scratch: &Path, measured: Duration) -> (String, String) {
    // The servers start on their core, so each sizes its runtime to the one core it has (as in a
    // pod with a limit of one CPU); then this process, and the load it makes, moves to the other.
    pin(std::process::id(), SERVER_CPU);
    let bare = bare(bins);
    let suite = suite(bins, "suite, as deployed", &[], scratch);
    pin(std::process::id(), LOAD_CPU);
    for s in [&bare, &suite] {
        for pid in s.pids(&[]) {
            pin(pid, SERVER_CPU);
        }
    }
    let cookie = crate::http1::signed_in_reader(suite.http);
    let token = api_token(suite.http);
    let shape = Shape {
        connections: 0,
        warmup: Duration::from_secs(1),
        measured,
        drain: Duration::from_secs(2),
    };
    let mut swept = Vec::new();
    for path in paths(&cookie, &token) {
        swept.push(sweep(&path, &bare, &suite, shape));
    }
    (
        report(&swept, measured),
        crate::chart::svg(&swept_series(&swept)),
    )
}

/// Binds `pid` and all its threads to `cpu`.
fn pin(pid: u32, cpu: &str) {
    let ok = Command::new("taskset")
        .args(["-a", "-p", "-c", cpu, &pid.to_string()])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "taskset could not pin {pid} to CPU {cpu} (util-linux's taskset)"
    );
}

fn get(path: String) -> MakeRequest {
    Arc::new(move |_| format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n"))
}

fn paths(cookie: &str, token: &str) -> Vec<Target> {
    let (cookie, token) = (cookie.to_owned(), token.to_owned());
    let words = [
        "harry", "potter", "dune", "ring", "love", "war", "time", "girl",
    ];
    vec![
        Target {
            name: "GET /api/v1/books/{id}",
            bound_ms: 5.0,
            connections: 32,
            make: Arc::new(|n| {
                format!(
                    "GET /api/v1/books/{} HTTP/1.1\r\nHost: bench\r\n\r\n",
                    1 + n % 100
                )
            }),
            on_bare: true,
        },
        Target {
            name: "GET /api/v1/books/search",
            bound_ms: 5.0,
            connections: 32,
            make: Arc::new(move |n| {
                let q = words[(n % words.len() as u64) as usize];
                format!(
                    "GET /api/v1/books/search?q={q}&page_size=10 HTTP/1.1\r\nHost: bench\r\n\r\n"
                )
            }),
            on_bare: false,
        },
        Target {
            name: "GET / (visitor)",
            bound_ms: 20.0,
            connections: 32,
            make: get("/".into()),
            on_bare: false,
        },
        Target {
            name: "GET / (signed in)",
            bound_ms: 20.0,
            connections: 32,
            make: Arc::new(move |_| {
                format!("GET / HTTP/1.1\r\nHost: bench\r\nCookie: {cookie}\r\n\r\n")
            }),
            on_bare: false,
        },
        Target {
            name: "PUT /api/v1/me/ratings/{id}",
            bound_ms: 20.0,
            connections: 16,
            make: Arc::new(move |n| {
                let body = format!("{{\"stars\":{}}}", 1 + n % 5);
                format!(
                    "PUT /api/v1/me/ratings/{} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    1 + n % 500,
                    body.len()
                )
            }),
            on_bare: false,
        },
    ]
}

/// Calibrates the capacity (the rate answered when far too much is offered), then sweeps.
fn sweep(path: &Target, bare: &Stack, suite: &Stack, shape: Shape) -> Swept {
    let shape = Shape {
        connections: path.connections,
        ..shape
    };
    let calibrate = |s: &Stack| {
        crate::open_rate::closed_loop_rate(
            s.http,
            path.connections,
            Duration::from_secs(2),
            path.make.clone(),
        )
    };
    let top = if path.on_bare {
        calibrate(bare)
    } else {
        calibrate(suite)
    };
    eprintln!("{}: calibrated at {top:.0}/s", path.name);
    let (mut b, mut s) = (Vec::new(), Vec::new());
    for share in STEPS {
        let rate = (top * share).max(10.0).round();
        if path.on_bare {
            b.push(say(path.name, bare, rate, shape, &path.make));
        }
        s.push(say(path.name, suite, rate, shape, &path.make));
    }
    // Then the knee of each curve, the two stacks' probes alternating too.
    for _ in 0..PROBES {
        if path.on_bare
            && let Some(rate) = next_probe(&b, path.bound_ms)
        {
            b.push(say(path.name, bare, rate, shape, &path.make));
        }
        if let Some(rate) = next_probe(&s, path.bound_ms) {
            s.push(say(path.name, suite, rate, shape, &path.make));
        }
    }
    for runs in [&mut b, &mut s] {
        runs.sort_by(|x, y| x.offered.total_cmp(&y.offered));
    }
    Swept {
        name: path.name,
        bound_ms: path.bound_ms,
        bare: b,
        suite: s,
    }
}

fn say(name: &str, stack: &Stack, rate: f64, shape: Shape, make: &MakeRequest) -> RateRun {
    let r = crate::open_rate::run(stack.http, rate, shape, make.clone());
    eprintln!(
        "{name} on {} at {rate}/s: {:.0}/s answered, p50 {:.2} ms, p99 {:.2} ms, {} failed",
        stack.name, r.achieved, r.p50_ms, r.p99_ms, r.failed
    );
    r
}

/// Whether `r` was served: p99 within `bound_ms`, at least 95% answered, nothing failed.
fn served(r: &RateRun, bound_ms: f64) -> bool {
    r.p99_ms <= bound_ms && r.achieved >= 0.95 * r.offered && r.failed == 0
}

/// The highest offered rate served within `bound_ms` at p99 with at least 95% answered.
fn capacity(runs: &[RateRun], bound_ms: f64) -> Option<f64> {
    runs.iter()
        .filter(|r| served(r, bound_ms))
        .map(|r| r.offered)
        .fold(None, |best, x| Some(best.map_or(x, |b: f64| b.max(x))))
}

/// The rate halfway between the capacity so far and the lowest rate above it that was not
/// served; `None` when every rate was served, none was, or the two are within 1% already.
fn next_probe(runs: &[RateRun], bound_ms: f64) -> Option<f64> {
    let low = capacity(runs, bound_ms)?;
    let high = runs
        .iter()
        .filter(|r| r.offered > low && !served(r, bound_ms))
        .map(|r| r.offered)
        .min_by(f64::total_cmp)?;
    ((high - low) / low > 0.01).then(|| ((low + high) / 2.0).round())
}

fn report(swept: &[Swept], measured: Duration) -> String {
    let mut r = String::new();
    let _ = writeln!(r, "# Latency against offered rate\n");
    let _ = writeln!(
        r,
        "Open loop: each request is sent when it is due whether or not earlier ones were answered, \
         and its latency counts from then, waiting for a free connection included (no coordinated \
         omission); 32 keep-alive connections (16 for the write); {} s measured per step after 1 s \
         of warm-up; \"answered\" is answers per second within the measured window; servers started on CPU {SERVER_CPU} (so each \
         runtime has one worker, as a pod's CPU limit makes it), the load on CPU {LOAD_CPU} (`taskset`); release binaries; `make bench-curves`. Nine steps from 10% to 130% \
         of the rate a closed loop reached, then {PROBES} runs per stack that halve the gap \
         between its highest rate served and the lowest one above it not served. Capacity: the \
         highest offered rate with p99 under the bound and at least 95% answered.\n",
        measured.as_secs()
    );
    let _ = writeln!(
        r,
        "| path | p99 bound | suite capacity | bare capacity | ratio |"
    );
    let _ = writeln!(r, "| --- | --- | --- | --- | --- |");
    for s in swept {
        let cs = capacity(&s.suite, s.bound_ms);
        let cb = (!s.bare.is_empty())
            .then(|| capacity(&s.bare, s.bound_ms))
            .flatten();
        let fmt = |c: Option<f64>| c.map_or("-".to_owned(), |c| format!("{c:.0}/s"));
        let ratio = match (cs, cb) {
            (Some(a), Some(b)) => format!("{:.2} (target ≥ 0.7)", a / b),
            _ => "-".to_owned(),
        };
        let _ = writeln!(
            r,
            "| {} | {} ms | {} | {} | {ratio} |",
            s.name,
            s.bound_ms,
            fmt(cs),
            fmt(cb)
        );
    }
    let _ = writeln!(r, "\n![p99 against offered rate](performance-curves.svg)\n");
    for s in swept {
        let _ = writeln!(r, "**{}**\n", s.name);
        let bare = !s.bare.is_empty();
        if bare {
            let _ = writeln!(
                r,
                "| offered | suite answered | suite p50 | suite p99 | bare answered | bare p50 | bare p99 |"
            );
            let _ = writeln!(r, "| --- | --- | --- | --- | --- | --- | --- |");
        } else {
            let _ = writeln!(r, "| offered | answered | p50 | p99 |");
            let _ = writeln!(r, "| --- | --- | --- | --- |");
        }
        // Every rate either stack was offered: the ladder's rates are the same for both, the
        // probes' are each stack's own.
        let mut rates: Vec<f64> = s.suite.iter().chain(&s.bare).map(|x| x.offered).collect();
        rates.sort_by(f64::total_cmp);
        rates.dedup();
        let cells = |runs: &[RateRun], rate: f64| {
            let ms = |v: f64| {
                if v.is_finite() {
                    format!("{v:.2} ms")
                } else {
                    "∞".to_owned()
                }
            };
            runs.iter().find(|x| x.offered == rate).map_or_else(
                || " – | – | – |".to_owned(),
                |x| {
                    format!(
                        " {:.0}/s | {} | {} |",
                        x.achieved,
                        ms(x.p50_ms),
                        ms(x.p99_ms)
                    )
                },
            )
        };
        for rate in rates {
            let _ = write!(r, "| {rate:.0}/s |{}", cells(&s.suite, rate));
            if bare {
                let _ = write!(r, "{}", cells(&s.bare, rate));
            }
            let _ = writeln!(r);
        }
        let _ = writeln!(r);
    }
    r
}

/// The series the chart draws: (panel, line label, bound, points of offered rate and p99).
fn swept_series(swept: &[Swept]) -> Vec<crate::chart::Panel> {
    let points = |runs: &[RateRun]| runs.iter().map(|r| (r.offered, r.p99_ms)).collect();
    swept
        .iter()
        .map(|s| crate::chart::Panel {
            title: s.name.to_owned(),
            bound_ms: s.bound_ms,
            lines: std::iter::once(("suite".to_owned(), points(&s.suite)))
                .chain((!s.bare.is_empty()).then(|| ("bare pair".to_owned(), points(&s.bare))))
                .collect(),
        })
        .collect()
}

/// Signs a new reader up and in through the API; their bearer token.
fn api_token(port: u16) -> String {
    let email = format!("curves-{}@example.org", ::tests::free_port());
    let password = "bench-password-1";
    let post = |path: &str, body: String| {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        crate::http1::exchange(port, &req, path)
    };
    post(
        "/api/v1/users",
        format!(r#"{{"email":"{email}","display_name":"Curves","password":"{password}"}}"#),
    );
    let answer = post(
        "/api/v1/sessions",
        format!(r#"{{"email":"{email}","password":"{password}"}}"#),
    );
    answer
        .split(r#""access_token":""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no token in {answer}"))
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(offered: f64, p99_ms: f64) -> RateRun {
        RateRun {
            offered,
            achieved: offered,
            p50_ms: p99_ms / 3.0,
            p99_ms,
            failed: 0,
        }
    }

    #[test]
    fn probes_halve_the_gap_above_the_capacity_until_it_is_under_one_percent() {
        let mut runs = vec![run(1000.0, 1.0), run(2000.0, 2.0), run(3000.0, 40.0)];
        assert_eq!(capacity(&runs, 5.0), Some(2000.0));
        assert_eq!(next_probe(&runs, 5.0), Some(2500.0));
        runs.push(run(2500.0, 9.0));
        assert_eq!(next_probe(&runs, 5.0), Some(2250.0));
        runs.push(run(2250.0, 4.0));
        assert_eq!(capacity(&runs, 5.0), Some(2250.0));
        assert_eq!(next_probe(&runs, 5.0), Some(2375.0));
        // Within 1%: no more probes.
        runs.push(run(2260.0, 6.0));
        assert_eq!(next_probe(&runs, 5.0), None);
    }

    #[test]
    fn no_probe_when_every_rate_or_none_was_served_and_a_short_answer_is_not_served() {
        assert_eq!(next_probe(&[run(1000.0, 1.0), run(2000.0, 2.0)], 5.0), None);
        assert_eq!(next_probe(&[run(1000.0, 9.0)], 5.0), None);
        let short = RateRun {
            achieved: 900.0,
            ..run(1000.0, 1.0)
        };
        assert_eq!(capacity(&[run(500.0, 1.0), short], 5.0), Some(500.0));
    }
}
