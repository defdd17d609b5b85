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

/// axum middleware (`from_fn_with_state`) recording every request.
pub async fn track(State(m): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = route_of(&req);
    let method = req.method().as_str().to_owned();
    m.in_flight.inc();
    let response = next.run(req).await;
    m.in_flight.dec();
    let status = response.status().as_u16().to_string();
    m.requests
        .with_label_values(&[&method, &route, &status])
        .inc();
    m.duration
        .with_label_values(&[&method, &route])
        .observe(start.elapsed().as_secs_f64());
    response
}
