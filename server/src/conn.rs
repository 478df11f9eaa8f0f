//! One HTTP/1.1 connection: hyper's `http1` state machine over the socket, with the
//! timeouts an ALB in front needs.
//!
//! hyper's own `header_read_timeout` also runs while a keep-alive connection waits for
//! its next request, so it would close idle connections after 30 s, before the ALB's
//! 60 s idle timeout, and the ALB would then send requests onto closing sockets. So
//! hyper gets no timer here; one watchdog per connection keeps three deadlines itself:
//!
//! - keep-alive idle: no request in progress and no bytes for `keepalive_timeout`;
//! - request head: once the first byte of a request arrives, its whole head must arrive
//!   within `header_timeout` (slowloris);
//! - closing: after the listeners close, a connection with a request in progress answers
//!   it with `Connection: close`; an idle one is closed once it has been idle for
//!   [`CLOSING_IDLE_LINGER`], which lets a request that was already on its way be
//!   answered instead of reset.
//!
//! The watchdog sleeps until the nearest deadline and re-arms when activity moved it, so
//! a busy connection costs one timer and no per-request timer work. The socket cannot
//! wake the watchdog when a head starts, so the watchdog never sleeps longer than the
//! header timeout: a head that never completes is closed between one and two header
//! timeouts after it started.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{sleep_until, Instant};

use crate::shard::Shard;

/// How long an idle connection may stay open once the node is closing: long enough for a
/// request already sent by the client to arrive and be answered with `Connection: close`.
pub const CLOSING_IDLE_LINGER: Duration = Duration::from_millis(500);

/// What the watchdog and the request path know about one connection.
#[derive(Debug)]
pub struct ConnState {
    /// The TCP peer (the load balancer, when there is one).
    pub peer: SocketAddr,
    io: Arc<IoClock>,
    closing: Cell<bool>,
    over_limit: bool,
    /// A WebSocket session the request handler accepted; it runs on this connection
    /// once hyper hands the socket over (boxed: a connection holds this state for its
    /// whole life, the upgrade only for a moment).
    pub upgrade: std::cell::RefCell<Option<Box<crate::http::websocket::Pending>>>,
}

/// When the connection last moved bytes and whether a request head is under way: the
/// part of [`ConnState`] the socket wrapper updates. hyper requires an upgradable
/// socket to be `Send`, so this is shared with atomics; only the shard's thread ever
/// touches it, and relaxed loads and stores are plain moves on x86.
#[derive(Debug)]
struct IoClock {
    base: Instant,
    /// Nanoseconds after `base` of the last read or write.
    last_io: AtomicU64,
    /// Nanoseconds after `base` of the last read.
    last_read: AtomicU64,
    /// Nanoseconds after `base`, plus one, of the first byte of a request head not yet
    /// parsed; 0 for none.
    head_started: AtomicU64,
    in_flight: AtomicU32,
}

impl IoClock {
    fn nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    fn at(&self, nanos: u64) -> Instant {
        self.base + Duration::from_nanos(nanos)
    }

    fn last_io(&self) -> Instant {
        self.at(self.last_io.load(Ordering::Relaxed))
    }

    fn set_last_io(&self, t: Instant) {
        self.last_io.store(self.nanos(t), Ordering::Relaxed);
    }

    fn head_started(&self) -> Option<Instant> {
        match self.head_started.load(Ordering::Relaxed) {
            0 => None,
            n => Some(self.at(n - 1)),
        }
    }

    fn set_head_started(&self, t: Option<Instant>) {
        let v = t.map_or(0, |t| self.nanos(t).saturating_add(1));
        self.head_started.store(v, Ordering::Relaxed);
    }

    fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn set_in_flight(&self, n: u32) {
        self.in_flight.store(n, Ordering::Relaxed);
    }

