//! The RED metrics of gRPC calls (`grpc_server_*`, `grpc_client_*`).

use std::{
    sync::{Arc, OnceLock, RwLock},
    time::Instant,
};

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge};

use super::Observer;
use crate::metrics::{Metrics, Side, code_name};

/// RED metrics of gRPC calls, named as go-grpc-prometheus names them so dashboards know them.
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
