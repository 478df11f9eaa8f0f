//! What both WebSocket protocols share: the split socket with its send queue and writer
//! task, the read loop that hands whole text messages to the protocol, server pings,
//! 1001 on shutdown, and a last close frame flushed before the connection is released.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use streamhub_ws::frame;
use streamhub_ws::message::{code, End, Message, Reader};
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
}

/// Runs a session: `refuse` closes it at once with that code and reason; otherwise
/// `make` builds the protocol over the connection's queue, and the session runs until
/// the client closes, breaks the protocol, stops answering pings, `watch` resolves, or
/// the shard shuts down (1001).
pub(super) async fn run<P, F>(
    shard: &Shard,
    conn: &ConnState,
    socket: Socket,
    refuse: Option<(u16, &'static str)>,
    make: impl FnOnce(&Rc<SendQueue>) -> P,
    watch: impl FnOnce(&Rc<SendQueue>) -> F,
) where
    P: Protocol,
    F: Future<Output = ()>,
{
    let cfg = &shard.node.config;
    let (mut read, write) = streamhub_ws::upgrade::split(socket, cfg.ws_max_message_bytes);
    let queue = SendQueue::new(cfg.ws_queue_bytes);
    let writer = tokio::task::spawn_local(Rc::clone(&queue).run_writer(write));
    if let Some((c, reason)) = refuse {
        queue.close_with(frame::close(c, reason));
    } else {
        let mut protocol = make(&queue);
        let mut reader = Reader::new(cfg.ws_max_message_bytes);
        let reading = async {
            loop {
                match reader.next(&mut read, &queue).await {
                    Ok(Message::Text(t)) => {
                        if !protocol.on_text(&t) {
                            break;
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
        };
        let pinging = keepalive(conn, &queue, cfg.ws_ping_interval, cfg.ws_pong_timeout);
        tokio::select! {
            () = reading => {}
            () = pinging => {}
            () = watch(&queue) => {}
            () = shard.closing() => {
                queue.close_with(frame::close(code::GOING_AWAY, "server shutting down"));
            }
        }
        // The protocol is dropped here: it leaves its rooms and ends its subscriptions.
    }
    // Whatever ended the session, the writer finishes with a close frame.
    queue.close_with(frame::close(code::NORMAL, ""));
    let _ = tokio::time::timeout(FLUSH_PATIENCE, writer).await;
}

/// Pings every `interval`; ends when nothing was read for `interval + patience` (after
/// queueing a close).
async fn keepalive(conn: &ConnState, queue: &SendQueue, interval: Duration, patience: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tick.tick().await;
        if conn.last_read().elapsed() > interval + patience {
            queue.close_with(frame::close(code::GOING_AWAY, "no answer to pings"));
            return;
        }
        queue.push(frame::ping(b""));
    }
}
