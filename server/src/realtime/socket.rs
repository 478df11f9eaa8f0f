//! What both WebSocket protocols share: the split socket with its send queue, the read
//! loop that hands whole text messages to the protocol and the writer beside it in the
//! session's one task, the shard's sweep (pings, deadlines, 1001 on shutdown), and a
//! last close frame flushed before the connection is released.
//!
//! When the server closes first (the client broke the protocol, sent a message too big
//! or of the wrong type, or the protocol ended the session), the client may still be
//! writing: what it sends is read and thrown away, within a byte budget and the
//! session's patience, until its close frame or EOF, while the writer sends the close
//! and shuts the write side (FIN). Only then is the socket released, so the kernel has
//! no unread bytes to answer with a reset that would overtake the close frame.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use streamhub_ws::frame;
use streamhub_ws::message::{code, discard_after, End, Message, Reader};
use streamhub_ws::queue::SendQueue;
use streamhub_ws::reader::{Discard, DISCARD_LIMIT};
use streamhub_ws::upgrade::{ReadSide, Socket, WriteSide};
use tokio::time::{sleep, Sleep};

use super::liveness::Registration;
use crate::conn::ConnState;
use crate::shard::Shard;

/// How long a session may take to end: the writer to send the last frames, and what the
/// client still sends after a close for its error to be read and thrown away.
const FLUSH_PATIENCE: Duration = Duration::from_secs(5);

/// A protocol spoken over a session.
pub(super) trait Protocol: Unpin {
    /// The close for a binary message (both protocols are JSON text).
    const BINARY_CLOSE: (u16, &'static str);

    /// The close when handling a message failed inside the server (a bug): the session
    /// ends with it, every other session goes on.
    const INTERNAL_CLOSE: (u16, &'static str);

    /// Handles one text message; false to end the session (a close is queued).
    fn on_text(&mut self, text: &[u8]) -> bool;

    /// Whether the client has initialised the session (for protocols with a deadline).
    fn initialized(&self) -> bool;
}

/// A session: `refuse` closes it at once with that code and reason; otherwise `make`
/// builds the protocol over the connection's queue, and the session runs until the
/// client closes or breaks the protocol, or the shard's sweep closes it (no answer to
/// pings, not initialised within `init_within`, shutdown: see [`super::liveness`]).
///
/// The future is written by hand rather than as an `async fn`: it is all an idle
/// connection holds (its fields, a few hundred bytes), where a nest of async blocks
/// kept several copies of its state.
pub(super) fn run<'a, P: Protocol>(
    shard: &'a Shard,
    conn: &Rc<ConnState>,
    socket: Socket,
    refuse: Option<(u16, &'static str)>,
    init_within: Option<Duration>,
    make: impl FnOnce(&Rc<SendQueue>) -> P,
) -> Session<'a, P> {
    let max = shard.node.config.ws_max_message_bytes;
    let (read, write) = streamhub_ws::upgrade::split(socket, max);
    let queue = SendQueue::new(shard.node.config.ws_queue_bytes);
    let registration = shard.liveness.register(&queue, conn, init_within);
    if let Some((c, reason)) = refuse {
        queue.close_with(frame::close(c, reason));
    }
    let protocol = (!queue.is_closing()).then(|| make(&queue));
    Session {
        read,
        write,
        reader: Reader::new(max),
        queue,
        protocol,
        registration,
        init_pending: init_within.is_some(),
        phase: Phase::Running,
        ending: None,
    }
}

/// A running session (see [`run`]).
pub(super) struct Session<'a, P> {
    read: ReadSide,
    write: WriteSide,
    reader: Reader,
    queue: Rc<SendQueue>,
    /// None once reading has ended (dropping it leaves its rooms and subscriptions).
    protocol: Option<P>,
    registration: Registration<'a>,
    init_pending: bool,
    phase: Phase,
    /// Set when the session starts ending (so an idle session holds none of it).
    ending: Option<Box<Ending>>,
}

/// What an ending session needs.
#[derive(Debug)]
struct Ending {
    /// How long the ending may last.
    patience: Pin<Box<Sleep>>,
    /// After the server closed first: what the client still sends, being thrown away.
    discard: Option<Discard>,
}

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading and writing.
    Running,
    /// Reading ended (the peer closed or went away) and a close is queued: the writer
    /// sends what is left.
    Flushing,
    /// The server closed first: the writer sends what is left, its close last, while
    /// what the peer still sends is thrown away until its close frame or EOF.
    Closing,
    /// The writer is done (its close is out): reading goes on until the peer's answer.
    Lingering,
}

/// How reading ended.
enum Ended {
    /// The peer closed (its close is answered) or went away.
    Peer,
    /// The server closed (its close is queued): what the peer still sends is thrown
    /// away like this.
    Server(Discard),
}

