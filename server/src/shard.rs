//! A shard: one pinned thread with its own current-thread runtime, its own listener and
//! its own connections. [`Shard`] is the one place per-shard state lives; every request
//! handler receives it: the GraphQL plan cache, the room hub, the token cache and the
//! session sweep. What must hold node-wide (persisted documents, rate budgets,
//! per-address connection counts) lives in [`Node`], in structures that take no lock
//! on the request path.

use std::cell::Cell;
use std::net::IpAddr;
use std::net::TcpListener as StdListener;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use crate::auth::Authenticator;
use crate::graphql::documents::Documents;
use crate::graphql::metrics::Known;
use crate::http::stream::Streams;
use crate::io_backend::Backend;
use crate::metrics::ShardMetrics;
use crate::node::{Node, Phase};
use crate::realtime::hub::Hub;
use crate::realtime::liveness::Liveness;
use crate::store::cache::Cache;

/// Per-shard state, owned by the shard's thread and shared by its tasks through `Rc`.
#[derive(Debug)]
pub struct Shard {
    /// The shard's index, 0-based.
    pub id: usize,
    /// Node-wide state.
    pub node: Arc<Node>,
    /// This shard's metrics (written only here).
    pub metrics: Arc<ShardMetrics>,
    /// hyper's HTTP/1.1 settings, built once.
    pub http: http1::Builder,
    /// Verifies bearer tokens and remembers them for this shard.
    pub auth: Authenticator,
    /// The shard's GraphQL plan cache.
    pub graphql: Documents,
    /// The GraphQL operation series this shard was given slots for.
    pub known_operations: Known,
    /// The shard's rooms and their members, and its cache (kept current by the hub).
    pub hub: Rc<Hub>,
    /// The shard's WebSocket sessions: pings and deadlines.
    pub liveness: Liveness,
    /// The shard's subscriptions streamed over HTTP: heartbeats and their end.
    pub streams: Streams,
    open: Cell<usize>,
    all_closed: Notify,
    closing: Cell<bool>,
    closing_notify: Notify,
}

impl Shard {
    /// A domain request for `viewer`, after this shard has read what mutations that
    /// answered before now changed (see [`Hub::sync`]).
    pub async fn request<'a>(
        &'a self,
        viewer: Option<&'a crate::auth::Viewer>,
    ) -> Result<crate::domain::Request<'a>, crate::store::StoreError> {
        self.hub.sync();
        self.node.domain.request(self.hub.cache(), viewer).await
    }

    fn new(id: usize, node: Arc<Node>) -> Shard {
        let mut http = http1::Builder::new();
        http.keep_alive(true)
            .max_header_size(node.config.max_header_bytes)
            // hyper's header timer would also close idle keep-alive connections after
            // 30 s; conn.rs keeps the header and idle deadlines instead.
            .header_read_timeout(None)
            .half_close(false);
        Shard {
            id,
            auth: Authenticator::new(node.verify_key.clone(), node.config.jwt_leeway),
            graphql: Documents::new(&node),
            known_operations: Known::default(),
            hub: Rc::new(Hub::new(
                Arc::clone(&node.domain),
                Arc::clone(&node.events),
                node.events.attach(id),
                Rc::new(Cache::new(
                    node.config.cache_limits(),
                    Arc::clone(&node.shard_metrics[id]),
                )),
            )),
            liveness: Liveness::new(node.config.ws_ping_interval, node.config.ws_pong_timeout),
            streams: Streams::default(),
            metrics: Arc::clone(&node.shard_metrics[id]),
            node,
            http,
            open: Cell::new(0),
            all_closed: Notify::new(),
            closing: Cell::new(false),
            closing_notify: Notify::new(),
        }
    }

    /// Counts a new connection from `ip` node-wide. Returns (past the limit, counted);
    /// a counted connection is released when it closes.
    fn admit(&self, ip: IpAddr) -> (bool, bool) {
        let counts = &self.node.per_address;
        if !counts.enabled() || self.node.config.trusted_proxies.contains(ip) {
            return (false, false);
        }
        (counts.admit(ip), true)
    }

    /// Resolves once the shard has closed its listener: connections then answer their
    /// current request with `Connection: close` and stop. Only this shard's tasks wait
    /// here, so no other thread is involved.
    pub async fn closing(&self) {
        let notified = self.closing_notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.closing.get() {
            return;
        }
        notified.await;
    }

    fn begin_closing(&self) {
        self.closing.set(true);
        self.closing_notify.notify_waiters();
    }

    fn connection_opened(&self) {
        self.open.set(self.open.get() + 1);
        self.metrics.connection_opened();
    }

    /// A connection ended; `counted` is its client's address if it counted toward the
    /// per-address limit.
    pub(crate) fn connection_closed(&self, counted: Option<IpAddr>) {
        if let Some(ip) = counted {
            self.node.per_address.release(ip);
        }
        self.open.set(self.open.get() - 1);
        self.metrics.connection_closed();
        if self.open.get() == 0 {
            self.all_closed.notify_one();
        }
    }
}

