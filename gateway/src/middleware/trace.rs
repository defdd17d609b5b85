//! The span of an HTTP request, named by its route template, with its status.

use std::time::Duration;

use axum::extract::{MatchedPath, Request};

/// A span per request: `METHOD /route/{template}`, continuing the caller's trace if it sent one.
pub fn http_span(req: &Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        "http.server",
        otel.name = %format_args!("{} {}", req.method(), route),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %req.method(),
        http.route = %route,
        url.path = %req.uri().path(),
        http.response.status_code = tracing::field::Empty,
        request_id = ?req.headers().get("x-request-id"),
    );
    // A browser's or curl's `traceparent` is continued; otherwise this starts a new trace.
    platform::telemetry::continue_trace(&span, req.headers());
    span
}

/// Records the answer's status on the span; a 5xx marks it failed.
pub fn record_status<B>(res: &http::Response<B>, _: Duration, span: &tracing::Span) {
    span.record("http.response.status_code", res.status().as_u16());
    if res.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}
