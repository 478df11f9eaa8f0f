//! An accepted connection on the ring: a direct descriptor (a slot of the ring's file
//! table, not a process descriptor), read and written with single operations through
//! buffers the connection owns and lends to the kernel for each operation.
//!
//! Reads: one receive in flight at a time, which takes a buffer of the driver's
//! provided ring only when data comes (an idle connection holds none); the reader
//! (hyper, the WebSocket reader) gets what fits, the rest is copied aside, and the
//! buffer goes back at once. Writes: the bytes are copied into a send buffer (freed
//! once sent) and the write reports them written at once; the next write, a flush or a shutdown waits until the kernel has taken them all (a
//! short send goes on with the rest), so at most one send is in flight and an error
//! surfaces at the next call. Dropping the connection cancels what is in flight and
//! closes the slot; the buffers stay with the driver until their completions arrive.
#![allow(unsafe_code)]

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use io_uring::{opcode, squeue, types};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::bufring::GROUP;
use super::driver::{this_thread, Done, Keep, Kind, OpId};

/// Bytes one write takes at most (hyper writes a response's parts in one vectored
/// call; larger bodies come in several).
const SEND_BUF: usize = 64 * 1024;

/// A connection accepted into the ring's file table. It finds its driver in its thread's
/// local on each call rather than holding it: hyper requires an upgradable socket to be
/// `Send`, which an `Rc` of the driver is not.
#[derive(Debug)]
pub struct UringStream {
    slot: u32,
    /// Received bytes not yet handed out: `read[at..]`.
    read: Vec<u8>,
    at: usize,
    recv: Option<OpId>,
    eof: bool,
    /// The send in flight, and how much of its buffer is already sent.
    send: Option<(OpId, usize)>,
    /// A send's error, reported by the next write, flush or shutdown.
    failed: Option<io::Error>,
    shutdown: Option<OpId>,
    shut: bool,
}

impl UringStream {
    /// The connection in slot `slot` of this thread's ring.
    pub fn new(slot: u32) -> UringStream {
        UringStream {
            slot,
            read: Vec::new(),
            at: 0,
            recv: None,
            eof: false,
            send: None,
            failed: None,
            shutdown: None,
            shut: false,
        }
    }

    fn fixed(&self) -> types::Fixed {
        types::Fixed(self.slot)
    }

    /// Waits for the send in flight (and what is left of it after short sends).
    fn poll_sent(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let driver = this_thread()?;
        while let Some((id, done)) = self.send {
            let Done { res, keep, .. } = ready!(driver.poll(id, cx));
            self.send = None;
            let Keep::Buf(buf) = keep else {
                unreachable!("a send keeps its buffer")
            };
            match res {
                // All sent: the buffer goes (an idle connection keeps none).
                Ok(n) if done + n as usize >= buf.len() => drop(buf),
                Ok(0) => {
                    self.failed = Some(io::ErrorKind::WriteZero.into());
                }
                Ok(n) => {
                    let done = done + n as usize;
                    let rest = &buf[done..];
                    let entry = opcode::Send::new(self.fixed(), rest.as_ptr(), rest.len() as u32)
                        .flags(libc::MSG_NOSIGNAL)
                        .build();
                    // SAFETY: the entry points into `buf`'s heap memory, which the
                    // operation keeps (moving the Vec does not move its bytes).
                    let id = unsafe { driver.submit(entry, Keep::Buf(buf), Kind::Plain) };
                    self.send = Some((id, done));
                }
                Err(e) => self.failed = Some(e),
            }
        }
        match self.failed.take() {
            Some(e) => {
                let again = io::Error::new(e.kind(), e.to_string());
                self.failed = Some(again);
                Poll::Ready(Err(e))
            }
            None => Poll::Ready(Ok(())),
        }
    }

    fn start_send(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let driver = this_thread()?;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut buf = Vec::with_capacity(total.min(SEND_BUF));
        for b in bufs {
            let room = SEND_BUF.saturating_sub(buf.len());
            if room == 0 {
                break;
            }
            buf.extend_from_slice(&b[..b.len().min(room)]);
        }
        let n = buf.len();
        if n == 0 {
            return Ok(0);
        }
        let entry = opcode::Send::new(self.fixed(), buf.as_ptr(), n as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build();
        // SAFETY: the entry points into `buf`'s heap memory, kept by the operation.
        let id = unsafe { driver.submit(entry, Keep::Buf(buf), Kind::Plain) };
        self.send = Some((id, 0));
        Ok(n)
    }
}

impl AsyncRead for UringStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.at < this.read.len() {
                let n = (this.read.len() - this.at).min(out.remaining());
                out.put_slice(&this.read[this.at..this.at + n]);
                this.at += n;
                if this.at == this.read.len() {
                    // Nothing held while idle.
                    this.read = Vec::new();
                    this.at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let driver = this_thread()?;
            match this.recv {
                Some(id) => {
                    let Done { res, buffer, .. } = ready!(driver.poll(id, cx));
                    this.recv = None;
                    match (res, buffer) {
                        (Ok(0), _) => this.eof = true,
                        (Ok(n), Some(bid)) => {
                            // What the reader takes now, and the rest kept, so the
                            // buffer goes back at once.
                            let data = driver.received(bid, n as usize);
                            let now = data.len().min(out.remaining());
                            out.put_slice(&data[..now]);
                            this.read.clear();
                            this.read.extend_from_slice(&data[now..]);
                            this.at = 0;
                            driver.give_back(bid);
                            return Poll::Ready(Ok(()));
                        }
                        (Ok(_), None) => {
                            return Poll::Ready(Err(io::Error::other(
                                "io_uring: a receive came without its buffer",
                            )))
                        }
                        (Err(e), _) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                            // Every buffer is taken (by receives not yet copied out):
                            // receive again on the next turn.
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        (Err(e), _) => return Poll::Ready(Err(e)),
                    }
                }
                None => {
                    let entry = opcode::Recv::new(this.fixed(), std::ptr::null_mut(), 0)
                        .buf_group(GROUP)
                        .build()
                        .flags(squeue::Flags::BUFFER_SELECT);
                    // SAFETY: the entry points into no memory of the connection: the
                    // kernel fills a buffer of the driver's group, which outlives it.
                    let id = unsafe { driver.submit(entry, Keep::Nothing, Kind::Plain) };
                    this.recv = Some(id);
                }
            }
        }
    }
}

impl AsyncWrite for UringStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_sent(cx))?;
        Poll::Ready(this.start_send(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_sent(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_sent(cx))?;
        if this.shut {
            return Poll::Ready(Ok(()));
        }
        let driver = this_thread()?;
        let id = match this.shutdown {
            Some(id) => id,
            None => {
                let entry = opcode::Shutdown::new(this.fixed(), libc::SHUT_WR).build();
                // SAFETY: a shutdown points into no memory.
                let id = unsafe { driver.submit(entry, Keep::Nothing, Kind::Plain) };
                this.shutdown = Some(id);
                id
            }
        };
        let Done { res, .. } = ready!(driver.poll(id, cx));
        this.shutdown = None;
        this.shut = true;
        match res {
            Ok(_) => Poll::Ready(Ok(())),
            // The peer is gone already: nothing left to shut.
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for UringStream {
    fn drop(&mut self) {
        let Ok(driver) = this_thread() else {
            return;
        };
        for id in [self.recv.take(), self.shutdown.take()]
            .into_iter()
            .flatten()
            .chain(self.send.take().map(|(id, _)| id))
        {
            driver.abandon(id);
        }
        driver.close_slot(self.slot);
    }
}
