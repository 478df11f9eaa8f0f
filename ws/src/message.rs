//! Whole messages from a WebSocket: frames ([`crate::reader`]) reassembled with a cap on
//! the reassembled size, text checked to be UTF-8 across fragments, pings answered and
//! closes checked and echoed through the connection's send queue, every protocol
//! error mapped to the close code RFC 6455 gives it, and how what the peer still sends
//! after such a close is thrown away ([`discard_after`]).

use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncRead;

use crate::queue::SendQueue;
use crate::reader::{Discard, Frame, FrameReader, Kind, ReadError, DISCARD_LIMIT};

/// Close codes of RFC 6455 and of StreamHub's protocols.
pub mod code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is going away (shutdown).
    pub const GOING_AWAY: u16 = 1001;
    /// A protocol error.
    pub const PROTOCOL: u16 = 1002;
    /// Data of the wrong type.
    pub const UNSUPPORTED: u16 = 1003;
    /// Text that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// A policy violation (bad token, banned origin).
    pub const POLICY: u16 = 1008;
    /// A message over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// The server failed.
    pub const INTERNAL: u16 = 1011;
}

/// A whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (checked UTF-8).
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
}

/// Why a session ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The peer closed (its close frame has been answered).
    Closed,
    /// The connection dropped or failed without a close handshake.
    Dropped,
    /// The peer broke the protocol: close with this code and reason.
    Close(u16, &'static str),
}

/// How what the peer still sends is thrown away after the server closed with
/// `close_code` for the peer's error (see [`FrameReader::poll_discard`]): frame by frame,
/// except after a protocol error, when the framing may be lost and every byte up to EOF
/// goes; at most [`DISCARD_LIMIT`] bytes either way.
pub fn discard_after(close_code: u16) -> Discard {
    if close_code == code::PROTOCOL {
        Discard::raw(DISCARD_LIMIT)
    } else {
        Discard::frames(DISCARD_LIMIT)
    }
}

/// Reads whole messages of at most `max_message` bytes.
#[derive(Debug)]
pub struct Reader {
    max_message: usize,
    partial: Option<(Kind, BytesMut)>,
}

impl Reader {
    /// A reader for messages of at most `max_message` bytes (single frames included).
    pub fn new(max_message: usize) -> Reader {
        Reader {
            max_message,
            partial: None,
        }
    }

    /// The next whole message; pongs and the answer to a close go out through `queue`.
    pub async fn next<R>(
        &mut self,
        frames: &mut FrameReader<R>,
        queue: &SendQueue,
    ) -> Result<Message, End>
    where
        R: AsyncRead + Unpin,
    {
        std::future::poll_fn(|cx| self.poll_next(cx, frames, queue)).await
    }

    /// Polls for the next whole message (see [`Reader::next`]).
    pub fn poll_next<R>(
        &mut self,
        cx: &mut Context<'_>,
        frames: &mut FrameReader<R>,
        queue: &SendQueue,
    ) -> Poll<Result<Message, End>>
    where
        R: AsyncRead + Unpin,
    {
        loop {
            let frame = match ready!(frames.poll_frame(cx)) {
                Ok(f) => f,
                Err(ReadError::Gone) => return Poll::Ready(Err(End::Dropped)),
                Err(ReadError::Protocol(why)) => {
                    return Poll::Ready(Err(End::Close(code::PROTOCOL, why)))
                }
                Err(ReadError::TooBig) => {
                    return Poll::Ready(Err(End::Close(code::TOO_BIG, "message too big")))
                }
            };
            match frame.kind {
                Kind::Ping => {
                    queue.push(crate::frame::pong(&frame.payload));
                }
                Kind::Close => {
                    // Echo a valid close; answer a broken one with its error code.
                    let reply = match check_close(&frame.payload) {
                        Ok(_) => {
                            crate::frame::close_raw(&frame.payload[..frame.payload.len().min(2)])
                        }
                        Err(End::Close(code, reason)) => crate::frame::close(code, reason),
                        Err(_) => crate::frame::close(code::PROTOCOL, ""),
                    };
                    queue.close_with(reply);
                    return Poll::Ready(Err(End::Closed));
                }
                _ => match self.feed(frame) {
                    Ok(Some(m)) => return Poll::Ready(Ok(m)),
                    Ok(None) => {}
                    Err(e) => return Poll::Ready(Err(e)),
                },
            }
        }
    }

    /// Takes one data frame (or pong); a message when it completes one.
    fn feed(&mut self, frame: Frame) -> Result<Option<Message>, End> {
        match frame.kind {
            Kind::Close => Err(End::Closed),
            Kind::Ping | Kind::Pong => Ok(None),
            Kind::Text | Kind::Binary => {
                if self.partial.is_some() {
                    return Err(End::Close(
                        code::PROTOCOL,
                        "a new message started inside a fragmented one",
                    ));
                }
                if frame.fin {
                    return finish(frame.kind, frame.payload.freeze()).map(Some);
                }
                self.check_size(frame.payload.len())?;
                self.partial = Some((frame.kind, frame.payload));
                Ok(None)
            }
            Kind::Continuation => {
                let Some((kind, mut buf)) = self.partial.take() else {
                    return Err(End::Close(
                        code::PROTOCOL,
                        "a continuation frame with no message to continue",
                    ));
                };
                self.check_size(buf.len() + frame.payload.len())?;
                buf.extend_from_slice(&frame.payload);
                if frame.fin {
                    finish(kind, buf.freeze()).map(Some)
                } else {
                    self.partial = Some((kind, buf));
                    Ok(None)
                }
            }
        }
    }

