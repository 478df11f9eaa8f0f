//! A subscription streamed over HTTP (SSE or Apollo's multipart protocol): the shard's
//! hub pushes framed events onto the request's [`EventStream`], a byte-bounded queue
//! that the response body ([`StreamBody`]) empties as hyper writes. One subscription per
//! request; its end (`complete` or the final boundary) ends the response.
//!
//! A consumer that does not read is bounded like a WebSocket one: past
//! `STREAMHUB_WS_QUEUE_BYTES` waiting, the queue is dropped and the response is cut
//! off (no `complete`), so the client reconnects and resumes from its last event id.
//! What is queued before the response starts (a `sinceSeq`/`Last-Event-ID` replay,
//! bounded by the history kept) is not held against it.
//!
//! Each shard keeps its open streams ([`Streams`]): one task sends them heartbeats
//! while they are quiet and ends them all when the node closes (after the drain delay),
//! so their clients reconnect to another node and resume.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;

use super::{multipart, sse};
use crate::conn::StreamGuard;
use crate::realtime::hub::{ConnId, Hub};
use crate::shard::Shard;

/// How often a quiet stream gets a heartbeat: Apollo Router's multipart interval, well
/// within SSE's 15 s keep-alive.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// How a stream is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream`, `graphql-sse`'s distinct connections mode.
    Sse,
    /// `multipart/mixed`, Apollo's subscription protocol.
    Multipart,
}

impl Framing {
    /// The streamed framing an `Accept` header asks for, the first in its order; None
    /// for an ordinary GraphQL over HTTP request.
    pub fn of_accept(accept: Option<&str>) -> Option<Framing> {
        for part in accept?.split(',') {
            let mut items = part.split(';').map(str::trim);
            let range = items.next().unwrap_or("");
            let params: Vec<(String, String)> = items
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
                .collect();
            let refused = params
                .iter()
                .any(|(k, v)| k == "q" && v.parse::<f32>().is_ok_and(|q| q <= 0.0));
            if refused {
                continue;
            }
            if sse::is_media_range(range) {
                return Some(Framing::Sse);
            }
            if multipart::is_media_range(range, params.into_iter()) {
                return Some(Framing::Multipart);
            }
        }
        None
    }

    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Framing::Sse => sse::CONTENT_TYPE,
            Framing::Multipart => multipart::CONTENT_TYPE,
        }
    }

    /// The first bytes, queued at once: hyper sends the response head with the body's
    /// first bytes, and a client knows its subscription stands once the head is in.
    fn opening(self) -> Bytes {
        Bytes::from_static(match self {
            Framing::Sse => sse::KEEP_ALIVE,
            Framing::Multipart => multipart::HEAD,
        })
    }

    fn next(self, payload: &[u8], id: Option<u64>) -> Bytes {
        match self {
            Framing::Sse => sse::next(payload, id),
            Framing::Multipart => multipart::part(payload),
        }
    }

    fn heartbeat(self) -> Bytes {
        Bytes::from_static(match self {
            Framing::Sse => sse::KEEP_ALIVE,
            Framing::Multipart => multipart::HEARTBEAT,
        })
    }

    fn end(self) -> Bytes {
        Bytes::from_static(match self {
            Framing::Sse => sse::COMPLETE,
            Framing::Multipart => multipart::END,
        })
    }
}

/// How a stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Open,
    /// Its last frame is queued: the body ends after it.
    Complete,
    /// Its consumer fell behind the limit: the response is cut off.
    Overflow,
}

/// The response was cut off: its consumer did not keep up.
#[derive(Debug, thiserror::Error)]
#[error("slow consumer: the stream's queue passed its limit")]
pub struct SlowConsumer;

/// One streamed subscription's queue of framed events.
#[derive(Debug)]
pub struct EventStream {
    framing: Framing,
    frames: RefCell<VecDeque<Bytes>>,
    bytes: Cell<usize>,
    limit: usize,
    /// The body has been read once: the response is going out.
    started: Cell<bool>,
    end: Cell<End>,
    reader: RefCell<Option<Waker>>,
}

