//! Telemetry for every binary: the `tracing` subscriber (JSON lines carrying trace_id/span_id in
//! containers, readable text on a terminal), OpenTelemetry spans exported over OTLP/gRPC when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and W3C trace-context propagation through HTTP and gRPC
//! headers either way.
//!
//! Without an exporter no OpenTelemetry span is built: [`context::TraceIdsLayer`] gives every
//! span its ids (a few bytes in its extensions), which is all logs and propagation need.

pub mod context;
mod json;
mod throttle;

pub use throttle::LogThrottle;

use std::{
    io::IsTerminal,
    sync::atomic::{AtomicBool, Ordering},
};

use opentelemetry::{
    KeyValue, global,
    propagation::{Extractor, Injector},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter,
    filter::Targets,
    layer::SubscriberExt,
    registry::{LookupSpan, SpanRef},
    util::SubscriberInitExt,
};

use crate::config::{LogFormat, TelemetryArgs};

/// Keeps telemetry alive; dropping it at the end of `main` flushes the spans still buffered.
#[must_use = "telemetry stops when the guard is dropped"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = &self.provider {
            let _ = provider.shutdown();
        }
    }
}

/// Whether spans go through OpenTelemetry (an exporter is configured) rather than
/// [`context::TraceIdsLayer`]. Set once by [`init`].
static OTEL: AtomicBool = AtomicBool::new(false);

fn otel() -> bool {
    OTEL.load(Ordering::Relaxed)
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

/// The tracer provider exporting over OTLP/gRPC to `OTEL_EXPORTER_OTLP_ENDPOINT`; `None` when
/// it is unset (or the exporter cannot be built): then spans get ids but no OpenTelemetry span.
fn provider(service: &'static str) -> Option<SdkTracerProvider> {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_default();
    if endpoint.is_empty() {
        return None;
    }
    match opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
    {
        Ok(exporter) => Some(
            SdkTracerProvider::builder()
                .with_resource(resource(service))
                .with_batch_exporter(exporter)
                .build(),
        ),
        Err(error) => {
            eprintln!(
                "OTLP exporter to {endpoint} could not be built ({error}); spans are not exported"
            );
            None
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
    if let Some(provider) = &provider {
        global::set_tracer_provider(provider.clone());
        OTEL.store(true, Ordering::Relaxed);
    }
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service)));
    let ids = provider.is_none().then_some(context::TraceIdsLayer);

    let (targets, env_filter) = log_filter(&args.log_filter);
    let json = match args.log_format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let result = tracing_subscriber::registry()
        .with(targets)
        .with(env_filter)
        .with(otel)
        .with(ids)
        .with(json.then_some(json::JsonLog { service }))
        .with((!json).then(tracing_subscriber::fmt::layer))
        .try_init();
    if result.is_ok() {
        tracing::info!(
            service,
            version = env!("CARGO_PKG_VERSION"),
            exporting = provider.is_some(),
            "telemetry ready"
        );
    }
    TelemetryGuard { provider }
}

/// The filter `RUST_LOG` asks for, one of two: targets and levels only (the usual case) as a
/// [`Targets`] filter, which decides once per callsite; anything else as an [`EnvFilter`], which
/// must look every span up, under a read lock shared by all threads, when it opens, each time it
/// is entered or left, and when it closes. A filter EnvFilter refuses means `info`, as before.
fn log_filter(spec: &str) -> (Option<Targets>, Option<EnvFilter>) {
    let Ok(env) = EnvFilter::try_new(spec) else {
        return (None, Some(EnvFilter::new("info")));
    };
    // Targets reads some specs otherwise than EnvFilter: `[span]` as a target's name, an empty
    // piece (`info,`) as ERROR, a piece with spaces around it as a target with spaces. Those,
    // and an empty filter, keep EnvFilter's meaning.
    let plain = spec
        .split(',')
        .all(|d| !d.is_empty() && d.trim() == d && !d.contains(['[', ']', '{', '}']));
    match spec.parse::<Targets>() {
        Ok(targets) if plain => (Some(targets), None),
        _ => (None, Some(env)),
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

/// The trace and span id of a span as a log line shows them, from whichever of OpenTelemetry or
/// [`context::TraceIdsLayer`] keeps them.
fn span_ref_ids<S: Subscriber + for<'a> LookupSpan<'a>>(
    span: &SpanRef<'_, S>,
) -> Option<(u128, u64)> {
    if !otel() {
        return span
            .extensions()
            .get::<context::TraceIds>()
            .map(|ids| (ids.trace_id, ids.span_id));
    }
    tracing::dispatcher::get_default(|d| {
        let cx = tracing_opentelemetry::get_otel_context(&span.id(), d)?;
        let sc = cx.span().span_context().clone();
        sc.is_valid().then(|| {
            (
                u128::from_be_bytes(sc.trace_id().to_bytes()),
                u64::from_be_bytes(sc.span_id().to_bytes()),
            )
        })
    })
}

/// Makes `span` a child of the trace context carried by `headers` (`traceparent`/`tracestate`),
/// if any: an incoming request continues its caller's trace instead of starting a new one.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if !otel() {
        if let Some(remote) = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(context::parse_traceparent)
        {
            context::adopt(span, remote);
        }
        return;
    }
    let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Writes `span`'s trace context into outgoing `headers`, so the callee continues the trace.
pub fn inject_trace(span: &tracing::Span, headers: &mut http::HeaderMap) {
    if !otel() {
        if let Some(ids) = context::ids_of(span) {
            headers.insert("traceparent", context::traceparent(ids));
        }
        return;
    }
    let cx = span.context();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut HeaderInjector(headers)));
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::log_filter;

    #[test]
    fn targets_and_levels_get_the_static_filter_with_their_meaning() {
        let (targets, env) = log_filter("info");
        let targets = targets.expect("a plain level is a Targets filter");
        assert!(env.is_none());
        assert!(targets.would_enable("gateway", &Level::INFO));
        assert!(!targets.would_enable("gateway", &Level::DEBUG));

        let (targets, _) = log_filter("warn,gateway::api=debug");
        let targets = targets.expect("targets and levels");
        assert!(targets.would_enable("gateway::api::books", &Level::DEBUG));
        assert!(!targets.would_enable("gateway::pages", &Level::INFO));
        assert!(targets.would_enable("hyper", &Level::WARN));
    }

    #[test]
    fn span_directives_and_odd_filters_keep_env_filter_meaning() {
        for spec in [
            "[grpc.server]=debug",
            "info,[{rpc.method=GetBook}]=trace",
            "",
            "  ",
            // Targets would read the empty piece as ERROR for everything.
            "info,",
            "info,,gateway=debug",
        ] {
            let (targets, env) = log_filter(spec);
            assert!(targets.is_none() && env.is_some(), "{spec:?}");
        }
        let (_, env) = log_filter("info,");
        assert_eq!(env.unwrap().to_string(), "info");
        // EnvFilter refuses them (Targets would take them, meaning something else): `info`.
        for spec in ["gateway=loud", "*=debug", "warn, gateway=debug"] {
            let (targets, env) = log_filter(spec);
            assert!(targets.is_none(), "{spec:?}");
            assert_eq!(env.unwrap().to_string(), "info", "{spec:?}");
        }
    }
}
