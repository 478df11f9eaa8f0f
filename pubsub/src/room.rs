//! The event model of the whole path, from the orderer through the rings and the hubs
//! to every protocol: what one room event is once it has a seq, and what a chat room's
//! events hold. An event carries what its frames need (a message its author's id, login
//! and display name), so any shard or node encodes it without asking a store.

use std::sync::{Arc, OnceLock};

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
    /// Its position in the room: 1, 2, 3, ..., assigned by the room's owner; a seq whose
    /// event was refused (never recorded) is skipped, never given again.
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

/// Who wrote a chat message, as its frames show them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Author {
    /// The user's id.
    pub id: Arc<str>,
    /// The user's login.
    pub login: Arc<str>,
    /// The name shown.
    pub display_name: Arc<str>,
}

/// What happened in a chat room.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Chat {
    /// A chat message.
    Message {
        /// Its author.
        author: Author,
        /// The text.
        body: Arc<str>,
        /// When it was sent (milliseconds since the Unix epoch).
        sent_at: i64,
    },
    /// The message at `message_seq` was deleted.
    Deleted {
        /// The deleted message's seq.
        message_seq: u64,
    },
    /// A user was banned from the room.
    Banned {
        /// The banned user's id.
        user_id: Box<str>,
        /// Until when (milliseconds since the Unix epoch; None: until unbanned).
        until: Option<i64>,
    },
}

/// A chat room event's content and its room-protocol frame, encoded once by whichever
/// shard delivers it first and shared by every other (an event's frame never changes).
#[derive(Debug)]
pub struct ChatEvent {
    /// What happened.
    pub chat: Chat,
    frame: OnceLock<Bytes>,
}

impl ChatEvent {
    /// An event of `chat`, not encoded yet.
    pub fn new(chat: Chat) -> ChatEvent {
        ChatEvent {
            chat,
            frame: OnceLock::new(),
        }
    }

    /// The event's frame: `encode` makes it the first time, on whichever thread asks
    /// first; later calls share those bytes.
    pub fn frame(&self, encode: impl FnOnce(&Chat) -> Bytes) -> Bytes {
        self.frame.get_or_init(|| encode(&self.chat)).clone()
    }
}

impl PartialEq for ChatEvent {
    fn eq(&self, other: &ChatEvent) -> bool {
        self.chat == other.chat
    }
}

/// One event of a chat room, as every layer passes it on (cheap to clone).
pub type Event = RoomEvent<Arc<ChatEvent>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_encoded_once_and_its_bytes_shared() {
        let e = ChatEvent::new(Chat::Deleted { message_seq: 3 });
        let calls = std::cell::Cell::new(0);
        let encode = |c: &Chat| {
            calls.set(calls.get() + 1);
            Bytes::from(format!("{c:?}"))
        };
        let a = e.frame(encode);
        let b = e.frame(encode);
        assert_eq!(calls.get(), 1);
        assert_eq!(a.as_ptr(), b.as_ptr(), "the same bytes, not a copy");
    }

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
