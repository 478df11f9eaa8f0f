//! Per-shard metrics, summed when `/metrics` is scraped.
//!
//! Each shard writes only its own [`ShardMetrics`]; nothing on the request path takes a
//! lock or a contended atomic. Every counter has exactly one writer (its shard's thread),
//! so an increment is a relaxed load and store, not a read-modify-write; the scraping
//! shard reads the others' counters with relaxed loads. The `prometheus` crate supplies
//! the data model and the text encoder.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};

use crate::graphql::metrics::{Counters, Series};
use crate::http::route::Route;
use crate::store::cache::Kind as CacheKind;

/// Upper bounds of the request duration histogram, in seconds.
pub const DURATION_BUCKETS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Status codes counted exactly: 100 to 599.
const STATUS_MIN: u16 = 100;
const STATUS_SLOTS: usize = 500;

/// A counter with a single writer: the shard that owns it.
#[derive(Debug, Default)]
pub(crate) struct ShardCounter(AtomicU64);

impl ShardCounter {
    /// Adds `n`. Only the owning shard calls this, so load-then-store loses nothing.
    pub(crate) fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// The count so far.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A histogram with a single writer; bucket counts are not cumulative until rendered.
#[derive(Debug, Default)]
pub(crate) struct ShardHistogram {
    buckets: [ShardCounter; DURATION_BUCKETS.len()],
    count: ShardCounter,
    sum_nanos: ShardCounter,
}

impl ShardHistogram {
    /// Counts one sample.
    pub(crate) fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = DURATION_BUCKETS.iter().position(|&le| secs <= le) {
            self.buckets[i].add(1);
        }
        self.count.add(1);
        self.sum_nanos
            .add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }
}

/// One shard's metrics. The shard writes; any shard may read for a scrape.
#[derive(Debug)]
pub struct ShardMetrics {
    requests: Box<[ShardCounter]>,
    durations: [ShardHistogram; Route::COUNT],
    connections_opened: ShardCounter,
    connections_closed: ShardCounter,
    requests_started: ShardCounter,
    requests_finished: ShardCounter,
    /// Per-operation GraphQL counters.
    pub operations: Counters,
    /// The shard cache's lookups: (hits, misses) by table.
    cache: [[ShardCounter; 2]; CacheKind::ALL.len()],
}

impl ShardMetrics {
    /// A shard's metrics, with room for `operations` GraphQL operation series.
    pub fn new(operations: usize) -> Self {
        ShardMetrics {
            requests: (0..Route::COUNT * STATUS_SLOTS)
                .map(|_| ShardCounter::default())
                .collect(),
            durations: Default::default(),
            connections_opened: ShardCounter::default(),
            connections_closed: ShardCounter::default(),
            requests_started: ShardCounter::default(),
            requests_finished: ShardCounter::default(),
            operations: Counters::new(operations),
            cache: Default::default(),
        }
    }

    /// A lookup in the shard's cache table `kind`: a hit or a miss.
    pub fn cache_lookup(&self, kind: CacheKind, hit: bool) {
        self.cache[kind as usize][usize::from(!hit)].add(1);
    }

    /// The lookups counted in table `kind` that hit (or missed).
    pub fn cache_count(&self, kind: CacheKind, hit: bool) -> u64 {
        self.cache[kind as usize][usize::from(!hit)].get()
    }

    /// A connection was accepted.
    pub fn connection_opened(&self) {
        self.connections_opened.add(1);
    }

    /// A connection ended.
    pub fn connection_closed(&self) {
        self.connections_closed.add(1);
    }

    /// A request head was handed to the router.
    pub fn request_started(&self) {
        self.requests_started.add(1);
    }

    /// A request was answered with `status` after `elapsed`.
    pub fn request_finished(&self, route: Route, status: u16, elapsed: Duration) {
        self.requests_finished.add(1);
        if let Some(slot) = status
            .checked_sub(STATUS_MIN)
            .map(usize::from)
            .filter(|&s| s < STATUS_SLOTS)
        {
            self.requests[route.index() * STATUS_SLOTS + slot].add(1);
        }
        self.durations[route.index()].observe(elapsed);
    }
}

/// What the whole node reports besides the shards' counters.
#[derive(Debug, Clone, Copy)]
pub struct NodeInfo {
    /// The IO backend that runs.
    pub io_backend: &'static str,
    /// The number of shards.
    pub shards: usize,
    /// Whether the node is draining (readiness 503).
    pub draining: bool,
    /// Domain events published: (room events, stream events).
    pub events: (u64, u64),
    /// The store's read replica, when it has one.
    pub replica: Option<crate::store::ReplicaStatus>,
    /// The store's calls to its database so far, when it has one.
    pub db_calls: Option<u64>,
}