impl EventStream {
    fn new(framing: Framing, limit: usize) -> Rc<EventStream> {
        let s = EventStream {
            framing,
            frames: RefCell::default(),
            bytes: Cell::new(0),
            limit,
            started: Cell::new(false),
            end: Cell::new(End::Open),
            reader: RefCell::new(None),
        };
        s.push(framing.opening());
        Rc::new(s)
    }

    /// Queues an execution result; `id` is the event's seq, for resuming. False once
    /// the stream ends.
    pub fn next(&self, payload: &[u8], id: Option<u64>) -> bool {
        self.push(self.framing.next(payload, id))
    }

    /// Queues the last frame (`complete`, the final boundary): the response ends after
    /// what is queued.
    pub fn complete(&self) {
        if self.end.get() != End::Open {
            return;
        }
        let end = self.framing.end();
        self.bytes.set(self.bytes.get() + end.len());
        self.frames.borrow_mut().push_back(end);
        self.end.set(End::Complete);
        self.wake();
    }

    /// Whether the stream is ending: nothing more is queued.
    pub fn is_closing(&self) -> bool {
        self.end.get() != End::Open
    }

    /// A heartbeat, when nothing is waiting to go out.
    fn heartbeat(&self) {
        if self.bytes.get() == 0 {
            self.push(self.framing.heartbeat());
        }
    }

    fn push(&self, frame: Bytes) -> bool {
        if self.end.get() != End::Open {
            return false;
        }
        let bytes = self.bytes.get() + frame.len();
        if bytes > self.limit && self.started.get() {
            self.frames.borrow_mut().clear();
            self.bytes.set(0);
            self.end.set(End::Overflow);
            self.wake();
            return false;
        }
        self.bytes.set(bytes);
        self.frames.borrow_mut().push_back(frame);
        self.wake();
        true
    }

    fn wake(&self) {
        if let Some(w) = self.reader.borrow_mut().take() {
            w.wake();
        }
    }

    fn poll_data(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, SlowConsumer>>> {
        self.started.set(true);
        if let Some(frame) = self.frames.borrow_mut().pop_front() {
            self.bytes.set(self.bytes.get() - frame.len());
            return Poll::Ready(Some(Ok(frame)));
        }
        match self.end.get() {
            End::Open => {
                *self.reader.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
            End::Complete => Poll::Ready(None),
            End::Overflow => Poll::Ready(Some(Err(SlowConsumer))),
        }
    }
}

/// The hub subscription a stream feeds, left when the response is done or dropped.
#[derive(Debug)]
pub struct Subscribed {
    /// The shard's hub.
    pub hub: Rc<Hub>,
    /// The subscription's connection id in the hub.
    pub conn: ConnId,
    /// Its room.
    pub room: Box<str>,
}

impl Drop for Subscribed {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.conn, "", &self.room);
    }
}

/// A streamed response's body: the queue's frames as they come.
#[derive(Debug)]
pub struct StreamBody {
    stream: Rc<EventStream>,
    _subscribed: Option<Subscribed>,
    /// The connection counts as busy while the stream is open, so neither the idle
    /// timeout nor the drain closes it under the response.
    _in_flight: StreamGuard,
}

impl StreamBody {
    /// The body of `stream`, holding its subscription (when there is one) and its
    /// connection's in-flight mark until the response is done.
    pub fn new(
        stream: Rc<EventStream>,
        subscribed: Option<Subscribed>,
        in_flight: StreamGuard,
    ) -> StreamBody {
        StreamBody {
            stream,
            _subscribed: subscribed,
            _in_flight: in_flight,
        }
    }

