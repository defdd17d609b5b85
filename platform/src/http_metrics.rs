//! HTTP RED metrics for axum routers, labelled by route template (`/books/{id}`), never by raw
//! path, so a crawler cannot explode the series count.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use prometheus::{HistogramVec, IntCounterVec, IntGauge};

use crate::metrics::Metrics;

/// `http_requests_total`, `http_request_duration_seconds` and `http_requests_in_flight`.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
}

impl HttpMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        Self {
            requests: metrics.counter_vec(
                "http_requests_total",
                "HTTP requests answered, by method, route template and status.",
                &["method", "route", "status"],
            ),
            duration: metrics.histogram_vec(
                "http_request_duration_seconds",
                "Time to answer an HTTP request (to the response head), by method and route.",
                &["method", "route"],
            ),
            in_flight: metrics.gauge("http_requests_in_flight", "HTTP requests in progress."),
        }
    }
}

/// The route template of a request, or `unmatched` for paths no route knows.
pub fn route_of(req: &Request) -> String {
    req.extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned())
}

/// One request being tracked: counted once, on its answer or, when the client goes away first
/// (the handler future is dropped), as status 499 (client closed request).
struct Tracked {
    m: HttpMetrics,
    /// Shared, not copied: labels are borrowed from the request's own values.
    route: Option<MatchedPath>,
    method: http::Method,
    start: Instant,
    status: Option<http::StatusCode>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.m.in_flight.dec();
        let status = self.status.as_ref().map_or("499", http::StatusCode::as_str);
        let route = self.route.as_ref().map_or("unmatched", MatchedPath::as_str);
        let method = self.method.as_str();
        self.m
            .requests
            .with_label_values(&[method, route, status])
            .inc();
        self.m
            .duration
            .with_label_values(&[method, route])
            .observe(self.start.elapsed().as_secs_f64());
    }
}

/// axum middleware (`from_fn_with_state`) recording every request.
pub async fn track(State(m): State<HttpMetrics>, req: Request, next: Next) -> Response {
    m.in_flight.inc();
    let mut tracked = Tracked {
        route: req.extensions().get::<MatchedPath>().cloned(),
        method: req.method().clone(),
        m,
        start: Instant::now(),
        // Until an answer comes: 499, client closed request.
        status: None,
    };
    let response = next.run(req).await;
    tracked.status = Some(response.status());
    response
}
