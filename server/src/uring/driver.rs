//! A shard's ring: the operations in flight, each keeping what the kernel may still
//! read or write until its completion arrives; submissions flushed once per turn of the
//! shard's runtime; completions reaped when the ring's descriptor turns readable in the
//! runtime's reactor (so timers, PostgreSQL and Redis run on the same thread).
//!
//! The driver lives in a thread local of its shard ([`install`]): the connections
//! carry plain indexes, not references, and an operation asked for on a thread without
//! a driver fails with an error instead of touching another thread's ring.
#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::bufring::BufRing;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

/// What an operation keeps alive for the kernel until its completion: the memory its
/// submission points into.
#[derive(Debug)]
pub enum Keep {
    /// Nothing (a close, a shutdown, a cancel).
    Nothing,
    /// A receive's or a send's buffer.
    Buf(Vec<u8>),
    /// An accept's peer address and its length.
    Addr(Box<(libc::sockaddr_storage, libc::socklen_t)>),
}

/// Where an operation is.
#[derive(Debug)]
enum State {
    /// Submitted; the waker of whoever waits for it.
    Waiting(Option<Waker>),
    /// Completed with this result (a count or `-errno`) and its flags.
    Done(i32, u32),
    /// Its future is gone; freed when its completion arrives.
    Abandoned,
}

#[derive(Debug)]
struct Op {
    /// Its `user_data`: the table index, and in the high half how many operations the
    /// index served before, so a late cancel never reaches a newer operation.
    user_data: u64,
    state: State,
    keep: Keep,
    kind: Kind,
}

/// What an operation's completion means for the file table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Nothing.
    Plain,
    /// An accept: a result of 0 or more is a slot taken (closed again if nobody takes
    /// the connection).
    Accept,
    /// A close: its completion frees a slot.
    Close,
}

impl Op {
    fn accepts(&self) -> bool {
        self.kind == Kind::Accept
    }
}

/// An operation's handle: its index in the driver's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpId(usize);

/// `user_data` of submissions whose completion nobody waits for (cancels).
const UNWATCHED: u64 = u64::MAX;

/// One shard's ring and its operations in flight.
pub struct Driver {
    /// The ring's descriptor in the reactor; dropped before the ring that owns it.
    fd: AsyncFd<RawFd>,
    ring: RefCell<IoUring>,
    /// The receives' buffers; dropped after the ring, which the kernel read them for.
    bufs: BufRing,
    ops: RefCell<Vec<Option<Op>>>,
    free: RefCell<Vec<usize>>,
    /// Submissions pushed since the last `submit`.
    pending: Cell<u32>,
    /// Operations submitted so far (wrapping): the high half of each `user_data`.
    serial: Cell<u32>,
    flush: Notify,
    /// The wakers a reap collects (kept for the next).
    wake: Cell<Vec<Waker>>,
    /// Direct descriptors in use (accepted and not yet closed).
    open: Cell<u32>,
    /// Provided buffers the kernel filled that are not given back yet.
    taken: Cell<u32>,
    /// The size of the ring's file table.
    table: u32,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("in_flight", &self.in_flight())
            .field("open", &self.open.get())
            .field("table", &self.table)
            .finish()
    }
}

thread_local! {
    static DRIVER: RefCell<Option<Rc<Driver>>> = const { RefCell::new(None) };
}

/// The submission queue's size.
const ENTRIES: u32 = 1024;
/// The completion queue's size: a fan-out's sends to thousands of sockets complete in
/// one turn, and what overflows it waits in the kernel until the reaper asks for it.
pub(super) const CQ_ENTRIES: u32 = 8 * 1024;
/// Receive buffers per ring, and their size: taken only while data waits to be copied
/// out (4 MiB a ring, resident as they are first used).
const RECV_BUFFERS: u16 = 512;
const RECV_BUFFER_SIZE: usize = 8 * 1024;

/// An operation's completion, taken by whoever waited for it.
#[derive(Debug)]
pub struct Done {
    /// A count, or the error.
    pub res: io::Result<u32>,
    /// What it kept for the kernel.
    pub keep: Keep,
    /// The provided buffer a receive filled (give it back once read).
    pub buffer: Option<u16>,
}

