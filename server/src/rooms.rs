//! The node's rooms: each room's recent events (its history, for `since` recovery and
//! for a shard that must fill a gap) and the [`Orderer`] that gives a room's events
//! their seqs. A room's history starts, the first time the node needs it, from what the
//! store keeps of the room ([`crate::store::Store::tail`]), so seqs continue where the
//! store left off. Each room has its own lock, held for an append or a read, never
//! across an await; delivery itself takes none (events travel whole through the rings).

use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard};

use streamhub_pubsub::history::{History, HistoryLimits, Recovery, SinceAhead};
use streamhub_pubsub::{Chat, ChatEvent, Event, RoomId};

use crate::store::{Clock, Millis, SharedStore, StoreError, StoreFuture};

/// One room's history.
#[derive(Debug)]
pub struct Room {
    /// The room's id (its channel's).
    pub id: RoomId,
    history: Mutex<History<Arc<ChatEvent>, Millis>>,
}

/// What a `since` asks of a room's history.
#[derive(Debug)]
pub enum Replay {
    /// Every event after `since`, in order, and the room's last seq.
    Events(Vec<Event>, u64),
    /// Some of the gap is no longer kept; the room's last seq.
    Lost(u64),
}

impl Room {
    fn lock(&self) -> MutexGuard<'_, History<Arc<ChatEvent>, Millis>> {
        // An append cannot be left half done by a panic elsewhere.
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The room's last seq.
    pub fn last_seq(&self) -> u64 {
        self.lock().last_seq()
    }

    /// The events after `since` (up to the last), or that they are lost, at `now`.
    pub fn since(&self, since: u64, now: Millis) -> Result<Replay, SinceAhead> {
        let h = self.lock();
        let last = h.last_seq();
        Ok(match h.since(since, now)? {
            Recovery::Replay(events) => Replay::Events(
                events
                    .map(|(seq, e)| Event::new(Arc::clone(&self.id), seq, Arc::clone(e)))
                    .collect(),
                last,
            ),
            Recovery::NotRecoverable => Replay::Lost(last),
        })
    }

    /// Orders `chat` here: the next seq, kept in the history at `now`.
    fn append(&self, chat: Chat, now: Millis) -> Event {
        let mut h = self.lock();
        let seq = h.last_seq() + 1;
        let event = Arc::new(ChatEvent::new(chat));
        h.record(seq, Arc::clone(&event), now);
        Event::new(Arc::clone(&self.id), seq, event)
    }
}

/// Gives a room's events their seqs: 1, 2, 3, ... with no gaps and no repeats.
pub trait Orderer: Send + Sync + Debug {
    /// Orders `chat` in `room` at `now`; the event is in the room's history when this
    /// answers.
    fn order<'a>(&'a self, room: &'a Room, chat: Chat, now: Millis) -> StoreFuture<'a, Event>;
}

/// The orderer of a single node: the room's lock is its order.
#[derive(Debug, Default)]
pub struct LocalOrderer;

impl Orderer for LocalOrderer {
    fn order<'a>(&'a self, room: &'a Room, chat: Chat, now: Millis) -> StoreFuture<'a, Event> {
        Box::pin(std::future::ready(Ok(room.append(chat, now))))
    }
}

/// The node's rooms.
#[derive(Debug)]
pub struct Rooms {
    rooms: papaya::HashMap<Box<str>, Arc<Room>, foldhash::fast::RandomState>,
    orderer: Box<dyn Orderer>,
    store: SharedStore,
    clock: Arc<dyn Clock>,
    limits: HistoryLimits,
}

impl Rooms {
    /// The rooms of the channels in `store`, each keeping `limits`, ordered by
    /// `orderer`, their ages measured on `clock`.
    pub fn new(
        store: SharedStore,
        orderer: Box<dyn Orderer>,
        clock: Arc<dyn Clock>,
        limits: HistoryLimits,
    ) -> Rooms {
        Rooms {
            rooms: papaya::HashMap::default(),
            orderer,
            store,
            clock,
            limits,
        }
    }

    /// The time rooms' ages are measured with.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// The room `id`, its history started from the store the first time; None when no
    /// channel has that id.
    pub async fn open(&self, id: &str) -> Result<Option<Arc<Room>>, StoreError> {
        if let Some(room) = self.rooms.pin().get(id) {
            return Ok(Some(Arc::clone(room)));
        }
        let Some(tail) = self.store.tail(id, self.limits.max_events).await? else {
            return Ok(None);
        };
        let now = self.now();
        let mut history = History::starting_after(
            tail.events
                .first()
                .map_or(tail.last_seq, |(seq, _)| seq - 1),
            self.limits,
        );
        for (seq, event) in tail.events {
            history.record(seq, event, now);
        }
        let room = Arc::new(Room {
            id: id.into(),
            history: Mutex::new(history),
        });
        // Another shard may have opened it meanwhile: the first one in is the room.
        Ok(Some(Arc::clone(
            self.rooms.pin().get_or_insert(id.into(), room),
        )))
    }

    /// The room `id`, if opened already (for a shard filling a gap: a room it delivers
    /// is open).
    pub fn get(&self, id: &str) -> Option<Arc<Room>> {
        self.rooms.pin().get(id).cloned()
    }

    /// Orders `chat`, which happened at `now` (the operation's time), in room `room`.
    pub async fn order(&self, room: &Room, chat: Chat, now: Millis) -> Result<Event, StoreError> {
        self.orderer.order(room, chat, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::demo::DemoSize;
    use crate::store::memory::MemoryStore;
    use crate::store::SystemClock;

    fn rooms(limits: HistoryLimits) -> Rooms {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (store, _) = MemoryStore::demo(DemoSize::SMALL, limits, Arc::clone(&clock));
        Rooms::new(Arc::new(store), Box::new(LocalOrderer), clock, limits)
    }

    fn deleted(n: u64) -> Chat {
        Chat::Deleted { message_seq: n }
    }

    #[tokio::test]
    async fn a_room_continues_from_the_store_and_orders_one_after_another() {
        let rooms = rooms(HistoryLimits::default());
        let room = rooms.open("ch_u1").await.unwrap().unwrap();
        let last = room.last_seq();
        assert!(last >= 60, "alice's demo chat is there: {last}");
        let a = rooms.order(&room, deleted(1), rooms.now()).await.unwrap();
        let b = rooms.order(&room, deleted(2), rooms.now()).await.unwrap();
        assert_eq!((a.seq, b.seq), (last + 1, last + 2));
        let again = rooms.open("ch_u1").await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&room, &again), "one room per id");
        match room.since(last, rooms.now()).unwrap() {
            Replay::Events(events, l) => {
                assert_eq!(l, last + 2);
                assert_eq!(
                    events.iter().map(|e| e.seq).collect::<Vec<_>>(),
                    vec![last + 1, last + 2]
                );
            }
            Replay::Lost(_) => panic!("the gap is kept"),
        }
        assert!(room.since(last + 3, rooms.now()).is_err());
        assert!(rooms.open("ch_nobody").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_gap_older_than_the_history_is_lost() {
        let rooms = rooms(HistoryLimits {
            max_events: 3,
            max_age: None,
        });
        let room = rooms.open("ch_u2").await.unwrap().unwrap();
        let last = room.last_seq();
        for n in 0..5 {
            rooms.order(&room, deleted(n), rooms.now()).await.unwrap();
        }
        assert!(matches!(room.since(last, rooms.now()), Ok(Replay::Lost(l)) if l == last + 5));
        assert!(
            matches!(room.since(last + 2, rooms.now()), Ok(Replay::Events(e, _)) if e.len() == 3)
        );
    }
}
