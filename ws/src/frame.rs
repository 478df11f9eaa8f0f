//! Server frames encoded once into shared bytes. Server frames are not masked, so the
//! same bytes go to every socket: a room event is encoded once and queued on thousands
//! of connections as clones of one `Bytes`.

use bytes::{BufMut, Bytes, BytesMut};

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

fn encode(opcode: u8, parts: &[&[u8]]) -> Bytes {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut b = BytesMut::with_capacity(len + 10);
    b.put_u8(0x80 | opcode);
    if len < 126 {
        b.put_u8(len as u8);
    } else if let Ok(n) = u16::try_from(len) {
        b.put_u8(126);
        b.put_u16(n);
    } else {
        b.put_u8(127);
        b.put_u64(len as u64);
    }
    for p in parts {
        b.put_slice(p);
    }
    b.freeze()
}

/// A whole text message in one frame.
pub fn text(payload: &[u8]) -> Bytes {
    encode(TEXT, &[payload])
}

/// A whole binary message in one frame.
pub fn binary(payload: &[u8]) -> Bytes {
    encode(BINARY, &[payload])
}

/// A close frame with a code and a reason (cut to fit the 125-byte control limit).
pub fn close(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    encode(CLOSE, &[&code.to_be_bytes(), &reason.as_bytes()[..end]])
}

/// A close frame echoing a peer's close payload (possibly empty).
pub fn close_raw(payload: &[u8]) -> Bytes {
    encode(CLOSE, &[payload])
}

/// A ping.
pub fn ping(payload: &[u8]) -> Bytes {
    encode(PING, &[payload])
}

/// A pong answering a ping's payload.
pub fn pong(payload: &[u8]) -> Bytes {
    encode(PONG, &[payload])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_the_shortest_form() {
        assert_eq!(&text(b"hi")[..], &[0x81, 2, b'h', b'i']);
        let mid = text(&[b'x'; 300]);
        assert_eq!(&mid[..4], &[0x81, 126, 0x01, 0x2c]);
        assert_eq!(mid.len(), 304);
        let big = text(&vec![b'x'; 70_000]);
        assert_eq!(&big[..2], &[0x81, 127]);
        assert_eq!(u64::from_be_bytes(big[2..10].try_into().unwrap()), 70_000);
    }

    #[test]
    fn control_frames_fit_their_limit() {
        let c = close(4008, &"é".repeat(100));
        assert!(c.len() - 2 <= 125);
        assert_eq!(&c[..4], &[0x88, c[1], 0x0f, 0xa8]);
        assert!(
            std::str::from_utf8(&c[4..]).is_ok(),
            "cut on a character boundary"
        );
        assert_eq!(&pong(b"p")[..], &[0x8A, 1, b'p']);
        assert_eq!(&ping(b"")[..], &[0x89, 0]);
    }
}