impl Driver {
    /// A ring with a sparse file table of `table` direct descriptors, registered with
    /// this thread's tokio reactor (must run inside the runtime).
    pub fn new(table: u32) -> io::Result<Driver> {
        // Not IORING_SETUP_COOP_TASKRUN: the thread sleeps in the reactor's epoll_wait
        // on the ring's descriptor, and with it a completion that needs task work
        // (a receive whose data came) is not posted until the thread enters the kernel
        // by itself, so the descriptor never turns readable (tried: requests sat
        // unread in their sockets).
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_cqsize(CQ_ENTRIES)
            .build(ENTRIES)?;
        ring.submitter().register_files_sparse(table)?;
        let bufs = BufRing::new(&ring, RECV_BUFFERS, RECV_BUFFER_SIZE)?;
        // SAFETY: the descriptor is the ring's, which the driver owns and drops after
        // this registration (`fd` is declared before `ring`, so it drops first).
        let fd = unsafe {
            AsyncFd::register_with_interest(ring.as_raw_fd(), tokio::io::Interest::READABLE)
        }?;
        Ok(Driver {
            fd,
            ring: RefCell::new(ring),
            bufs,
            ops: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            pending: Cell::new(0),
            serial: Cell::new(0),
            flush: Notify::new(),
            wake: Cell::new(Vec::new()),
            open: Cell::new(0),
            taken: Cell::new(0),
            table,
        })
    }

    /// Operations whose completion has not been taken yet (the leak check of the
    /// tests: it returns to its start once every connection is gone).
    pub fn in_flight(&self) -> usize {
        self.ops.borrow().iter().filter(|o| o.is_some()).count()
    }

    /// Direct descriptors in use.
    pub fn open(&self) -> u32 {
        self.open.get()
    }

    /// The bytes a receive put into provided buffer `bid`.
    pub fn received(&self, bid: u16, len: usize) -> &[u8] {
        self.bufs.filled(bid, len)
    }

    /// Gives a provided buffer back to the kernel once its bytes are copied out.
    pub fn give_back(&self, bid: u16) {
        self.taken.set(self.taken.get() - 1);
        self.bufs.give_back(bid);
    }

    /// Provided buffers filled by the kernel and not given back yet.
    pub fn buffers_taken(&self) -> u32 {
        self.taken.get()
    }

    /// Free slots of the file table.
    pub fn free_slots(&self) -> u32 {
        self.table.saturating_sub(self.open.get())
    }

    /// Submits `entry`, which points into `keep` (or into nothing that can go away):
    /// the operation's handle.
    ///
    /// # Safety
    /// Every pointer in `entry` must point into `keep`'s heap memory (which moves with
    /// `keep` without moving) or into memory that outlives the operation's completion.
    pub unsafe fn submit(&self, entry: squeue::Entry, keep: Keep, kind: Kind) -> OpId {
        let serial = self.serial.get().wrapping_add(1);
        self.serial.set(serial);
        let mut ops = self.ops.borrow_mut();
        let id = match self.free.borrow_mut().pop() {
            Some(i) => i,
            None => {
                ops.push(None);
                ops.len() - 1
            }
        };
        let user_data = (u64::from(serial) << 32) | id as u64;
        ops[id] = Some(Op {
            user_data,
            state: State::Waiting(None),
            keep,
            kind,
        });
        drop(ops);
        // SAFETY: the caller vouches for the pointers; the memory stays in the table
        // entry `id` until the completion with this user_data is reaped.
        unsafe { self.push(entry.user_data(user_data)) };
        OpId(id)
    }

    /// Pushes a submission whose completion nobody waits for and that points into
    /// nothing (a cancel).
    fn push_unwatched(&self, entry: squeue::Entry) {
        // SAFETY: such entries (cancels) carry no pointers.
        unsafe { self.push(entry.user_data(UNWATCHED)) };
    }

