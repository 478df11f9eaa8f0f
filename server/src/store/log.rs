//! A room's log: its recent events in seq order, bounded by count and by age.
//!
//! The log is both the room's order (an event's seq is its position since the room
//! began) and its history: `since` recovery, `chatHistory` and `recentMessages` read it.
//! Appending trims it to the [`Retention`]; a recovery is exact only when every event
//! after `since` is still held and none of them is older than the retention's age.

use std::collections::VecDeque;
use std::sync::OnceLock;

use bytes::Bytes;

use super::{Millis, RoomEvent};

/// How much of each room's log is kept in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// At most this many events per room.
    pub events: u32,
    /// Events kept at least this long ago (milliseconds) are dropped.
    pub age: Millis,
}

impl Default for Retention {
    /// 1,000 events and an hour, the settings' defaults.
    fn default() -> Retention {
        Retention {
            events: 1000,
            age: 3_600_000,
        }
    }
}

/// One room's recent events.
#[derive(Debug, Clone, Default)]
pub struct RoomLog {
    /// The seq of `held[0]` minus one: how many events were dropped from the front.
    dropped: u32,
    /// The events held, oldest first.
    held: VecDeque<Held>,
}

/// One event held.
#[derive(Debug, Clone)]
struct Held {
    event: RoomEvent,
    /// When it was appended.
    at: Millis,
    /// Its room-protocol frame, encoded once by whichever shard needs it first and
    /// shared by all (an event's frame never changes: a deletion is an event of its own).
    frame: OnceLock<Bytes>,
}

impl RoomLog {
    /// The seq of the newest event (0 before the first).
    pub fn last_seq(&self) -> u32 {
        self.dropped + self.held.len() as u32
    }

    /// How many events are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }

    /// The event at `seq`, if still held.
    pub fn get(&self, seq: u32) -> Option<&RoomEvent> {
        let i = seq.checked_sub(self.dropped + 1)?;
        self.held.get(i as usize).map(|h| &h.event)
    }

    /// The room-protocol frame of the event at `seq`, if still held: `encode` makes it
    /// the first time, on whichever thread asks first; later calls share those bytes.
    pub fn frame(&self, seq: u32, encode: impl FnOnce(&RoomEvent) -> Bytes) -> Option<Bytes> {
        let i = seq.checked_sub(self.dropped + 1)?;
        let h = self.held.get(i as usize)?;
        Some(h.frame.get_or_init(|| encode(&h.event)).clone())
    }

    /// The event at `seq`, mutably, if still held.
    pub fn get_mut(&mut self, seq: u32) -> Option<&mut RoomEvent> {
        let i = seq.checked_sub(self.dropped + 1)?;
        self.held.get_mut(i as usize).map(|h| &mut h.event)
    }

    /// Held events before `end_seq` (exclusive; clamped to the log), newest first, with
    /// their seqs.
    pub fn before(&self, end_seq: u32) -> impl Iterator<Item = (u32, &RoomEvent)> {
        let end =
            (end_seq.saturating_sub(1).saturating_sub(self.dropped) as usize).min(self.held.len());
        let first = self.dropped + 1;
        self.held
            .range(..end)
            .enumerate()
            .rev()
            .map(move |(i, h)| (first + i as u32, &h.event))
    }

    /// Appends `event` at `now`, trims the log to `keep`, and returns the event's seq.
    pub fn push(&mut self, event: RoomEvent, now: Millis, keep: Retention) -> u32 {
        self.held.push_back(Held {
            event,
            at: now,
            frame: OnceLock::new(),
        });
        self.trim(now, keep);
        self.last_seq()
    }

    /// Drops events from the front until at most `keep.events` are held, none of them
    /// `keep.age` old at `now`.
    pub fn trim(&mut self, now: Millis, keep: Retention) {
        while self.held.len() > keep.events as usize
            || self.held.front().is_some_and(|h| now - h.at >= keep.age)
        {
            self.held.pop_front();
            self.dropped += 1;
        }
    }

