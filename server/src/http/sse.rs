//! Server-sent events as `graphql-sse` speaks them in its "distinct connections" mode:
//! each execution result an `event: next` (a `chatEvents` event with its seq as the
//! SSE `id:`), then `event: complete`; keep-alive comments between. A client resumes
//! with `Last-Event-ID`, which the HTTP layer reads as `sinceSeq`.

use bytes::{BufMut, Bytes, BytesMut};
use hyper::http::request::Parts;

/// The response's `Content-Type`.
pub const CONTENT_TYPE: &str = "text/event-stream; charset=utf-8";

/// A keep-alive: a comment line, which clients skip.
pub const KEEP_ALIVE: &[u8] = b":\n\n";

/// The last event: the operation is done.
pub const COMPLETE: &[u8] = b"event: complete\ndata:\n\n";

/// An `event: next` carrying an execution result (compact JSON: one line), with `id`
/// when the event has a seq.
pub fn next(payload: &[u8], id: Option<u64>) -> Bytes {
    let mut b = BytesMut::with_capacity(payload.len() + 40);
    if let Some(id) = id {
        b.put_slice(b"id: ");
        b.put_slice(itoa::Buffer::new().format(id).as_bytes());
        b.put_u8(b'\n');
    }
    b.put_slice(b"event: next\ndata: ");
    b.put_slice(payload);
    b.put_slice(b"\n\n");
    b.freeze()
}

/// Whether an `Accept` range is `text/event-stream`.
pub fn is_media_range(range: &str) -> bool {
    range.eq_ignore_ascii_case("text/event-stream")
}

/// The seq of the request's `Last-Event-ID`, when it carries one (an id this server
/// sent: a number).
pub fn last_event_id(head: &Parts) -> Option<u64> {
    head.headers
        .get("last-event-id")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_events_carry_their_seq_as_id() {
        assert_eq!(
            &next(br#"{"data":{}}"#, Some(7))[..],
            b"id: 7\nevent: next\ndata: {\"data\":{}}\n\n"
        );
        assert_eq!(&next(b"{}", None)[..], b"event: next\ndata: {}\n\n");
    }
}
