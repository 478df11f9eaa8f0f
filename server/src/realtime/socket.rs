//! What both WebSocket protocols share: the split socket with its send queue, the read
//! loop that hands whole text messages to the protocol and the writer beside it in the
//! session's one task, the shard's sweep (pings, deadlines, 1001 on shutdown), and a
//! last close frame flushed before the connection is released.

use std::rc::Rc;
use std::time::Duration;

use streamhub_ws::frame;
use streamhub_ws::message::{End, Message, Reader};
use streamhub_ws::queue::SendQueue;
use streamhub_ws::upgrade::Socket;

use crate::conn::ConnState;
use crate::shard::Shard;

/// How long the writer may take to send the last frames once the session ends.
const FLUSH_PATIENCE: Duration = Duration::from_secs(5);

/// A protocol spoken over a session.
pub(super) trait Protocol {
    /// The close for a binary message (both protocols are JSON text).
    const BINARY_CLOSE: (u16, &'static str);

    /// Handles one text message; false to end the session (a close is queued).
    fn on_text(&mut self, text: &[u8]) -> bool;

    /// Whether the client has initialised the session (for protocols with a deadline).
    fn initialized(&self) -> bool;
}

/// Runs a session: `refuse` closes it at once with that code and reason; otherwise
/// `make` builds the protocol over the connection's queue, and the session runs until
/// the client closes or breaks the protocol, or the shard's sweep closes it (no answer
/// to pings, not initialised within `init_within`, shutdown: see [`super::liveness`]).
pub(super) async fn run<P: Protocol>(
    shard: &Shard,
    conn: &Rc<ConnState>,
    socket: Socket,
    refuse: Option<(u16, &'static str)>,
    init_within: Option<Duration>,
    make: impl FnOnce(&Rc<SendQueue>) -> P,
) {
    let cfg = &shard.node.config;
    let (mut read, mut write) = streamhub_ws::upgrade::split(socket, cfg.ws_max_message_bytes);
    let queue = SendQueue::new(cfg.ws_queue_bytes);
    let registration = shard.liveness.register(&queue, conn, init_within);
    if let Some((c, reason)) = refuse {
        queue.close_with(frame::close(c, reason));
    }
    let session = async {
        if queue.is_closing() {
            return;
        }
        let mut protocol = make(&queue);
        let mut reader = Reader::new(cfg.ws_max_message_bytes);
        let mut init_pending = init_within.is_some();
        loop {
            match reader.next(&mut read, &queue).await {
                Ok(Message::Text(t)) => {
                    if !protocol.on_text(&t) {
                        break;
                    }
                    if init_pending && protocol.initialized() {
                        registration.initialized();
                        init_pending = false;
                    }
                }
                Ok(Message::Binary(_)) => {
                    let (c, reason) = P::BINARY_CLOSE;
                    queue.close_with(frame::close(c, reason));
                    break;
                }
                Err(End::Close(c, reason)) => {
                    queue.close_with(frame::close(c, reason));
                    break;
                }
                Err(End::Closed | End::Dropped) => break,
            }
        }
        // The protocol is dropped here: it leaves its rooms and ends its subscriptions.
    };
    // One task per session: the writer runs beside the reading; whatever ends the
    // session, the writer finishes with a close frame.
    queue.drive(&mut write, session, FLUSH_PATIENCE).await;
}
