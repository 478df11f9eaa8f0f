//! The conformance echo endpoint (`/ws/echo`, mounted only with `STREAMHUB_WS_ECHO`):
//! every message is sent back as it came, so a WebSocket conformance suite can drive
//! the framing, fragmentation, UTF-8 and close handling of [`crate::message`].

use fastwebsockets::{Frame, OpCode, Payload, WebSocket};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::message::{close, End, Message, Reader};

/// Echoes messages of at most `max_message` bytes until the session ends; `stop`
/// resolving closes it with 1001.
pub async fn run<S>(
    mut ws: WebSocket<S>,
    max_message: usize,
    stop: impl std::future::Future<Output = ()>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut reader = Reader::new(max_message);
    reader.configure(&mut ws);
    tokio::pin!(stop);
    loop {
        let next = tokio::select! {
            m = reader.next(&mut ws) => m,
            () = &mut stop => {
                close(&mut ws, crate::message::code::GOING_AWAY, "server shutting down").await;
                return;
            }
        };
        let (opcode, bytes) = match next {
            Ok(Message::Text(b)) => (OpCode::Text, b),
            Ok(Message::Binary(b)) => (OpCode::Binary, b),
            Err(End::Closed | End::Dropped) => return,
            Err(End::Close(code, reason)) => {
                close(&mut ws, code, reason).await;
                return;
            }
        };
        let frame = Frame::new(true, opcode, None, Payload::Borrowed(&bytes));
        if ws.write_frame(frame).await.is_err() {
            return;
        }
    }
}
