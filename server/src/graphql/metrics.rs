//! Per-operation metrics with bounded cardinality:
//! `streamhub_graphql_operations_total{operation, document, client, outcome}` and
//! `streamhub_graphql_operation_duration_seconds{operation, document}`.
//!
//! A series slot is given node-wide ([`Series`]) the first time a prepared document's
//! operation is seen under a name (a manifest id, a `sha256:` prefix, or `adhoc` for
//! text), and another for each client name (`apollographql-client-name`) it is seen
//! with; at most `STREAMHUB_METRICS_MAX_OPERATIONS` of each. Past that, and for a
//! request refused before its document is known, everything counts under slot 0:
//! `operation="other"`. Each shard counts into its own [`Counters`] (single-writer
//! atomics, summed at scrape) and remembers the slots it was given, so the request path
//! takes a lock only the first time a shard sees a series.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use prometheus::proto::{MetricFamily, MetricType};

use crate::metrics::{counter_metric, family, histogram_metric, ShardCounter, ShardHistogram};

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Executed without errors.
    Ok = 0,
    /// Executed, with errors in the response.
    Error = 1,
    /// Refused before execution (validation, limits, rate, not found).
    Refused = 2,
}

const OUTCOMES: [&str; 3] = ["ok", "error", "refused"];

/// The labels of a series, as a request names them.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    /// The persisted id (a manifest id or `sha256:` and 12 hex digits) or `adhoc`.
    pub document: &'a str,
    /// The operation's name, or `anonymous`.
    pub operation: &'a str,
    /// The `apollographql-client-name` header, or `unknown`.
    pub client: &'a str,
}

/// A shard's slots: (operation slot, series slot).
type Slots = (u16, u16);

#[derive(Debug, Default)]
struct Given {
    /// (document, operation) by operation slot; slot 0 is "other".
    operations: Vec<(String, String)>,
    by_operation: HashMap<(String, String), u16>,
    /// (operation slot, client) by series slot; slot 0 is "other".
    series: Vec<(u16, String)>,
    by_series: HashMap<(u16, String), u16>,
}

/// The node's series slots, shared by every shard.
#[derive(Debug)]
pub struct Series {
    max: usize,
    given: Mutex<Given>,
}

impl Series {
    /// Room for `max` operations and `max` (operation, client) series besides "other".
    pub fn new(max: usize) -> Series {
        let given = Given {
            operations: vec![("other".into(), "other".into())],
            series: vec![(0, "other".into())],
            ..Given::default()
        };
        Series {
            max,
            given: Mutex::new(given),
        }
    }

    /// The slots every shard's [`Counters`] need: "other" and `max` more.
    pub fn capacity(&self) -> usize {
        self.max + 1
    }

    /// The slots of `labels`, given now if they are new and there is room.
    fn slots(&self, labels: Labels<'_>) -> Slots {
        let mut g = self.given.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (labels.document.to_owned(), labels.operation.to_owned());
        let op = match g.by_operation.get(&key) {
            Some(&op) => op,
            None if g.operations.len() <= self.max => {
                let op = u16::try_from(g.operations.len()).unwrap_or(0);
                g.operations.push(key.clone());
                g.by_operation.insert(key, op);
                op
            }
            None => return (0, 0),
        };
        let key = (op, labels.client.to_owned());
        let series = match g.by_series.get(&key) {
            Some(&s) => s,
            None if g.series.len() <= self.max => {
                let s = u16::try_from(g.series.len()).unwrap_or(0);
                g.series.push(key.clone());
                g.by_series.insert(key, s);
                s
            }
            None => 0,
        };
        (op, series)
    }

    /// The families of every shard's counters, summed, labelled.
    pub fn render<'a>(
        &self,
        shards: impl Iterator<Item = &'a Counters> + Clone,
    ) -> Vec<MetricFamily> {
        let g = self.given.lock().unwrap_or_else(PoisonError::into_inner);
        let mut counts = Vec::new();
        for (slot, (op, client)) in g.series.iter().enumerate() {
            let (document, operation) = &g.operations[usize::from(*op)];
            for (o, outcome) in OUTCOMES.iter().enumerate() {
                let n: u64 = shards.clone().map(|c| c.counts[slot * 3 + o].get()).sum();
                if n > 0 {
                    counts.push(counter_metric(
                        &[
                            ("operation", operation),
                            ("document", document),
                            ("client", client),
                            ("outcome", outcome),
                        ],
                        n,
                    ));
                }
            }
        }
        let mut durations = Vec::new();
        for (slot, (document, operation)) in g.operations.iter().enumerate() {
            let hists: Vec<&ShardHistogram> = shards.clone().map(|c| &c.durations[slot]).collect();
            if let Some(m) =
                histogram_metric(&[("operation", operation), ("document", document)], &hists)
            {
                durations.push(m);
            }
        }
        vec![
            family(
                "streamhub_graphql_operations_total",
                "GraphQL operations, by operation name, persisted document, client name and outcome (ok, error, refused); operations past STREAMHUB_METRICS_MAX_OPERATIONS count as operation=\"other\".",
                MetricType::COUNTER,
                counts,
            ),
            family(
                "streamhub_graphql_operation_duration_seconds",
                "Time the GraphQL service spent on an operation, by operation name and persisted document.",
                MetricType::HISTOGRAM,
                durations,
            ),
        ]
    }
}

