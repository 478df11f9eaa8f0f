//! The `graphql-transport-ws` protocol (the `graphql-ws` library's): client messages
//! parsed, server messages encoded as text frames, and the protocol's close codes.
//! A `next` frame for many subscribers of the same operation is spliced from one
//! rendered payload and each subscriber's id ([`next`]).

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::json;

use crate::frame;

/// The subprotocol name clients ask for.
pub const SUBPROTOCOL: &str = "graphql-transport-ws";

/// Close codes of the protocol.
pub mod close {
    /// A message the protocol does not allow.
    pub const BAD_REQUEST: u16 = 4400;
    /// `subscribe` before `connection_ack`.
    pub const UNAUTHORIZED: u16 = 4401;
    /// `connection_init` refused (a bad token).
    pub const FORBIDDEN: u16 = 4403;
    /// The subprotocol was not asked for.
    pub const SUBPROTOCOL_NOT_ACCEPTABLE: u16 = 4406;
    /// No `connection_init` in time.
    pub const INIT_TIMEOUT: u16 = 4408;
    /// A second subscription with an id in use.
    pub const SUBSCRIBER_EXISTS: u16 = 4409;
    /// A second `connection_init`.
    pub const TOO_MANY_INITS: u16 = 4429;
    /// The server failed.
    pub const INTERNAL: u16 = 4500;
}

/// A client message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// The first message: its payload carries the credentials.
    ConnectionInit {
        /// `{"token": ...}` or `{"Authorization": "Bearer ..."}`, or nothing.
        #[serde(default)]
        payload: Option<serde_json::Value>,
    },
    /// Keep-alive; answered with `pong`.
    Ping {
        /// Echoed back.
        #[serde(default)]
        payload: Option<serde_json::Value>,
    },
    /// The answer to a server `ping`.
    Pong {
        /// Ignored.
        #[serde(default)]
        payload: Option<serde_json::Value>,
    },
    /// Start an operation.
    Subscribe {
        /// The client's id for it.
        id: String,
        /// A GraphQL-over-HTTP request body.
        payload: serde_json::Value,
    },
    /// Stop an operation.
    Complete {
        /// Its id.
        id: String,
    },
}

/// Reads a client message; None if it is not one of the protocol's.
pub fn parse(text: &[u8]) -> Option<ClientMsg> {
    let msg: ClientMsg = serde_json::from_slice(text).ok()?;
    match &msg {
        // Ids must be non-empty strings.
        ClientMsg::Subscribe { id, payload } if id.is_empty() || !payload.is_object() => None,
        ClientMsg::Complete { id } if id.is_empty() => None,
        _ => Some(msg),
    }
}

fn text(v: &serde_json::Value) -> Bytes {
    frame::text(v.to_string().as_bytes())
}

/// `connection_ack`.
pub fn ack() -> Bytes {
    frame::text(br#"{"type":"connection_ack"}"#)
}

/// `pong`.
pub fn pong() -> Bytes {
    frame::text(br#"{"type":"pong"}"#)
}

/// `next` for operation `id`: `payload` is an already rendered execution result
/// (`{"data":...}`), spliced in without re-encoding.
pub fn next(id: &str, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(payload.len() + id.len() + 40);
    b.put_slice(br#"{"id":"#);
    b.put_slice(serde_json::to_string(id).unwrap_or_default().as_bytes());
    b.put_slice(br#","type":"next","payload":"#);
    b.put_slice(payload);
    b.put_u8(b'}');
    frame::text(&b)
}

/// `error` for operation `id`: a list of GraphQL errors.
pub fn error(id: &str, errors: &serde_json::Value) -> Bytes {
    text(&json!({"id": id, "type": "error", "payload": errors}))
}

/// `complete` for operation `id`.
pub fn complete(id: &str) -> Bytes {
    text(&json!({"id": id, "type": "complete"}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_and_ill_formed_ones_do_not() {
        assert_eq!(
            parse(br#"{"type":"connection_init","payload":{"token":"t"}}"#),
            Some(ClientMsg::ConnectionInit {
                payload: Some(json!({"token": "t"}))
            })
        );
        assert!(matches!(
            parse(br#"{"id":"1","type":"subscribe","payload":{"query":"{ a }"}}"#),
            Some(ClientMsg::Subscribe { .. })
        ));
        assert_eq!(parse(br#"{"id":"","type":"complete"}"#), None);
        assert_eq!(parse(br#"{"type":"subscribe","payload":{}}"#), None);
        assert_eq!(parse(br#"{"id":"1","type":"subscribe","payload":7}"#), None);
        assert_eq!(parse(br#"{"type":"hello"}"#), None);
    }

    #[test]
    fn next_splices_the_payload_with_the_id() {
        let f = next("op\"1", br#"{"data":{"x":1}}"#);
        let v: serde_json::Value = serde_json::from_slice(&f[2..]).unwrap();
        assert_eq!(
            v,
            json!({"id": "op\"1", "type": "next", "payload": {"data": {"x": 1}}})
        );
    }
}
