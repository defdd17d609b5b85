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
/// names the invalid all-zero ids, as the specification says to ignore such a header. Read by
/// position (every call carries one), lowercase hex only, as the specification writes it.
pub fn parse_traceparent(value: &str) -> Option<TraceIds> {
    let v = value.trim().as_bytes();
    // version "-" trace "-" parent "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 bytes.
    const LEN: usize = 55;
    if v.len() < LEN || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = hex_value(&v[..2])?;
    // Version 00 has exactly four fields; a later version may add more after these.
    if version == 0xff || (v.len() > LEN && (version == 0 || v[LEN] != b'-')) {
        return None;
    }
    let ids = TraceIds {
        trace_id: hex_value(&v[3..35])?,
        span_id: u64::try_from(hex_value(&v[36..52])?).ok()?,
        flags: u8::try_from(hex_value(&v[53..55])?).ok()?,
    };
    (ids.trace_id != 0 && ids.span_id != 0).then_some(ids)
}

/// The value of up to 32 lowercase hex digits.
fn hex_value(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |n, &b| {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        Some(n << 4 | u128::from(d))
    })
}

/// The `traceparent` header value for a call made inside a span with these ids. One is written
/// per call, so without the formatting machinery; and it is marked sensitive, which HPACK reads
/// as "never index": a value unique to each call would only churn the connection's header table.
pub fn traceparent(ids: TraceIds) -> http::HeaderValue {
    let mut v = *b"00-00000000000000000000000000000000-0000000000000000-00";
    hex(&mut v[3..35], &ids.trace_id.to_be_bytes());
    hex(&mut v[36..52], &ids.span_id.to_be_bytes());
    hex(&mut v[53..55], &[ids.flags]);
    let mut value = http::HeaderValue::from_bytes(&v).expect("hex digits and dashes");
    value.set_sensitive(true);
    value
}

/// Writes `bytes` into `out` as lowercase hex (`out` is twice as long).
fn hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
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
        let printed = traceparent(ids);
        assert_eq!(printed, v);
        assert!(printed.is_sensitive(), "never indexed by HPACK");
        let small = TraceIds {
            trace_id: 0xa,
            span_id: 0xb,
            flags: 0,
        };
        assert_eq!(
            traceparent(small),
            "00-0000000000000000000000000000000a-000000000000000b-00"
        );
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
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736+00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad:?}");
        }
        assert!(
            parse_traceparent(" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ")
                .is_some()
        );
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
