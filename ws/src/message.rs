//! Whole messages from a WebSocket: frames reassembled with a cap on the reassembled
//! size (fastwebsockets' own collector has none), text checked to be UTF-8 across
//! fragments, pings answered and closes echoed by fastwebsockets, and every protocol
//! error mapped to the close code RFC 6455 gives it.

use bytes::{Bytes, BytesMut};
use fastwebsockets::{Frame, OpCode, Payload, WebSocket, WebSocketError, WebSocketRead};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::queue::SendQueue;

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

/// Reads whole messages of at most `max_message` bytes.
#[derive(Debug)]
pub struct Reader {
    max_message: usize,
    partial: Option<(OpCode, BytesMut)>,
}

impl Reader {
    /// A reader for messages of at most `max_message` bytes (single frames included).
    pub fn new(max_message: usize) -> Reader {
        Reader {
            max_message,
            partial: None,
        }
    }

    /// Configures `ws` for this reader: pings answered automatically, closes checked
    /// and answered here, frames over the limit refused before their payload is read.
    pub fn configure<S>(&self, ws: &mut WebSocket<S>) {
        ws.set_auto_pong(true);
        ws.set_auto_close(false);
        ws.set_writev(false);
        ws.set_max_message_size(self.max_message.saturating_add(1));
    }

