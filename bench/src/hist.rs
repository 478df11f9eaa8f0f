//! Latency histograms: HDR histograms of nanoseconds, merged across connections,
//! rounds and worker processes, summarised in microseconds.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The largest latency recorded exactly; longer ones are clamped to it.
const MAX_NANOS: u64 = 60_000_000_000;

/// A latency histogram (nanoseconds, 3 significant digits).
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency(Histogram::new_with_bounds(1_000, MAX_NANOS, 3).expect("valid histogram bounds"))
    }
}

/// The percentiles BENCH.md reports, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest value.
    pub max_us: f64,
    /// Number of values.
    pub count: u64,
}

impl Latency {
    /// Records one latency.
    pub fn record(&mut self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos())
            .unwrap_or(MAX_NANOS)
            .clamp(1_000, MAX_NANOS);
        self.0.saturating_record(nanos);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Latency) {
        self.0
            .add(&other.0)
            .expect("histograms with the same bounds always merge");
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The value at percentile `p` (0 to 100), in microseconds.
    pub fn percentile_us(&self, p: f64) -> f64 {
        self.0.value_at_percentile(p) as f64 / 1_000.0
    }

    /// The BENCH.md percentiles.
    pub fn summary(&self) -> Summary {
        Summary {
            p50_us: self.percentile_us(50.0),
            p90_us: self.percentile_us(90.0),
            p99_us: self.percentile_us(99.0),
            p999_us: self.percentile_us(99.9),
            max_us: self.0.max() as f64 / 1_000.0,
            count: self.count(),
        }
    }

    /// The percentile distribution for plots: (percentile, microseconds) at points that
    /// get denser towards the tail (each halving of the remaining fraction gets `per_half`
    /// points), up to the largest value.
    pub fn distribution(&self, per_half: u32) -> Vec<(f64, f64)> {
        let mut points = Vec::new();
        if self.count() == 0 {
            return points;
        }
        let mut remaining = 1.0f64;
        // Up to 99.9999 %: 1 - 2^-20.
        for _ in 0..20 {
            for i in 0..per_half {
                let frac = remaining * (1.0 - 0.5f64.powf(f64::from(i) / f64::from(per_half)));
                let p = (1.0 - remaining + frac) * 100.0;
                points.push((p, self.percentile_us(p)));
            }
            remaining /= 2.0;
        }
        points.push((100.0, self.0.max() as f64 / 1_000.0));
        points
    }

    /// The histogram as (value in ns, count) pairs, for sending between processes.
    pub fn to_pairs(&self) -> Vec<(u64, u64)> {
        self.0
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    /// The histogram from (value in ns, count) pairs.
    pub fn from_pairs(pairs: &[(u64, u64)]) -> Latency {
        let mut h = Latency::default();
        for &(v, n) in pairs {
            h.0.saturating_record_n(v.clamp(1_000, MAX_NANOS), n);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_counts_and_moves_percentiles() {
        let mut fast = Latency::default();
        let mut slow = Latency::default();
        for _ in 0..900 {
            fast.record(Duration::from_micros(100));
        }
        for _ in 0..100 {
            slow.record(Duration::from_millis(10));
        }
        assert_eq!(fast.summary().p99_us.round(), 100.0);
        let mut all = Latency::default();
        all.merge(&fast);
        all.merge(&slow);
        assert_eq!(all.count(), 1000);
        let s = all.summary();
        assert!((s.p50_us - 100.0).abs() < 1.0, "{s:?}");
        // 10 % of the values are 10 ms, so p90 is still fast and p99 is slow.
        assert!((s.p90_us - 100.0).abs() < 1.0, "{s:?}");
        assert!((s.p99_us - 10_000.0).abs() < 20.0, "{s:?}");
        assert!((s.max_us - 10_000.0).abs() < 20.0, "{s:?}");
    }

    #[test]
    fn pairs_round_trip_between_processes() {
        let mut h = Latency::default();
        for us in [5u64, 50, 500, 5_000, 50_000] {
            h.record(Duration::from_micros(us));
        }
        let back = Latency::from_pairs(&h.to_pairs());
        assert_eq!(back.count(), h.count());
        assert_eq!(back.summary(), h.summary());
    }

    #[test]
    fn distribution_is_monotonic_and_ends_at_the_max() {
        let mut h = Latency::default();
        for i in 1..=10_000u64 {
            h.record(Duration::from_micros(i));
        }
        let d = h.distribution(5);
        assert!(d.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        let last = d.last().unwrap();
        assert_eq!(last.0, 100.0);
        assert!((last.1 - 10_000.0).abs() < 10.0);
    }
}
