//! What every request came to: counts by outcome and status, and latency in HDR histograms
//! (microseconds, 3 significant digits, up to 10 minutes), per step and in all.

use std::{collections::BTreeMap, fmt, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::steps::Step;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 1xx-3xx answer.
    Ok(u16),
    /// A 4xx or 5xx answer; `expected` when the drill said so.
    Status { status: u16, expected: bool },
    /// No answer: connection refused or reset, a malformed response.
    Transport { expected: bool },
    /// No answer within `--timeout`.
    Timeout { expected: bool },
}

impl Outcome {
    /// The `outcome` label: `ok`, `expected`, or the kind of an unexpected error (`4xx`, `5xx`,
    /// `transport`, `timeout`).
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok(_) => "ok",
            Outcome::Status { expected: true, .. }
            | Outcome::Transport { expected: true }
            | Outcome::Timeout { expected: true } => "expected",
            Outcome::Status { status, .. } if status < 500 => "4xx",
            Outcome::Status { .. } => "5xx",
            Outcome::Transport { .. } => "transport",
            Outcome::Timeout { .. } => "timeout",
        }
    }

    /// The error kind, whether expected or not (`None` for success).
    pub fn kind(self) -> Option<&'static str> {
        match self {
            Outcome::Ok(_) => None,
            Outcome::Status { status, .. } if status < 500 => Some("4xx"),
            Outcome::Status { .. } => Some("5xx"),
            Outcome::Transport { .. } => Some("transport"),
            Outcome::Timeout { .. } => Some("timeout"),
        }
    }

    pub fn is_unexpected_error(self) -> bool {
        !matches!(
            self,
            Outcome::Ok(_)
                | Outcome::Status { expected: true, .. }
                | Outcome::Transport { expected: true }
                | Outcome::Timeout { expected: true }
        )
    }

    pub fn status(self) -> Option<u16> {
        match self {
            Outcome::Ok(s) | Outcome::Status { status: s, .. } => Some(s),
            _ => None,
        }
    }
}

const MAX_MICROS: u64 = 600_000_000;
/// Errors kept as examples (with their trace ids) for the summary: unexpected ones, expected ones.
const SAMPLES: (usize, usize) = (10, 5);

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

#[derive(Debug, Clone)]
struct StepStats {
    latency: Histogram<u64>,
    ok: u64,
    expected: u64,
    unexpected: u64,
    statuses: BTreeMap<u16, u64>,
    kinds: BTreeMap<&'static str, u64>,
}

impl StepStats {
    fn new() -> Self {
        Self {
            latency: histogram(),
            ok: 0,
            expected: 0,
            unexpected: 0,
            statuses: BTreeMap::new(),
            kinds: BTreeMap::new(),
        }
    }

    fn add(&mut self, outcome: Outcome, micros: u64) {
        self.latency.saturating_record(micros.max(1));
        if let Some(s) = outcome.status() {
            *self.statuses.entry(s).or_default() += 1;
        }
        match outcome.kind() {
            None => self.ok += 1,
            Some(kind) => {
                *self.kinds.entry(kind).or_default() += 1;
                if outcome.is_unexpected_error() {
                    self.unexpected += 1;
                } else {
                    self.expected += 1;
                }
            }
        }
    }
}

/// An error, with what finds it in the traces and logs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorSample {
    pub step: String,
    pub expected: bool,
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub detail: String,
    pub trace_id: String,
}

/// Everything recorded so far.
#[derive(Debug, Clone)]
pub struct Stats {
    steps: BTreeMap<Step, StepStats>,
    all: StepStats,
    samples: Vec<ErrorSample>,
    pub feed_events: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            steps: BTreeMap::new(),
            all: StepStats::new(),
            samples: Vec::new(),
            feed_events: 0,
        }
    }
}

impl Stats {
    pub fn record(&mut self, step: Step, outcome: Outcome, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.steps
            .entry(step)
            .or_insert_with(StepStats::new)
            .add(outcome, micros);
        self.all.add(outcome, micros);
    }

    pub fn sample(&mut self, sample: ErrorSample) {
        let kept = self
            .samples
            .iter()
            .filter(|s| s.expected == sample.expected)
            .count();
        let room = if sample.expected {
            SAMPLES.1
        } else {
            SAMPLES.0
        };
        if kept < room {
            self.samples.push(sample);
        }
    }

    pub fn requests(&self) -> u64 {
        self.all.latency.len()
    }

    pub fn errors(&self) -> u64 {
        self.all.expected + self.all.unexpected
    }

    pub fn unexpected(&self) -> u64 {
        self.all.unexpected
    }

    /// p99 of every request so far.
    pub fn p99(&self) -> Duration {
        Duration::from_micros(self.all.latency.value_at_quantile(0.99))
    }