    /// The next whole message, or why the session ends.
    pub async fn next<S>(&mut self, ws: &mut WebSocket<S>) -> Result<Message, End>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            let frame = ws.read_frame().await.map_err(end_of)?;
            if frame.opcode == OpCode::Close {
                // Echo a valid close; answer a broken one with its error code.
                let (code, reason) = match check_close(&frame.payload) {
                    Ok(code) => (code, ""),
                    Err(End::Close(code, reason)) => (code, reason),
                    Err(_) => (code::PROTOCOL, ""),
                };
                let reply = match code {
                    0 => Frame::close_raw(Vec::new().into()),
                    c => Frame::close(c, reason.as_bytes()),
                };
                let _ = ws.write_frame(reply).await;
                return Err(End::Closed);
            }
            if let Some(m) = self.feed(frame)? {
                return Ok(m);
            }
        }
    }

    /// Configures the read half of a split socket: pings and closes are answered here,
    /// through the connection's send queue.
    pub fn configure_read<R>(&self, ws: &mut WebSocketRead<R>) {
        ws.set_auto_pong(false);
        ws.set_auto_close(false);
        ws.set_max_message_size(self.max_message.saturating_add(1));
    }

    /// The next whole message from the read half of a split socket; pongs and the close
    /// answer go out through `queue`.
    pub async fn next_split<R>(
        &mut self,
        ws: &mut WebSocketRead<R>,
        queue: &SendQueue,
    ) -> Result<Message, End>
    where
        R: AsyncRead + Unpin,
    {
        loop {
            // Nothing is sent by fastwebsockets itself: automatic answers are off.
            let mut no_send = |_: Frame<'_>| async { Ok::<(), std::io::Error>(()) };
            let frame = ws.read_frame(&mut no_send).await.map_err(end_of)?;
            match frame.opcode {
                OpCode::Ping => {
                    queue.push(crate::frame::pong(&frame.payload));
                }
                OpCode::Close => {
                    let reply = match check_close(&frame.payload) {
                        Ok(_) => {
                            crate::frame::close_raw(&frame.payload[..frame.payload.len().min(2)])
                        }
                        Err(End::Close(code, reason)) => crate::frame::close(code, reason),
                        Err(_) => crate::frame::close(code::PROTOCOL, ""),
                    };
                    queue.close_with(reply);
                    return Err(End::Closed);
                }
                _ => {
                    if let Some(m) = self.feed(frame)? {
                        return Ok(m);
                    }
                }
            }
        }
    }

    /// Takes one frame; a message when it completes one.
    fn feed(&mut self, frame: Frame<'_>) -> Result<Option<Message>, End> {
        match frame.opcode {
            OpCode::Close => Err(End::Closed),
            OpCode::Ping | OpCode::Pong => Ok(None),
            OpCode::Text | OpCode::Binary => {
                if self.partial.is_some() {
                    return Err(End::Close(
                        code::PROTOCOL,
                        "a new message started inside a fragmented one",
                    ));
                }
                if frame.fin {
                    return finish(frame.opcode, payload_bytes(frame.payload)).map(Some);
                }
                self.check_size(frame.payload.len())?;
                let mut buf = BytesMut::with_capacity(frame.payload.len());
                buf.extend_from_slice(&frame.payload);
                self.partial = Some((frame.opcode, buf));
                Ok(None)
            }
            OpCode::Continuation => {
                let Some((opcode, mut buf)) = self.partial.take() else {
                    return Err(End::Close(
                        code::PROTOCOL,
                        "a continuation frame with no message to continue",
                    ));
                };
                self.check_size(buf.len() + frame.payload.len())?;
                buf.extend_from_slice(&frame.payload);
                if frame.fin {
                    finish(opcode, buf.freeze()).map(Some)
                } else {
                    self.partial = Some((opcode, buf));
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

fn payload_bytes(p: Payload<'_>) -> Bytes {
    match p {
        Payload::Bytes(b) => b.freeze(),
        other => Bytes::copy_from_slice(&other),
    }
}

fn finish(opcode: OpCode, bytes: Bytes) -> Result<Message, End> {
    if opcode == OpCode::Text {
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

/// The close code for an error of fastwebsockets.
fn end_of(e: WebSocketError) -> End {
    use WebSocketError as E;
    match e {
        E::ConnectionClosed | E::UnexpectedEOF | E::IoError(_) => End::Dropped,
        E::InvalidUTF8 => End::Close(code::INVALID_DATA, "text is not UTF-8"),
        E::FrameTooLarge => End::Close(code::TOO_BIG, "message too big"),
        _ => End::Close(code::PROTOCOL, "protocol error"),
    }
}

/// Sends a close frame with `code` and `reason` (best effort: the peer may be gone).
pub async fn close<S>(ws: &mut WebSocket<S>, code: u16, reason: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = ws.write_frame(Frame::close(code, reason.as_bytes())).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, opcode: OpCode, data: &[u8]) -> Frame<'static> {
        Frame::new(fin, opcode, None, Payload::Owned(data.to_vec()))
    }

    #[test]
    fn fragments_are_reassembled_and_checked_as_a_whole() {
        let mut r = Reader::new(10);
        // "é" split across two fragments is valid UTF-8 as a whole.
        assert_eq!(r.feed(frame(false, OpCode::Text, &[0xc3])), Ok(None));
        assert_eq!(
            r.feed(frame(false, OpCode::Ping, b"")),
            Ok(None),
            "control frames interleave"
        );
        assert_eq!(
            r.feed(frame(true, OpCode::Continuation, &[0xa9])),
            Ok(Some(Message::Text(Bytes::from_static("é".as_bytes()))))
        );
        assert_eq!(
            r.feed(frame(true, OpCode::Binary, &[1, 2])),
            Ok(Some(Message::Binary(Bytes::from_static(&[1, 2]))))
        );
    }

    #[test]
    fn the_limit_holds_for_the_reassembled_message() {
        let mut r = Reader::new(10);
        assert_eq!(r.feed(frame(false, OpCode::Binary, &[0; 6])), Ok(None));
        assert_eq!(
            r.feed(frame(false, OpCode::Continuation, &[0; 6])),
            Err(End::Close(code::TOO_BIG, "message too big"))
        );
    }

    #[test]
    fn broken_sequences_get_their_close_codes() {
        let mut r = Reader::new(10);
        assert!(matches!(
            r.feed(frame(true, OpCode::Continuation, b"x")),
            Err(End::Close(code::PROTOCOL, _))
        ));
        let mut r = Reader::new(10);
        r.feed(frame(false, OpCode::Text, b"a")).unwrap();
        assert!(matches!(
            r.feed(frame(true, OpCode::Text, b"b")),
            Err(End::Close(code::PROTOCOL, _))
        ));
        let mut r = Reader::new(10);
        assert!(matches!(
            r.feed(frame(true, OpCode::Text, &[0xff])),
            Err(End::Close(code::INVALID_DATA, _))
        ));
        assert_eq!(r.feed(frame(true, OpCode::Close, b"")), Err(End::Closed));
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
