//! Telemetry for every binary: the `tracing` subscriber (JSON lines carrying trace_id/span_id in
//! containers, readable text on a terminal), OpenTelemetry spans exported over OTLP/gRPC when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and W3C trace-context propagation through HTTP and gRPC
//! headers.

use std::{
    fmt::{self, Write as _},
    io::IsTerminal,
};

use opentelemetry::{
    KeyValue, global,
    propagation::{Extractor, Injector},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing::{Event, Subscriber, field::Field};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter,
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    layer::SubscriberExt,
    registry::LookupSpan,
    util::SubscriberInitExt,
};

use crate::{
    config::{LogFormat, TelemetryArgs},
    metrics::Side,
};

/// Keeps telemetry alive; dropping it at the end of `main` flushes the spans still buffered.
#[must_use = "telemetry stops when the guard is dropped"]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// The resource every span of this process carries: service name and version, and the
/// Kubernetes pod and namespace when the downward API provides them.
fn resource(service: &'static str) -> Resource {
    let mut attrs = vec![KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))];
    for (env, key) in [
        ("POD_NAME", "k8s.pod.name"),
        ("POD_NAMESPACE", "k8s.namespace.name"),
    ] {
        if let Ok(v) = std::env::var(env)
            && !v.is_empty()
        {
            attrs.push(KeyValue::new(key, v));
        }
    }
    Resource::builder()
        .with_service_name(service)
        .with_attributes(attrs)
        .build()
}

/// The tracer provider: exporting over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is set;
/// otherwise spans still get ids (for propagation and logs) but go nowhere, silently.
fn provider(service: &'static str) -> SdkTracerProvider {
    let builder = SdkTracerProvider::builder().with_resource(resource(service));
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_default();
    if endpoint.is_empty() {
        return builder.build();
    }
    match opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
    {
        Ok(exporter) => builder.with_batch_exporter(exporter).build(),
        Err(error) => {
            eprintln!(
                "OTLP exporter to {endpoint} could not be built ({error}); spans are not exported"
            );
            builder.build()
        }
    }
}

/// Which requests get an access-log line: every error and every slow one, and one in `every` of
/// the others (a counter, not a random draw: cheap and even). Process-wide, set by [`init`];
/// without it (in-process tests) every request is logged.
#[derive(Debug)]
struct AccessLog {
    every: u64,
    slow: std::time::Duration,
    seen: std::sync::atomic::AtomicU64,
}

static ACCESS_LOG: std::sync::OnceLock<AccessLog> = std::sync::OnceLock::new();

/// Whether this request's access-log line is written (see `ACCESS_LOG_SAMPLE`).
pub fn access_logged(failed: bool, elapsed: std::time::Duration) -> bool {
    let Some(policy) = ACCESS_LOG.get() else {
        return true;
    };
    if failed || elapsed >= policy.slow || policy.every <= 1 {
        return true;
    }
    policy
        .seen
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .is_multiple_of(policy.every)
}

/// Installs the global subscriber and propagator for a binary named `service`.
/// Call it inside the Tokio runtime (the OTLP exporter needs one).
pub fn init(service: &'static str, args: &TelemetryArgs) -> TelemetryGuard {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let sample = args.access_log_sample.clamp(0.0, 1.0);
    let _ = ACCESS_LOG.set(AccessLog {
        every: if sample <= 0.0 {
            u64::MAX
        } else {
            (1.0 / sample).round() as u64
        },
        slow: std::time::Duration::from_millis(args.access_log_slow_ms),
        seen: std::sync::atomic::AtomicU64::new(0),
    });
    let provider = provider(service);
    global::set_tracer_provider(provider.clone());
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(service));

    let filter = EnvFilter::try_new(&args.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match args.log_format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let result = if json {
        registry
            .with(tracing_subscriber::fmt::layer().event_format(JsonLines { service }))
            .try_init()
    } else {
        registry.with(tracing_subscriber::fmt::layer()).try_init()
    };
    if result.is_ok() {
        tracing::info!(
            service,
            version = env!("CARGO_PKG_VERSION"),
            "telemetry ready"
        );
    }
    TelemetryGuard { provider }
}