/// Renders every shard's metrics, summed, in the Prometheus text format.
pub fn render(shards: &[std::sync::Arc<ShardMetrics>], series: &Series, info: NodeInfo) -> String {
    let sum = |f: &dyn Fn(&ShardMetrics) -> u64| shards.iter().map(|s| f(s)).sum::<u64>();
    let mut families = Vec::new();

    let mut requests = Vec::new();
    for route in Route::ALL {
        for slot in 0..STATUS_SLOTS {
            let n = sum(&|s| s.requests[route.index() * STATUS_SLOTS + slot].get());
            if n > 0 {
                let status = (STATUS_MIN + slot as u16).to_string();
                requests.push(counter_metric(
                    &[("route", route.name()), ("status", &status)],
                    n,
                ));
            }
        }
    }
    families.push(family(
        "streamhub_http_requests_total",
        "HTTP requests answered, by route and status.",
        MetricType::COUNTER,
        requests,
    ));

    let durations = Route::ALL
        .iter()
        .filter_map(|route| {
            let hists: Vec<&ShardHistogram> =
                shards.iter().map(|s| &s.durations[route.index()]).collect();
            histogram_metric(&[("route", route.name())], &hists)
        })
        .collect();
    families.push(family(
        "streamhub_http_request_duration_seconds",
        "Time from a request's head to its response, by route.",
        MetricType::HISTOGRAM,
        durations,
    ));

    let opened = sum(&|s| s.connections_opened.get());
    let closed = sum(&|s| s.connections_closed.get());
    families.push(family(
        "streamhub_http_connections_accepted_total",
        "Connections accepted.",
        MetricType::COUNTER,
        vec![counter_metric(&[], opened)],
    ));
    families.push(family(
        "streamhub_http_connections_open",
        "Connections open now.",
        MetricType::GAUGE,
        vec![gauge_metric(&[], opened.saturating_sub(closed) as f64)],
    ));
    let started = sum(&|s| s.requests_started.get());
    let finished = sum(&|s| s.requests_finished.get());
    families.push(family(
        "streamhub_http_requests_in_flight",
        "Requests being handled now.",
        MetricType::GAUGE,
        vec![gauge_metric(&[], started.saturating_sub(finished) as f64)],
    ));
    let shards_label = info.shards.to_string();
    families.push(family(
        "streamhub_build_info",
        "Build and runtime facts; the value is always 1.",
        MetricType::GAUGE,
        vec![gauge_metric(
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("io_backend", info.io_backend),
                ("shards", &shards_label),
            ],
            1.0,
        )],
    ));
    families.push(family(
        "streamhub_draining",
        "1 while the node drains after SIGTERM (readiness answers 503), else 0.",
        MetricType::GAUGE,
        vec![gauge_metric(&[], if info.draining { 1.0 } else { 0.0 })],
    ));
    families.push(family(
        "streamhub_events_published_total",
        "Domain events published by mutations, by kind (room: chat messages, deletions, bans; stream: live status, title, category).",
        MetricType::COUNTER,
        vec![
            counter_metric(&[("kind", "room")], info.events.0),
            counter_metric(&[("kind", "stream")], info.events.1),
        ],
    ));

    if let Some(calls) = info.db_calls {
        families.push(family(
            "streamhub_db_calls_total",
            "Calls to PostgreSQL, primary and replica: a statement for each read (one per batch of the GraphQL executor that the shard caches miss), a transaction for each command (the chat writer's batches are not counted).",
            MetricType::COUNTER,
            vec![counter_metric(&[], calls)],
        ));
    }

    if let Some(replica) = info.replica {
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        families.push(family(
            "streamhub_db_replica_serving",
            "1 while reads go to the PostgreSQL read replica, 0 while they go to the primary (the replica lags beyond STREAMHUB_DB_REPLICA_MAX_LAG, cannot be reached, or has not been checked yet).",
            MetricType::GAUGE,
            vec![gauge_metric(&[], flag(replica.serving))],
        ));
        families.push(family(
            "streamhub_db_replica_reachable",
            "1 if the last check of the PostgreSQL read replica reached it, else 0.",
            MetricType::GAUGE,
            vec![gauge_metric(&[], flag(replica.reachable))],
        ));
        if let Some(lag) = replica.lag_ms {
            families.push(family(
                "streamhub_db_replica_lag_seconds",
                "How long the PostgreSQL read replica took, at the last check, to replay what the primary had flushed (while it lags: how long it has not yet).",
                MetricType::GAUGE,
                vec![gauge_metric(&[], lag as f64 / 1000.0)],
            ));
        }
    }

    let mut lookups = Vec::new();
    for kind in CacheKind::ALL {
        for (hit, result) in [(true, "hit"), (false, "miss")] {
            lookups.push(counter_metric(
                &[("table", kind.name()), ("result", result)],
                sum(&|s| s.cache_count(kind, hit)),
            ));
        }
    }
    families.push(family(
        "streamhub_cache_lookups_total",
        "Lookups in the shards' read-through caches, by table and result (hit or miss).",
        MetricType::COUNTER,
        lookups,
    ));

    families.extend(series.render(shards.iter().map(|s| &s.operations)));
    encode(&families)
}

