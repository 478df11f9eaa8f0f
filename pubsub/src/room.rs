//! The event model shared by the hub: what one room event is once it has a seq.

use std::sync::Arc;

use bytes::Bytes;

use crate::seq::{continuity, Continuity};

/// A room's id (a channel id), shared cheaply between the events of the room.
pub type RoomId = Arc<str>;

/// One event of one room, ordered by its room's owner.
///
/// The payload is whatever the hub carries: by default the event's bytes (`Bytes`
/// clones share one buffer); the protocol frames are encoded from it by the
/// delivering shard, once per protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomEvent<P = Bytes> {
    /// The room the event belongs to.
    pub room: RoomId,
    /// Its position in the room: 1, 2, 3, ... with no gaps, assigned by the room's owner.
    pub seq: u64,
    /// The event itself.
    pub payload: P,
}

impl<P> RoomEvent<P> {
    /// An event of `room` at `seq`.
    pub fn new(room: impl Into<RoomId>, seq: u64, payload: P) -> Self {
        Self {
            room: room.into(),
            seq,
            payload,
        }
    }

    /// The same event with its payload transformed (for instance, encoded).
    pub fn map<Q>(self, f: impl FnOnce(P) -> Q) -> RoomEvent<Q> {
        RoomEvent {
            room: self.room,
            seq: self.seq,
            payload: f(self.payload),
        }
    }

    /// How this event follows the last seq a receiver delivered for its room.
    pub fn continuity(&self, last_delivered: u64) -> Continuity {
        continuity(last_delivered, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_carries_its_room_seq_and_payload() {
        let event = RoomEvent::new("ch_1", 7, Bytes::from_static(b"hi"));
        assert_eq!(&*event.room, "ch_1");
        assert_eq!(event.seq, 7);
        assert_eq!(event.payload, Bytes::from_static(b"hi"));
        let clone = event.clone();
        assert!(
            Arc::ptr_eq(&clone.room, &event.room),
            "clones share the room id"
        );
    }

    #[test]
    fn map_keeps_room_and_seq() {
        let event = RoomEvent::new("ch_1", 3, 21_u32).map(|n| n * 2);
        assert_eq!(event, RoomEvent::new("ch_1", 3, 42_u32));
    }

    #[test]
    fn continuity_against_the_last_delivered_seq() {
        let event = RoomEvent::new("ch_1", 5, ());
        assert_eq!(event.continuity(4), Continuity::Next);
        assert_eq!(event.continuity(5), Continuity::Stale);
        assert_eq!(event.continuity(9), Continuity::Stale);
        assert_eq!(event.continuity(1), Continuity::Gap { missing: 2..=4 });
    }
}
