//! What the follower exports (see the Grafana panels "Ratings log").

use platform::metrics::Metrics;
use prometheus::{Gauge, Histogram, IntCounter, IntCounterVec, IntGauge};

/// The follower's gauges, counters and histogram, registered with the service's metrics.
#[derive(Clone)]
pub(super) struct LogMetrics {
    pub(super) position: IntGauge,
    pub(super) lag: Gauge,
    pub(super) gaps: IntGauge,
    pub(super) applied: IntCounter,
    pub(super) delay: Histogram,
    pub(super) reloads: IntCounterVec,
    pub(super) pruned: IntCounter,
}

impl LogMetrics {
    pub(super) fn new(metrics: &Metrics) -> Self {
        let reloads = metrics.counter_vec(
            "recommendations_log_loads_total",
            "Index builds from a snapshot, by reason (start, behind: the log was pruned past this replica).",
            &["reason"],
        );
        // Both series exist from the start, so the first reload is an increase.
        for reason in ["start", "behind"] {
            reloads.with_label_values(&[reason]);
        }
        Self {
            position: metrics.gauge(
                "recommendations_log_position",
                "The highest change log position this replica has read.",
            ),
            lag: metrics.float_gauge(
                "recommendations_log_lag_seconds",
                "Seconds since this replica last read the change log to its end (0: caught up).",
            ),
            gaps: metrics.gauge(
                "recommendations_log_open_gaps",
                "Log positions skipped over and still awaited (transactions not yet committed).",
            ),
            applied: metrics
                .counter_vec(
                    "recommendations_log_applied_total",
                    "Changes from the log applied to this replica's index.",
                    &[],
                )
                .with_label_values(&[] as &[&str]),
            delay: metrics
                .histogram_vec(
                    "recommendations_log_apply_delay_seconds",
                    "From a rating's write to its change applied in this replica's index.",
                    &[],
                )
                .with_label_values(&[] as &[&str]),
            reloads,
            pruned: metrics
                .counter_vec(
                    "recommendations_log_pruned_total",
                    "Changes deleted from the log by this replica's retention pass.",
                    &[],
                )
                .with_label_values(&[] as &[&str]),
        }
    }
}
