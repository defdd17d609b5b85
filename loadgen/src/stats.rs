//! What every request came to: counts by outcome and status, and latency in HDR histograms
//! (microseconds, 3 significant digits, up to 10 minutes), per step and in all.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;

use crate::{
    steps::Step,
    summary::{ErrorCounts, ErrorSample, Latency, RunMeta, StepSummary, Summary},
};

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
            errors: error_counts(&self.all),
            unexpected_rate,
            latency_ms: latency_of(&self.all.latency),
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
                            errors: error_counts(s),
                            statuses: s
                                .statuses
                                .iter()
                                .map(|(k, v)| (k.to_string(), *v))
                                .collect(),
                            latency_ms: latency_of(&s.latency),
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

/// The error counts of one step (or of all).
fn error_counts(s: &StepStats) -> ErrorCounts {
    ErrorCounts {
        total: s.expected + s.unexpected,
        expected: s.expected,
        unexpected: s.unexpected,
        by_kind: s.kinds.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
    }
}

/// A histogram's percentiles in milliseconds.
fn latency_of(h: &Histogram<u64>) -> Latency {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Latency {
        p50: ms(0.5),
        p90: ms(0.9),
        p99: ms(0.99),
        p999: ms(0.999),
        max: h.max() as f64 / 1000.0,
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