    pub fn summary(&self, meta: RunMeta) -> Summary {
        let requests = self.requests();
        let elapsed = meta.elapsed_s.max(1e-9);
        let unexpected_rate = if requests == 0 {
            0.0
        } else {
            self.all.unexpected as f64 / requests as f64
        };
        Summary {
            passed: unexpected_rate <= meta.max_error_rate,
            requests,
            ok: self.all.ok,
            rps: requests as f64 / elapsed,
            errors: ErrorCounts::of(&self.all),
            unexpected_rate,
            latency_ms: Latency::of(&self.all.latency),
            steps: self
                .steps
                .iter()
                .map(|(step, s)| {
                    (
                        step.name().to_owned(),
                        StepSummary {
                            route: step.route().to_owned(),
                            requests: s.latency.len(),
                            ok: s.ok,
                            errors: ErrorCounts::of(s),
                            statuses: s
                                .statuses
                                .iter()
                                .map(|(k, v)| (k.to_string(), *v))
                                .collect(),
                            latency_ms: Latency::of(&s.latency),
                        },
                    )
                })
                .collect(),
            feed_events: self.feed_events,
            error_samples: self.samples.clone(),
            meta,
        }
    }
}

/// How the run was made, carried into the summary.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunMeta {
    pub target: String,
    /// `open` (fixed rate) or `closed` (virtual users).
    pub mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<usize>,
    /// The measured part of the run (after the warm-up).
    pub elapsed_s: f64,
    /// The open loop's warm-up before it (its steps are not in the summary).
    pub warmup_s: f64,
    /// Why it stopped: `duration`, `requests` or `signal`.
    pub stopped_by: String,
    pub max_error_rate: f64,
    /// The non-2xx statuses the drill said to expect, per step.
    pub expected_statuses: BTreeMap<String, Vec<u16>>,
    pub expect_transport_errors: bool,
    /// Sign-ins and sign-ups left out by `--auth-per-minute` (anonymous steps done instead).
    pub auth_deferred: u64,
    /// Open loop: how late loadgen itself started its measured steps, so a stall of the load
    /// generator is told apart from a slow server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_lag: Option<ScheduleLag>,
}

/// How late the open loop started its steps after their intended times.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ScheduleLag {
    pub max_ms: f64,
    /// Steps started more than 1 ms late.
    pub late_over_1ms: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorCounts {
    pub total: u64,
    pub expected: u64,
    pub unexpected: u64,
    /// By kind (`4xx`, `5xx`, `transport`, `timeout`), expected or not.
    pub by_kind: BTreeMap<String, u64>,
}

impl ErrorCounts {
    fn of(s: &StepStats) -> Self {
        Self {
            total: s.expected + s.unexpected,
            expected: s.expected,
            unexpected: s.unexpected,
            by_kind: s.kinds.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        }
    }
}

/// Latency percentiles in milliseconds, measured from each request's intended send time.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Self {
            p50: ms(0.5),
            p90: ms(0.9),
            p99: ms(0.99),
            p999: ms(0.999),
            max: h.max() as f64 / 1000.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepSummary {
    pub route: String,
    pub requests: u64,
    pub ok: u64,
    pub errors: ErrorCounts,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<String, u64>,
    pub latency_ms: Latency,
}

/// The end-of-run report (`--json` prints it as JSON).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Unexpected errors within `--max-error-rate` (the exit status says the same).
    pub passed: bool,
    pub requests: u64,
    pub ok: u64,
    pub rps: f64,
    pub errors: ErrorCounts,
    pub unexpected_rate: f64,
    pub latency_ms: Latency,
    pub steps: BTreeMap<String, StepSummary>,
    pub feed_events: u64,
    /// The first errors (up to 10 unexpected, 5 expected), with the trace id loadgen sent.
    pub error_samples: Vec<ErrorSample>,
    #[serde(flatten)]
    pub meta: RunMeta,
}