    /// The next bytes to write; None at the end, an error when cut off.
    pub fn poll_data(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, SlowConsumer>>> {
        self.stream.poll_data(cx)
    }
}

/// A shard's open streams.
#[derive(Debug, Default)]
pub struct Streams {
    open: RefCell<Vec<Weak<EventStream>>>,
    /// The node is closing: streams end as soon as they open.
    closed: Cell<bool>,
}

impl Streams {
    /// A new stream on this shard, bounded to `limit` bytes waiting; one opened once
    /// the node is closing ends after what its request queues.
    pub fn open(&self, framing: Framing, limit: usize) -> Rc<EventStream> {
        let s = EventStream::new(framing, limit);
        self.open.borrow_mut().push(Rc::downgrade(&s));
        s
    }

    /// Ends `s` at once when the node is closing (after the caller queued its replay).
    pub fn end_if_closed(&self, s: &EventStream) {
        if self.closed.get() {
            s.complete();
        }
    }

    fn live(&self) -> Vec<Rc<EventStream>> {
        let mut open = self.open.borrow_mut();
        open.retain(|w| w.upgrade().is_some_and(|s| !s.is_closing()));
        open.iter().filter_map(Weak::upgrade).collect()
    }
}

/// Sends heartbeats to the shard's quiet streams until the shard closes, then ends
/// every open stream.
pub async fn keep(shard: Rc<Shard>) {
    let closing = shard.closing();
    tokio::pin!(closing);
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => shard.streams.live().iter().for_each(|s| s.heartbeat()),
            () = &mut closing => break,
        }
    }
    shard.streams.closed.set(true);
    for s in shard.streams.live() {
        s.complete();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_picks_the_streamed_framings() {
        let of = |a| Framing::of_accept(Some(a));
        assert_eq!(of("text/event-stream"), Some(Framing::Sse));
        assert_eq!(
            of("multipart/mixed;boundary=\"graphql\";subscriptionSpec=1.0,application/json"),
            Some(Framing::Multipart)
        );
        assert_eq!(
            of("multipart/mixed;subscriptionSpec=\"1.0\", application/json"),
            Some(Framing::Multipart)
        );
        assert_eq!(of("multipart/mixed;deferSpec=20220824"), None);
        assert_eq!(of("application/json"), None);
        assert_eq!(of("text/event-stream;q=0, application/json"), None);
        assert_eq!(Framing::of_accept(None), None);
    }

    fn drain(s: &EventStream) -> Vec<Result<Bytes, SlowConsumer>> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut out = Vec::new();
        while let Poll::Ready(Some(f)) = s.poll_data(&mut cx) {
            let err = f.is_err();
            out.push(f);
            if err {
                break;
            }
        }
        out
    }

    #[test]
    fn a_replay_before_the_response_starts_may_pass_the_limit_but_a_slow_reader_may_not() {
        let s = EventStream::new(Framing::Sse, 64);
        for seq in 1..=4 {
            assert!(s.next(b"{\"data\":{\"n\":12345678}}", Some(seq)));
        }
        // The opening keep-alive and the four events.
        assert_eq!(drain(&s).len(), 5);
        assert!(s.next(b"{\"data\":{\"n\":12345678}}", Some(5)));
        assert!(!s.next(b"{\"data\":{\"n\":12345678}}", Some(6)));
        assert!(s.is_closing());
        let rest = drain(&s);
        assert!(matches!(rest.as_slice(), [Err(SlowConsumer)]));
    }

    #[test]
    fn complete_ends_the_body_after_what_is_queued() {
        let s = EventStream::new(Framing::Multipart, 1 << 20);
        s.next(b"{\"data\":null}", None);
        s.complete();
        assert!(!s.next(b"{}", None));
        let frames: Vec<Bytes> = drain(&s).into_iter().map(Result::unwrap).collect();
        assert_eq!(frames.len(), 3);
        assert_eq!(&frames[0][..], multipart::HEAD);
        assert_eq!(&frames[2][..], multipart::END);
    }
}
