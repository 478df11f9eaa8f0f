//! The circuit breaker in front of PostgreSQL: after a few calls in a row fail because
//! the database cannot be reached, calls fail at once for a while (no connection
//! attempt, no pool wait) instead of each hammering a database that is down; then one
//! call at a time probes it, and the first that succeeds closes the circuit again.
//! Open periods grow (doubling, up to a ceiling) while the probes keep failing.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures in a row that open the circuit.
pub const THRESHOLD: u32 = 3;

/// The first open period; each failed probe doubles it up to [`MAX_OPEN`].
pub const FIRST_OPEN: Duration = Duration::from_millis(250);

/// The longest open period.
pub const MAX_OPEN: Duration = Duration::from_secs(5);

/// A circuit breaker (shared by every shard; touched only by calls that reach the
/// database, never by a cache hit).
#[derive(Debug)]
pub struct Breaker {
    /// Where its clock starts.
    epoch: Instant,
    /// Failures in a row (0: closed and healthy).
    failures: AtomicU32,
    /// Until when calls are refused, in microseconds since `epoch` (0: not open).
    open_until: AtomicU64,
    /// Why the last call failed, for the refusals and `/readyz`.
    last_error: Mutex<String>,
}

/// Why a call was refused without trying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PostgreSQL is unreachable ({reason}); retrying in {retry_in_ms} ms")]
pub struct Open {
    /// The last failure.
    pub reason: String,
    /// When the next probe may go.
    pub retry_in_ms: u64,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker::new()
    }
}

impl Breaker {
    /// A closed breaker.
    pub fn new() -> Breaker {
        Breaker {
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            last_error: Mutex::new(String::new()),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether a call may go to the database now. While open, no; once the open period
    /// is over, one caller gets through as the probe (the period is pushed on so that
    /// the others keep being refused until the probe reports).
    pub fn admit(&self) -> Result<(), Open> {
        self.admit_at(self.now())
    }

    fn admit_at(&self, now: u64) -> Result<(), Open> {
        let failures = self.failures.load(Ordering::Acquire);
        if failures < THRESHOLD {
            return Ok(());
        }
        let until = self.open_until.load(Ordering::Acquire);
        if now >= until {
            let hold = now.saturating_add(micros(open_period(failures)));
            if self
                .open_until
                .compare_exchange(until, hold, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Ok(());
            }
        }
        let until = self.open_until.load(Ordering::Acquire);
        Err(Open {
            reason: self.reason(),
            retry_in_ms: until.saturating_sub(now).div_ceil(1000),
        })
    }

    /// A call reached the database and it answered (whatever the answer).
    pub fn succeeded(&self) {
        if self.failures.load(Ordering::Acquire) != 0 {
            self.failures.store(0, Ordering::Release);
            self.open_until.store(0, Ordering::Release);
        }
    }

    /// A call failed because the database could not be reached (or timed out).
    pub fn failed(&self, why: &str) {
        self.failed_at(self.now(), why);
    }

    fn failed_at(&self, now: u64, why: &str) {
        why.clone_into(&mut self.last_error.lock().unwrap_or_else(|e| e.into_inner()));
        let failures = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        if failures >= THRESHOLD {
            self.open_until.store(
                now.saturating_add(micros(open_period(failures))),
                Ordering::Release,
            );
        }
    }

    /// Whether the circuit is open (calls are being refused), with why.
    pub fn is_open(&self) -> Option<String> {
        (self.failures.load(Ordering::Acquire) >= THRESHOLD).then(|| self.reason())
    }

    fn reason(&self) -> String {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// How long the circuit stays open after `failures` in a row.
fn open_period(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(THRESHOLD).min(16);
    FIRST_OPEN.saturating_mul(1 << doublings).min(MAX_OPEN)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1000;

    #[test]
    fn a_few_failures_in_a_row_open_it_and_a_success_closes_it() {
        let b = Breaker::new();
        for _ in 0..THRESHOLD - 1 {
            b.failed_at(0, "connection refused");
            assert_eq!(b.admit_at(0), Ok(()), "still closed below the threshold");
        }
        b.failed_at(0, "connection refused");
        let open = b.admit_at(MS).unwrap_err();
        assert_eq!(open.reason, "connection refused");
        assert_eq!(open.retry_in_ms, 249);
        assert!(b.is_open().is_some());
        // The period over: one probe goes, the others wait for it.
        assert_eq!(b.admit_at(250 * MS), Ok(()));
        assert!(b.admit_at(251 * MS).is_err());
        b.succeeded();
        assert_eq!(b.admit_at(252 * MS), Ok(()));
        assert!(b.is_open().is_none());
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = Breaker::new();
        b.failed_at(0, "x");
        b.failed_at(0, "x");
        b.succeeded();
        b.failed_at(0, "x");
        assert_eq!(b.admit_at(0), Ok(()));
    }

    #[test]
    fn failed_probes_double_the_wait_up_to_the_ceiling() {
        let b = Breaker::new();
        let mut now = 0;
        for _ in 0..THRESHOLD {
            b.failed_at(now, "down");
        }
        let mut periods = Vec::new();
        for _ in 0..8 {
            let wait = b.admit_at(now).unwrap_err().retry_in_ms;
            periods.push(wait);
            now += wait * MS;
            assert_eq!(b.admit_at(now), Ok(()), "the probe goes");
            b.failed_at(now, "down");
        }
        assert_eq!(periods, [250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
    }
}