fn kinds(k: &BTreeMap<String, u64>) -> String {
    if k.is_empty() {
        return "-".into();
    }
    k.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.meta;
        let how = match (m.rate, m.users) {
            (Some(r), _) => format!("open loop at {r}/s"),
            (_, Some(u)) => format!("closed loop, {u} virtual users"),
            _ => m.mode.clone(),
        };
        writeln!(
            f,
            "loadgen: {} against {}, {:.1} s{} (stopped by {})",
            how,
            m.target,
            m.elapsed_s,
            if m.warmup_s > 0.0 {
                format!(" after {:.1} s of warm-up", m.warmup_s)
            } else {
                String::new()
            },
            m.stopped_by
        )?;
        writeln!(
            f,
            "  requests {}  ok {}  rps {:.1}  errors {} (expected {}, unexpected {}: {:.3}%; by kind: {})",
            self.requests,
            self.ok,
            self.rps,
            self.errors.total,
            self.errors.expected,
            self.errors.unexpected,
            self.unexpected_rate * 100.0,
            kinds(&self.errors.by_kind)
        )?;
        let l = &self.latency_ms;
        writeln!(
            f,
            "  latency ms (from the intended send time): p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
            l.p50, l.p90, l.p99, l.p999, l.max
        )?;
        if let Some(lag) = m.schedule_lag {
            writeln!(
                f,
                "  loadgen's own lag: steps started up to {:.1} ms late, {} more than 1 ms late",
                lag.max_ms, lag.late_over_1ms
            )?;
        }
        writeln!(
            f,
            "  {:<10} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}  statuses",
            "step", "reqs", "errors", "p50", "p90", "p99", "p99.9", "max"
        )?;
        for (name, s) in &self.steps {
            let statuses = s
                .statuses
                .iter()
                .map(|(k, v)| format!("{k}×{v}"))
                .collect::<Vec<_>>()
                .join(" ");
            let other = s.errors.by_kind.get("transport").copied().unwrap_or(0)
                + s.errors.by_kind.get("timeout").copied().unwrap_or(0);
            let other = if other > 0 {
                format!(" no-answer×{other}")
            } else {
                String::new()
            };
            writeln!(
                f,
                "  {:<10} {:>7} {:>7} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}  {}{}",
                name,
                s.requests,
                if s.errors.expected > 0 {
                    format!("{}+{}e", s.errors.unexpected, s.errors.expected)
                } else {
                    s.errors.unexpected.to_string()
                },
                s.latency_ms.p50,
                s.latency_ms.p90,
                s.latency_ms.p99,
                s.latency_ms.p999,
                s.latency_ms.max,
                statuses,
                other
            )?;
        }
        if m.auth_deferred > 0 {
            writeln!(
                f,
                "  sign-ins/ups left out by --auth-per-minute: {} (anonymous steps done instead)",
                m.auth_deferred
            )?;
        }
        if self.feed_events > 0 {
            writeln!(f, "  live feed: {} rating events read", self.feed_events)?;
        }
        for e in self.error_samples.iter().filter(|e| !e.expected) {
            writeln!(
                f,
                "  unexpected: {} {} {} (trace {})",
                e.step,
                e.status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| e.outcome.clone()),
                e.detail,
                e.trace_id
            )?;
        }
        write!(
            f,
            "  {}: unexpected errors {:.3}% {} --max-error-rate {}%",
            if self.passed { "PASS" } else { "FAIL" },
            self.unexpected_rate * 100.0,
            if self.passed { "<=" } else { ">" },
            m.max_error_rate * 100.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(max: f64) -> RunMeta {
        RunMeta {
            target: "http://x".into(),
            mode: "open".into(),
            rate: Some(10.0),
            users: None,
            elapsed_s: 2.0,
            warmup_s: 0.0,
            stopped_by: "requests".into(),
            max_error_rate: max,
            expected_statuses: BTreeMap::new(),
            expect_transport_errors: false,
            auth_deferred: 0,
            schedule_lag: None,
        }
    }

    #[test]
    fn outcomes_are_counted_by_kind_and_expectation() {
        let mut s = Stats::default();
        for i in 0..98 {
            s.record(Step::Home, Outcome::Ok(200), Duration::from_millis(10 + i));
        }
        s.record(
            Step::Popular,
            Outcome::Status {
                status: 503,
                expected: true,
            },
            Duration::from_millis(5),
        );
        s.record(
            Step::BookApi,
            Outcome::Timeout { expected: false },
            Duration::from_secs(10),
        );
        let sum = s.summary(meta(0.0));
        assert_eq!(sum.requests, 100);
        assert_eq!(sum.ok, 98);
        assert_eq!(sum.errors.expected, 1);
        assert_eq!(sum.errors.unexpected, 1);
        assert_eq!(sum.errors.by_kind["5xx"], 1);
        assert_eq!(sum.errors.by_kind["timeout"], 1);
        assert!(!sum.passed);
        assert!(s.summary(meta(0.01)).passed);
        assert_eq!(sum.steps["popular"].statuses["503"], 1);
        assert!((sum.latency_ms.max - 10_000.0).abs() < 10.0);
        assert!(
            sum.steps["home"].latency_ms.p50 >= 55.0 && sum.steps["home"].latency_ms.p50 <= 60.0
        );
        let text = sum.to_string();
        assert!(text.contains("FAIL"), "{text}");
        let json = serde_json::to_value(&sum).unwrap();
        assert_eq!(json["errors"]["unexpected"], 1);
        assert_eq!(json["mode"], "open");
    }

    #[test]
    fn labels() {
        assert_eq!(Outcome::Ok(201).label(), "ok");
        assert_eq!(
            Outcome::Status {
                status: 404,
                expected: false
            }
            .label(),
            "4xx"
        );
        assert_eq!(
            Outcome::Status {
                status: 503,
                expected: true
            }
            .label(),
            "expected"
        );
        assert_eq!(Outcome::Transport { expected: false }.label(), "transport");
    }
}