    fn check_size(&self, len: usize) -> Result<(), End> {
        if len > self.max_message {
            Err(End::Close(code::TOO_BIG, "message too big"))
        } else {
            Ok(())
        }
    }
}

fn finish(kind: Kind, bytes: Bytes) -> Result<Message, End> {
    if kind == Kind::Text {
        if std::str::from_utf8(&bytes).is_err() {
            return Err(End::Close(code::INVALID_DATA, "text is not UTF-8"));
        }
        Ok(Message::Text(bytes))
    } else {
        Ok(Message::Binary(bytes))
    }
}

/// Checks a close frame's payload (RFC 6455, 5.5 and 7.4): the code to echo (0 for a
/// close without one), or the error to close with.
fn check_close(payload: &[u8]) -> Result<u16, End> {
    if payload.len() > 125 {
        return Err(End::Close(code::PROTOCOL, "control frame over 125 bytes"));
    }
    match payload.len() {
        0 => Ok(0),
        1 => Err(End::Close(code::PROTOCOL, "close payload of one byte")),
        _ => {
            let c = u16::from_be_bytes([payload[0], payload[1]]);
            let allowed = matches!(c, 1000..=1003 | 1007..=1011 | 3000..=4999);
            if !allowed {
                return Err(End::Close(code::PROTOCOL, "close code not allowed"));
            }
            if std::str::from_utf8(&payload[2..]).is_err() {
                return Err(End::Close(code::INVALID_DATA, "close reason is not UTF-8"));
            }
            Ok(c)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, kind: Kind, data: &[u8]) -> Frame {
        Frame {
            fin,
            kind,
            payload: BytesMut::from(data),
        }
    }

    #[test]
    fn fragments_are_reassembled_and_checked_as_a_whole() {
        let mut r = Reader::new(10);
        // "é" split across two fragments is valid UTF-8 as a whole.
        assert_eq!(r.feed(frame(false, Kind::Text, &[0xc3])), Ok(None));
        assert_eq!(
            r.feed(frame(true, Kind::Pong, b"")),
            Ok(None),
            "control frames interleave"
        );
        assert_eq!(
            r.feed(frame(true, Kind::Continuation, &[0xa9])),
            Ok(Some(Message::Text(Bytes::from_static("é".as_bytes()))))
        );
        assert_eq!(
            r.feed(frame(true, Kind::Binary, &[1, 2])),
            Ok(Some(Message::Binary(Bytes::from_static(&[1, 2]))))
        );
    }

    #[test]
    fn the_limit_holds_for_the_reassembled_message() {
        let mut r = Reader::new(10);
        assert_eq!(r.feed(frame(false, Kind::Binary, &[0; 6])), Ok(None));
        assert_eq!(
            r.feed(frame(false, Kind::Continuation, &[0; 6])),
            Err(End::Close(code::TOO_BIG, "message too big"))
        );
    }

    #[test]
    fn broken_sequences_get_their_close_codes() {
        let mut r = Reader::new(10);
        assert!(matches!(
            r.feed(frame(true, Kind::Continuation, b"x")),
            Err(End::Close(code::PROTOCOL, _))
        ));
        let mut r = Reader::new(10);
        r.feed(frame(false, Kind::Text, b"a")).unwrap();
        assert!(matches!(
            r.feed(frame(true, Kind::Text, b"b")),
            Err(End::Close(code::PROTOCOL, _))
        ));
        let mut r = Reader::new(10);
        assert!(matches!(
            r.feed(frame(true, Kind::Text, &[0xff])),
            Err(End::Close(code::INVALID_DATA, _))
        ));
        assert_eq!(r.feed(frame(true, Kind::Close, b"")), Err(End::Closed));
    }

    #[test]
    fn close_frames_are_checked_before_they_are_echoed() {
        assert_eq!(check_close(b""), Ok(0));
        assert_eq!(check_close(&[0x03, 0xe8, b'o', b'k']), Ok(1000));
        assert!(matches!(
            check_close(&[0x03]),
            Err(End::Close(code::PROTOCOL, _))
        ));
        // 1005 and 1006 never go on the wire; 2999 is reserved.
        for bad in [1005u16, 1006, 2999, 999] {
            let p = bad.to_be_bytes();
            assert!(
                matches!(check_close(&p), Err(End::Close(code::PROTOCOL, _))),
                "{bad}"
            );
        }
        let mut long = vec![0x03, 0xe8];
        long.extend(std::iter::repeat_n(b'x', 124));
        assert!(matches!(
            check_close(&long),
            Err(End::Close(code::PROTOCOL, _))
        ));
        assert!(matches!(
            check_close(&[0x03, 0xe8, 0xff]),
            Err(End::Close(code::INVALID_DATA, _))
        ));
    }
}