    /// Bytes arrived from the client.
    fn on_read(&self, now: Instant) {
        self.set_last_io(now);
        self.last_read.store(self.nanos(now), Ordering::Relaxed);
        if self.in_flight() == 0 && self.head_started().is_none() {
            self.set_head_started(Some(now));
        }
    }
}

/// What the watchdog does when it wakes.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing yet; sleep until this instant.
    Wait(Instant),
    /// Idle past its limit: close it cleanly (hyper closes an idle connection at once).
    CloseIdle,
    /// A request head took too long: drop the connection.
    Abort,
}

/// The timeouts a connection runs under.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Keep-alive idle limit.
    pub keepalive: Duration,
    /// Limit for a whole request head once started.
    pub header: Duration,
}

impl ConnState {
    /// A fresh connection from `peer`.
    pub fn new(peer: SocketAddr, now: Instant, over_limit: bool) -> ConnState {
        ConnState {
            peer,
            io: Arc::new(IoClock {
                base: now,
                last_io: AtomicU64::new(0),
                last_read: AtomicU64::new(0),
                head_started: AtomicU64::new(0),
                in_flight: AtomicU32::new(0),
            }),
            closing: Cell::new(false),
            over_limit,
            upgrade: std::cell::RefCell::new(None),
        }
    }

    /// Whether the client already had its share of connections: its requests are refused.
    pub fn is_over_limit(&self) -> bool {
        self.over_limit
    }

    /// When bytes last arrived from the client.
    pub fn last_read(&self) -> Instant {
        self.io.at(self.io.last_read.load(Ordering::Relaxed))
    }

    /// Whether responses must carry `Connection: close` (the node is closing).
    pub fn is_closing(&self) -> bool {
        self.closing.get()
    }

    /// Bytes arrived from the client.
    #[cfg(test)]
    fn on_read(&self, now: Instant) {
        self.io.on_read(now);
    }

    /// Bytes went out to the client.
    #[cfg(test)]
    fn on_write(&self, now: Instant) {
        self.io.set_last_io(now);
    }

    /// A request head was parsed and handed to the router. The returned guard marks the
    /// request finished when dropped, whether it completed or was cancelled.
    pub fn begin_request(&self) -> RequestGuard<'_> {
        self.io.set_in_flight(self.io.in_flight() + 1);
        self.io.set_head_started(None);
        RequestGuard(self)
    }

    /// Marks a streamed response in progress until the returned guard drops (a
    /// separate mark from [`ConnState::begin_request`]'s, which ends with the handler).
    pub fn stream_guard(&self) -> StreamGuard {
        self.io.set_in_flight(self.io.in_flight() + 1);
        StreamGuard(Arc::clone(&self.io))
    }

    /// Decides what the watchdog does at `now`.
    pub fn check(&self, now: Instant, t: Timeouts) -> Verdict {
        if let Some(started) = self.io.head_started() {
            let deadline = started + t.header;
            return if now >= deadline {
                Verdict::Abort
            } else {
                Verdict::Wait(deadline)
            };
        }
        let idle_limit = if self.closing.get() {
            CLOSING_IDLE_LINGER.min(t.keepalive)
        } else {
            t.keepalive
        };
        // Look again within one header timeout, in case a head starts meanwhile.
        let next_look = now + t.header;
        if self.io.in_flight() > 0 {
            // The request timeout bounds the request itself.
            return Verdict::Wait(next_look.min(now + idle_limit));
        }
        let deadline = self.io.last_io() + idle_limit;
        if now >= deadline {
            Verdict::CloseIdle
        } else {
            Verdict::Wait(deadline.min(next_look))
        }
    }
}

/// Marks a request in progress on its connection until dropped.
#[derive(Debug)]
pub struct RequestGuard<'a>(&'a ConnState);

/// Marks a streamed response in progress on its connection until dropped: the body
/// outlives its request's handler, and the connection is busy until the stream ends.
#[derive(Debug)]
pub struct StreamGuard(Arc<IoClock>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.set_in_flight(self.0.in_flight().saturating_sub(1));
        self.0.set_last_io(Instant::now());
    }
}

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        let io = &self.0.io;
        io.set_in_flight(io.in_flight().saturating_sub(1));
        io.set_last_io(Instant::now());
    }
}

