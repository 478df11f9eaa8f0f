//! Keyset cursors: what a page's `endCursor` says and the next page starts after, the
//! same on every store. A cursor names the last item's place in the list's order, not
//! its position, so a list that grows at the front does not shift the pages after it:
//! - a follow list (newest first): the follow's key;
//! - a list ordered by live viewer counts (most first): the (count, tie-break) the
//!   cursor's item had when its page was made; such a list may skip or repeat an item
//!   across pages when counts move between them.
//!
//! Cursors are opaque to clients (hex of the key's text).

/// Where a page ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// In a follow list: after the follow with this key.
    Follow(u64),
    /// In a list by viewer count: after the item with this count and tie-break (a
    /// channel's login, a category's name).
    Viewers(u64, String),
}

/// A string that is not a cursor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a cursor")]
pub struct NotACursor(pub String);

impl Cursor {
    /// The cursor as clients see it.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(48);
        match self {
            Cursor::Follow(key) => {
                hex(&mut out, b"f");
                hex(&mut out, itoa::Buffer::new().format(*key).as_bytes());
            }
            Cursor::Viewers(count, tie) => {
                hex(&mut out, b"v");
                hex(&mut out, itoa::Buffer::new().format(*count).as_bytes());
                hex(&mut out, b":");
                hex(&mut out, tie.as_bytes());
            }
        }
        out
    }

    /// The cursor a client sent.
    pub fn decode(cursor: &str) -> Result<Cursor, NotACursor> {
        let bad = || NotACursor(cursor.to_owned());
        if !cursor.len().is_multiple_of(2) || cursor.len() > 1024 {
            return Err(bad());
        }
        let bytes = (0..cursor.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(bad)?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let (kind, rest) = text.split_at_checked(1).ok_or_else(bad)?;
        match kind {
            "f" => rest.parse().map(Cursor::Follow).map_err(|_| bad()),
            "v" => {
                let (count, tie) = rest.split_once(':').ok_or_else(bad)?;
                Ok(Cursor::Viewers(
                    count.parse().map_err(|_| bad())?,
                    tie.to_owned(),
                ))
            }
            _ => Err(bad()),
        }
    }
}

/// Appends `bytes` in lowercase hex.
fn hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_opaque() {
        for c in [
            Cursor::Follow(0),
            Cursor::Follow(u64::MAX),
            Cursor::Viewers(1250, "alice".into()),
            Cursor::Viewers(0, "a:b é".into()),
        ] {
            let text = c.encode();
            assert!(text.bytes().all(|b| b.is_ascii_hexdigit()), "{text}");
            assert_eq!(Cursor::decode(&text), Ok(c));
        }
    }

    #[test]
    fn anything_else_is_not_a_cursor() {
        // "66" is "f" with no key, "667a" is "fz", "763132" is "v12" with no tie-break,
        // "6f3137" is "o17" (an old offset cursor).
        for bad in ["", "o17", "zz", "6", "66", "667a", "763132", "6f3137"] {
            assert_eq!(
                Cursor::decode(bad),
                Err(NotACursor(bad.to_owned())),
                "{bad}"
            );
        }
    }
}