    /// # Safety
    /// `entry`'s pointers stay valid until its completion (see [`Driver::submit`]).
    unsafe fn push(&self, entry: squeue::Entry) {
        let mut ring = self.ring.borrow_mut();
        loop {
            // SAFETY: passed on from the caller.
            if unsafe { ring.submission().push(&entry) }.is_ok() {
                break;
            }
            // The queue is full: hand it to the kernel now.
            if let Err(e) = ring.submit() {
                tracing::warn!(error = %e, "io_uring submit failed");
            }
        }
        if self.pending.replace(self.pending.get() + 1) == 0 {
            self.flush.notify_one();
        }
    }

    /// Hands every pushed submission to the kernel (one system call, or one more after
    /// reaping when completions overflowed).
    pub fn flush(&self) {
        if self.pending.replace(0) == 0 {
            return;
        }
        loop {
            let res = self.ring.borrow().submit();
            match res {
                Ok(_) => return,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                // Completions overflowed: reap them, then submit again.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => self.reap(),
                Err(e) => {
                    tracing::warn!(error = %e, "io_uring submit failed");
                    return;
                }
            }
        }
    }

    /// The operation's result once completed (a count, or the error), with what it
    /// kept; else registers `cx`'s waker.
    pub fn poll(&self, id: OpId, cx: &mut Context<'_>) -> Poll<Done> {
        let mut ops = self.ops.borrow_mut();
        let Some(op) = ops[id.0].as_mut() else {
            return Poll::Ready(Done {
                res: Err(io::Error::other("io_uring operation lost")),
                keep: Keep::Nothing,
                buffer: None,
            });
        };
        match &mut op.state {
            State::Done(res, flags) => {
                let (res, flags) = (*res, *flags);
                let op = ops[id.0].take().expect("checked above");
                drop(ops);
                self.free.borrow_mut().push(id.0);
                let res = if res < 0 {
                    Err(io::Error::from_raw_os_error(-res))
                } else {
                    Ok(res as u32)
                };
                Poll::Ready(Done {
                    res,
                    keep: op.keep,
                    buffer: cqueue::buffer_select(flags),
                })
            }
            State::Waiting(w) => {
                if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *w = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            State::Abandoned => unreachable!("a handle outlived its abandonment"),
        }
    }

    /// Gives up on an operation: cancelled if still in flight, and what it keeps is
    /// freed once its completion arrives (never before: the kernel may still use it).
    pub fn abandon(&self, id: OpId) {
        if self.forget(id) {
            self.cancel(id);
        }
    }

    /// Asks the kernel to end an operation in flight early (it completes with
    /// `-ECANCELED`, or with its result if it was done already).
    pub fn cancel(&self, id: OpId) {
        let user_data = self.ops.borrow()[id.0].as_ref().map(|op| op.user_data);
        if let Some(user_data) = user_data {
            self.push_unwatched(opcode::AsyncCancel::new(user_data).build());
        }
    }

    /// Gives up on an operation's result without cancelling it: true if it is still in
    /// flight (what it keeps is freed when it completes).
    pub fn forget(&self, id: OpId) -> bool {
        let mut ops = self.ops.borrow_mut();
        let Some(op) = ops[id.0].as_mut() else {
            return false;
        };
        if let State::Done(res, flags) = op.state {
            let accepted = op.accepts() && res >= 0;
            ops[id.0] = None;
            drop(ops);
            self.free.borrow_mut().push(id.0);
            if accepted {
                self.close_slot(res as u32);
            }
            if let Some(bid) = cqueue::buffer_select(flags) {
                self.give_back(bid);
            }
            return false;
        }
        op.state = State::Abandoned;
        true
    }

    /// Closes a slot of the file table nobody holds.
    pub fn close_slot(&self, slot: u32) {
        let entry = opcode::Close::new(types::Fixed(slot)).build();
        // SAFETY: a close points into no memory.
        let id = unsafe { self.submit(entry, Keep::Nothing, Kind::Close) };
        self.forget(id);
    }

    /// Takes every completion queued: results stored and their waiters woken,
    /// abandoned operations freed.
    pub fn reap(&self) {
        // Reused from reap to reap: a busy ring wakes many tasks a turn.
        let mut wake = self.wake.take();
        let mut orphans = Vec::new();
        let mut given_back = Vec::new();
        {
            let mut ring = self.ring.borrow_mut();
            let mut ops = self.ops.borrow_mut();
            let mut free = self.free.borrow_mut();
            loop {
                for cqe in ring.completion() {
                    let ud = cqe.user_data();
                    if ud == UNWATCHED {
                        continue;
                    }
                    let i = (ud & u64::from(u32::MAX)) as usize;
                    let Some(op) = ops.get_mut(i).and_then(Option::as_mut) else {
                        continue;
                    };
                    if op.user_data != ud {
                        continue;
                    }
                    if cqueue::more(cqe.flags()) {
                        continue;
                    }
                    let res = cqe.result();
                    if cqueue::buffer_select(cqe.flags()).is_some() {
                        self.taken.set(self.taken.get() + 1);
                    }
                    match op.kind {
                        Kind::Close => self.open.set(self.open.get().saturating_sub(1)),
                        Kind::Accept if res >= 0 => self.open.set(self.open.get() + 1),
                        _ => {}
                    }
                    match std::mem::replace(&mut op.state, State::Done(res, cqe.flags())) {
                        State::Waiting(w) => wake.extend(w),
                        State::Abandoned => {
                            if op.accepts() && res >= 0 {
                                orphans.push(res as u32);
                            }
                            if let Some(bid) = cqueue::buffer_select(cqe.flags()) {
                                given_back.push(bid);
                            }
                            ops[i] = None;
                            free.push(i);
                        }
                        State::Done(..) => {}
                    }
                }
                // Completions the queue had no room for wait in the kernel (it drops
                // none) until an enter asks for events: a ring that overflowed while
                // the shard was busy (a fan-out's sends to thousands of sockets) would
                // otherwise keep them until its next submission.
                if !ring.submission().cq_overflow() {
                    break;
                }
                match ring.submit() {
                    // What was pushed this turn went in with it.
                    Ok(_) => self.pending.set(0),
                    Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                    Err(e) => {
                        // Try again on the flusher's next turn rather than leave the
                        // overflow (and this turn's submissions) behind.
                        tracing::warn!(error = %e, "io_uring: taking overflowed completions failed");
                        self.pending.set(self.pending.get().max(1));
                        self.flush.notify_one();
                        break;
                    }
                }
            }
        }
        for w in wake.drain(..) {
            w.wake();
        }
        self.wake.set(wake);
        for slot in orphans {
            self.close_slot(slot);
        }
        for bid in given_back {
            self.give_back(bid);
        }
    }

    /// Reaps completions whenever the ring's descriptor turns readable, until the
    /// runtime ends.
    async fn run_reaper(self: Rc<Self>) {
        loop {
            let mut ready = match self.fd.readable().await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "io_uring: the ring's descriptor failed");
                    return;
                }
            };
            self.reap();
            ready.clear_ready();
            // Completions that came between the reap and the clear.
            self.reap();
        }
    }

    /// Flushes submissions once per turn of the runtime: woken by the first push after
    /// a flush, it runs after the tasks already scheduled, so their submissions go in
    /// one system call.
    async fn run_flusher(self: Rc<Self>) {
        loop {
            self.flush.notified().await;
            self.flush();
        }
    }
}

/// Makes `driver` this thread's and starts its reaper and flusher (inside a
/// `LocalSet`).
pub fn install(driver: Driver) -> Rc<Driver> {
    let driver = Rc::new(driver);
    DRIVER.with(|d| *d.borrow_mut() = Some(Rc::clone(&driver)));
    tokio::task::spawn_local(Rc::clone(&driver).run_reaper());
    tokio::task::spawn_local(Rc::clone(&driver).run_flusher());
    driver
}

/// This thread's driver, if it has one.
pub fn current() -> Option<Rc<Driver>> {
    DRIVER.with(|d| d.borrow().clone())
}

/// This thread's driver, or the error of an operation asked for without one.
pub fn this_thread() -> io::Result<Rc<Driver>> {
    current().ok_or_else(|| io::Error::other("no io_uring driver on this thread"))
}

/// Flushes this thread's submissions, if it has a driver (the runtime's hook before
/// its thread parks).
pub fn flush_this_thread() {
    if let Some(d) = current() {
        d.flush();
    }
}