/// Runs shard `id` on the current thread until the node closes and its connections are
/// done (or the shutdown grace ends), then reports its id on `done`.
pub fn run(
    id: usize,
    node: Arc<Node>,
    listener: StdListener,
    core: Option<core_affinity::CoreId>,
    done: mpsc::Sender<usize>,
) -> std::io::Result<()> {
    let res = run_until_closed(id, node, listener, core);
    // The channel holds one slot per shard, so this never fails for want of room.
    let _ = done.try_send(id);
    res
}

fn run_until_closed(
    id: usize,
    node: Arc<Node>,
    listener: StdListener,
    core: Option<core_affinity::CoreId>,
) -> std::io::Result<()> {
    if let Some(core) = core {
        if !core_affinity::set_for_current(core) {
            tracing::warn!(
                shard = id,
                core = core.id,
                "could not pin the shard to its core"
            );
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // The io_uring backend's submissions of this turn, in one system call.
        .on_thread_park(crate::uring::driver::flush_this_thread)
        .build()?;
    let local = tokio::task::LocalSet::new();
    let shard = Rc::new(Shard::new(id, node));
    crate::logging::sink::batch_this_thread();
    let res = local.block_on(&rt, async {
        tokio::task::spawn_local(flush_logs());
        tokio::task::spawn_local(Rc::clone(&shard.hub).run());
        tokio::task::spawn_local(Rc::clone(&shard.hub).run_viewer_counts());
        tokio::task::spawn_local(sweep_sessions(Rc::clone(&shard)));
        tokio::task::spawn_local(crate::http::stream::keep(Rc::clone(&shard)));
        accept_loop(shard, listener).await
    });
    crate::logging::sink::flush_this_thread();
    res
}

/// Runs the shard's session sweep until the shard shuts down, then closes every
/// session with 1001.
async fn sweep_sessions(shard: Rc<Shard>) {
    let tick = shard.liveness.tick(shard.node.config.header_timeout);
    let closing = shard.closing();
    tokio::pin!(closing);
    loop {
        tokio::select! {
            () = tokio::time::sleep(tick) => shard.liveness.sweep(tokio::time::Instant::now()),
            () = &mut closing => {
                shard.liveness.close_all();
                return;
            }
        }
    }
}

async fn accept_loop(shard: Rc<Shard>, listener: StdListener) -> std::io::Result<()> {
    let listener = match shard.node.backend {
        Backend::Epoll => accept_epoll(&shard, listener).await?,
        Backend::Uring => accept_uring(&shard, listener).await?,
    };
    shard.begin_closing();

    // Stop accepting without resetting what the kernel already accepted.
    match crate::listener::stop_and_drain(&listener) {
        Ok(queued) => {
            for (stream, peer) in queued {
                stream.set_nonblocking(true)?;
                spawn_connection(&shard, tokio::net::TcpStream::from_std(stream)?, peer);
            }
        }
        Err(e) => tracing::warn!(shard = shard.id, error = %e, "draining the accept queue failed"),
    }
    drop(listener);
    tracing::debug!(shard = shard.id, open = shard.open.get(), "listener closed");

    let deadline = Instant::now() + shard.node.config.shutdown_grace;
    while shard.open.get() > 0 {
        tokio::select! {
            () = shard.all_closed.notified() => {}
            () = tokio::time::sleep_until(deadline) => {
                tracing::warn!(
                    shard = shard.id,
                    open = shard.open.get(),
                    "shutdown grace ended with connections still open; closing them"
                );
                break;
            }
        }
    }
    tracing::debug!(shard = shard.id, "shard finished");
    Ok(())
}

/// Where a shard's connections come from: the listener through epoll, or the ring's
/// accepts.
trait Accept {
    /// An accepted connection.
    type Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;

    /// The next connection and its peer.
    async fn next(&mut self) -> std::io::Result<(Self::Stream, std::net::SocketAddr)>;
}

impl Accept for TcpListener {
    type Stream = tokio::net::TcpStream;

    async fn next(&mut self) -> std::io::Result<(Self::Stream, std::net::SocketAddr)> {
        let (stream, peer) = self.accept().await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, peer))
    }
}

