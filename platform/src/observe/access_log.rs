//! The server's access log of gRPC calls.

use super::Observer;

/// The server's access log: a line per call (errors and slow calls always, a sample of the
/// rest, see `ACCESS_LOG_SAMPLE`), inside the call's span so it carries the trace id; health
/// checks only at debug; shed calls none (see [`crate::shed`]).
#[derive(Clone, Copy)]
pub struct RpcAccessLog;

/// A call whose line may be written.
pub struct AccessLogCall {
    span: tracing::Span,
    start: std::time::Instant,
    health: bool,
}

impl Observer for RpcAccessLog {
    type Call = AccessLogCall;

    fn start<B>(&self, service: &str, _: &str, _: &mut http::Request<B>) -> AccessLogCall {
        AccessLogCall {
            span: tracing::Span::current(),
            start: std::time::Instant::now(),
            health: service.starts_with("grpc."),
        }
    }

    /// Access logs filtered out: nothing to time.
    fn active(&self) -> bool {
        tracing::enabled!(tracing::Level::INFO)
    }

    /// A shed call has no line of its own: the shed layer writes one per interval for all.
    fn shed(&self, _: AccessLogCall) {}

    fn end(&self, call: AccessLogCall, code: i32) {
        let elapsed = call.start.elapsed();
        if !crate::telemetry::access_logged(code != 0, elapsed) {
            return;
        }
        let (grpc_code, elapsed_ms) = (
            crate::metrics::code_name(code),
            elapsed.as_secs_f64() * 1000.0,
        );
        if call.health {
            tracing::debug!(parent: &call.span, grpc.code = grpc_code, elapsed_ms, "rpc handled");
        } else {
            tracing::info!(parent: &call.span, grpc.code = grpc_code, elapsed_ms, "rpc handled");
        }
    }
}
