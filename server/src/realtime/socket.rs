//! What both WebSocket protocols share: the split socket with its send queue, the read
//! loop that hands whole text messages to the protocol and the writer beside it in the
//! session's one task, the shard's sweep (pings, deadlines, 1001 on shutdown), and a
//! last close frame flushed before the connection is released.
//!
//! A message may be handled asynchronously (it goes to the store, or executes GraphQL):
//! the protocol then hands the session a future, its one message in flight. While it
//! runs the session reads nothing more from the client (TCP pushes back), so messages
//! are answered in the order they came; it keeps writing its queue, and the shard's
//! sweep keeps pinging and closing it as usual. The future's output goes back to the
//! protocol ([`Protocol::on_done`]), which updates its state and queues its answer.
//! The client's pongs are not read meanwhile either, so a flight must end well within
//! the ping interval and pong timeout (35 s by default) or the sweep takes the session
//! for silent: an execution is bounded by the request timeout (30 s by default).
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

/// A message's handling in flight: a future that owns what it needs (`Rc` clones, the
/// shard), so the session can keep it between polls. It may be dropped at any await
/// (the connection went away): whatever it registered before completing must undo
/// itself then, since its output never reaches the protocol.
pub(super) type Flight<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// What a protocol makes of one text message.
pub(super) enum Step<'a, T> {
    /// Handled at once: true to go on reading, false to end the session (a close is
    /// queued).
    Done(bool),
    /// Handled by this future; its output goes to [`Protocol::on_done`], and no other
    /// message is read meanwhile.
    Flight(Flight<'a, T>),
}

