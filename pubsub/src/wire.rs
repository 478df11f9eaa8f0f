//! A room event as it travels between nodes (published through Redis and kept in the
//! room's Redis stream): its seq and its chat event, or a void (a seq whose event was
//! refused: never recorded, never delivered, never given again).
//!
//! The format is compact and versioned: a version byte, the seq (u64, little endian),
//! a kind byte, then the kind's fields; strings are a u32 length (little endian) and
//! their UTF-8 bytes, times an i64 (milliseconds since the Unix epoch).
//!
//! | kind | fields |
//! |---|---|
//! | `V` void | none |
//! | `M` message | sent at, author id, author login, author display name, body |
//! | `D` deleted | the deleted message's seq (u64) |
//! | `B` banned | the user id, 0 or 1, then (if 1) until when (i64) |

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::room::{Author, Chat};

/// The format's version; a decoder refuses any other.
const VERSION: u8 = 1;

/// Why bytes are not a room event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes end before the event does.
    #[error("the event is cut short")]
    Short,
    /// Another version of the format (a node of another release).
    #[error("unknown wire version {0}")]
    Version(u8),
    /// An unknown kind of event.
    #[error("unknown event kind {0:#04x}")]
    Kind(u8),
    /// A string that is not UTF-8.
    #[error("a string is not UTF-8")]
    Utf8,
    /// Bytes after the event's end.
    #[error("{0} bytes after the event")]
    Trailing(usize),
}

/// The bytes of the event at `seq`: `chat`, or a void when None.
pub fn encode(seq: u64, chat: Option<&Chat>) -> Bytes {
    let mut out = BytesMut::with_capacity(match chat {
        Some(Chat::Message { author, body, .. }) => {
            30 + author.id.len() + author.login.len() + author.display_name.len() + body.len()
        }
        _ => 32,
    });
    out.put_u8(VERSION);
    out.put_u64_le(seq);
    match chat {
        None => out.put_u8(b'V'),
        Some(Chat::Message {
            author,
            body,
            sent_at,
        }) => {
            out.put_u8(b'M');
            out.put_i64_le(*sent_at);
            for s in [&author.id, &author.login, &author.display_name, body] {
                put_str(&mut out, s);
            }
        }
        Some(Chat::Deleted { message_seq }) => {
            out.put_u8(b'D');
            out.put_u64_le(*message_seq);
        }
        Some(Chat::Banned { user_id, until }) => {
            out.put_u8(b'B');
            put_str(&mut out, user_id);
            match until {
                None => out.put_u8(0),
                Some(t) => {
                    out.put_u8(1);
                    out.put_i64_le(*t);
                }
            }
        }
    }
    out.freeze()
}

/// The seq and the event (None: a void) that `bytes` hold.
pub fn decode(bytes: &[u8]) -> Result<(u64, Option<Chat>), WireError> {
    let mut r = Reader(bytes);
    match r.u8()? {
        VERSION => {}
        v => return Err(WireError::Version(v)),
    }
    let seq = r.u64()?;
    let chat = match r.u8()? {
        b'V' => None,
        b'M' => {
            let sent_at = r.u64()? as i64;
            let author = Author {
                id: r.str()?,
                login: r.str()?,
                display_name: r.str()?,
            };
            Some(Chat::Message {
                author,
                body: r.str()?,
                sent_at,
            })
        }
        b'D' => Some(Chat::Deleted {
            message_seq: r.u64()?,
        }),
        b'B' => {
            let user_id = Box::from(&*r.str()?);
            let until = match r.u8()? {
                0 => None,
                _ => Some(r.u64()? as i64),
            };
            Some(Chat::Banned { user_id, until })
        }
        k => return Err(WireError::Kind(k)),
    };
    match r.0.len() {
        0 => Ok((seq, chat)),
        n => Err(WireError::Trailing(n)),
    }
}

fn put_str(out: &mut BytesMut, s: &str) {
    out.put_u32_le(s.len() as u32);
    out.put_slice(s.as_bytes());
}

/// The bytes not read yet.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], WireError> {
        if self.0.len() < n {
            return Err(WireError::Short);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(
            b.try_into().map_err(|_| WireError::Short)?,
        ))
    }

    fn str(&mut self) -> Result<Arc<str>, WireError> {
        let b = self.take(4)?;
        let n = u32::from_le_bytes(b.try_into().map_err(|_| WireError::Short)?) as usize;
        let s = std::str::from_utf8(self.take(n)?).map_err(|_| WireError::Utf8)?;
        Ok(Arc::from(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Chat {
        Chat::Message {
            author: Author {
                id: "u1".into(),
                login: "alice".into(),
                display_name: "Alice ✓".into(),
            },
            body: "hello, \"world\"\n".into(),
            sent_at: 1_764_600_000_123,
        }
    }

    #[test]
    fn every_kind_comes_back_as_it_went() {
        let kinds = [
            Some(message()),
            Some(Chat::Deleted { message_seq: 41 }),
            Some(Chat::Banned {
                user_id: "u7".into(),
                until: Some(-5),
            }),
            Some(Chat::Banned {
                user_id: "u8".into(),
                until: None,
            }),
            None,
        ];
        for (i, chat) in kinds.into_iter().enumerate() {
            let seq = u64::MAX - i as u64;
            let bytes = encode(seq, chat.as_ref());
            assert_eq!(decode(&bytes), Ok((seq, chat)));
        }
    }

    #[test]
    fn bytes_that_are_not_an_event_are_refused() {
        let good = encode(3, Some(&message()));
        for cut in 0..good.len() {
            assert_eq!(decode(&good[..cut]), Err(WireError::Short), "cut at {cut}");
        }
        let mut long = good.to_vec();
        long.push(0);
        assert_eq!(decode(&long), Err(WireError::Trailing(1)));
        let mut other = good.to_vec();
        other[0] = 2;
        assert_eq!(decode(&other), Err(WireError::Version(2)));
        let mut kind = encode(3, None).to_vec();
        kind[9] = b'Z';
        assert_eq!(decode(&kind), Err(WireError::Kind(b'Z')));
        let mut text = encode(3, Some(&Chat::Deleted { message_seq: 1 })).to_vec();
        text.truncate(9);
        text.extend_from_slice(b"B\x01\x00\x00\x00\xff\x00");
        assert_eq!(decode(&text), Err(WireError::Utf8));
    }
}
