//! A connection's send queue: frames wait here with a byte limit, and the session's
//! writer writes everything queued since it last woke in one vectored write. A consumer
//! too slow to keep its queue under the limit is closed with 4008; it never slows anyone
//! else.
//!
//! The limit is judged against what the socket will not take: a burst pushed at once
//! (events that waited in a cross-shard ring while the shard was busy) may pass it as
//! long as the writer then gets it into the socket; a queue over the limit while the
//! socket refuses more is a slow consumer. So a member is treated the same whichever
//! shard publishes. A burst is bounded upstream: a hub delivers at most a room's history
//! at once, as shared frames (a queue holds a handle per frame, not a copy).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::AsyncWrite;

use crate::frame;

/// Where a queue's writer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Writing,
    ShuttingDown,
    Done,
}

/// Frames handed to one vectored write at most.
const MAX_IOV: usize = 64;

/// The close code for a slow consumer.
pub const SLOW_CONSUMER: u16 = 4008;

/// A connection's queue of encoded frames.
#[derive(Debug)]
pub struct SendQueue {
    frames: RefCell<VecDeque<Bytes>>,
    bytes: Cell<usize>,
    limit: usize,
    /// A close frame is queued: nothing more is accepted, and the writer stops after it.
    closing: Cell<bool>,
    /// The first frame is partly written: it must be finished before anything else.
    front_started: Cell<bool>,
    /// The socket refused the writer's last write: it is full.
    blocked: Cell<bool>,
    /// The writer, waiting for frames.
    writer: RefCell<Option<Waker>>,
    /// Where the writer is: writing, shutting the write side, or done.
    stage: Cell<Stage>,
}

impl SendQueue {
    /// An empty queue holding at most `limit` bytes of frames.
    pub fn new(limit: usize) -> Rc<SendQueue> {
        Rc::new(SendQueue {
            frames: RefCell::new(VecDeque::new()),
            bytes: Cell::new(0),
            limit,
            closing: Cell::new(false),
            front_started: Cell::new(false),
            blocked: Cell::new(false),
            writer: RefCell::new(None),
            stage: Cell::new(Stage::Writing),
        })
    }

    /// Queues a frame. Past the limit while the socket is full, the queued frames are
    /// dropped and a close 4008 takes their place; false then (and once closing). Past
    /// the limit while the socket still takes data, the writer judges once it has
    /// written what the socket takes.
    pub fn push(&self, frame: Bytes) -> bool {
        if self.closing.get() {
            return false;
        }
        let bytes = self.bytes.get() + frame.len();
        if bytes > self.limit && self.blocked.get() {
            self.overflow();
            return false;
        }
        self.bytes.set(bytes);
        self.frames.borrow_mut().push_back(frame);
        self.wake_writer();
        true
    }

    /// Drops what has not started going out (a partly written frame is finished) and
    /// queues a close 4008 instead.
    fn overflow(&self) {
        let mut q = self.frames.borrow_mut();
        let keep = if self.front_started.get() {
            q.pop_front()
        } else {
            None
        };
        q.clear();
        self.bytes.set(keep.as_ref().map_or(0, Bytes::len));
        q.extend(keep);
        drop(q);
        self.close_with(frame::close(SLOW_CONSUMER, "slow consumer"));
    }

    /// Queues a close frame as the last frame (whatever the limit).
    pub fn close_with(&self, close_frame: Bytes) {
        if self.closing.replace(true) {
            return;
        }
        self.bytes.set(self.bytes.get() + close_frame.len());
        self.frames.borrow_mut().push_back(close_frame);
        self.wake_writer();
    }

    /// Whether a close frame is queued (or sent).
    pub fn is_closing(&self) -> bool {
        self.closing.get()
    }

    /// Bytes waiting.
    pub fn queued_bytes(&self) -> usize {
        self.bytes.get()
    }