/// One shard's operation counters (written only by its shard).
#[derive(Debug)]
pub struct Counters {
    /// By series slot and outcome.
    counts: Box<[ShardCounter]>,
    /// By operation slot.
    durations: Box<[ShardHistogram]>,
}

impl Counters {
    /// Counters for `capacity` slots ([`Series::capacity`]).
    pub fn new(capacity: usize) -> Counters {
        Counters {
            counts: (0..capacity * 3).map(|_| ShardCounter::default()).collect(),
            durations: (0..capacity).map(|_| ShardHistogram::default()).collect(),
        }
    }
}

/// A shard's memory of the slots it was given, keyed by a fingerprint of the labels
/// (64 bits of a keyed hash: two label sets of one shard sharing one is a chance of
/// about one in 10^12 at thousands of series, and would only merge their counts).
#[derive(Debug, Default)]
pub struct Known {
    slots: RefCell<HashMap<u64, Slots, foldhash::fast::RandomState>>,
    hasher: foldhash::fast::RandomState,
}

impl Known {
    /// Counts one operation under `labels` (or "other" when `None`).
    pub fn record(
        &self,
        series: &Series,
        counters: &Counters,
        labels: Option<Labels<'_>>,
        outcome: Outcome,
        elapsed: Duration,
    ) {
        let (op, s) = match labels {
            None => (0, 0),
            Some(l) => {
                let key = self.hasher.hash_one((l.document, l.operation, l.client));
                let known = self.slots.borrow().get(&key).copied();
                known.unwrap_or_else(|| {
                    let slots = series.slots(l);
                    self.slots.borrow_mut().insert(key, slots);
                    slots
                })
            }
        };
        counters.counts[usize::from(s) * 3 + outcome as usize].add(1);
        counters.durations[usize::from(op)].observe(elapsed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels<'a>(document: &'a str, operation: &'a str, client: &'a str) -> Labels<'a> {
        Labels {
            document,
            operation,
            client,
        }
    }

    #[test]
    fn series_are_given_once_node_wide_and_bounded() {
        let series = Series::new(2);
        let a = series.slots(labels("ChannelPage", "Page", "web"));
        assert_eq!(a, (1, 1));
        assert_eq!(series.slots(labels("ChannelPage", "Page", "web")), a);
        assert_eq!(series.slots(labels("ChannelPage", "Page", "ios")), (1, 2));
        assert_eq!(series.slots(labels("adhoc", "anonymous", "web")), (2, 0));
        // Past the bound: "other".
        assert_eq!(series.slots(labels("adhoc", "Third", "web")), (0, 0));
    }

    #[test]
    fn shards_count_apart_and_sum_at_scrape() {
        let series = Series::new(10);
        let shards = [
            Counters::new(series.capacity()),
            Counters::new(series.capacity()),
        ];
        let known = [Known::default(), Known::default()];
        let l = labels("sha256:0123456789ab", "Page", "unknown");
        let ms = Duration::from_millis(1);
        known[0].record(&series, &shards[0], Some(l), Outcome::Ok, ms);
        known[1].record(&series, &shards[1], Some(l), Outcome::Ok, ms);
        known[1].record(&series, &shards[1], Some(l), Outcome::Error, ms);
        known[0].record(&series, &shards[0], None, Outcome::Refused, ms);
        let text = crate::metrics::encode(&series.render(shards.iter()));
        assert!(text.contains(
            "streamhub_graphql_operations_total{operation=\"Page\",document=\"sha256:0123456789ab\",client=\"unknown\",outcome=\"ok\"} 2"
        ), "{text}");
        assert!(text.contains("outcome=\"error\"} 1"), "{text}");
        assert!(text.contains(
            "streamhub_graphql_operations_total{operation=\"other\",document=\"other\",client=\"other\",outcome=\"refused\"} 1"
        ), "{text}");
        assert!(text.contains(
            "streamhub_graphql_operation_duration_seconds_count{operation=\"Page\",document=\"sha256:0123456789ab\"} 3"
        ), "{text}");
    }
}
