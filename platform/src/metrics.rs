//! Prometheus metrics for every process: one registry per process (so tests can run several
//! services in one test binary), gRPC server and client RED metrics as one tower layer, HTTP
//! metrics for the gateway, and the process collector (CPU, RSS, fds).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Instant,
};

use http_body::{Body, Frame, SizeHint};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use tower::{Layer, Service};

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

/// Which end of a gRPC call a [`GrpcMetricsLayer`] observes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

/// RED metrics of gRPC calls, named as go-grpc-prometheus names them so dashboards know them.
pub struct RpcMetrics {
    side: Side,
    started: IntCounterVec,
    handled: IntCounterVec,
    handling_seconds: HistogramVec,
    in_flight: IntGauge,
}

impl RpcMetrics {
    /// Registers `grpc_server_*` or `grpc_client_*` families.
    pub fn new(metrics: &Metrics, side: Side) -> Arc<Self> {
        let p = match side {
            Side::Server => "grpc_server",
            Side::Client => "grpc_client",
        };
        Arc::new(Self {
            side,
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
        })
    }
}

/// Tower layer that counts, times and traces every gRPC call passing through it.
#[derive(Clone)]
pub struct GrpcMetricsLayer {
    metrics: Arc<RpcMetrics>,
}

impl GrpcMetricsLayer {
    pub fn new(metrics: Arc<RpcMetrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// See [`GrpcMetricsLayer`].
#[derive(Clone)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: Arc<RpcMetrics>,
}

/// Splits `/package.Service/Method` into its two halves.
pub fn split_grpc_path(path: &str) -> (&str, &str) {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    trimmed.split_once('/').unwrap_or((trimmed, ""))
}

impl<S, ReqB, ResB> Service<http::Request<ReqB>> for GrpcMetricsService<S>
where
    S: Service<http::Request<ReqB>, Response = http::Response<ResB>>,
    S::Error: std::fmt::Display,
{
    type Response = http::Response<MeteredBody<ResB>>;
    type Error = S::Error;
    type Future = MeteredFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqB>) -> Self::Future {
        let (service, method) = split_grpc_path(req.uri().path());
        let (service, method) = (service.to_owned(), method.to_owned());
        let span = crate::telemetry::rpc_span(self.metrics.side, &service, &method, &mut req);
        let m = &self.metrics;
        m.started.with_label_values(&[&service, &method]).inc();
        m.in_flight.inc();
        let deadline = match m.side {
            Side::Server => {
                crate::deadline::call_budget(req.headers(), None).map(|b| Instant::now() + b)
            }
            Side::Client => None,
        };
        let obs = Observation {
            deadline,
            metrics: m.clone(),
            service,
            method,
            start: Instant::now(),
            span,
            done: false,
        };
        let inner = {
            let _entered = obs.span.enter();
            self.inner.call(req)
        };
        MeteredFuture {
            inner,
            obs: Some(obs),
        }
    }
}

/// One call being observed; records exactly once, on its status or, if dropped first, as
/// cancelled.
pub struct Observation {
    /// The caller's deadline (server side): a call dropped at it expired rather than was
    /// cancelled (the caller's timer fires a moment before ours and resets the stream).
    deadline: Option<Instant>,
    metrics: Arc<RpcMetrics>,
    service: String,
    method: String,
    start: Instant,
    span: tracing::Span,
    done: bool,
}

impl Observation {
    fn finish(mut self, code: i32) {
        self.record(code);
    }

    fn record(&mut self, code: i32) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let m = &self.metrics;
        m.handled
            .with_label_values(&[&self.service, &self.method, code_name(code)])
            .inc();
        let elapsed = self.start.elapsed();
        m.handling_seconds
            .with_label_values(&[&self.service, &self.method])
            .observe(elapsed.as_secs_f64());
        crate::telemetry::record_rpc_status(&self.span, m.side, code);
        m.in_flight.dec();
        if m.side == Side::Server && crate::telemetry::access_logged(code != 0, elapsed) {
            let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
            // An access-log line per call (errors and slow calls always, a sample of the rest),
            // inside the call's span (so it carries the trace id); health checks only at debug.
            if self.service.starts_with("grpc.") {
                tracing::debug!(parent: &self.span, grpc.code = code_name(code), elapsed_ms, "rpc handled");
            } else {
                tracing::info!(parent: &self.span, grpc.code = code_name(code), elapsed_ms, "rpc handled");
            }
        }
    }
}

impl Drop for Observation {
    fn drop(&mut self) {
        // No status seen: the caller went away. At (or within a hair of) its deadline that is
        // DEADLINE_EXCEEDED, as gRPC defines it; before, a cancellation.
        let expired = self
            .deadline
            .is_some_and(|d| Instant::now() + DEADLINE_SLACK >= d);
        self.record(if expired { 4 } else { 1 });
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`GrpcMetricsService`].
    pub struct MeteredFuture<F> {
        #[pin]
        inner: F,
        obs: Option<Observation>,
    }
}

/// How close to the caller's deadline a dropped call counts as expired, not cancelled.
const DEADLINE_SLACK: std::time::Duration = std::time::Duration::from_millis(5);

/// What tonic's client says when a call's own deadline expires before an answer arrives.
const TONIC_TIMEOUT: &str = "Timeout expired";

impl<F, ResB, E> Future for MeteredFuture<F>
where
    F: Future<Output = Result<http::Response<ResB>, E>>,
    E: std::fmt::Display,
{
    type Output = Result<http::Response<MeteredBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.obs.as_ref().map(|o| o.span.enter());
            ready!(this.inner.poll(cx))
        };
        let obs = this.obs.take();
        Poll::Ready(match result {
            Ok(resp) => {
                // A trailers-only response (errors) carries the status in its headers.
                let obs = match (obs, grpc_status(resp.headers())) {
                    (Some(o), Some(code)) => {
                        o.finish(code);
                        None
                    }
                    (o, _) => o,
                };
                Ok(resp.map(|inner| MeteredBody { inner, obs }))
            }
            Err(e) => {
                if let Some(o) = obs {
                    // The caller's own deadline (DEADLINE_EXCEEDED), else a transport failure
                    // (UNAVAILABLE).
                    o.finish(if e.to_string() == TONIC_TIMEOUT {
                        4
                    } else {
                        14
                    });
                }
                Err(e)
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that records the call's status when its trailers pass by.
    pub struct MeteredBody<B> {
        #[pin]
        inner: B,
        obs: Option<Observation>,
    }
}

impl<B: Body> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(trailers) = f.trailers_ref()
                    && let Some(o) = this.obs.take()
                {
                    o.finish(grpc_status(trailers).unwrap_or(2));
                }
            }
            Some(Err(_)) => {
                if let Some(o) = this.obs.take() {
                    o.finish(14);
                }
            }
            None => {
                if let Some(o) = this.obs.take() {
                    o.finish(2);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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
    fn a_grpc_path_splits_into_service_and_method() {
        assert_eq!(
            split_grpc_path("/bookstore.users.v1.UsersService/SignIn"),
            ("bookstore.users.v1.UsersService", "SignIn")
        );
        assert_eq!(split_grpc_path("/odd"), ("odd", ""));
    }

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