impl<P: Protocol> Session<'_, P> {
    /// Enters an ending phase, which may last `FLUSH_PATIENCE`.
    fn end_in(&mut self, phase: Phase, discard: Option<Discard>) {
        self.phase = phase;
        self.ending = Some(Box::new(Ending {
            patience: Box::pin(sleep(FLUSH_PATIENCE)),
            discard,
        }));
    }

    /// Ready once the ending phase has had its time.
    fn poll_patience(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.ending {
            Some(e) => e.patience.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }

    /// Ready once what the peer still sends has been thrown away (or nothing is to be).
    fn poll_discard(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self.ending.as_mut().and_then(|e| e.discard.as_mut()) {
            Some(d) => self.read.poll_discard(cx, d).map(drop),
            None => Poll::Ready(()),
        }
    }

    /// Reads and handles messages until none is ready, or until reading has ended.
    fn poll_reading(&mut self, cx: &mut Context<'_>) -> Poll<Ended> {
        loop {
            let msg = ready!(self.reader.poll_next(cx, &mut self.read, &self.queue));
            match msg {
                Ok(Message::Text(t)) => {
                    let Some(protocol) = self.protocol.as_mut() else {
                        continue;
                    };
                    match handle(protocol, &t) {
                        Handled::Go => {}
                        Handled::End => {
                            return Poll::Ready(Ended::Server(Discard::frames(DISCARD_LIMIT)))
                        }
                        Handled::Failed => {
                            let (c, reason) = P::INTERNAL_CLOSE;
                            self.queue.close_with(frame::close(c, reason));
                            return Poll::Ready(Ended::Server(discard_after(c)));
                        }
                    }
                    if self.init_pending && protocol.initialized() {
                        self.registration.initialized();
                        self.init_pending = false;
                    }
                }
                Ok(Message::Binary(_)) => {
                    let (c, reason) = P::BINARY_CLOSE;
                    self.queue.close_with(frame::close(c, reason));
                    return Poll::Ready(Ended::Server(discard_after(c)));
                }
                Err(End::Close(c, reason)) => {
                    self.queue.close_with(frame::close(c, reason));
                    return Poll::Ready(Ended::Server(discard_after(c)));
                }
                Err(End::Closed | End::Dropped) => return Poll::Ready(Ended::Peer),
            }
        }
    }
}

/// What handling one message came to.
#[derive(Debug, PartialEq, Eq)]
enum Handled {
    /// Go on reading.
    Go,
    /// The protocol ended the session (its close is queued).
    End,
    /// The handler panicked: the session ends with the protocol's internal close.
    Failed,
}

/// Hands `text` to `protocol`; a panic in the handler (a bug) is caught and logged here,
/// so it costs this session and not the shard's other connections.
fn handle<P: Protocol>(protocol: &mut P, text: &[u8]) -> Handled {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| protocol.on_text(text))) {
        Ok(true) => Handled::Go,
        Ok(false) => Handled::End,
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("a panic");
            tracing::error!(
                error = why,
                "a WebSocket message handler failed; closing the session"
            );
            Handled::Failed
        }
    }
}

impl<P: Protocol> Future for Session<'_, P> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            match this.phase {
                Phase::Running => {
                    let ended = if this.protocol.is_none() {
                        // Refused at the start: the client has not seen its close yet.
                        Poll::Ready(Ended::Server(Discard::frames(DISCARD_LIMIT)))
                    } else {
                        this.poll_reading(cx)
                    };
                    match ended {
                        Poll::Ready(ended) => {
                            // Whatever ended the reading, the writer finishes with a close.
                            this.protocol = None;
                            this.queue.close_with(frame::close(code::NORMAL, ""));
                            match ended {
                                Ended::Peer => this.end_in(Phase::Flushing, None),
                                Ended::Server(d) => this.end_in(Phase::Closing, Some(d)),
                            }
                        }
                        Poll::Pending => {
                            if this.queue.poll_write_to(cx, &mut this.write).is_pending() {
                                return Poll::Pending;
                            }
                            this.end_in(Phase::Lingering, None);
                        }
                    }
                }
                Phase::Flushing => {
                    if this.queue.poll_write_to(cx, &mut this.write).is_ready() {
                        return Poll::Ready(());
                    }
                    return this.poll_patience(cx);
                }
                Phase::Closing => {
                    // Both, each polled every time: the peer may read only once we do.
                    let written = this.queue.poll_write_to(cx, &mut this.write).is_ready();
                    let discarded = this.poll_discard(cx).is_ready();
                    if written && discarded {
                        return Poll::Ready(());
                    }
                    return this.poll_patience(cx);
                }
                Phase::Lingering => match this.poll_reading(cx) {
                    Poll::Ready(Ended::Peer) => return Poll::Ready(()),
                    Poll::Ready(Ended::Server(d)) => {
                        // The peer's answer broke the protocol: throw the rest away,
                        // within what is left of the patience.
                        if let Some(e) = this.ending.as_mut() {
                            e.discard = Some(d);
                        }
                        this.phase = Phase::Closing;
                    }
                    Poll::Pending => return this.poll_patience(cx),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A protocol whose handler fails on `boom` (as a bug would).
    struct Fragile;

    impl Protocol for Fragile {
        const BINARY_CLOSE: (u16, &'static str) = (1003, "");
        const INTERNAL_CLOSE: (u16, &'static str) = (1011, "");

        fn on_text(&mut self, text: &[u8]) -> bool {
            assert!(text != b"boom", "the handler's bug");
            text != b"bye"
        }

        fn initialized(&self) -> bool {
            true
        }
    }

    #[test]
    fn a_panicking_handler_ends_only_its_session() {
        let mut p = Fragile;
        assert_eq!(handle(&mut p, b"hello"), Handled::Go);
        assert_eq!(handle(&mut p, b"bye"), Handled::End);
        assert_eq!(handle(&mut p, b"boom"), Handled::Failed);
        assert_eq!(handle(&mut p, b"hello"), Handled::Go, "this thread goes on");
    }
}