/// The socket (or TLS stream), reporting reads and writes to the connection's state.
#[derive(Debug)]
pub struct TrackedIo<S> {
    inner: S,
    clock: Arc<IoClock>,
}

impl<S: AsyncRead + Unpin> AsyncRead for TrackedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.on_read(Instant::now());
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TrackedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.set_last_io(Instant::now());
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.set_last_io(Instant::now());
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves one accepted connection until it closes, times out, or the node stops it;
/// with TLS configured, after a handshake that must finish within the header timeout.
/// A connection `over_limit` answers its request with 429 and closes. A connection that
/// becomes a WebSocket runs its session here, so the shard counts it as open until the
/// session ends; `counted` says whether it counts toward its client's per-address
/// limit, released when it ends.
///
/// The future is the connection task's whole state, so it is built to keep no dead
/// weight: the stream and the peer go into the boxed HTTP side before it starts (an
/// `async fn` would keep its arguments' slots for its whole life), every value after
/// the upgrade is moved whole into the next step, and the session is one future
/// whatever its kind (`websocket::session`), awaited here.
pub fn serve<S>(
    shard: Rc<Shard>,
    stream: S,
    peer: SocketAddr,
    over_limit: bool,
    counted: bool,
) -> impl std::future::Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = Rc::new(ConnState::new(peer, Instant::now(), over_limit));
    // The HTTP side (hyper's connection, TLS) is a future of several KiB: boxed, it is
    // freed once it hands over a WebSocket, and an idle session keeps only its own state.
    let http = Box::pin(serve_http(Rc::clone(&shard), stream, Rc::clone(&state)));
    async move {
        http.await;
        // Every value below is moved whole into the next step, so none keeps a slot
        // while the session runs.
        'session: {
            let (fut, kind) = {
                let Some(pending) = state.upgrade.borrow_mut().take() else {
                    break 'session;
                };
                // Its box goes here, not when the session ends.
                (*pending).into_parts()
            };
            let Some(ws) = crate::http::websocket::upgraded(fut).await else {
                break 'session;
            };
            crate::http::websocket::session(&shard, &state, ws, kind).await;
        }
        shard.connection_closed(counted.then(|| state.peer.ip()));
    }
}

async fn serve_http<S>(shard: Rc<Shard>, stream: S, state: Rc<ConnState>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(acceptor) = shard.node.tls.clone() else {
        return drive(shard, stream, state).await;
    };
    let limit = shard.node.config.header_timeout;
    let peer = state.peer;
    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => drive(shard, tls, state).await,
        Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(peer = %peer, "TLS handshake not finished in time"),
    }
}