impl Accept for crate::uring::accept::Acceptor {
    type Stream = crate::uring::stream::UringStream;

    async fn next(&mut self) -> std::io::Result<(Self::Stream, std::net::SocketAddr)> {
        self.accept().await
    }
}

/// Serves what `from` accepts until the node closes.
async fn accept_until_closing<A: Accept>(shard: &Rc<Shard>, from: &mut A) {
    let mut phase = shard.node.watch_phase();
    // Checks the current phase first, so a shard that starts late still sees it.
    let node_closing = phase.wait_for(|p| *p == Phase::Closing);
    tokio::pin!(node_closing);
    loop {
        tokio::select! {
            accepted = from.next() => match accepted {
                Ok((stream, peer)) => spawn_connection(shard, stream, peer),
                Err(e) => {
                    // Out of descriptors or memory: back off instead of spinning.
                    tracing::warn!(shard = shard.id, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = &mut node_closing => return,
        }
    }
}

/// Accepts on epoll until the node closes; the listener back.
async fn accept_epoll(shard: &Rc<Shard>, listener: StdListener) -> std::io::Result<StdListener> {
    let mut listener = TcpListener::from_std(listener)?;
    accept_until_closing(shard, &mut listener).await;
    listener.into_std()
}

/// Accepts through the shard's ring until the node closes; the listener back, its
/// armed accepts cancelled and what they had taken served.
async fn accept_uring(shard: &Rc<Shard>, listener: StdListener) -> std::io::Result<StdListener> {
    let driver = crate::uring::driver::Driver::new(crate::uring::table_size())?;
    crate::uring::driver::install(driver);
    let mut acceptor = crate::uring::accept::Acceptor::new(&listener);
    accept_until_closing(shard, &mut acceptor).await;
    crate::listener::stop(&listener)?;
    for (stream, peer) in acceptor.close().await {
        spawn_connection(shard, stream, peer);
    }
    Ok(listener)
}

/// How often a shard writes out the log lines it has batched.
const LOG_FLUSH_EVERY: Duration = Duration::from_millis(50);

async fn flush_logs() {
    let mut tick = tokio::time::interval(LOG_FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        crate::logging::sink::flush_this_thread();
    }
}

fn spawn_connection<S>(shard: &Rc<Shard>, stream: S, peer: std::net::SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    shard.connection_opened();
    let (over_limit, counted) = shard.admit(peer.ip());
    // The connection's future is the task's whole state: no wrapper around it, which
    // would keep a second copy of the stream and the peer for as long as it runs.
    tokio::task::spawn_local(crate::conn::serve(
        Rc::clone(shard),
        stream,
        peer,
        over_limit,
        counted,
    ));
}
