//! Apollo's multipart HTTP protocol for subscriptions (`Accept:
//! multipart/mixed;subscriptionSpec="1.0"`), as Apollo Client's `HttpLink` reads it:
//! boundary `graphql`, each part `Content-Type: application/json` holding
//! `{"payload": <execution result>}`, heartbeats `{}` between, and the final boundary
//! `--graphql--` when the operation is done.
//!
//! Clients read a part when the boundary after it arrives, so each part is written
//! with the next boundary right behind it; the stream ends with an empty part `{}`
//! (which clients skip, as a heartbeat) closed by the final boundary.

use bytes::{BufMut, Bytes, BytesMut};

/// The response's `Content-Type`.
pub const CONTENT_TYPE: &str = "multipart/mixed;boundary=\"graphql\";subscriptionSpec=\"1.0\"";

/// The first boundary, before any part.
pub const HEAD: &[u8] = b"\r\n--graphql\r\n";

const PART_HEADERS: &[u8] = b"Content-Type: application/json\r\n\r\n";

/// A heartbeat: an empty part, which clients skip.
pub const HEARTBEAT: &[u8] = b"Content-Type: application/json\r\n\r\n{}\r\n--graphql\r\n";

/// The end: an empty part and the final boundary.
pub const END: &[u8] = b"Content-Type: application/json\r\n\r\n{}\r\n--graphql--\r\n";

/// A part carrying an execution result, and the boundary after it.
pub fn part(payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(payload.len() + 64);
    b.put_slice(PART_HEADERS);
    b.put_slice(b"{\"payload\":");
    b.put_slice(payload);
    b.put_slice(b"}\r\n--graphql\r\n");
    b.freeze()
}

/// Whether an `Accept` range with its parameters asks for this protocol:
/// `multipart/mixed` with `subscriptionSpec=1.0` (quoted or not).
pub fn is_media_range(range: &str, mut params: impl Iterator<Item = (String, String)>) -> bool {
    range.eq_ignore_ascii_case("multipart/mixed")
        && params.any(|(k, v)| k.eq_ignore_ascii_case("subscriptionSpec") && v == "1.0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_is_the_payload_wrapped_and_followed_by_the_boundary() {
        assert_eq!(
            &part(br#"{"data":{"a":1}}"#)[..],
            &b"Content-Type: application/json\r\n\r\n{\"payload\":{\"data\":{\"a\":1}}}\r\n--graphql\r\n"[..]
        );
    }
}