/// The Prometheus text of `families`; a family with no samples yet (no request
/// answered) is left out, as the text format has no way to write it.
pub(crate) fn encode(families: &[MetricFamily]) -> String {
    let families: Vec<MetricFamily> = families
        .iter()
        .filter(|f| !f.get_metric().is_empty())
        .cloned()
        .collect();
    let mut out = Vec::with_capacity(4096);
    // Encoding into a Vec cannot fail: every family above is well formed.
    TextEncoder::new()
        .encode(&families, &mut out)
        .expect("metric families are well formed");
    String::from_utf8(out).expect("the text encoder writes UTF-8")
}

/// A histogram sample summed over shards' histograms; None when it has no samples.
pub(crate) fn histogram_metric(
    pairs: &[(&str, &str)],
    hists: &[&ShardHistogram],
) -> Option<Metric> {
    let sum = |f: &dyn Fn(&ShardHistogram) -> u64| hists.iter().map(|h| f(h)).sum::<u64>();
    let count = sum(&|h| h.count.get());
    if count == 0 {
        return None;
    }
    let mut cumulative = 0;
    let buckets = DURATION_BUCKETS
        .iter()
        .enumerate()
        .map(|(i, &le)| {
            cumulative += sum(&|h| h.buckets[i].get());
            let mut b = Bucket::default();
            b.set_upper_bound(le);
            b.set_cumulative_count(cumulative);
            b
        })
        .collect();
    let mut h = Histogram::default();
    h.set_sample_count(count);
    h.set_sample_sum(sum(&|h| h.sum_nanos.get()) as f64 / 1e9);
    h.set_bucket(buckets);
    let mut m = Metric::default();
    m.set_label(labels(pairs));
    m.set_histogram(h);
    Some(m)
}

/// A metric family.
pub(crate) fn family(
    name: &str,
    help: &str,
    kind: MetricType,
    metrics: Vec<Metric>,
) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_owned());
    f.set_help(help.to_owned());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(k, v)| {
            let mut l = LabelPair::default();
            l.set_name((*k).to_owned());
            l.set_value((*v).to_owned());
            l
        })
        .collect()
}

/// A counter sample.
pub(crate) fn counter_metric(pairs: &[(&str, &str)], value: u64) -> Metric {
    let mut c = Counter::default();
    c.set_value(value as f64);
    let mut m = Metric::default();
    m.set_label(labels(pairs));
    m.set_counter(c);
    m
}

fn gauge_metric(pairs: &[(&str, &str)], value: f64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(value);
    let mut m = Metric::default();
    m.set_label(labels(pairs));
    m.set_gauge(g);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn info() -> NodeInfo {
        NodeInfo {
            io_backend: "epoll",
            shards: 2,
            draining: false,
            events: (0, 0),
            replica: None,
            db_calls: None,
        }
    }

    #[test]
    fn shards_are_summed_per_route_and_status() {
        let a = Arc::new(ShardMetrics::new(1));
        let b = Arc::new(ShardMetrics::new(1));
        a.request_finished(Route::Healthz, 200, Duration::from_micros(50));
        b.request_finished(Route::Healthz, 200, Duration::from_millis(3));
        b.request_finished(Route::NotFound, 404, Duration::from_secs(20));
        let text = render(&[a, b], &Series::new(0), info());
        assert!(
            text.contains(r#"streamhub_http_requests_total{route="/healthz",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"streamhub_http_requests_total{route="unmatched",status="404"} 1"#),
            "{text}"
        );
        // 50 µs lands in the first bucket, 3 ms in the 5 ms one; both are counted by +Inf.
        assert!(
            text.contains(
                r#"streamhub_http_request_duration_seconds_bucket{route="/healthz",le="0.0001"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"streamhub_http_request_duration_seconds_bucket{route="/healthz",le="0.005"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"streamhub_http_request_duration_seconds_count{route="/healthz"} 2"#),
            "{text}"
        );
        // 20 s is past the last bucket: only in +Inf and the count.
        assert!(
            text.contains(
                r#"streamhub_http_request_duration_seconds_bucket{route="unmatched",le="10"} 0"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"streamhub_http_request_duration_seconds_bucket{route="unmatched",le="+Inf"} 1"#
            ),
            "{text}"
        );
    }

    #[test]
    fn gauges_are_differences_of_counters() {
        let a = Arc::new(ShardMetrics::new(1));
        a.connection_opened();
        a.connection_opened();
        a.connection_closed();
        a.request_started();
        let text = render(&[a], &Series::new(0), info());
        assert!(
            text.contains("streamhub_http_connections_open 1\n"),
            "{text}"
        );
        assert!(
            text.contains("streamhub_http_connections_accepted_total 2\n"),
            "{text}"
        );
        assert!(
            text.contains("streamhub_http_requests_in_flight 1\n"),
            "{text}"
        );
        assert!(text.contains(r#"streamhub_build_info{version=""#), "{text}");
    }
}