/// A protocol spoken over a session whose messages may hold `'a` (the shard).
pub(super) trait Protocol<'a>: Unpin {
    /// The close for a binary message (both protocols are JSON text).
    const BINARY_CLOSE: (u16, &'static str);

    /// The close when handling a message failed inside the server (a bug): the session
    /// ends with it, every other session goes on.
    const INTERNAL_CLOSE: (u16, &'static str);

    /// What a message handled in flight comes to.
    type Done;

    /// Handles one text message, at once or through a future.
    fn on_text(&mut self, text: &[u8]) -> Step<'a, Self::Done>;

    /// Takes the output of the message in flight (its state changes, its answer);
    /// false to end the session (a close is queued).
    fn on_done(&mut self, done: Self::Done) -> bool;

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
/// kept several copies of its state. A message in flight is boxed apart, so an idle
/// session pays one empty slot (16 bytes) for it.
pub(super) fn run<'a, P: Protocol<'a>>(
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
        flight: None,
        registration,
        init_pending: init_within.is_some(),
        phase: Phase::Running,
        ending: None,
    }
}

/// A running session (see [`run`]).
pub(super) struct Session<'a, P: Protocol<'a>> {
    read: ReadSide,
    write: WriteSide,
    reader: Reader,
    queue: Rc<SendQueue>,
    /// None once reading has ended (dropping it leaves its rooms and subscriptions).
    protocol: Option<P>,
    /// The message being handled, if one is: no other is read until it is done.
    flight: Option<Flight<'a, P::Done>>,
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

impl<'a, P: Protocol<'a>> Session<'a, P> {
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

    /// Reads and handles messages until none is ready (or the one in flight is not
    /// done), or until reading has ended.
    fn poll_reading(&mut self, cx: &mut Context<'_>) -> Poll<Ended> {
        loop {
            if let Some(flight) = self.flight.as_mut() {
                let handled = match guarded(|| flight.as_mut().poll(cx)) {
                    Some(Poll::Pending) => return Poll::Pending,
                    Some(Poll::Ready(done)) => {
                        self.flight = None;
                        match self.protocol.as_mut() {
                            Some(p) => guarded(|| p.on_done(done)).into(),
                            None => Handled::Go,
                        }
                    }
                    None => {
                        self.flight = None;
                        Handled::Failed
                    }
                };
                if let Some(ended) = self.handled(handled) {
                    return Poll::Ready(ended);
                }
                continue;
            }
            let msg = ready!(self.reader.poll_next(cx, &mut self.read, &self.queue));
            match msg {
                Ok(Message::Text(t)) => {
                    let Some(protocol) = self.protocol.as_mut() else {
                        continue;
                    };
                    let handled = match guarded(|| protocol.on_text(&t)) {
                        Some(Step::Flight(f)) => {
                            // Polled at once, at the top of the loop.
                            self.flight = Some(f);
                            continue;
                        }
                        Some(Step::Done(go_on)) => Some(go_on).into(),
                        None => Handled::Failed,
                    };
                    if let Some(ended) = self.handled(handled) {
                        return Poll::Ready(ended);
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

    /// Goes on after a message was handled, or says how reading ended.
    fn handled(&mut self, handled: Handled) -> Option<Ended> {
        match handled {
            Handled::Go => {
                if self.init_pending && self.protocol.as_ref().is_some_and(P::initialized) {
                    self.registration.initialized();
                    self.init_pending = false;
                }
                None
            }
            Handled::End => Some(Ended::Server(Discard::frames(DISCARD_LIMIT))),
            Handled::Failed => {
                let (c, reason) = P::INTERNAL_CLOSE;
                self.queue.close_with(frame::close(c, reason));
                Some(Ended::Server(discard_after(c)))
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

impl From<Option<bool>> for Handled {
    /// A handler's answer (true: go on), or None when it panicked.
    fn from(answer: Option<bool>) -> Handled {
        match answer {
            Some(true) => Handled::Go,
            Some(false) => Handled::End,
            None => Handled::Failed,
        }
    }
}

/// Runs one step of a message's handling (`on_text`, a poll of its flight, `on_done`);
/// a panic in it (a bug) is caught and logged here, so it costs this session and not
/// the shard's other connections. None when it panicked.
fn guarded<T>(step: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)) {
        Ok(t) => Some(t),
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
            None
        }
    }
}

impl<'a, P: Protocol<'a>> Future for Session<'a, P> {
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
                            // Whatever ended the reading (between two messages: none is in
                            // flight), the writer finishes with a close.
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

    /// A protocol whose handler fails on `boom`, and whose flight fails on `boom later`
    /// (as bugs would).
    struct Fragile;

    impl<'a> Protocol<'a> for Fragile {
        const BINARY_CLOSE: (u16, &'static str) = (1003, "");
        const INTERNAL_CLOSE: (u16, &'static str) = (1011, "");
        type Done = bool;

        fn on_text(&mut self, text: &[u8]) -> Step<'a, bool> {
            assert!(text != b"boom", "the handler's bug");
            match text {
                b"later" => Step::Flight(Box::pin(async { true })),
                b"boom later" => Step::Flight(Box::pin(async { panic!("the flight's bug") })),
                _ => Step::Done(text != b"bye"),
            }
        }

        fn on_done(&mut self, go_on: bool) -> bool {
            go_on
        }

        fn initialized(&self) -> bool {
            true
        }
    }

    /// What handling `text` comes to, its flight run to its end as the session does.
    fn handle(p: &mut Fragile, text: &[u8]) -> Handled {
        match guarded(|| p.on_text(text)) {
            Some(Step::Done(go_on)) => Some(go_on).into(),
            Some(Step::Flight(mut flight)) => {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                match guarded(|| flight.as_mut().poll(&mut cx)) {
                    Some(Poll::Ready(done)) => guarded(|| p.on_done(done)).into(),
                    Some(Poll::Pending) => unreachable!("the flights here are ready at once"),
                    None => Handled::Failed,
                }
            }
            None => Handled::Failed,
        }
    }

    #[test]
    fn a_panicking_handler_ends_only_its_session() {
        let mut p = Fragile;
        assert_eq!(handle(&mut p, b"hello"), Handled::Go);
        assert_eq!(handle(&mut p, b"bye"), Handled::End);
        assert_eq!(handle(&mut p, b"boom"), Handled::Failed);
        assert_eq!(handle(&mut p, b"later"), Handled::Go);
        assert_eq!(handle(&mut p, b"boom later"), Handled::Failed);
        assert_eq!(handle(&mut p, b"hello"), Handled::Go, "this thread goes on");
    }
}