/// One JSON object per line: time, level, target, message and fields, the current span's name,
/// and the OpenTelemetry trace_id and span_id of the request the line belongs to. Written straight
/// into the output line (no map, no per-field allocation): a log line per request must be cheap.
struct JsonLines {
    service: &'static str,
}

/// Writes `s` as the body of a JSON string (without the quotes).
fn json_escape(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        w.write_str(&s[start..i])?;
        match esc {
            Some(e) => w.write_str(e)?,
            None => write!(w, "\\u{b:04x}")?,
        }
        start = i + 1;
    }
    w.write_str(&s[start..])
}

/// Escapes what a `Debug` or `Display` implementation writes, as it writes it.
struct Escaping<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        json_escape(self.0, s)
    }
}

struct FieldsVisitor<'a, 'w> {
    w: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl FieldsVisitor<'_, '_> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        self.w.write_str(",\"")?;
        json_escape(self.w, field.name())?;
        self.w.write_str("\":")
    }

    fn put(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| value(self.w));
        }
    }
}

impl tracing::field::Visit for FieldsVisitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, |w| {
            w.write_char('"')?;
            json_escape(w, value)?;
            w.write_char('"')
        });
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, |w| write!(w, "{value}"));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, |w| write!(w, "{value}"));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, |w| {
            if value.is_finite() {
                write!(w, "{value}")
            } else {
                w.write_str("null")
            }
        });
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, |w| write!(w, "{value}"));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, |w| {
            w.write_char('"')?;
            write!(Escaping(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        write!(
            writer,
            "{{\"timestamp_ms\":{},\"level\":\"{}\",\"service.name\":\"",
            crate::now_unix_ms(),
            meta.level().as_str()
        )?;
        json_escape(&mut writer, self.service)?;
        writer.write_str("\",\"target\":\"")?;
        json_escape(&mut writer, meta.target())?;
        writer.write_char('"')?;
        let mut visitor = FieldsVisitor {
            w: &mut writer,
            result: Ok(()),
        };
        event.record(&mut visitor);
        visitor.result?;
        if let Some(span) = ctx.event_scope().and_then(|mut scope| scope.next()) {
            writer.write_str(",\"span\":\"")?;
            json_escape(&mut writer, span.name())?;
            writer.write_char('"')?;
            let ids = tracing::dispatcher::get_default(|d| {
                tracing_opentelemetry::get_otel_context(&span.id(), d).map(|cx| {
                    let sc = cx.span().span_context().clone();
                    sc.is_valid().then(|| (sc.trace_id(), sc.span_id()))
                })
            });
            if let Some(Some((trace_id, span_id))) = ids {
                write!(
                    writer,
                    ",\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\""
                )?;
            }
        }
        writer.write_str("}\n")
    }
}

/// Reads W3C trace-context headers from an HTTP header map.
pub struct HeaderExtractor<'a>(pub &'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Writes W3C trace-context headers into an HTTP header map.
pub struct HeaderInjector<'a>(pub &'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Makes `span` a child of the trace context carried by `headers` (`traceparent`/`tracestate`),
/// if any: an incoming request continues its caller's trace instead of starting a new one.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Writes `span`'s trace context into outgoing `headers`, so the callee continues the trace.
pub fn inject_trace(span: &tracing::Span, headers: &mut http::HeaderMap) {
    let cx = span.context();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut HeaderInjector(headers)));
}

/// Opens the span of one gRPC call, named and attributed per the OpenTelemetry RPC conventions.
pub fn rpc_span<B>(
    side: Side,
    service: &str,
    method: &str,
    req: &mut http::Request<B>,
) -> tracing::Span {
    let span = match side {
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
    match side {
        Side::Server => continue_trace(&span, req.headers()),
        Side::Client => inject_trace(&span, req.headers_mut()),
    }
    span
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

#[cfg(test)]
mod json_tests {
    use super::json_escape;

    #[test]
    fn strings_are_escaped_as_json_wants() {
        let mut out = String::new();
        json_escape(&mut out, "a \"quoted\" \\ line\nwith\ttab and \u{1} bell").unwrap();
        let parsed: String = serde_json::from_str(&format!("\"{out}\"")).unwrap();
        assert_eq!(parsed, "a \"quoted\" \\ line\nwith\ttab and \u{1} bell");
    }
}
