//! The `tracing` subscriber: JSON lines in containers, readable text on a terminal.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::{LogFormat, TelemetryArgs};

/// Keeps telemetry alive; dropping it at the end of `main` flushes what is buffered.
#[must_use = "telemetry stops when the guard is dropped"]
pub struct TelemetryGuard {
    _private: (),
}

/// Installs the global subscriber for a binary named `service`.
pub fn init(service: &'static str, args: &TelemetryArgs) -> TelemetryGuard {
    let filter = EnvFilter::try_new(&args.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match args.log_format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init()
    } else {
        registry.with(fmt::layer()).try_init()
    };
    if result.is_ok() {
        tracing::info!(
            service,
            version = env!("CARGO_PKG_VERSION"),
            "telemetry ready"
        );
    }
    TelemetryGuard { _private: () }
}

use crate::metrics::Side;

/// Opens the span of one gRPC call, named and attributed per the OpenTelemetry RPC conventions.
pub fn rpc_span<B>(
    side: Side,
    service: &str,
    method: &str,
    _req: &mut http::Request<B>,
) -> tracing::Span {
    let name = format!("{service}/{method}");
    match side {
        Side::Server => tracing::info_span!(
            "grpc.server",
            otel.name = %name,
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
        ),
        Side::Client => tracing::info_span!(
            "grpc.client",
            otel.name = %name,
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
        ),
    }
}

/// Records a call's status on its span; errors as the RPC conventions define them per side.
pub fn record_rpc_status(span: &tracing::Span, side: Side, code: i32) {
    span.record("rpc.grpc.status_code", code);
    let is_error = match side {
        // Server spans: only codes that mean the server failed.
        Side::Server => matches!(code, 2 | 4 | 12 | 13 | 14 | 15),
        Side::Client => code != 0,
    };
    if is_error {
        span.record("otel.status_code", "ERROR");
    }
}
