//! The end-of-run report: how the run was made, what its requests came to per step and in all,
//! the first errors; printed as text, or as JSON with `--json`.

use std::{collections::BTreeMap, fmt};

use serde::Serialize;

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

/// Latency percentiles in milliseconds, measured from each request's intended send time.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
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
