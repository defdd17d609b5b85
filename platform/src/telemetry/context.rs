//! W3C trace context without an OpenTelemetry pipeline: when no exporter is configured, every
//! span still gets a trace id and a span id (kept in its extensions, inherited by its children,
//! taken from an incoming `traceparent`, written into outgoing ones), so log lines carry the
//! trace id and calls across services stay correlated, at the cost of one small extension per
//! span instead of a full OpenTelemetry span that nobody would export.

use tracing::{Subscriber, span};
use tracing_subscriber::{Registry, layer::Context, registry::LookupSpan};

/// A span's place in its trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceIds {
    pub trace_id: u128,
    pub span_id: u64,
    /// The W3C trace flags (bit 0: sampled), passed along unchanged.
    pub flags: u8,
}

/// Gives each new span its [`TraceIds`]: its parent's trace (or a new one) and a fresh span id.
pub struct TraceIdsLayer;

impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for TraceIdsLayer {
    fn on_new_span(&self, _attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let inherited = span.parent().and_then(|p| {
            p.extensions()
                .get::<TraceIds>()
                .map(|t| (t.trace_id, t.flags))
        });
        let (trace_id, flags) = inherited.unwrap_or_else(|| (new_trace_id(), 1));
        span.extensions_mut().insert(TraceIds {
            trace_id,
            span_id: new_span_id(),
            flags,
        });
    }
}

/// The ids of `span`, if this process keeps them (see [`TraceIdsLayer`]).
pub fn ids_of(span: &tracing::Span) -> Option<TraceIds> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let span = registry.span(id)?;
        span.extensions().get::<TraceIds>().copied()
    })
    .flatten()
}

/// Makes `span` part of the trace a `traceparent` names: same trace id and flags. Its children
/// created afterwards inherit them.
pub fn adopt(span: &tracing::Span, remote: TraceIds) {
    span.with_subscriber(|(id, dispatch)| {
        if let Some(span) = dispatch.downcast_ref::<Registry>().and_then(|r| r.span(id))
            && let Some(ids) = span.extensions_mut().get_mut::<TraceIds>()
        {
            ids.trace_id = remote.trace_id;
            ids.flags = remote.flags;
        }
    });
}

/// Parses a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`); `None` when it is malformed or
/// names the invalid all-zero ids, as the specification says to ignore such a header.
pub fn parse_traceparent(value: &str) -> Option<TraceIds> {
    let mut parts = value.trim().split('-');
    let version = parts.next()?;
    let (trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?);
    // Version 00 has exactly four fields; a later version may add more after these.
    if version.len() != 2
        || version == "ff"
        || (version == "00" && parts.next().is_some())
        || trace.len() != 32
        || parent.len() != 16
        || flags.len() != 2
    {
        return None;
    }
    let hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !(hex(version) && hex(trace) && hex(parent) && hex(flags)) {
        return None;
    }
    let ids = TraceIds {
        trace_id: u128::from_str_radix(trace, 16).ok()?,
        span_id: u64::from_str_radix(parent, 16).ok()?,
        flags: u8::from_str_radix(flags, 16).ok()?,
    };
    (ids.trace_id != 0 && ids.span_id != 0).then_some(ids)
}

/// The `traceparent` header value for a call made inside a span with these ids.
pub fn traceparent(ids: TraceIds) -> String {
    format!(
        "00-{:032x}-{:016x}-{:02x}",
        ids.trace_id, ids.span_id, ids.flags
    )
}

fn new_span_id() -> u64 {
    crate::random_u64()
}

fn new_trace_id() -> u128 {
    (u128::from(crate::random_u64()) << 64) | u128::from(crate::random_u64())
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn a_traceparent_parses_and_prints_back() {
        let v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ids = parse_traceparent(v).unwrap();
        assert_eq!(ids.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(ids.span_id, 0x00f067aa0ba902b7);
        assert_eq!(ids.flags, 1);
        assert_eq!(traceparent(ids), v);
    }

    #[test]
    fn malformed_or_zero_traceparents_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad:?}");
        }
        // A later version may carry more fields after the four it shares with 00.
        assert!(
            parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
                .is_some()
        );
    }

    #[test]
    fn children_inherit_the_trace_and_an_adopted_parent_wins() {
        let subscriber = tracing_subscriber::registry().with(TraceIdsLayer);
        tracing::subscriber::with_default(subscriber, || {
            let root = tracing::info_span!("root");
            let remote =
                parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
                    .unwrap();
            adopt(&root, remote);
            let child = root.in_scope(|| tracing::info_span!("child"));
            let (r, c) = (ids_of(&root).unwrap(), ids_of(&child).unwrap());
            assert_eq!(r.trace_id, remote.trace_id);
            assert_eq!(c.trace_id, remote.trace_id);
            assert_eq!(c.flags, 0, "flags travel with the trace");
            assert_ne!(c.span_id, r.span_id);
            assert_ne!(
                r.span_id, remote.span_id,
                "the remote span is the parent, not this one"
            );

            let other = tracing::info_span!(parent: None, "other");
            assert_ne!(ids_of(&other).unwrap().trace_id, remote.trace_id);
        });
    }
}
