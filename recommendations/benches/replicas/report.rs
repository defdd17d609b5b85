//! The report `make bench-replicas` writes (`target/bench/replicas.md`): latencies to every
//! replica against the targets, apply cost, and whether the indexes agree.

use std::{fmt::Write as _, process::Command, time::Duration};

use clap::Parser;
use recommendations::changelog::IndexState;

use crate::{
    Args,
    common::Error,
    driver::{MAX_IN_FLIGHT, Phase},
    streams::Replica,
};

/// The bound: a rating reaches every replica's index with p99 ≤ 250 ms and max ≤ 1 s.
const P99_TARGET: Duration = Duration::from_millis(250);
const MAX_TARGET: Duration = Duration::from_secs(1);

/// Nearest-rank quantile.
pub(crate) fn quantile(v: &[Duration], q: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort_unstable();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn report(
    args: &Args,
    admin_url: &str,
    phases: &[Phase],
    replicas: &[Replica],
    states: &[IndexState],
    rebuilt: &str,
    unexpected: &[usize],
    correct: bool,
    problems: &[String],
) -> Result<String, Error> {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut md = String::new();
    writeln!(md, "# recommendations: three replicas converging\n")?;
    let rates = args
        .rates
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let defaults = Args::parse_from(["replicas"]);
    let make_args = if (&args.rates, args.seconds, args.users, args.settle_seconds)
        == (
            &defaults.rates,
            defaults.seconds,
            defaults.users,
            defaults.settle_seconds,
        ) {
        String::new()
    } else {
        format!(
            " REPLICAS_ARGS=\"--rates {rates} --seconds {} --users {} --settle-seconds {}\"",
            args.seconds, args.users, args.settle_seconds
        )
    };
    writeln!(
        md,
        "Machine: `nproc` {nproc}, {date}. Command: `TEST_POSTGRES_URL={} make bench-replicas{make_args}` \
         (phases of {} s at {rates} ratings/s).\n",
        platform::database::redact(admin_url),
        args.seconds,
    )?;
    writeln!(
        md,
        "Release binaries on loopback: marketplace, users, three recommendations replicas on one \
         fresh PostgreSQL database, a gateway balancing over the three. {} readers rate books \
         (`PUT /api/v1/me/ratings/{{id}}`, HTTP/1.1 keep-alive) in an open loop; each replica's \
         `WatchRatings` is watched directly, and an event there means the change is in that \
         replica's index. Latency: the PUT sent → the rating on a replica's stream; *to every \
         replica* is the slowest of the three. Targets: p99 ≤ {} ms, max ≤ {} ms.\n",
        args.users,
        P99_TARGET.as_millis(),
        MAX_TARGET.as_millis()
    )?;
    writeln!(
        md,
        "| rate | sent (achieved) | acknowledged | missing | to every replica p50 | p99 | max | \
         p99 r1 | p99 r2 | p99 r3 | PUT answered p99 | p99 ≤ 250 ms | max ≤ 1 s |"
    )?;
    writeln!(
        md,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )?;
    for p in phases {
        let every = p.to_every();
        let (p99, max) = (
            quantile(&every, 0.99),
            every.iter().max().copied().unwrap_or_default(),
        );
        let met = |ok: bool| if ok { "met" } else { "**missed**" };
        let sent = p.planned - p.not_sent;
        writeln!(
            md,
            "| {}/s | {sent} ({:.0}/s) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            p.rate,
            sent as f64 / p.send_seconds.max(1e-9),
            p.acked.len(),
            p.missing(),
            ms(quantile(&every, 0.5)),
            ms(p99),
            ms(max),
            ms(quantile(&p.to_replica(0), 0.99)),
            ms(quantile(&p.to_replica(1), 0.99)),
            ms(quantile(&p.to_replica(2), 0.99)),
            ms(quantile(&p.acks(), 0.99)),
            met(!every.is_empty() && p99 <= P99_TARGET),
            met(!every.is_empty() && max <= MAX_TARGET),
        )?;
    }
    writeln!(
        md,
        "\nApply cost: each replica's CPU (user + system, `/proc/<pid>/stat`) over the phase, \
         divided by the changes it applied (`recommendations_log_applied_total`). It also holds \
         the replica's share of the writes (RateBook calls the gateway sent it) and its stream; \
         server-side delay is `recommendations_log_apply_delay_seconds` (write's timestamp → \
         applied), mean.\n"
    )?;
    writeln!(
        md,
        "| rate | replica | writes taken | applied | CPU | µs CPU per rating applied | server-side delay, mean |"
    )?;
    writeln!(md, "| --- | --- | --- | --- | --- | --- | --- |")?;
    for p in phases {
        for (i, c) in p.counters.iter().enumerate() {
            writeln!(
                md,
                "| {}/s | r{} | {:.0} | {:.0} | {:.2} s | {:.0} µs | {:.1} ms |",
                p.rate,
                i + 1,
                c.writes,
                c.applied,
                c.cpu,
                c.cpu * 1e6 / c.applied.max(1.0),
                c.delay_sum * 1000.0 / c.delay_count.max(1.0)
            )?;
        }
    }
    writeln!(
        md,
        "\nFinal indexes (admin `/index`), against a rebuild from the ratings table: `{rebuilt}`.\n"
    )?;
    writeln!(
        md,
        "| replica | position | open gaps | users | ratings | digest | stream events of no acknowledged PUT |"
    )?;
    writeln!(md, "| --- | --- | --- | --- | --- | --- | --- |")?;
    for (i, (s, r)) in states.iter().zip(replicas).enumerate() {
        writeln!(
            md,
            "| r{} ({}) | {} | {} | {} | {} | `{}` {} | {} |",
            i + 1,
            r.grpc,
            s.position,
            s.open_gaps,
            s.users,
            s.ratings,
            s.digest,
            if s.digest == rebuilt {
                "= rebuild"
            } else {
                "**≠ rebuild**"
            },
            unexpected.get(i).copied().unwrap_or(0)
        )?;
    }
    let latency_met = phases.iter().all(|p| {
        let every = p.to_every();
        !every.is_empty()
            && quantile(&every, 0.99) <= P99_TARGET
            && every.iter().max().is_some_and(|m| *m <= MAX_TARGET)
    });
    writeln!(
        md,
        "\nCorrectness: {}. Latency targets (p99 ≤ 250 ms, max ≤ 1 s at every rate): {}.",
        if correct {
            "every acknowledged rating reached every replica's stream, and every index equals the rebuild".to_owned()
        } else {
            format!("**FAILED**: {}", problems.join("; "))
        },
        if latency_met { "met" } else { "**missed**" }
    )?;
    if let Some(worst) = phases.iter().map(|p| p.latest_start).max() {
        writeln!(
            md,
            "\nThe open loop started its PUTs at most {} after their scheduled instant; ratings \
             not sent because {MAX_IN_FLIGHT} were in flight: {}.",
            ms(worst),
            phases.iter().map(|p| p.not_sent).sum::<u64>()
        )?;
    }
    Ok(md)
}
