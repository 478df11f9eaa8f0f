//! The conformance echo endpoint (`/ws/echo`, mounted only with `STREAMHUB_WS_ECHO`):
//! every message is sent back as it came, through the same frame reader, message
//! reader and send queue as the real protocols, so a WebSocket conformance suite drives
//! the framing, fragmentation, UTF-8 and close handling every session uses.

use crate::frame;
use crate::message::{code, End, Message, Reader};
use crate::queue::SendQueue;
use crate::upgrade::Socket;

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
    queue
        .drive(&mut write, session, std::time::Duration::from_secs(5))
        .await;
}