    /// Runs `session` and this queue's writer on `w` together, in the caller's task.
    /// When the session ends, a normal close is queued (unless one is) and the writer
    /// has `patience` to send what is left; when the writer ends first (its close frame
    /// is out, or the socket failed), the session has `patience` to finish, e.g. to read
    /// the peer's answering close.
    pub async fn drive<W, F>(&self, w: &mut W, session: F, patience: Duration)
    where
        W: AsyncWrite + Unpin,
        F: Future<Output = ()>,
    {
        let writing = std::future::poll_fn(|cx| self.poll_write_to(cx, w));
        tokio::pin!(writing);
        tokio::pin!(session);
        tokio::select! {
            () = &mut session => {}
            () = &mut writing => {
                let _ = tokio::time::timeout(patience, session).await;
                return;
            }
        }
        self.close_with(frame::close(crate::message::code::NORMAL, ""));
        let _ = tokio::time::timeout(patience, writing).await;
    }

    fn wake_writer(&self) {
        let waker = self.writer.borrow_mut().take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Polls the writer: everything queued is written, frames pushed meanwhile included;
    /// Ready once the close frame is out and the write side shut, or the socket failed.
    /// Each wake-up writes all that is queued with vectored writes straight from the
    /// queue (no copy); a queue emptied gives its memory back.
    pub fn poll_write_to<W: AsyncWrite + Unpin>(
        &self,
        cx: &mut Context<'_>,
        w: &mut W,
    ) -> Poll<()> {
        loop {
            match self.stage.get() {
                Stage::Writing => {
                    if self.frames.borrow().is_empty() {
                        if self.closing.get() {
                            self.stage.set(Stage::ShuttingDown);
                            continue;
                        }
                        let mut waiting = self.writer.borrow_mut();
                        match &*waiting {
                            Some(w) if w.will_wake(cx.waker()) => {}
                            _ => *waiting = Some(cx.waker().clone()),
                        }
                        return Poll::Pending;
                    }
                    if ready!(self.poll_write_queued(cx, w)).is_err() {
                        // The peer is gone: nothing more can be sent.
                        self.closing.set(true);
                        *self.frames.borrow_mut() = VecDeque::new();
                        self.bytes.set(0);
                        self.stage.set(Stage::Done);
                    }
                }
                Stage::ShuttingDown => {
                    let _ = ready!(Pin::new(&mut *w).poll_flush(cx));
                    let _ = ready!(Pin::new(&mut *w).poll_shutdown(cx));
                    self.stage.set(Stage::Done);
                }
                Stage::Done => return Poll::Ready(()),
            }
        }
    }

    /// Writes until the queue is empty.
    fn poll_write_queued<W: AsyncWrite + Unpin>(
        &self,
        cx: &mut Context<'_>,
        w: &mut W,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut q = self.frames.borrow_mut();
            if q.is_empty() {
                *q = VecDeque::new();
                return Poll::Ready(Ok(()));
            }
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let n = q
                .iter()
                .zip(iov.iter_mut())
                .map(|(f, s)| *s = IoSlice::new(f))
                .count();
            let poll = Pin::new(&mut *w).poll_write_vectored(cx, &iov[..n]);
            self.blocked.set(poll.is_pending());
            let Poll::Ready(written) = poll else {
                if self.bytes.get() > self.limit && !self.closing.get() {
                    drop(q);
                    self.overflow();
                }
                return Poll::Pending;
            };
            let mut written = written?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.bytes.set(self.bytes.get().saturating_sub(written));
            self.front_started.set(false);
            while let Some(front) = q.front_mut() {
                if front.len() > written {
                    front.advance(written);
                    self.front_started.set(written > 0);
                    break;
                }
                written -= front.len();
                q.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_limit_while_the_socket_is_full_the_queue_is_replaced_by_a_close_4008() {
        let q = SendQueue::new(10);
        assert!(q.push(Bytes::from_static(b"12345")));
        assert!(q.push(Bytes::from_static(b"12345")));
        // The socket refused the writer's last write.
        q.blocked.set(true);
        assert!(!q.push(Bytes::from_static(b"1")));
        assert!(q.is_closing());
        let frames: Vec<Bytes> = q.frames.borrow().iter().cloned().collect();
        assert_eq!(frames, vec![frame::close(SLOW_CONSUMER, "slow consumer")]);
        assert!(!q.push(Bytes::from_static(b"x")), "nothing after the close");
    }

    #[tokio::test]
    async fn the_writer_sends_everything_queued_in_order_and_stops_after_the_close() {
        let q = SendQueue::new(1 << 20);
        let (client, mut server_side) = tokio::io::duplex(1 << 16);
        q.push(frame::text(b"a"));
        q.push(frame::text(b"b"));
        q.close_with(frame::close(1000, ""));
        let mut client = client;
        // The session ends at once: the writer still sends everything, close last.
        q.drive(&mut client, async {}, Duration::from_secs(5)).await;
        assert_eq!(q.queued_bytes(), 0);
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut server_side, &mut got)
            .await
            .unwrap();
        let mut want = Vec::new();
        for f in [frame::text(b"a"), frame::text(b"b"), frame::close(1000, "")] {
            want.extend_from_slice(&f);
        }
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_burst_past_the_limit_that_the_socket_takes_is_delivered_whole() {
        let q = SendQueue::new(100);
        let (mut client, mut peer) = tokio::io::duplex(1 << 16);
        let frames: Vec<Bytes> = (0..3).map(|_| frame::text(&[b'a'; 60])).collect();
        for f in &frames {
            assert!(
                q.push(f.clone()),
                "over the limit, but the socket is not full"
            );
        }
        q.close_with(frame::close(1000, ""));
        q.drive(&mut client, async {}, Duration::from_secs(5)).await;
        drop(client);
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut peer, &mut got)
            .await
            .unwrap();
        let mut want: Vec<u8> = frames.concat();
        want.extend_from_slice(&frame::close(1000, ""));
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn an_overflow_drops_the_waiting_frames_but_finishes_the_one_half_written() {
        let q = SendQueue::new(100);
        let (mut client, mut peer) = tokio::io::duplex(8);
        let a = frame::text(&[b'a'; 50]);
        assert!(q.push(a.clone()));
        let writing = q.drive(&mut client, std::future::pending(), Duration::ZERO);
        tokio::pin!(writing);
        // One poll: the pipe takes 8 bytes of `a`, then it is full.
        tokio::select! {
            biased;
            () = &mut writing => unreachable!("the writer waits for the pipe"),
            () = tokio::task::yield_now() => {}
        }
        assert_eq!(q.queued_bytes(), a.len() - 8);
        assert!(
            !q.push(frame::text(&[b'b'; 60])),
            "past the limit while the socket is full"
        );
        let mut got = Vec::new();
        let ((), read) = tokio::join!(
            writing,
            tokio::io::AsyncReadExt::read_to_end(&mut peer, &mut got)
        );
        read.unwrap();
        let mut want = a.to_vec();
        want.extend_from_slice(&frame::close(SLOW_CONSUMER, "slow consumer"));
        assert_eq!(got, want, "the rest of `a`, then the close; `b` never");
    }

    #[tokio::test]
    async fn a_queue_over_the_limit_when_the_socket_fills_is_closed_with_4008() {
        let q = SendQueue::new(100);
        let (mut client, mut peer) = tokio::io::duplex(8);
        let a = frame::text(&[b'a'; 60]);
        assert!(q.push(a.clone()));
        assert!(
            q.push(frame::text(&[b'b'; 60])),
            "a burst: the socket may take it"
        );
        let writing = q.drive(&mut client, std::future::pending(), Duration::ZERO);
        let mut got = Vec::new();
        let ((), read) = tokio::join!(
            writing,
            tokio::io::AsyncReadExt::read_to_end(&mut peer, &mut got)
        );
        read.unwrap();
        let mut want = a.to_vec();
        want.extend_from_slice(&frame::close(SLOW_CONSUMER, "slow consumer"));
        assert_eq!(got, want, "the socket filled within `a`: `b` never goes");
    }
}
