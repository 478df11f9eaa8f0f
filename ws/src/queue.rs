//! A connection's send queue: frames wait here with a byte limit, and one writer task
//! writes everything queued since it last woke in one write. A consumer too slow to
//! keep its queue under the limit is closed with 4008; it never slows anyone else.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use crate::frame;

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
    wake: Notify,
}

impl SendQueue {
    /// An empty queue holding at most `limit` bytes of frames.
    pub fn new(limit: usize) -> Rc<SendQueue> {
        Rc::new(SendQueue {
            frames: RefCell::new(VecDeque::new()),
            bytes: Cell::new(0),
            limit,
            closing: Cell::new(false),
            wake: Notify::new(),
        })
    }

    /// Queues a frame. Past the limit, the queued frames are dropped and a close 4008
    /// takes their place; false then (and once closing).
    pub fn push(&self, frame: Bytes) -> bool {
        if self.closing.get() {
            return false;
        }
        let bytes = self.bytes.get() + frame.len();
        if bytes > self.limit {
            self.frames.borrow_mut().clear();
            self.bytes.set(0);
            self.close_with(frame::close(SLOW_CONSUMER, "slow consumer"));
            return false;
        }
        self.bytes.set(bytes);
        self.frames.borrow_mut().push_back(frame);
        self.wake.notify_one();
        true
    }

    /// Queues a close frame as the last frame (whatever the limit).
    pub fn close_with(&self, close_frame: Bytes) {
        if self.closing.replace(true) {
            return;
        }
        self.bytes.set(self.bytes.get() + close_frame.len());
        self.frames.borrow_mut().push_back(close_frame);
        self.wake.notify_one();
    }

    /// Whether a close frame is queued (or sent).
    pub fn is_closing(&self) -> bool {
        self.closing.get()
    }

    /// Bytes waiting.
    pub fn queued_bytes(&self) -> usize {
        self.bytes.get()
    }

    /// Writes queued frames until the close frame is out or the socket fails. Each
    /// wake-up writes everything queued so far in one write.
    pub async fn run_writer<W: AsyncWrite + Unpin>(self: Rc<Self>, mut w: W) {
        let mut batch = BytesMut::new();
        loop {
            let taken: Vec<Bytes> = {
                let mut q = self.frames.borrow_mut();
                if q.is_empty() {
                    None
                } else {
                    Some(q.drain(..).collect())
                }
            }
            .unwrap_or_default();
            if taken.is_empty() {
                if self.closing.get() {
                    break;
                }
                self.wake.notified().await;
                continue;
            }
            self.bytes.set(0);
            let res = if let [one] = &taken[..] {
                w.write_all(one).await
            } else {
                batch.clear();
                for f in &taken {
                    batch.extend_from_slice(f);
                }
                w.write_all(&batch).await
            };
            if res.is_err() {
                // The peer is gone: nothing more can be sent.
                self.closing.set(true);
                self.frames.borrow_mut().clear();
                return;
            }
        }
        let _ = w.flush().await;
        let _ = w.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_limit_the_queue_is_replaced_by_a_close_4008() {
        let q = SendQueue::new(10);
        assert!(q.push(Bytes::from_static(b"12345")));
        assert!(q.push(Bytes::from_static(b"12345")));
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
        let writer = tokio::task::LocalSet::new();
        writer.run_until(Rc::clone(&q).run_writer(client)).await;
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
}
