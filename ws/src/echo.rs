//! The conformance echo endpoint (`/ws/echo`, mounted only with `STREAMHUB_WS_ECHO`):
//! every message is sent back as it came, through the same frame reader, message
//! reader and send queue as the real protocols, so a WebSocket conformance suite drives
//! the framing, fragmentation, UTF-8 and close handling every session uses; after a
//! close for the peer's error, what the peer still sends is thrown away (within a
//! budget and the patience) while the close goes out, as in the real sessions.

use std::time::Duration;

use crate::frame;
use crate::message::{code, discard_after, End, Message, Reader};
use crate::queue::SendQueue;
use crate::upgrade::Socket;

/// How long the last frames may take to go out, and what the peer still sends after a
/// close for its error to be thrown away.
const PATIENCE: Duration = Duration::from_secs(5);

/// Echoes messages of at most `max_message` bytes until the session ends; `stop`
/// resolving closes it with 1001.
pub async fn run(socket: Socket, max_message: usize, stop: impl std::future::Future<Output = ()>) {
    let (mut frames, mut write) = crate::upgrade::split(socket, max_message);
    // Room for one whole message and its answer.
    let queue = SendQueue::new(2 * max_message + 1024);
    let mut reader = Reader::new(max_message);
    let echo = async {
        loop {
            match reader.next(&mut frames, &queue).await {
                Ok(Message::Text(b)) => queue.push(frame::text(&b)),
                Ok(Message::Binary(b)) => queue.push(frame::binary(&b)),
                Err(End::Closed | End::Dropped) => return,
                Err(End::Close(c, reason)) => {
                    queue.close_with(frame::close(c, reason));
                    // While the writer sends the close: a socket released with unread
                    // bytes is reset, and the reset can overtake the close.
                    let mut discard = discard_after(c);
                    let discarding =
                        std::future::poll_fn(|cx| frames.poll_discard(cx, &mut discard));
                    let _ = tokio::time::timeout(PATIENCE, discarding).await;
                    return;
                }
            };
        }
    };
    let session = async {
        tokio::select! {
            () = echo => {}
            () = stop => queue.close_with(frame::close(code::GOING_AWAY, "server shutting down")),
        }
    };
    queue.drive(&mut write, session, PATIENCE).await;
}
