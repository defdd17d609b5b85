//! Flags, each with an environment-variable fallback (`--help` lists them all).

use std::{net::SocketAddr, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::steps::DEFAULT_WEIGHTS;

/// A duration written `250ms`, `10s`, `5m`, `1h` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((s, ""), |i| s.split_at(i));
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (like 250ms, 10s, 5m, 1h)"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        u => return Err(format!("{s:?}: unknown unit {u:?} (ms, s, m, h)")),
    };
    if !secs.is_finite() || !(0.0..=366.0 * 86_400.0).contains(&secs) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let x: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&x) {
        Ok(x)
    } else {
        Err(format!("{s} is not between 0 and 1"))
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let x: f64 = s
        .trim_end_matches("/s")
        .parse()
        .map_err(|_| format!("{s:?} is not a rate (requests per second, e.g. 50 or 0.5)"))?;
    if x > 0.0 && x <= 100_000.0 {
        Ok(x)
    } else {
        Err(format!(
            "the rate must be above 0 and at most 100000/s, got {s}"
        ))
    }
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "loadgen",
    version,
    about = "Shoppers against the Bookstore's public gateway: open loop at a fixed rate (latency from \
             the intended send time) or closed loop with virtual users; HDR latency per step, a live \
             progress line, a summary (--json for machines), Prometheus metrics, W3C traceparent on \
             every request. `loadgen seed` creates users and ratings through the public API.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Create users and ratings through the public API, deterministic for a seed and idempotent
    /// (emails seed-{SEED}-{i}@example.org; books by the catalog's popularity, stars from each
    /// book's histogram, a heavy tail of activity per user).
    Seed(SeedArgs),
}

#[derive(Args, Debug, Clone)]
pub struct Target {
    /// The gateway's base URL (only its public routes are called).
    #[arg(long, env = "LOADGEN_TARGET", default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Longest wait for one answer (a live feed gets this long to open).
    #[arg(long, env = "LOADGEN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print the summary as JSON on stdout (the progress line stays on stderr).
    #[arg(long, env = "LOADGEN_JSON")]
    pub json: bool,
    /// How often the progress line is redrawn on stderr (a new line each time when stderr is not
    /// a terminal); 0: no progress line.
    #[arg(long, env = "LOADGEN_PROGRESS_EVERY", default_value = "1s", value_parser = parse_duration)]
    pub progress_every: Duration,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub target: Target,
    /// Open loop: start this many steps per second whatever the answers take; latency counts
    /// from each step's intended send time, so a stall is not hidden (no coordinated omission).
    /// The default when neither --rate nor --users is given: 20/s.
    #[arg(long, env = "LOADGEN_RATE", value_parser = parse_rate, conflicts_with = "users")]
    pub rate: Option<f64>,
    /// Closed loop: this many virtual users, each doing a step, thinking, and again.
    #[arg(long, env = "LOADGEN_USERS")]
    pub users: Option<usize>,
    /// Stop after this long; 0: only --requests or a signal (SIGINT/SIGTERM) stops it.
    #[arg(long, env = "LOADGEN_DURATION", default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop after this many steps have been started (after the warm-up).
    #[arg(long, env = "LOADGEN_REQUESTS")]
    pub requests: Option<u64>,
    /// Open loop: first ramp the rate up from zero to --rate over this long, then measure. The
    /// warm-up's steps are sent (and counted in loadgen's metrics) but left out of the summary,
    /// and --duration and --requests count from its end. Without it, a high rate from the first
    /// instant opens a connection for nearly every step until the first answers come back
    /// (hundreds at 10,000/s), and that storm, not the steady state, decides the p99.
    #[arg(long, env = "LOADGEN_WARMUP", default_value = "0s", value_parser = parse_duration, conflicts_with = "users")]
    pub warmup: Duration,
    /// Requests in flight at most (open loop): beyond it a step waits for a slot, and that wait
    /// counts in its latency.
    #[arg(long, env = "LOADGEN_MAX_IN_FLIGHT", default_value_t = 256)]
    pub max_in_flight: usize,
    /// Step weights `STEP=N,...` over the defaults (a step not named keeps its default; 0 turns
    /// it off). Steps: home, browse, search, book_page, book_api, similar, popular, signup,
    /// signin, rate, for_you, feed.
    #[arg(long, env = "LOADGEN_WEIGHTS", default_value = DEFAULT_WEIGHTS)]
    pub weights: String,
    /// Closed loop: mean pause of a virtual user between two steps (exponentially distributed,
    /// at most 10x the mean); 0: none.
    #[arg(long, env = "LOADGEN_THINK_TIME", default_value = "1s", value_parser = parse_duration)]
    pub think_time: Duration,
    /// How long a `feed` step reads the live ratings feed before closing it.
    #[arg(long, env = "LOADGEN_FEED_TIME", default_value = "3s", value_parser = parse_duration)]
    pub feed_time: Duration,
    /// Shopper accounts: a bounded pool named {ACCOUNT_PREFIX}-{i}@example.org, signed up on
    /// first use (a 409 from an earlier run is expected) and signed in again when a token
    /// expires. Each account rates the books a synthetic reader of the catalog would.
    #[arg(long, env = "LOADGEN_ACCOUNTS", default_value_t = 50)]
    pub accounts: u32,
    /// Sign-ins and sign-ups per minute at most (burst up to 8), so loadgen stays under the
    /// gateway's per-client budget (AUTH_RATE_PER_MINUTE, 10 by default, answered 429 beyond):
    /// without budget a shopper who would sign in goes on browsing instead. 0: no limit (for a
    /// gateway run with a larger AUTH_RATE_PER_MINUTE).
    #[arg(long, env = "LOADGEN_AUTH_PER_MINUTE", default_value_t = 8)]
    pub auth_per_minute: u32,
    /// Prefix of the shopper accounts' emails.
    #[arg(long, env = "LOADGEN_ACCOUNT_PREFIX", default_value = "loadgen")]
    pub account_prefix: String,
    /// Seed of the choices (books, words, steps); unset: a random one per run.
    #[arg(long, env = "LOADGEN_SEED")]
    pub seed: Option<u64>,
    /// Statuses a drill expects: `CODES` for every step or `STEPS:CODES`, STEPS joined by `+`
    /// (`recommendations` = similar+popular+rate+for_you+feed), CODES by `,`; repeatable (space
    /// separated in the environment). E.g. `--expect-status recommendations:503`. Always
    /// expected: sign-up's 409 (an account from an earlier run) and sign-in's and sign-up's 429
    /// (the gateway's per-client budget; loadgen pauses its sign-ins for the Retry-After).
    #[arg(long, env = "LOADGEN_EXPECT_STATUS", value_delimiter = ' ')]
    pub expect_status: Vec<String>,
    /// Count transport errors and timeouts (no answer at all) as expected.
    #[arg(long, env = "LOADGEN_EXPECT_TRANSPORT_ERRORS")]
    pub expect_transport_errors: bool,
    /// Exit non-zero when unexpected errors are more than this share of requests (0.01 = 1%).
    #[arg(long, env = "LOADGEN_MAX_ERROR_RATE", default_value = "0", value_parser = parse_fraction)]
    pub max_error_rate: f64,
    /// Serve loadgen's own /metrics (and /livez, /readyz) on this address; unset: none.
    #[arg(long, env = "LOADGEN_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Share of requests whose traceparent has the sampled flag (the rest are still traced
    /// with their own trace id, not sampled).
    #[arg(long, env = "LOADGEN_TRACE_SAMPLE_RATIO", default_value = "1", value_parser = parse_fraction)]
    pub trace_sample_ratio: f64,
    /// On SIGTERM/SIGINT: /readyz answers 503 at once, no new step starts, in-flight ones
    /// finish (up to --timeout); the metrics port stays open at least this long.
    #[arg(long, env = "LOADGEN_SHUTDOWN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,
}

