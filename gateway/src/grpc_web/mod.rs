//! gRPC-Web on the public port: browsers (and any gRPC-Web client generated from `protos/`) call
//! the services' public methods through the gateway, over the same balanced, health-watched
//! channels as the REST API. tonic-web turns each call into plain gRPC, which is observed as a
//! server call (span continuing the caller's `traceparent`, `grpc_server_*` metrics, access log),
//! bounded by the caller's deadline and the gateway's own, and forwarded byte for byte: the
//! messages are decoded only where the gateway must read them (sign-in budgets).
//!
//! Methods meant for services only (`DeleteUserRatings`, `RevokeSession`, health, reflection)
//! are not on the list and answer UNIMPLEMENTED. CORS is answered for the configured origins only.

mod forward;
mod methods;

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::Router;
use http::{HeaderName, HeaderValue, Method};
use platform::{
    deadline::DeadlineLayer,
    metrics::{Metrics, Side},
    observe::{Observe, RpcAccessLog, RpcMetrics, RpcSpan},
};
use tonic::body::Body;
use tower::{ServiceBuilder, service_fn};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
};

use self::{
    forward::{Forward, refusal},
    methods::{PUBLIC, REFUSED_SERVICES},
};
use crate::AppState;

/// The request headers a browser may send on a gRPC-Web call.
const ALLOWED_HEADERS: [&str; 7] = [
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "authorization",
    "traceparent",
    "tracestate",
];

/// The response headers a browser's script may read.
const EXPOSED_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// The CORS answer for gRPC-Web: the given origins only (none: no cross-origin caller at all).
pub fn cors(origins: &[HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([Method::POST])
        .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
        .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
        .max_age(Duration::from_secs(600))
}

/// The gRPC-Web routes: one per public method (so metrics and spans are labelled by method),
/// and an UNIMPLEMENTED answer for every other method of the services, health and reflection.
pub fn router(state: &AppState, metrics: &Metrics, origins: &[HeaderValue]) -> Router<AppState> {
    let forward = Arc::new(Forward {
        state: state.clone(),
        upstreams: state.upstreams.channels.clone(),
    });
    let inner = service_fn(move |req: http::Request<Body>| {
        let forward = forward.clone();
        async move { Ok::<_, Infallible>(forward.call(req).await.unwrap_or_else(refusal)) }
    });
    // Inside tonic-web, a gRPC call like any other: one span (continuing the caller's trace),
    // RED metrics and an access-log line, then the deadline answered DEADLINE_EXCEEDED.
    let grpc = ServiceBuilder::new()
        // The HTTP span has continued the caller's trace already: the call's span is its child.
        .map_request(|mut req: http::Request<Body>| {
            req.headers_mut().remove("traceparent");
            req.headers_mut().remove("tracestate");
            req
        })
        .layer(Observe::new(
            (
                RpcSpan(Side::Server),
                (RpcMetrics::new(metrics, Side::Server), RpcAccessLog),
            ),
            Side::Server,
        ))
        .layer(DeadlineLayer::new(None))
        .service(inner);
    let web = ServiceBuilder::new()
        .layer(cors(origins))
        .map_response(|r: http::Response<_>| r.map(axum::body::Body::new))
        // The REST API's body limit is its extractors'; a forwarded call has none, so it is
        // applied here: 413 before any service is asked.
        .layer(RequestBodyLimitLayer::new(state.body_limit))
        .layer(tonic_web::GrpcWebLayer::new())
        .service(grpc);
    let mut router = Router::new();
    for method in PUBLIC {
        router = router.route_service(method.path, web.clone());
    }
    for service in REFUSED_SERVICES {
        router = router.route_service(&format!("/{service}/{{method}}"), web.clone());
    }
    router
}

/// Whether `path` is a gRPC-Web route (so the pages' CSRF guard leaves it to CORS and tokens).
pub fn is_grpc_web_path(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .is_some_and(|(service, _)| REFUSED_SERVICES.contains(&service))
}
