//! Prometheus metrics for every process: one registry per process (so tests can run several
//! services in one test binary), gRPC server and client RED metrics (an observer of
//! [`crate::observe::Observe`]), HTTP metrics for the gateway, and the process collector (CPU,
//! RSS, fds).

use std::{
    sync::{Arc, OnceLock, RwLock},
    time::Instant,
};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::observe::Observer;

/// Latency buckets (seconds) shared by the gRPC and HTTP histograms: 0.5 ms up to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's metric registry and the families every process has.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// A fresh registry with the process collector (CPU, memory, file descriptors) in it.
    pub fn new() -> Self {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            // Only fails when registered twice, which a fresh registry rules out.
            let _ = registry.register(Box::new(pc));
        }
        Self { registry }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Registers a counter family; names are fixed in code, so a clash is a programming error.
    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter");
        self.registry
            .register(Box::new(c.clone()))
            .expect("metric registered once");
        c
    }

    /// Registers a latency histogram family with the shared buckets.
    pub fn histogram_vec(&self, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
        let h = HistogramVec::new(
            HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
            labels,
        )
        .expect("valid histogram");
        self.registry
            .register(Box::new(h.clone()))
            .expect("metric registered once");
        h
    }

    /// Registers a labelled gauge family.
    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> prometheus::IntGaugeVec {
        let g = prometheus::IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge");
        self.registry
            .register(Box::new(g.clone()))
            .expect("metric registered once");
        g
    }

    /// Registers a gauge.
    pub fn gauge(&self, name: &str, help: &str) -> IntGauge {
        let g = IntGauge::new(name, help).expect("valid gauge");
        self.registry
            .register(Box::new(g.clone()))
            .expect("metric registered once");
        g
    }

    /// Registers a gauge that holds a fraction (seconds, ratios).
    pub fn float_gauge(&self, name: &str, help: &str) -> prometheus::Gauge {
        let g = prometheus::Gauge::new(name, help).expect("valid gauge");
        self.registry
            .register(Box::new(g.clone()))
            .expect("metric registered once");
        g
    }

    /// The registry in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Which end of a gRPC call an observation layer watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

/// RED metrics of gRPC calls, named as go-grpc-prometheus names them so dashboards know them: an
/// [`Observer`] for the [`crate::observe::Observe`] layer.
#[derive(Clone)]
pub struct RpcMetrics(Arc<RpcFamilies>);

struct RpcFamilies {
    started: IntCounterVec,
    handled: IntCounterVec,
    handling_seconds: HistogramVec,
    in_flight: IntGauge,
    /// Each method's series, resolved once: a call then costs no label hashing or allocation.
    methods: RwLock<Vec<Arc<MethodSeries>>>,
}

/// One method's series; `handled` per status code, made on first use.
struct MethodSeries {
    service: Box<str>,
    method: Box<str>,
    started: IntCounter,
    handling_seconds: Histogram,
    handled: [OnceLock<IntCounter>; 17],
}

impl RpcMetrics {
    /// Registers `grpc_server_*` or `grpc_client_*` families.
    pub fn new(metrics: &Metrics, side: Side) -> Self {
        let p = match side {
            Side::Server => "grpc_server",
            Side::Client => "grpc_client",
        };
        Self(Arc::new(RpcFamilies {
            started: metrics.counter_vec(
                &format!("{p}_started_total"),
                "gRPC calls started.",
                &["grpc_service", "grpc_method"],
            ),
            handled: metrics.counter_vec(
                &format!("{p}_handled_total"),
                "gRPC calls completed, by status code.",
                &["grpc_service", "grpc_method", "grpc_code"],
            ),
            handling_seconds: metrics.histogram_vec(
                &format!("{p}_handling_seconds"),
                "Time from the start of a gRPC call to its status (end of stream for streams).",
                &["grpc_service", "grpc_method"],
            ),
            in_flight: metrics.gauge(&format!("{p}_in_flight"), "gRPC calls in progress."),
            methods: RwLock::default(),
        }))
    }

    fn series(&self, service: &str, method: &str) -> Arc<MethodSeries> {
        let f = &self.0;
        let find = |methods: &[Arc<MethodSeries>]| {
            methods
                .iter()
                .find(|s| &*s.service == service && &*s.method == method)
                .cloned()
        };
        // A service has a handful of methods: a scan, no key to build.
        if let Some(s) = find(&f.methods.read().unwrap_or_else(|e| e.into_inner())) {
            return s;
        }
        let mut methods = f.methods.write().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = find(&methods) {
            return s;
        }
        let s = Arc::new(MethodSeries {
            service: service.into(),
            method: method.into(),
            started: f.started.with_label_values(&[service, method]),
            handling_seconds: f.handling_seconds.with_label_values(&[service, method]),
            handled: Default::default(),
        });
        methods.push(s.clone());
        s
    }
}

/// A call being counted.
pub struct RpcMetricsCall {
    series: Arc<MethodSeries>,
    start: Instant,
}

impl Observer for RpcMetrics {
    type Call = RpcMetricsCall;

    fn start<B>(&self, service: &str, method: &str, _req: &mut http::Request<B>) -> RpcMetricsCall {
        let series = self.series(service, method);
        series.started.inc();
        self.0.in_flight.inc();
        RpcMetricsCall {
            series,
            start: Instant::now(),
        }
    }

    fn end(&self, call: RpcMetricsCall, code: i32) {
        let s = &call.series;
        // Codes outside gRPC's 0..=16 are counted as Unknown, as `code_name` names them.
        let code = if (0..=16).contains(&code) { code } else { 2 };
        s.handled[code as usize]
            .get_or_init(|| {
                self.0
                    .handled
                    .with_label_values(&[&*s.service, &*s.method, code_name(code)])
            })
            .inc();
        s.handling_seconds
            .observe(call.start.elapsed().as_secs_f64());
        self.0.in_flight.dec();
    }
}

/// The `grpc-status` of a trailers-only response's headers, or of trailers.
pub fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
}

/// The status code names dashboards expect (`codes.Code.String()` in grpc-go).
pub fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "Canceled",
        2 => "Unknown",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_named_as_grpc_go_names_them() {
        assert_eq!(code_name(0), "OK");
        assert_eq!(code_name(3), "InvalidArgument");
        assert_eq!(code_name(16), "Unauthenticated");
        assert_eq!(code_name(99), "Unknown");
    }

    #[test]
    fn a_fresh_registry_renders_the_process_metrics() {
        let m = Metrics::new();
        let c = m.counter_vec("bookstore_test_total", "test", &["k"]);
        c.with_label_values(&["v"]).inc();
        let text = m.render();
        assert!(text.contains("bookstore_test_total{k=\"v\"} 1"), "{text}");
        #[cfg(target_os = "linux")]
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
    }
}
