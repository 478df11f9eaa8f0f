//! Per-room history of recent events, for `since` recovery.
//!
//! A room's history keeps its most recent events, bounded by count
//! ([`HistoryLimits::max_events`], the server's `HISTORY_EVENTS`) and optionally by
//! age. [`History::since`] answers a reconnecting client with either every event after
//! its `since`, in order, or [`Recovery::NotRecoverable`] when any of that gap is no
//! longer kept: never a partial replay.
//!
//! Seqs recorded are expected to be 1, 2, 3, ... A seq at or below the last one is a
//! duplicate and ignored; a seq that skips some (events this history never saw, for
//! instance while a node was cut off from Redis) restarts the kept events after the
//! gap, since nothing before it could ever be replayed whole again.
//!
//! Time is passed in (`now`), never read here, so the module is deterministic: an
//! [`Instant`], or milliseconds on a clock the caller keeps ([`Moment`] for `i64`), which
//! should not go backwards. An event is too old once `max_age` has passed since it was
//! recorded.

use std::collections::{vec_deque, VecDeque};
use std::time::{Duration, Instant};

/// The server's default `HISTORY_EVENTS`: events kept per room.
pub const DEFAULT_HISTORY_EVENTS: usize = 1000;

/// How much of a room's history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// At most this many of the most recent events (0 keeps none).
    pub max_events: usize,
    /// Events this old or older are dropped; `None` keeps them regardless of age.
    pub max_age: Option<Duration>,
}

impl Default for HistoryLimits {
    /// [`DEFAULT_HISTORY_EVENTS`] events, no age limit.
    fn default() -> Self {
        Self {
            max_events: DEFAULT_HISTORY_EVENTS,
            max_age: None,
        }
    }
}

/// What [`History::record`] did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The event was the next seq and is kept.
    Appended,
    /// The seq was at or before the last one recorded; the event was dropped.
    Duplicate,
    /// Seqs `missing_from..=missing_to` were never recorded; older events were dropped
    /// and the history continues from this event.
    AfterGap {
        /// The first seq never recorded.
        missing_from: u64,
        /// The last seq never recorded.
        missing_to: u64,
    },
}

/// `since` was past the room's last seq: the client claims events the room does not
/// have (the caller reports it as an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("since {since} is past the room's last seq {last_seq}")]
pub struct SinceAhead {
    /// The `since` asked for.
    pub since: u64,
    /// The room's last seq.
    pub last_seq: u64,
}

/// The answer to [`History::since`].
#[derive(Debug)]
pub enum Recovery<'a, T, M = Instant> {
    /// Every event after `since`, in order (empty when `since` is the last seq).
    Replay(Replay<'a, T, M>),
    /// Some of the events after `since` are no longer kept: the client must reload.
    NotRecoverable,
}

impl<T, M> Recovery<'_, T, M> {
    /// Whether the gap was recovered (the protocol's `recovered` flag).
    pub fn is_recovered(&self) -> bool {
        matches!(self, Self::Replay(_))
    }
}

/// The events of a successful recovery, oldest first, as `(seq, event)`.
#[derive(Debug, Clone)]
pub struct Replay<'a, T, M = Instant> {
    events: vec_deque::Iter<'a, Kept<T, M>>,
}

