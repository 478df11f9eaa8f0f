//! Who wrote recently, node-wide: with a read replica, a viewer's reads go to the
//! primary for a while after that viewer wrote (read your own writes), whichever shard
//! the write and the reads land on. A lock-free map every shard shares (`papaya`), read
//! once per request of a signed-in viewer and written once per write; only made when
//! the store has a replica.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::store::Millis;

/// Sweeps expired entries once the map holds more than this, at most once a second.
const SWEEP_ABOVE: usize = 10_000;

/// Viewers who wrote, each with until when their reads go to the primary.
#[derive(Debug)]
pub struct Writers {
    /// How long after a write.
    window: Millis,
    map: papaya::HashMap<Box<str>, Millis, foldhash::fast::RandomState>,
    last_sweep: AtomicI64,
}

impl Writers {
    /// Viewers' reads go to the primary for `window` after they wrote.
    pub fn new(window: Millis) -> Writers {
        Writers {
            window,
            map: papaya::HashMap::default(),
            last_sweep: AtomicI64::new(0),
        }
    }

    /// `viewer` wrote at `now`.
    pub fn wrote(&self, viewer: &str, now: Millis) {
        let map = self.map.pin();
        if map.len() > SWEEP_ABOVE {
            self.sweep(now);
        }
        map.insert(viewer.into(), now.saturating_add(self.window));
    }

    /// Whether `viewer` wrote within the window before `now`.
    pub fn recent(&self, viewer: &str, now: Millis) -> bool {
        self.map.pin().get(viewer).is_some_and(|until| *until > now)
    }

    /// Drops expired entries, at most once a second; one caller sweeps, the rest go
    /// on. An entry is removed only if it still holds the expired time, so a write that
    /// renews it meanwhile is kept.
    fn sweep(&self, now: Millis) {
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now.saturating_sub(last) < 1000
            || self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let map = self.map.pin();
        let expired: Vec<Box<str>> = map
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            let _ = map.remove_if(&k, |_, until| *until <= now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_is_recent_for_the_window() {
        let w = Writers::new(100);
        assert!(!w.recent("u1", 0));
        w.wrote("u1", 10);
        assert!(w.recent("u1", 50));
        assert!(!w.recent("u2", 50));
        assert!(!w.recent("u1", 110));
        w.wrote("u1", 105);
        assert!(w.recent("u1", 110), "a new write renews it");
    }

    #[test]
    fn expired_writers_are_swept() {
        let w = Writers::new(10);
        for n in 0..=SWEEP_ABOVE {
            w.wrote(&format!("u{n}"), 0);
        }
        w.wrote("late", 5000);
        assert!(w.map.pin().len() < 10, "{} left", w.map.pin().len());
        assert!(w.recent("late", 5001));
    }
}
