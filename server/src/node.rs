//! Node-wide state shared by every shard: the configuration, the shutdown phase, the
//! persisted documents, the rate limits and per-address connection counts, and the
//! shards' metrics (read only when `/metrics` is scraped).

use std::sync::Arc;

use graphql_exec::registry::Registry;
use tokio::sync::watch;

use crate::auth::key::VerifyKey;
use crate::config::Config;
use crate::domain::Domain;
use crate::graphql::metrics::Series;
use crate::io_backend::Backend;
use crate::limits::connections::PerAddress;
use crate::limits::rate::Limiter;
use crate::metrics::{NodeInfo, ShardMetrics};
use crate::realtime::fanout::Fanout;

/// Where the node is in its life. Only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Serving and ready for traffic.
    Serving,
    /// SIGTERM received: still serving, but `/readyz` answers 503 so the load balancer
    /// stops sending new work.
    Draining,
    /// Listeners closed; connections close after their current response.
    Closing,
}

/// State every shard shares. On the request hot path: the immutable configuration, the
/// rate limits and connection counts (lock-free tables) and the persisted documents'
/// generation (one atomic); nothing there takes a lock.
pub struct Node {
    /// The settings the process runs with.
    pub config: Config,
    /// The IO backend that runs.
    pub backend: Backend,
    /// Each shard's metrics, by shard id.
    pub shard_metrics: Vec<Arc<ShardMetrics>>,
    /// The GraphQL operation series given so far (their slots in every shard's metrics).
    pub operations: Series,
    /// The key tokens are verified with; each shard verifies and caches on its own.
    pub verify_key: VerifyKey,
    /// TLS termination, when configured.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// The streaming domain: schema, store and event seam.
    pub domain: Arc<Domain>,
    /// The persisted documents' texts, node-wide: the manifest's and the registered
    /// ones. Shards prepare and cache their own plans from it on a miss.
    pub persisted: Registry,
    /// The rate limits, per client, node-wide.
    pub limiter: Limiter,
    /// Open connections per client address, node-wide.
    pub per_address: PerAddress,
    /// Where the domain's events go: every shard's hub, and the counts for `/metrics`.
    pub events: Arc<Fanout>,
    phase: watch::Sender<Phase>,
}

impl Node {
    /// A node in the `Serving` phase, with one metrics block per shard.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        backend: Backend,
        shards: usize,
        verify_key: VerifyKey,
        tls: Option<tokio_rustls::TlsAcceptor>,
        domain: Arc<Domain>,
        persisted: Registry,
        events: Arc<Fanout>,
    ) -> Node {
        let operations = Series::new(config.metrics_max_operations);
        let mut limiter = Limiter::new(config.rates(), tokio::time::Instant::now());
        if config.rate_scope == crate::config::RateScope::Cluster {
            if let Some(redis) = &domain.redis {
                limiter.across_nodes(redis.clone());
            }
        }
        Node {
            limiter,
            per_address: PerAddress::new(config.max_connections_per_ip),
            config,
            backend,
            shard_metrics: (0..shards)
                .map(|_| Arc::new(ShardMetrics::new(operations.capacity())))
                .collect(),
            operations,
            verify_key,
            tls,
            domain,
            persisted,
            events,
            phase: watch::Sender::new(Phase::Serving),
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }

    /// Moves to `phase` (never backwards) and wakes every shard and connection watching.
    pub fn advance(&self, phase: Phase) {
        self.phase.send_if_modified(|current| {
            let moved = phase > *current;
            if moved {
                *current = phase;
            }
            moved
        });
    }

    /// A receiver that wakes on every phase change.
    pub fn watch_phase(&self) -> watch::Receiver<Phase> {
        self.phase.subscribe()
    }

    /// The Prometheus text of the whole node.
    pub fn render_metrics(&self) -> String {
        crate::metrics::render(
            &self.shard_metrics,
            &self.operations,
            NodeInfo {
                io_backend: self.backend.name(),
                shards: self.shard_metrics.len(),
                draining: self.phase() != Phase::Serving,
                events: self.events.counts(),
                replica: self.domain.store.replica(),
                db_calls: self.domain.store.calls(),
            },
        )
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("backend", &self.backend)
            .field("shards", &self.shard_metrics.len())
            .field("tls", &self.tls.is_some())
            .field("phase", &self.phase())
            .finish_non_exhaustive()
    }
}
