//! The span of every gRPC call, on either side.

use super::Observer;
use crate::{
    metrics::Side,
    telemetry::{continue_trace, inject_trace},
};

/// A span per gRPC call, named and attributed per the OpenTelemetry RPC conventions, continuing
/// the caller's trace (server) or carrying it to the callee (client); the outermost observer, so
/// the others log inside the span.
#[derive(Clone, Copy)]
pub struct RpcSpan(pub Side);

impl Observer for RpcSpan {
    type Call = tracing::Span;

    fn start<B>(&self, service: &str, method: &str, req: &mut http::Request<B>) -> tracing::Span {
        let span = match self.0 {
            Side::Server => tracing::info_span!(
                "grpc.server",
                otel.name = %format_args!("{service}/{method}"),
                otel.kind = "server",
                otel.status_code = tracing::field::Empty,
                rpc.system = "grpc",
                rpc.service = %service,
                rpc.method = %method,
                rpc.grpc.status_code = tracing::field::Empty,
                fault.injected = tracing::field::Empty,
            ),
            Side::Client => tracing::info_span!(
                "grpc.client",
                otel.name = %format_args!("{service}/{method}"),
                otel.kind = "client",
                otel.status_code = tracing::field::Empty,
                rpc.system = "grpc",
                rpc.service = %service,
                rpc.method = %method,
                rpc.grpc.status_code = tracing::field::Empty,
            ),
        };
        match self.0 {
            Side::Server => continue_trace(&span, req.headers()),
            Side::Client => inject_trace(&span, req.headers_mut()),
        }
        span
    }

    fn enter(span: &tracing::Span) -> Option<tracing::span::Entered<'_>> {
        Some(span.enter())
    }

    /// Spans filtered out (e.g. `RUST_LOG=warn`): no span, no trace context to carry.
    fn active(&self) -> bool {
        tracing::enabled!(tracing::Level::INFO)
    }

    /// Records the status; errors as the RPC conventions define them per side.
    fn end(&self, span: tracing::Span, code: i32) {
        span.record("rpc.grpc.status_code", code);
        let is_error = match self.0 {
            // Server spans: only codes that mean the server failed.
            Side::Server => matches!(code, 2 | 4 | 12 | 13 | 14 | 15),
            Side::Client => code != 0,
        };
        if is_error {
            span.record("otel.status_code", "ERROR");
        }
    }
}
