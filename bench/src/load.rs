//! Closed-loop runs of the load tools, `wrk` (HTTP/1.1) and `h2load` (gRPC over HTTP/2), each
//! read for its throughput and latency and set beside the CPU the stack's processes spent.

use std::{path::Path, process::Command};

use crate::{Args, procfs::cpu_seconds_of};

/// What a load run saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct Run {
    pub requests: f64,
    pub rps: f64,
    pub cpu_us: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// A wrk latency (`812.00us`, `1.20ms`, `2.00s`) in milliseconds.
fn parse_latency(v: &str) -> f64 {
    let v = v.trim();
    let (num, mult) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (v, 1.0)
    };
    num.parse::<f64>().unwrap_or(f64::NAN) * mult
}

/// Runs wrk against `url` (a Lua script picking a random book when `random_book`), measuring
/// the CPU of `pids`.
pub fn wrk(args: &Args, url: &str, random_book: bool, pids: &[u32], dir: &Path) -> Run {
    wrk_with(args, url, random_book, None, pids, dir)
}

/// [`wrk`] sending `cookie` with every request.
pub fn wrk_with(
    args: &Args,
    url: &str,
    random_book: bool,
    cookie: Option<&str>,
    pids: &[u32],
    dir: &Path,
) -> Run {
    let cmd = wrk_command(args, args.connections, url, random_book, cookie, dir);
    measure(cmd, pids, |out| parse_wrk(out, url))
}

/// A duet (Bulej et al., "Duet Benchmarking", 2020): two stacks loaded at the same time, each by
/// its own wrk with half the connections, for a random book each request, so both see the same
/// machine at the same moments; each run's CPU per request is that of its own `pids`. On a
/// machine whose speed drifts by 20% within seconds, the ratio of two runs made at once moves far
/// less than that of two runs made one after the other.
pub fn wrk_duet(args: &Args, a: (&str, &[u32]), b: (&str, &[u32]), dir: &Path) -> (Run, Run) {
    let half = (args.connections / 2).max(1);
    let before = (cpu_seconds_of(a.1), cpu_seconds_of(b.1));
    let spawn = |url| {
        wrk_command(args, half, url, true, None, dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("wrk (apt-get install wrk)")
    };
    let (wa, wb) = (spawn(a.0), spawn(b.0));
    let (oa, ob) = (
        wa.wait_with_output().expect("wrk"),
        wb.wait_with_output().expect("wrk"),
    );
    let after = (cpu_seconds_of(a.1), cpu_seconds_of(b.1));
    (
        read_run(&oa, after.0 - before.0, |out| parse_wrk(out, a.0)),
        read_run(&ob, after.1 - before.1, |out| parse_wrk(out, b.0)),
    )
}

/// The wrk command line: `connections` connections for `args.seconds`, a random book per request
/// when `random_book`, `cookie` with every request.
fn wrk_command(
    args: &Args,
    connections: usize,
    url: &str,
    random_book: bool,
    cookie: Option<&str>,
    dir: &Path,
) -> Command {
    let script = dir.join("random-book.lua");
    std::fs::write(
        &script,
        "math.randomseed(42)\nrequest = function()\n  return wrk.format(\"GET\", \"/api/v1/books/\" .. math.random(1, 10000))\nend\n",
    )
    .expect("lua script");
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{}s", args.seconds),
        "--latency",
    ]);
    if random_book {
        cmd.arg("-s").arg(&script);
    }
    if let Some(c) = cookie {
        cmd.arg("-H").arg(format!("Cookie: {c}"));
    }
    cmd.arg(url);
    cmd
}

