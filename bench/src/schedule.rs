//! The open-loop schedule: when each request should be sent, whatever the server does.
//!
//! A total rate R over C connections: each connection sends every C/R seconds, and
//! connection c starts c/R seconds after the first, so together they send one request
//! every 1/R seconds. A request's latency is measured from its intended time, not from
//! when it could be sent, so a server that stalls is charged for every request that
//! should have gone out meanwhile (coordinated-omission correction).

use std::time::{Duration, Instant};

/// When each connection's requests are due.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    interval_nanos: f64,
    connections: u32,
}

impl Schedule {
    /// A schedule of `rate` requests per second in all, over `connections`, from `start`.
    pub fn new(start: Instant, rate: f64, connections: u32) -> Schedule {
        assert!(
            rate > 0.0 && connections > 0,
            "a schedule needs a rate and connections"
        );
        Schedule {
            start,
            interval_nanos: 1e9 / rate,
            connections,
        }
    }

    /// When connection `conn`'s `k`-th request (from 0) is due.
    pub fn intended(&self, conn: u32, k: u64) -> Instant {
        let slot = k as f64 * f64::from(self.connections) + f64::from(conn);
        self.start + Duration::from_nanos((slot * self.interval_nanos) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_interleave_into_one_even_stream() {
        let start = Instant::now();
        let s = Schedule::new(start, 1_000.0, 4);
        let mut all: Vec<Duration> = (0..4)
            .flat_map(|c| (0..25).map(move |k| (c, k)))
            .map(|(c, k)| s.intended(c, k) - start)
            .collect();
        all.sort();
        assert_eq!(all.len(), 100);
        for (i, t) in all.iter().enumerate() {
            assert_eq!(*t, Duration::from_millis(i as u64), "request {i}");
        }
    }

    #[test]
    fn each_connection_sends_at_connections_over_rate() {
        let start = Instant::now();
        let s = Schedule::new(start, 500.0, 10);
        assert_eq!(
            s.intended(3, 1) - s.intended(3, 0),
            Duration::from_millis(20)
        );
        assert_eq!(s.intended(3, 0) - start, Duration::from_millis(6));
    }
}
