//! A `tracing` layer that writes each event as one JSON object per line:
//! `{"timestamp":"…","level":"INFO","message":"…",<fields>…,"target":"…"}`.
//!
//! Written for the access log, which runs once per request: no intermediate value tree,
//! no UTF-8 re-validation, strings escaped straight into the thread's line buffer.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use super::{clock, sink};

/// The JSON line layer.
#[derive(Debug, Default)]
pub struct JsonLayer;

impl<S: Subscriber> Layer<S> for JsonLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        sink::emit(|out| write_event(out, event));
    }
}

/// Appends `event` as one JSON line.
pub fn write_event(out: &mut Vec<u8>, event: &Event<'_>) {
    let meta = event.metadata();
    out.extend_from_slice(b"{\"timestamp\":\"");
    clock::write_now(out);
    out.extend_from_slice(b"\",\"level\":\"");
    out.extend_from_slice(meta.level().as_str().as_bytes());
    out.push(b'"');
    event.record(&mut FieldWriter { out });
    out.extend_from_slice(b",\"target\":");
    write_str(out, meta.target());
    out.extend_from_slice(b"}\n");
}

/// Writes each field as `,"name":value`.
struct FieldWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl FieldWriter<'_> {
    fn key(&mut self, field: &Field) {
        self.out.push(b',');
        write_str(self.out, field.name());
        self.out.push(b':');
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        write_str(self.out, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            // Display of a finite f64 is valid JSON (no exponent, no NaN).
            let _ = fmt::Write::write_fmt(&mut Escaped(self.out), format_args!("{value}"));
        } else {
            self.out.extend_from_slice(b"null");
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.key(field);
        self.out.push(b'"');
        let _ = fmt::Write::write_fmt(&mut Escaped(self.out), format_args!("{value}"));
        self.out.push(b'"');
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `message` and `%display` fields arrive here too; their Debug is their text.
        self.key(field);
        self.out.push(b'"');
        let _ = fmt::Write::write_fmt(&mut Escaped(self.out), format_args!("{value:?}"));
        self.out.push(b'"');
    }
}

/// Appends `s` as a JSON string literal.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape_into(out, s);
    out.push(b'"');
}

/// A `fmt::Write` that escapes what it is given into a JSON string's contents.
struct Escaped<'a>(&'a mut Vec<u8>);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_into(self.0, s);
        Ok(())
    }
}

/// Appends `s` escaped for the inside of a JSON string.
fn escape_into(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f | 0x7f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    fn escaped(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_json() {
        for s in [
            "plain",
            "quote \" and \\ back",
            "line\nbreak\ttab\r",
            "\u{1}\u{1f}\u{7f}",
            "héllo ✓",
            "",
        ] {
            let json = escaped(s);
            let back: String =
                serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(back, s);
        }
    }

    #[test]
    fn events_become_one_json_line_with_their_fields() {
        let subscriber = tracing_subscriber::registry().with(JsonLayer);
        tracing::subscriber::with_default(subscriber, || {
            sink::batch_this_thread();
            let _ = sink::take_batched();
            let ip: std::net::IpAddr = "10.1.2.3".parse().unwrap();
            tracing::info!(
                target: "streamhub::access",
                method = "GET",
                status = 200u16,
                delta = -3i64,
                ok = true,
                ratio = 0.5,
                client_ip = %ip,
                path = "/a\"b",
                "request {}", "done"
            );
            tracing::warn!(missing = tracing::field::Empty, "second");
        });
        let text = String::from_utf8(sink::take_batched()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "streamhub::access");
        assert_eq!(v["message"], "request done");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["status"], 200);
        assert_eq!(v["delta"], -3);
        assert_eq!(v["ok"], true);
        assert_eq!(v["ratio"], 0.5);
        assert_eq!(v["client_ip"], "10.1.2.3");
        assert_eq!(v["path"], "/a\"b");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        let w: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(w["level"], "WARN");
        assert!(w.get("missing").is_none());
    }
}