async fn drive<S>(shard: Rc<Shard>, stream: S, state: Rc<ConnState>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = state.peer;
    let io = TokioIo::new(TrackedIo {
        inner: stream,
        clock: Arc::clone(&state.io),
    });
    let svc = {
        let shard = Rc::clone(&shard);
        let state = Rc::clone(&state);
        service_fn(move |req| {
            let shard = Rc::clone(&shard);
            let state = Rc::clone(&state);
            async move {
                Ok::<_, std::convert::Infallible>(crate::http::handle(&shard, &state, req).await)
            }
        })
    };
    let conn = shard.http.serve_connection(io, svc).with_upgrades();
    tokio::pin!(conn);

    let cfg = &shard.node.config;
    let timeouts = Timeouts {
        keepalive: cfg.keepalive_timeout,
        header: cfg.header_timeout,
    };
    let timer = sleep_until(Instant::now() + timeouts.keepalive.min(timeouts.header));
    tokio::pin!(timer);
    let shard_closing = shard.closing();
    tokio::pin!(shard_closing);
    let mut watching_closing = true;
    let mut idle_close_sent = false;

    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                break;
            }
            () = &mut timer => match state.check(Instant::now(), timeouts) {
                Verdict::Wait(at) => timer.as_mut().reset(at),
                Verdict::CloseIdle => {
                    if !idle_close_sent {
                        conn.as_mut().graceful_shutdown();
                        idle_close_sent = true;
                    }
                    // hyper finishes an idle connection at once; look again shortly in case
                    // bytes were in flight.
                    timer.as_mut().reset(Instant::now() + CLOSING_IDLE_LINGER);
                }
                Verdict::Abort => {
                    tracing::debug!(peer = %peer, "request head not received in time; closing");
                    break;
                }
            },
            () = &mut shard_closing, if watching_closing => {
                watching_closing = false;
                state.closing.set(true);
                timer.as_mut().reset(Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        keepalive: Duration::from_secs(75),
        header: Duration::from_secs(10),
    };

    fn state(now: Instant) -> ConnState {
        ConnState::new("127.0.0.1:1".parse().unwrap(), now, false)
    }

    #[test]
    fn idle_connection_closes_after_keepalive_timeout() {
        let t0 = Instant::now();
        let s = state(t0);
        // The watchdog looks in every header timeout, and closes at the idle deadline.
        assert_eq!(s.check(t0, T), Verdict::Wait(t0 + T.header));
        let at = |secs| t0 + Duration::from_secs(secs);
        assert_eq!(s.check(at(61), T), Verdict::Wait(at(71)));
        assert_eq!(s.check(at(70), T), Verdict::Wait(t0 + T.keepalive));
        assert_eq!(s.check(t0 + T.keepalive, T), Verdict::CloseIdle);
    }

    #[test]
    fn writes_and_reads_push_the_idle_deadline() {
        let t0 = Instant::now();
        let s = state(t0);
        let t1 = t0 + Duration::from_secs(50);
        s.on_write(t1);
        let look = t1 + Duration::from_secs(70);
        assert_eq!(s.check(look, T), Verdict::Wait(t1 + T.keepalive));
        assert_eq!(s.check(t1 + T.keepalive, T), Verdict::CloseIdle);
    }

    #[test]
    fn a_started_head_must_finish_within_the_header_timeout_even_if_bytes_trickle() {
        let t0 = Instant::now();
        let s = state(t0);
        s.on_read(t0);
        // More bytes keep arriving, but the head started at t0.
        s.on_read(t0 + Duration::from_secs(5));
        s.on_read(t0 + Duration::from_secs(9));
        assert_eq!(
            s.check(t0 + Duration::from_secs(9), T),
            Verdict::Wait(t0 + T.header)
        );
        assert_eq!(s.check(t0 + T.header, T), Verdict::Abort);
    }

    #[test]
    fn a_request_in_progress_is_not_idle_and_reads_of_its_body_start_no_head() {
        let t0 = Instant::now();
        let s = state(t0);
        s.on_read(t0);
        let guard = s.begin_request();
        s.on_read(t0 + Duration::from_secs(1)); // body bytes
        let later = t0 + Duration::from_secs(200);
        assert!(matches!(s.check(later, T), Verdict::Wait(_)));
        drop(guard);
        // Idle time restarts when the response is done.
        let done = s.io.last_io();
        assert!(done >= t0);
        assert_eq!(
            s.check(done + Duration::from_secs(70), T),
            Verdict::Wait(done + T.keepalive)
        );
        assert!(s.io.head_started().is_none());
    }

    #[test]
    fn closing_shortens_the_idle_limit_to_the_linger() {
        let t0 = Instant::now();
        let s = state(t0);
        s.closing.set(true);
        assert_eq!(s.check(t0, T), Verdict::Wait(t0 + CLOSING_IDLE_LINGER));
        assert_eq!(s.check(t0 + CLOSING_IDLE_LINGER, T), Verdict::CloseIdle);
    }
}