#[derive(Args, Debug, Clone)]
pub struct SeedArgs {
    #[command(flatten)]
    pub target: Target,
    /// Users to create (seed-{SEED}-{i}@example.org, i from 0).
    #[arg(long, env = "LOADGEN_SEED_USERS", default_value_t = 100)]
    pub users: u32,
    /// The seed: the same seed gives the same users, books and stars.
    #[arg(long, env = "LOADGEN_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Ratings in all (spread over the users with a heavy tail); default 15 per user.
    #[arg(long, env = "LOADGEN_SEED_RATINGS")]
    pub ratings: Option<u64>,
    /// The most ratings one user gives.
    #[arg(long, env = "LOADGEN_SEED_MAX_PER_USER", default_value_t = 200)]
    pub max_per_user: u32,
    /// Pareto shape of per-user activity (smaller: heavier tail).
    #[arg(long, env = "LOADGEN_SEED_ALPHA", default_value_t = 1.2)]
    pub alpha: f64,
    /// Requests in flight at most.
    #[arg(long, env = "LOADGEN_SEED_CONCURRENCY", default_value_t = 8)]
    pub concurrency: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn flags_parse_and_conflict() {
        let c = Cli::try_parse_from(["loadgen", "--rate", "50/s", "--requests", "10"]).unwrap();
        assert_eq!(c.run.rate, Some(50.0));
        assert!(Cli::try_parse_from(["loadgen", "--rate", "5", "--users", "3"]).is_err());
        let c = Cli::try_parse_from(["loadgen", "seed", "--users", "3", "--seed", "7"]).unwrap();
        match c.command {
            Some(Command::Seed(s)) => assert_eq!((s.users, s.seed), (3, 7)),
            None => panic!("seed not parsed"),
        }
        assert!(Cli::try_parse_from(["loadgen", "--max-error-rate", "2"]).is_err());
    }
}
