//! What every finished step leaves behind: its outcome in the run's statistics, loadgen's own
//! Prometheus series, the first error samples, and how late the open loop started it.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use platform::metrics::Metrics;
use prometheus::{Gauge, HistogramVec, IntCounter, IntCounterVec, IntGauge};

use crate::{
    shop::Done,
    stats::Stats,
    summary::{ErrorSample, ScheduleLag},
};

/// loadgen's own series, so its traffic shows beside the suite's in the dashboards.
#[derive(Clone)]
pub(super) struct LoadMetrics {
    pub(super) requests: IntCounterVec,
    pub(super) duration: HistogramVec,
    pub(super) in_flight: IntGauge,
    pub(super) lag: Gauge,
    pub(super) feed_events: IntCounter,
}

impl LoadMetrics {
    pub(super) fn new(m: &Metrics) -> Self {
        let lag = Gauge::new(
            "loadgen_schedule_lag_seconds",
            "How late the last step started after its intended time (open loop; above zero when \
             --max-in-flight holds steps back).",
        )
        .expect("valid gauge");
        let _ = m.registry().register(Box::new(lag.clone()));
        let feed_events = IntCounter::new(
            "loadgen_feed_events_total",
            "Rating events read from the live feed (SSE).",
        )
        .expect("valid counter");
        let _ = m.registry().register(Box::new(feed_events.clone()));
        Self {
            requests: m.counter_vec(
                "loadgen_requests_total",
                "Requests loadgen sent, by step and outcome (ok, expected, or the kind of an \
                 unexpected error: 4xx, 5xx, transport, timeout).",
                &["step", "outcome"],
            ),
            duration: m.histogram_vec(
                "loadgen_request_duration_seconds",
                "Latency of loadgen's requests from their intended send time, by step.",
                &["step"],
            ),
            in_flight: m.gauge("loadgen_requests_in_flight", "Requests loadgen awaits."),
            lag,
            feed_events,
        }
    }
}

/// Where every finished step is written down.
#[derive(Clone)]
pub(super) struct Recorder {
    pub(super) stats: Arc<Mutex<Stats>>,
    pub(super) metrics: LoadMetrics,
    pub(super) lag: Arc<LagTally>,
}

/// The open loop's own lateness over its measured steps (the pacing loop writes, the summary
/// reads).
#[derive(Default)]
pub(super) struct LagTally {
    pub(super) max_us: AtomicU64,
    pub(super) late: AtomicU64,
}

impl LagTally {
    pub(super) fn add(&self, lag: Duration) {
        let us = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
        self.max_us.fetch_max(us, Ordering::Relaxed);
        if us > 1000 {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn get(&self) -> ScheduleLag {
        ScheduleLag {
            max_ms: self.max_us.load(Ordering::Relaxed) as f64 / 1000.0,
            late_over_1ms: self.late.load(Ordering::Relaxed),
        }
    }
}

impl Recorder {
    pub(super) fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes a finished step down: in loadgen's metrics always, in the summary when `measured`
    /// (a warm-up's steps are not).
    pub(super) fn record(&self, done: &Done, intended: Instant, measured: bool) {
        let latency = done.answered.saturating_duration_since(intended);
        let name = done.step.name();
        self.metrics
            .requests
            .with_label_values(&[name, done.outcome.label()])
            .inc();
        self.metrics
            .duration
            .with_label_values(&[name])
            .observe(latency.as_secs_f64());
        self.metrics.feed_events.inc_by(done.feed_events);
        if !measured {
            return;
        }
        let mut s = self.stats();
        s.record(done.step, done.outcome, latency);
        s.feed_events += done.feed_events;
        if done.outcome.kind().is_some() {
            s.sample(ErrorSample {
                step: name.to_owned(),
                expected: !done.outcome.is_unexpected_error(),
                outcome: done.outcome.label().to_owned(),
                status: done.outcome.status(),
                detail: done.detail.clone(),
                trace_id: done.trace_id.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_tally_keeps_the_worst_and_counts_steps_over_a_millisecond() {
        let t = LagTally::default();
        for us in [10, 1500, 700, 4200, 1000] {
            t.add(Duration::from_micros(us));
        }
        assert_eq!(
            t.get(),
            ScheduleLag {
                max_ms: 4.2,
                late_over_1ms: 2
            }
        );
    }
}
