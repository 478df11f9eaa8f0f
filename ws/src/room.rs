//! The room protocol of `/ws` (SPEC.md): client messages parsed, server messages
//! encoded as ready-to-send text frames.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use crate::frame;

/// A message from a client.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientMsg {
    /// Authenticate the connection.
    Auth {
        /// A JWT.
        token: String,
    },
    /// Join a room, replaying what came after `since` when given.
    Join {
        /// The channel id.
        room: String,
        /// The last seq the client saw.
        #[serde(default)]
        since: Option<u64>,
    },
    /// Leave a room.
    Leave {
        /// The channel id.
        room: String,
    },
    /// Send a chat message.
    Send {
        /// The channel id.
        room: String,
        /// The text.
        body: String,
        /// The client's id for the message, echoed in `sent` or `error`.
        #[serde(default)]
        nonce: Option<String>,
    },
    /// Keep-alive; answered with `pong`.
    Ping,
}

/// Reads a client message; the error says what is wrong.
pub fn parse(text: &[u8]) -> Result<ClientMsg, String> {
    serde_json::from_slice(text).map_err(|e| e.to_string())
}

fn text(v: &serde_json::Value) -> Bytes {
    frame::text(v.to_string().as_bytes())
}

/// `joined`: the room's last seq, and whether the `since` gap was recovered.
pub fn joined(room: &str, seq: u64, recovered: bool) -> Bytes {
    text(&json!({"type": "joined", "room": room, "seq": seq, "recovered": recovered}))
}

/// `sent`: the sender's message took `seq`.
pub fn sent(nonce: Option<&str>, seq: u64) -> Bytes {
    text(&json!({"type": "sent", "nonce": nonce, "seq": seq}))
}

/// `error` with a code of SPEC.md's list.
pub fn error(code: &str, message: &str, nonce: Option<&str>) -> Bytes {
    text(&json!({"type": "error", "code": code, "message": message, "nonce": nonce}))
}

/// `pong`.
pub fn pong() -> Bytes {
    frame::text(br#"{"type":"pong"}"#)
}

/// The author of a message event.
#[derive(Debug, Clone, Copy)]
pub struct Author<'a> {
    /// User id.
    pub id: &'a str,
    /// Login.
    pub login: &'a str,
    /// Display name.
    pub display_name: &'a str,
}

/// `message`: a chat message event.
pub fn message(
    room: &str,
    seq: u64,
    id: &str,
    author: Author<'_>,
    body: &str,
    sent_at: &str,
) -> Bytes {
    text(&json!({
        "type": "message", "room": room, "seq": seq, "id": id,
        "author": {"id": author.id, "login": author.login, "displayName": author.display_name},
        "body": body, "sentAt": sent_at
    }))
}

/// `deleted`: the message at `message_seq` was deleted.
pub fn deleted(room: &str, seq: u64, message_seq: u64) -> Bytes {
    text(&json!({"type": "deleted", "room": room, "seq": seq, "messageSeq": message_seq}))
}

/// `banned`: a user was banned until a time (None: until unbanned).
pub fn banned(room: &str, seq: u64, user_id: &str, until: Option<&str>) -> Bytes {
    text(&json!({"type": "banned", "room": room, "seq": seq, "userId": user_id, "until": until}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse_and_unknown_ones_are_refused() {
        assert_eq!(
            parse(br#"{"type":"join","room":"ch_u1","since":7}"#),
            Ok(ClientMsg::Join {
                room: "ch_u1".into(),
                since: Some(7)
            })
        );
        assert_eq!(
            parse(br#"{"type":"send","room":"r","body":"hi","nonce":"n1"}"#),
            Ok(ClientMsg::Send {
                room: "r".into(),
                body: "hi".into(),
                nonce: Some("n1".into())
            })
        );
        assert_eq!(parse(br#"{"type":"ping"}"#), Ok(ClientMsg::Ping));
        assert!(parse(br#"{"type":"dance"}"#).is_err());
        assert!(parse(br#"{"type":"join"}"#).is_err());
        assert!(parse(b"not json").is_err());
    }

    #[test]
    fn server_messages_are_whole_text_frames() {
        let f = joined("ch_u1", 9, true);
        assert_eq!(f[0], 0x81);
        let v: serde_json::Value = serde_json::from_slice(&f[2..]).unwrap();
        assert_eq!(
            v,
            json!({"type": "joined", "room": "ch_u1", "seq": 9, "recovered": true})
        );
        let m = message(
            "r",
            3,
            "m",
            Author {
                id: "u1",
                login: "a",
                display_name: "A",
            },
            "hi",
            "t",
        );
        let v: serde_json::Value = serde_json::from_slice(&m[2..]).unwrap();
        assert_eq!(v["author"]["displayName"], "A");
    }
}