    /// Whether every event after `since` can be replayed at `now`: all of them still
    /// held and none older than `keep.age`. A `since` at the last seq needs nothing.
    pub fn replayable_after(&self, since: u32, now: Millis, keep: Retention) -> bool {
        if since >= self.last_seq() {
            return since == self.last_seq();
        }
        if since < self.dropped {
            return false;
        }
        // Events are held in append order, so the oldest one needed is the oldest kept.
        self.held
            .get((since - self.dropped) as usize)
            .is_some_and(|h| now - h.at < keep.age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::UserIx;

    fn msg(n: u32) -> RoomEvent {
        RoomEvent::Message {
            author: UserIx(0),
            body: n.to_string().into(),
            sent_at: 0,
            deleted: false,
        }
    }

    const KEEP: Retention = Retention {
        events: 3,
        age: 1000,
    };

    #[test]
    fn seqs_stay_positions_since_the_start_when_the_front_is_dropped() {
        let mut log = RoomLog::default();
        assert_eq!(log.last_seq(), 0);
        for n in 1..=5 {
            assert_eq!(log.push(msg(n), 0, KEEP), n);
        }
        assert_eq!(log.len(), 3, "held at most `events`");
        assert_eq!(log.get(2), None, "dropped");
        assert_eq!(log.get(3), Some(&msg(3)));
        assert_eq!(log.get(5), Some(&msg(5)));
        assert_eq!(log.get(6), None);
        assert_eq!(log.get(0), None);
        let newest_first: Vec<u32> = log.before(u32::MAX).map(|(s, _)| s).collect();
        assert_eq!(newest_first, vec![5, 4, 3]);
        let before_five: Vec<u32> = log.before(5).map(|(s, _)| s).collect();
        assert_eq!(before_five, vec![4, 3]);
        assert_eq!(log.before(3).count(), 0);
    }

    #[test]
    fn events_past_the_age_are_dropped_on_append() {
        let mut log = RoomLog::default();
        log.push(msg(1), 0, KEEP);
        log.push(msg(2), 500, KEEP);
        assert_eq!(log.len(), 2);
        // At 1200 the first is 1200 ms old (dropped), the second 700 ms (kept).
        log.push(msg(3), 1200, KEEP);
        assert_eq!((log.len(), log.get(1), log.last_seq()), (2, None, 3));
        // Much later, only the new event is left; seqs go on.
        log.push(msg(4), 10_000, KEEP);
        assert_eq!((log.len(), log.last_seq()), (1, 4));
    }

    #[test]
    fn a_replay_is_allowed_only_when_the_whole_gap_is_held_and_young() {
        let mut log = RoomLog::default();
        for n in 1..=5 {
            log.push(msg(n), i64::from(n) * 100, KEEP);
        }
        // Held: 3 (at 300), 4 (400), 5 (500).
        assert!(log.replayable_after(5, 600, KEEP), "nothing missed");
        assert!(log.replayable_after(4, 600, KEEP));
        assert!(log.replayable_after(2, 600, KEEP), "3.. are held");
        assert!(!log.replayable_after(1, 600, KEEP), "2 was dropped");
        assert!(!log.replayable_after(6, 600, KEEP), "past the end");
        // At 1350 event 3 is 1050 ms old: a gap starting there is too old, 4.. is not.
        assert!(!log.replayable_after(2, 1350, KEEP));
        assert!(log.replayable_after(3, 1350, KEEP));
    }

    #[test]
    fn an_event_is_encoded_once_and_its_bytes_shared() {
        let mut log = RoomLog::default();
        log.push(msg(1), 0, KEEP);
        let calls = std::cell::Cell::new(0);
        let encode = |e: &RoomEvent| {
            calls.set(calls.get() + 1);
            Bytes::from(format!("{e:?}"))
        };
        let a = log.frame(1, encode).unwrap();
        let b = log.frame(1, encode).unwrap();
        assert_eq!(calls.get(), 1);
        assert_eq!(a.as_ptr(), b.as_ptr(), "the same bytes, not a copy");
        assert_eq!(log.frame(2, encode), None);
    }
}