impl<'a, T, M> Iterator for Replay<'a, T, M> {
    type Item = (u64, &'a T);

    fn next(&mut self) -> Option<Self::Item> {
        self.events.next().map(|kept| (kept.seq, &kept.value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.events.size_hint()
    }
}

impl<T, M> ExactSizeIterator for Replay<'_, T, M> {}

/// A point in time a history measures ages with.
pub trait Moment: Copy + Ord {
    /// How long after `earlier` this is (zero when it is not after).
    fn since(self, earlier: Self) -> Duration;
}

impl Moment for Instant {
    fn since(self, earlier: Self) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// Milliseconds on the caller's clock (since the Unix epoch, say).
impl Moment for i64 {
    fn since(self, earlier: Self) -> Duration {
        Duration::from_millis(self.saturating_sub(earlier).max(0) as u64)
    }
}

#[derive(Debug, Clone)]
struct Kept<T, M> {
    seq: u64,
    at: M,
    value: T,
}

/// One room's recent events, with its times measured in `M`.
#[derive(Debug, Clone)]
pub struct History<T, M = Instant> {
    /// Contiguous seqs, oldest first, ending at `last_seq` when not empty.
    events: VecDeque<Kept<T, M>>,
    last_seq: u64,
    limits: HistoryLimits,
}

impl<T, M: Moment> History<T, M> {
    /// The history of a room with no events yet (the next seq is 1).
    pub fn new(limits: HistoryLimits) -> Self {
        Self::starting_after(0, limits)
    }

    /// The history of a room whose events up to `last_seq` happened before this history
    /// existed (and so can never be replayed from it).
    pub fn starting_after(last_seq: u64, limits: HistoryLimits) -> Self {
        Self {
            events: VecDeque::new(),
            last_seq,
            limits,
        }
    }

    /// The limits this history keeps to.
    pub fn limits(&self) -> HistoryLimits {
        self.limits
    }

    /// The room's last seq (0 when it has none): the `seq` of the `joined` frame.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// How many events are kept (some may have expired since the last prune).
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event is kept.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Records the event at `seq`, which happened at `now`, then drops what the limits
    /// no longer allow.
    pub fn record(&mut self, seq: u64, value: T, now: M) -> Recorded {
        if seq <= self.last_seq {
            return Recorded::Duplicate;
        }
        let outcome = if seq == self.last_seq + 1 {
            Recorded::Appended
        } else {
            self.events.clear();
            Recorded::AfterGap {
                missing_from: self.last_seq + 1,
                missing_to: seq - 1,
            }
        };
        // Keep times non-decreasing so that expiry can binary-search them.
        let at = self.events.back().map_or(now, |newest| newest.at.max(now));
        self.events.push_back(Kept { seq, at, value });
        self.last_seq = seq;
        while self.events.len() > self.limits.max_events {
            self.events.pop_front();
        }
        self.prune(now);
        outcome
    }

    /// Drops the events older than the age limit at `now`.
    pub fn prune(&mut self, now: M) {
        let expired = self.expired(now);
        self.events.drain(..expired);
    }

    /// Every event after `since`, or [`Recovery::NotRecoverable`] when any of them is
    /// no longer kept (evicted by count, expired at `now`, or never recorded here).
    ///
    /// # Errors
    /// [`SinceAhead`] when `since` is greater than the last seq.
    pub fn since(&self, since: u64, now: M) -> Result<Recovery<'_, T, M>, SinceAhead> {
        if since > self.last_seq {
            return Err(SinceAhead {
                since,
                last_seq: self.last_seq,
            });
        }
        let live = self.expired(now);
        let recoverable = match self.events.get(live) {
            // Nothing kept: only an empty gap is recoverable.
            None => since == self.last_seq,
            // The events from `oldest` to `last_seq` are kept, contiguous.
            Some(oldest) => since + 1 >= oldest.seq,
        };
        if !recoverable {
            return Ok(Recovery::NotRecoverable);
        }
        // Kept seqs are contiguous and end at `last_seq`, so the event after `since` is
        // `last_seq - since` from the end.
        let start = self.events.len() - (self.last_seq - since) as usize;
        debug_assert!(self.events.get(start).is_none_or(|e| e.seq == since + 1));
        Ok(Recovery::Replay(Replay {
            events: self.events.range(start..),
        }))
    }

    /// The event at `seq`, if kept (expired or not: [`History::prune`] drops those).
    pub fn get(&self, seq: u64) -> Option<&T> {
        let back = self.last_seq.checked_sub(seq)?;
        let i = self
            .events
            .len()
            .checked_sub(1 + usize::try_from(back).ok()?)?;
        self.events.get(i).map(|kept| &kept.value)
    }

    /// The kept events before `end_seq` (exclusive) that have not expired at `now`,
    /// newest first, as `(seq, event)`.
    pub fn before(&self, end_seq: u64, now: M) -> impl Iterator<Item = (u64, &T)> {
        let live = self.expired(now);
        let end = self.events.partition_point(|kept| kept.seq < end_seq);
        self.events
            .range(live.min(end)..end)
            .rev()
            .map(|kept| (kept.seq, &kept.value))
    }

    /// The number of kept events that have expired at `now` (they are the oldest).
    fn expired(&self, now: M) -> usize {
        match self.limits.max_age {
            None => 0,
            // Mostly nothing has expired: the oldest event says so without a search.
            Some(max_age) => match self.events.front() {
                Some(oldest) if now.since(oldest.at) >= max_age => self
                    .events
                    .partition_point(|kept| now.since(kept.at) >= max_age),
                _ => 0,
            },
        }
    }
}

#[cfg(test)]
mod tests;