/// wrk's summary: requests, requests/s, p50 and p99; errors fail the run.
fn parse_wrk(out: &str, url: &str) -> Run {
    let mut run = Run::default();
    for line in out.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            run.rps = v.trim().parse().unwrap_or(0.0);
        } else if l.contains(" requests in ") {
            run.requests = l
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0.0);
        } else if let Some(v) = l.strip_prefix("50%") {
            run.p50_ms = parse_latency(v);
        } else if let Some(v) = l.strip_prefix("99%") {
            run.p99_ms = parse_latency(v);
        } else if l.starts_with("Non-2xx") {
            panic!("wrk saw errors against {url}: {l}");
        }
    }
    run
}

/// Runs h2load with a unary gRPC GetBook against `addr`, measuring the CPU of `pids`.
pub fn h2load_get_book(args: &Args, addr: &str, pids: &[u32], dir: &Path) -> Run {
    // A gRPC frame: not compressed, 2 bytes, GetBookRequest { id: 1 } (field 1, varint 1).
    let body = dir.join("get-book.bin");
    std::fs::write(&body, [0u8, 0, 0, 0, 2, 0x08, 0x01]).expect("body");
    let mut cmd = Command::new("h2load");
    cmd.args([
        "-D",
        &args.seconds.to_string(),
        "-c",
        &args.connections.to_string(),
        "-m",
        "8",
        "-t",
        "2",
        "-d",
    ])
    .arg(&body)
    .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
    .arg(format!(
        "http://{addr}/bookstore.marketplace.v1.MarketplaceService/GetBook"
    ));
    measure(cmd, pids, parse_h2load)
}

/// h2load's summary: requests succeeded and requests/s (it prints no percentiles).
fn parse_h2load(out: &str) -> Run {
    let mut run = Run::default();
    for line in out.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("requests:") {
            // "requests: N total, N started, N done, N succeeded, ..."
            let f: Vec<&str> = v.split_whitespace().collect();
            run.requests = f.get(6).and_then(|n| n.parse().ok()).unwrap_or(0.0);
        } else if let Some(v) = l.strip_prefix("finished in") {
            // "finished in 4.00s, 12345.67 req/s, ..."
            run.rps = v
                .split(',')
                .nth(1)
                .and_then(|x| x.split_whitespace().next()?.parse().ok())
                .unwrap_or(0.0);
        }
    }
    // h2load prints no percentiles, only min, max and mean.
    run.p50_ms = f64::NAN;
    run.p99_ms = f64::NAN;
    run
}

/// Runs the load tool `cmd`, reads its output with `parse`, and adds the CPU per request `pids`
/// spent meanwhile.
fn measure(mut cmd: Command, pids: &[u32], parse: impl Fn(&str) -> Run) -> Run {
    let before = cpu_seconds_of(pids);
    let out = cmd
        .output()
        .expect("the load tool (apt-get install wrk nghttp2-client)");
    read_run(&out, cpu_seconds_of(pids) - before, parse)
}

/// A load tool's finished run, read with `parse`, with the `cpu_seconds` the servers spent
/// meanwhile as CPU per request.
fn read_run(out: &std::process::Output, cpu_seconds: f64, parse: impl Fn(&str) -> Run) -> Run {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "load tool failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut run = parse(&text);
    assert!(run.requests > 0.0, "no requests counted:\n{text}");
    run.cpu_us = cpu_seconds * 1e6 / run.requests;
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_latencies_are_read_in_milliseconds_whatever_their_unit() {
        assert_eq!(parse_latency(" 812.00us"), 0.812);
        assert_eq!(parse_latency("1.50ms"), 1.5);
        assert_eq!(parse_latency("2.00s"), 2000.0);
    }

    #[test]
    fn h2load_counts_the_requests_that_succeeded() {
        let out = "finished in 4.00s, 12345.67 req/s, 1MB/s\nrequests: 50000 total, 50000 started, 50000 done, 49382 succeeded, 618 failed\n";
        let run = parse_h2load(out);
        assert_eq!(run.requests, 49382.0);
        assert_eq!(run.rps, 12345.67);
        assert!(run.p50_ms.is_nan());
    }
}
