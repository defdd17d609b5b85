//! The public router: every route, API and pages, behind the middleware stack, written
//! outermost-first with a comment per layer.

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use platform::{http_metrics::HttpMetrics, metrics::Metrics};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use crate::{
    api,
    config::Config,
    error::{self, ApiError},
    grpc_web,
    middleware::{
        AccessLogLayer, ApiHeadersLayer, ReadBodyLayer, RequestIds, http_span, record_status,
    },
    openapi, pages, shed,
    state::AppState,
};

/// The whole public router: API, pages, gRPC-Web, and the middleware stack.
pub fn build_router(state: AppState, metrics: &Metrics, config: &Config) -> Router {
    let grpc_web = grpc_web::router(&state, metrics, &config.grpc_web_allowed_origins);
    with_middleware(routes().merge(grpc_web), state, metrics, config)
}

/// Every route of the gateway, API and pages, without the middleware.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(openapi::router())
        .merge(api::router())
        .merge(pages::router())
}

/// `routes` (the gateway's own, or a test's) behind the gateway's middleware stack: a method a
/// route does not accept is a 405 problem (with `Allow`) under `/api/`, a page otherwise.
pub fn with_middleware(
    routes: Router<AppState>,
    state: AppState,
    metrics: &Metrics,
    config: &Config,
) -> Router {
    let http_metrics = HttpMetrics::new(metrics);
    let stack = ServiceBuilder::new()
        // Outermost: every request gets an id, echoed back in the response.
        .layer(SetRequestIdLayer::x_request_id(RequestIds::default()))
        .layer(PropagateRequestIdLayer::x_request_id())
        // `nosniff` on every API answer, `no-store` on personal ones (shed ones included).
        .layer(ApiHeadersLayer)
        // A span per request, named by route template, with its status. No line per failure:
        // the access log has every error (tower-http's ERROR line per 5xx would make a flood of
        // shed requests a flood of ERROR lines).
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(http_span)
                .on_failure(())
                .on_response(record_status),
        )
        // The access log, inside the span (its lines carry the trace id).
        .layer(AccessLogLayer)
        // RED metrics by route template.
        .layer(platform::http_metrics::TrackLayer::new(http_metrics))
        // A panic becomes a 500 problem document, not a dropped connection or plain text.
        .layer(CatchPanicLayer::custom(error::panic_response))
        // The body is read whole (BODY_READ_TIMEOUT_MS, else 408) before a permit is taken.
        .layer(ReadBodyLayer::new(
            config.connections.body_read_timeout(),
            config.body_limit_bytes,
        ))
        // Load shedding: beyond the concurrency limit, answer 503 at once instead of queueing.
        .layer(shed_layer(metrics, config.serve.concurrency_limit))
        // Innermost: the body limit the extractors read.
        .layer(DefaultBodyLimit::max(config.body_limit_bytes));
    routes
        .method_not_allowed_fallback(method_not_allowed)
        // The pages' forms: cross-site posts refused, tokens given (API paths pass untouched).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            pages::csrf::guard,
        ))
        .layer(stack)
        .with_state(state)
}

/// The shed layer at `limit` requests at once, with its metrics.
fn shed_layer(
    metrics: &Metrics,
    limit: usize,
) -> platform::shed::ShedLayer<platform::shed::Http<axum::body::Body>> {
    let shed = metrics
        .counter_vec(
            "http_requests_shed_total",
            "HTTP requests refused with 503 because the gateway was at its concurrency limit.",
            &[],
        )
        .with_label_values(&[] as &[&str]);
    metrics
        .gauge(
            "http_concurrency_limit",
            "Requests the gateway handles at once before shedding (saturation = in_flight / limit).",
        )
        .set(limit as i64);
    shed::layer(limit, shed)
}

/// 405 for a route that exists with other methods (the router adds `Allow`).
async fn method_not_allowed(method: http::Method, uri: http::Uri) -> Response {
    let detail = format!("{method} is not allowed on {}", uri.path());
    if error::is_api_path(uri.path()) {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, detail).into_response()
    } else {
        (StatusCode::METHOD_NOT_ALLOWED, detail).into_response()
    }
}
