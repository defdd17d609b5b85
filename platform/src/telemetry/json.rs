//! JSON log lines: one object per event with time, level, service, target, message and fields,
//! the name of the span the event belongs to, and that span's trace_id and span_id. Written
//! straight into a per-thread buffer (no map, no per-field allocation) and onto stdout in one
//! write: a log line per request must be cheap. Spans themselves cost this layer nothing: their
//! fields are never formatted.

use std::{
    cell::RefCell,
    fmt::{self, Write as _},
    io::Write as _,
};

use tracing::{Event, Subscriber, field::Field};
use tracing_subscriber::{layer::Context, registry::LookupSpan};

/// The layer writing JSON lines for `service`.
pub struct JsonLog {
    pub service: &'static str,
}

thread_local! {
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(512));
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for JsonLog {
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let write = |line: &mut String| {
            line.clear();
            if self.format(line, event, &ctx).is_ok() {
                let _ = std::io::stdout().lock().write_all(line.as_bytes());
            }
        };
        LINE.with(|buf| match buf.try_borrow_mut() {
            Ok(mut line) => write(&mut line),
            // An event logged while this thread writes one (a Debug impl that logs): its own line.
            Err(_) => write(&mut String::new()),
        });
    }
}

impl JsonLog {
    fn format<S: Subscriber + for<'a> LookupSpan<'a>>(
        &self,
        w: &mut String,
        event: &Event<'_>,
        ctx: &Context<'_, S>,
    ) -> fmt::Result {
        let meta = event.metadata();
        write!(
            w,
            "{{\"timestamp_ms\":{},\"level\":\"{}\",\"service.name\":\"",
            crate::now_unix_ms(),
            meta.level().as_str()
        )?;
        json_escape(w, self.service)?;
        w.write_str("\",\"target\":\"")?;
        json_escape(w, meta.target())?;
        w.write_char('"')?;
        let mut visitor = FieldsVisitor { w, result: Ok(()) };
        event.record(&mut visitor);
        visitor.result?;
        if let Some(span) = ctx.event_span(event) {
            w.write_str(",\"span\":\"")?;
            json_escape(w, span.name())?;
            w.write_char('"')?;
            if let Some((trace_id, span_id)) = super::span_ref_ids(&span) {
                write!(
                    w,
                    ",\"trace_id\":\"{trace_id:032x}\",\"span_id\":\"{span_id:016x}\""
                )?;
            }
        }
        w.write_str("}\n")
    }
}

/// Writes `s` as the body of a JSON string (without the quotes).
pub(crate) fn json_escape(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
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

struct FieldsVisitor<'a> {
    w: &'a mut String,
    result: fmt::Result,
}

impl FieldsVisitor<'_> {
    fn put(&mut self, field: &Field, value: impl FnOnce(&mut String) -> fmt::Result) {
        if self.result.is_ok() {
            self.w.push_str(",\"");
            self.result = json_escape(self.w, field.name())
                .and_then(|()| self.w.write_str("\":"))
                .and_then(|()| value(self.w));
        }
    }
}

impl tracing::field::Visit for FieldsVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, |w| {
            w.push('"');
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
            w.push('"');
            write!(Escaping(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

#[cfg(test)]
mod tests {
    use super::json_escape;

    #[test]
    fn strings_are_escaped_as_json_wants() {
        let mut out = String::new();
        json_escape(&mut out, "a \"quoted\" \\ line\nwith\ttab and \u{1} bell").unwrap();
        let parsed: String = serde_json::from_str(&format!("\"{out}\"")).unwrap();
        assert_eq!(parsed, "a \"quoted\" \\ line\nwith\ttab and \u{1} bell");
    }
}
