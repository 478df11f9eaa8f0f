//! The node's rooms: each room's recent events (its history, for `since` recovery and
//! for a shard that must fill a gap) and the [`Orderer`] that gives a room's events
//! their seqs. A room's history starts, the first time the node needs it, from what the
//! store keeps of the room ([`crate::store::Store::tail`]), so seqs continue where the
//! store left off. Each room has its own lock, held for an append or a read, never
//! across an await; delivery itself takes none (events travel whole through the rings).
//!
//! An event takes its seq when it is ordered and enters the history only once it is
//! settled: recorded by the store, or refused (its record failed: the seq stays
//! unused, a void that readers pass over, and is never given again, since a write that
//! timed out may still commit). Events settle in seq order: one recorded before an
//! earlier one has settled waits for it, so the history stays contiguous and every
//! shard meets the room's events in order.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use streamhub_pubsub::history::{History, HistoryLimits, Recovery, SinceAhead};
use streamhub_pubsub::{Chat, ChatEvent, Event, RoomId};

use crate::store::{Clock, Millis, SharedStore, StoreError, StoreFuture};

/// One room's history and the seqs it has given.
#[derive(Debug)]
pub struct Room {
    /// The room's id (its channel's).
    pub id: RoomId,
    state: Mutex<Order>,
    /// Closed: no longer the node's room for its channel, and never held again. Set
    /// with the state locked (so a hold, which looks under the lock, never races it);
    /// read without it by every open.
    closed: AtomicBool,
}

/// A room's seqs: those settled (the history: an event, or None for a void), those
/// given and not settled yet, and those settled before an earlier one; and who holds
/// the room.
#[derive(Debug)]
struct Order {
    history: History<Option<Arc<ChatEvent>>, Millis>,
    /// The last seq given (at or after the history's last).
    given: u64,
    /// Seqs settled while an earlier one was not, waiting to enter the history.
    early: BTreeMap<u64, Option<Arc<ChatEvent>>>,
    /// Shards holding the room (it has members or subscriptions there).
    held: u32,
    /// Since when no shard has held it, as [`Rooms::close_idle`] first saw.
    idle_since: Option<Millis>,
}

/// A shard's hold on a room (it has members or subscriptions there): while any is held,
/// the node keeps the room open. Dropped, it lets go.
#[derive(Debug)]
pub struct Held(Arc<Room>);

impl std::ops::Deref for Held {
    type Target = Arc<Room>;

    fn deref(&self) -> &Arc<Room> {
        &self.0
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.lock().held -= 1;
    }
}

/// What a `since` asks of a room's history.
#[derive(Debug)]
pub enum Replay {
    /// Every event after `since`, in order (voids left out), and the room's last seq.
    Events(Vec<Event>, u64),
    /// Some of the gap is no longer kept; the room's last seq.
    Lost(u64),
}

impl Room {
    fn lock(&self) -> MutexGuard<'_, Order> {
        // An append cannot be left half done by a panic elsewhere.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A hold on the room for a shard; None once it is closed (open the channel's room
    /// again: [`Rooms::open`] makes a new one).
    pub fn hold(self: &Arc<Self>) -> Option<Held> {
        let mut order = self.lock();
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        order.held += 1;
        order.idle_since = None;
        Some(Held(Arc::clone(self)))
    }

    /// Whether the room was closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Closes the room if no shard has held it since `linger` before `now` (the first
    /// look at an idle room only notes when).
    fn close_if_idle(&self, now: Millis, linger: Millis) -> bool {
        let mut order = self.lock();
        if order.held > 0 || self.closed.load(Ordering::Relaxed) {
            return false;
        }
        match order.idle_since {
            Some(since) if now.saturating_sub(since) >= linger => {
                self.closed.store(true, Ordering::Relaxed);
                true
            }
            Some(_) => false,
            None => {
                order.idle_since = Some(now);
                false
            }
        }
    }

    /// The room's last settled seq (an event's or a void's).
    pub fn last_seq(&self) -> u64 {
        self.lock().history.last_seq()
    }

    /// The events after `since` (up to the last settled one), or that they are lost,
    /// at `now`.
    pub fn since(&self, since: u64, now: Millis) -> Result<Replay, SinceAhead> {
        let order = self.lock();
        let h = &order.history;
        let last = h.last_seq();
        Ok(match h.since(since, now)? {
            Recovery::Replay(events) => Replay::Events(
                events
                    .filter_map(|(seq, e)| {
                        e.as_ref()
                            .map(|e| Event::new(Arc::clone(&self.id), seq, Arc::clone(e)))
                    })
                    .collect(),
                last,
            ),
            Recovery::NotRecoverable => Replay::Lost(last),
        })
    }

    /// A room whose history starts from the store's `tail`: a seq between the tail's
    /// first and the last one given (the tail's last, or `given`'s) that the store lacks
    /// is a void, unless `given` lists it pending; pending seqs and those after the
    /// last given settle when their events come.
    fn starting(
        id: &str,
        tail: crate::store::Tail,
        given: Option<Given>,
        limits: HistoryLimits,
        now: Millis,
    ) -> Room {
        let (mut tail, mut given) = (tail, given);
        if given
            .as_ref()
            .is_some_and(|g| g.last.saturating_sub(tail.last_seq) > OPEN_GAP_MAX)
        {
            // Far more seqs given than the store holds (a counter that jumped): the
            // history starts after the last one given, and a `since` before it is
            // answered `recovered:false`, rather than walking the gap seq by seq.
            let last = given.as_ref().map_or(0, |g| g.last);
            tail = crate::store::Tail {
                last_seq: last,
                events: Vec::new(),
            };
            given = Some(Given {
                last,
                pending: Vec::new(),
            });
        }
        let start = tail
            .events
            .first()
            .map_or(tail.last_seq, |(seq, _)| seq - 1);
        let mut order = Order {
            history: History::starting_after(start, limits),
            given: 0,
            early: BTreeMap::new(),
            held: 0,
            idle_since: None,
        };
        let given = given.unwrap_or_else(|| Given {
            last: tail.last_seq,
            pending: Vec::new(),
        });
        let mut events = tail.events.into_iter().peekable();
        for seq in start + 1..=given.last.max(tail.last_seq) {
            let event = match events.next_if(|(s, _)| *s == seq) {
                Some((_, event)) => Some(event),
                None if seq > given.last || given.pending.contains(&seq) => continue,
                None => None,
            };
            order.early.insert(seq, event);
        }
        order.take_early(&id.into(), now);
        order.given = order.history.last_seq().max(given.last);
        Room {
            id: id.into(),
            state: Mutex::new(order),
            closed: AtomicBool::new(false),
        }
    }

    /// The seq later settled events wait for, if some do.
    pub fn hole(&self) -> Option<u64> {
        let order = self.lock();
        (!order.early.is_empty()).then(|| order.history.last_seq() + 1)
    }

    /// The highest seq this node knows was given in the room (settled or not).
    pub fn highest_seq(&self) -> u64 {
        let order = self.lock();
        let early = order.early.keys().next_back().copied().unwrap_or(0);
        order.given.max(order.history.last_seq()).max(early)
    }

    /// Restarts the history after `seq` when it is behind it (what came before is not
    /// kept, so a member behind it is told, `recovered:false`, rather than skipped).
    pub fn skip_to(&self, seq: u64, now: Millis) -> Ready {
        let mut order = self.lock();
        if seq <= order.history.last_seq() {
            return Ready::new();
        }
        let limits = order.history.limits();
        order.history = History::starting_after(seq, limits);
        order.early = order.early.split_off(&(seq + 1));
        order.given = order.given.max(seq);
        order.take_early(&self.id, now)
    }

    /// Gives `chat` the room's next seq (not in the history until it is settled).
    fn give(&self, chat: Chat) -> Event {
        let mut order = self.lock();
        order.given += 1;
        Event::new(
            Arc::clone(&self.id),
            order.given,
            Arc::new(ChatEvent::new(chat)),
        )
    }

    /// Settles the event ordered at `seq`: `Some` when the store recorded it, `None`
    /// when it is refused (a void). Returns the events that entered the history by it,
    /// in order (this one, and those settled earlier that waited for it), for the
    /// caller to publish; none while an earlier seq is unsettled.
    pub fn settle(&self, seq: u64, event: Option<Arc<ChatEvent>>, now: Millis) -> Ready {
        let mut order = self.lock();
        let Order { history, early, .. } = &mut *order;
        if seq <= history.last_seq() {
            return Ready::new();
        }
        // The usual case, in order with nothing waiting: no detour through `early`.
        if seq == history.last_seq() + 1 && early.is_empty() {
            let ready = event
                .as_ref()
                .map(|e| Event::new(Arc::clone(&self.id), seq, Arc::clone(e)));
            history.record(seq, event, now);
            return ready.into_iter().collect();
        }
        early.insert(seq, event);
        order.take_early(&self.id, now)
    }
}

impl Order {
    /// Moves the events settled early that now follow the history's last into it, in
    /// order: those that entered.
    fn take_early(&mut self, room: &RoomId, now: Millis) -> Ready {
        let mut ready = Ready::new();
        while let Some(event) = self.early.remove(&(self.history.last_seq() + 1)) {
            let seq = self.history.last_seq() + 1;
            if let Some(e) = &event {
                ready.push(Event::new(Arc::clone(room), seq, Arc::clone(e)));
            }
            self.history.record(seq, event, now);
        }
        ready
    }
}

/// The events a settle lets into a room's history, in seq order: most often the one
/// settled, kept inline.
pub type Ready = smallvec::SmallVec<[Event; 1]>;

/// Gives a room's events their seqs: increasing, never given twice. A seq whose
/// event is refused is not given again (a void). Across nodes (Redis) it also tells
/// the other nodes how each event settled, and brings theirs to the node's rooms.
pub trait Orderer: Send + Sync + Debug {
    /// Orders `chat` in `room` at `now`: the event with its seq, which enters the room's
    /// history once settled ([`Room::settle`]).
    fn order<'a>(&'a self, room: &'a Room, chat: Chat, now: Millis) -> Giving<'a>;

    /// Before the node reads room `id` from the store: listens for the room's events
    /// from other nodes (from here on, none is missed), then says which seqs have been
    /// given (`floor`, the store's last seq, starts a room the orderer has not seen).
    /// None on one node: the store and this node's history are all there is.
    fn watch<'a>(&'a self, _id: &'a str, _floor: u64) -> StoreFuture<'a, Option<Given>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    /// The room is open (the one every shard uses): the events of other nodes that came
    /// while it opened settle in it now, later ones as they come.
    fn opened(&self, _room: &Arc<Room>) {}

    /// An opening that [`Orderer::watch`] began did not finish (the store failed, or
    /// the request was dropped): what the orderer kept for it can go.
    fn abandon(&self, _id: &str) {}

    /// Whether rooms no shard holds are closed after a while ([`Rooms::close_idle`]):
    /// only where seqs outlive the node's rooms (across nodes, in Redis); on one node a
    /// room's seqs are its own, and a void it gave must never be given again.
    fn closes_idle(&self) -> bool {
        false
    }

    /// These rooms were closed (no shard held them for a while): the orderer stops
    /// listening for their events.
    fn closed(&self, _rooms: &[Arc<Room>]) {}

    /// Why rooms cannot be ordered now (for `/readyz`), if they cannot.
    fn unready(&self) -> Option<String> {
        None
    }

    /// Tells the other nodes how the event at `seq` settled: `Some` recorded, None
    /// refused (a void). None on one node, where there is nothing to tell (and nothing
    /// to await).
    fn publish<'a>(
        &'a self,
        _room: &'a Room,
        _seq: u64,
        _chat: Option<&'a Chat>,
    ) -> Option<StoreFuture<'a, ()>> {
        None
    }
}

/// The seqs an orderer across nodes has given in a room, read after the node started
/// listening for the room's events ([`Orderer::watch`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Given {
    /// The last seq given.
    pub last: u64,
    /// The seqs given whose events have not settled yet (they will come as events or
    /// voids); every other seq up to `last` has settled, so one the store lacks is a void.
    pub pending: Vec<u64>,
}

/// The most seqs past the store's last that a room opening walks one by one (voids
/// or pending); a longer gap starts the room after it.
const OPEN_GAP_MAX: u64 = 10_000;

/// What [`Orderer::order`] gives: the event with its seq at once (on one node, where
/// the room's lock is the order: nothing to allocate or await), or once the orderer
/// across nodes has answered.
pub enum Giving<'a> {
    /// Ordered already.
    Now(Event),
    /// Ordered once this is done.
    Later(StoreFuture<'a, Event>),
}

/// The orderer of a single node: the room's lock is its order.
#[derive(Debug, Default)]
pub struct LocalOrderer;

impl Orderer for LocalOrderer {
    fn order<'a>(&'a self, room: &'a Room, chat: Chat, _now: Millis) -> Giving<'a> {
        Giving::Now(room.give(chat))
    }
}

/// A room being opened after [`Orderer::watch`]: abandoned if the opening fails or
/// is dropped before the room is open.
struct Watching<'a> {
    orderer: &'a dyn Orderer,
    id: &'a str,
    open: bool,
}

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        if !self.open {
            self.orderer.abandon(self.id);
        }
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

    /// The room `id`, its history started from the store the first time (a seq the
    /// store lacks between two it holds is a void: its event was never recorded, unless
    /// the orderer says it is still pending); None when no channel has that id.
    pub async fn open(&self, id: &str) -> Result<Option<Arc<Room>>, StoreError> {
        if let Some(room) = self.rooms.pin().get(id) {
            if !room.is_closed() {
                return Ok(Some(Arc::clone(room)));
            }
            // Closing: it leaves the map; a new one takes its place.
            self.rooms.pin().remove_if(id, |_, r| r.is_closed()).ok();
        }
        let Some(mut tail) = self.store.tail(id, self.limits.max_events).await? else {
            return Ok(None);
        };
        let given = self.orderer.watch(id, tail.last_seq).await?;
        let mut watching = Watching {
            orderer: &*self.orderer,
            id,
            open: given.is_none(),
        };
        if given.is_some() {
            // Read again after the orderer's state, so that every seq it had settled by
            // then is in the store (recorded before settled) or a void.
            tail = self
                .store
                .tail(id, self.limits.max_events)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("the room `{id}` is gone")))?;
        }
        let room = Arc::new(Room::starting(id, tail, given, self.limits, self.now()));
        // Another shard may have opened it meanwhile: the first one in is the room.
        let room = Arc::clone(self.rooms.pin().get_or_insert(id.into(), room));
        self.orderer.opened(&room);
        watching.open = true;
        Ok(Some(room))
    }

    /// Closes the rooms no shard has held for `linger` (where the orderer closes idle
    /// rooms): they leave the node, and the orderer stops listening for them. How
    /// many were closed.
    pub fn close_idle(&self, linger: Millis) -> usize {
        if !self.orderer.closes_idle() {
            return 0;
        }
        let now = self.now();
        let map = self.rooms.pin();
        let closed: Vec<Arc<Room>> = map
            .iter()
            .filter(|(_, room)| room.close_if_idle(now, linger))
            .map(|(_, room)| Arc::clone(room))
            .collect();
        for room in &closed {
            map.remove_if(&*room.id, |_, r| Arc::ptr_eq(r, room)).ok();
        }
        if !closed.is_empty() {
            self.orderer.closed(&closed);
        }
        closed.len()
    }

    /// The room `id`, if opened already (for a shard filling a gap: a room it delivers
    /// is open).
    pub fn get(&self, id: &str) -> Option<Arc<Room>> {
        self.rooms.pin().get(id).cloned()
    }

    /// Orders `chat`, which happened at `now` (the operation's time), in room `room`:
    /// the caller settles it ([`Room::settle`]) once the store has answered.
    pub async fn order(&self, room: &Room, chat: Chat, now: Millis) -> Result<Event, StoreError> {
        match self.orderer.order(room, chat, now) {
            Giving::Now(event) => Ok(event),
            Giving::Later(ordered) => ordered.await,
        }
    }

    /// Why rooms cannot be ordered now (Redis is unreachable), if they cannot.
    pub fn unready(&self) -> Option<String> {
        self.orderer.unready()
    }

    /// Tells the other nodes how the event at `seq` of `room` settled (`Some`:
    /// recorded, None: a void), before the caller settles it here.
    pub async fn publish(
        &self,
        room: &Room,
        seq: u64,
        chat: Option<&Chat>,
    ) -> Result<(), StoreError> {
        match self.orderer.publish(room, seq, chat) {
            Some(published) => published.await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::demo::DemoSize;
    use crate::store::memory::MemoryStore;
    use crate::store::{Store, SystemClock};

    fn rooms(limits: HistoryLimits) -> Rooms {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (store, _) = MemoryStore::demo(DemoSize::SMALL, limits, Arc::clone(&clock));
        Rooms::new(Arc::new(store), Box::new(LocalOrderer), clock, limits)
    }

    fn deleted(n: u64) -> Chat {
        Chat::Deleted { message_seq: n }
    }

    /// Orders `chat` and settles it as recorded.
    async fn publish(rooms: &Rooms, room: &Room, chat: Chat) -> Event {
        let e = rooms.order(room, chat, rooms.now()).await.unwrap();
        let ready = room.settle(e.seq, Some(Arc::clone(&e.payload)), rooms.now());
        assert_eq!(ready.iter().map(|r| r.seq).collect::<Vec<_>>(), [e.seq]);
        e
    }

    fn seqs(replay: Replay) -> Vec<u64> {
        match replay {
            Replay::Events(events, _) => events.iter().map(|e| e.seq).collect(),
            Replay::Lost(_) => panic!("the gap is kept"),
        }
    }

    #[tokio::test]
    async fn an_event_enters_the_history_once_settled_and_in_seq_order() {
        let rooms = rooms(HistoryLimits::default());
        let room = rooms.open("ch_u1").await.unwrap().unwrap();
        let last = room.last_seq();
        let a = rooms.order(&room, deleted(1), rooms.now()).await.unwrap();
        let b = rooms.order(&room, deleted(2), rooms.now()).await.unwrap();
        assert_eq!((a.seq, b.seq), (last + 1, last + 2));
        assert_eq!(room.last_seq(), last, "nothing settled yet");
        // The later one recorded first waits for the earlier.
        let now = rooms.now();
        assert!(room
            .settle(b.seq, Some(Arc::clone(&b.payload)), now)
            .is_empty());
        assert_eq!(room.last_seq(), last);
        assert!(seqs(room.since(last, now).unwrap()).is_empty());
        let ready = room.settle(a.seq, Some(Arc::clone(&a.payload)), now);
        assert_eq!(
            ready.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [a.seq, b.seq]
        );
        assert_eq!(room.last_seq(), last + 2);
        assert_eq!(seqs(room.since(last, now).unwrap()), [a.seq, b.seq]);
        // Settling again changes nothing.
        assert!(room.settle(a.seq, None, now).is_empty());
    }

    #[tokio::test]
    async fn a_refused_event_is_a_void_its_seq_never_given_again_and_replays_pass_over_it() {
        let rooms = rooms(HistoryLimits::default());
        let room = rooms.open("ch_u2").await.unwrap().unwrap();
        let last = room.last_seq();
        let now = rooms.now();
        let refused = rooms.order(&room, deleted(1), now).await.unwrap();
        let after = rooms.order(&room, deleted(2), now).await.unwrap();
        assert!(room
            .settle(after.seq, Some(Arc::clone(&after.payload)), now)
            .is_empty());
        let ready = room.settle(refused.seq, None, now);
        assert_eq!(ready.iter().map(|e| e.seq).collect::<Vec<_>>(), [after.seq]);
        assert_eq!(room.last_seq(), last + 2);
        assert_eq!(seqs(room.since(last, now).unwrap()), [after.seq]);
        assert!(seqs(room.since(last + 2, now).unwrap()).is_empty());
        let next = publish(&rooms, &room, deleted(3)).await;
        assert_eq!(next.seq, last + 3, "the void's seq is not given again");
    }

    #[tokio::test]
    async fn a_room_continues_from_the_store_and_orders_one_after_another() {
        let rooms = rooms(HistoryLimits::default());
        let room = rooms.open("ch_u1").await.unwrap().unwrap();
        let last = room.last_seq();
        assert!(last >= 60, "alice's demo chat is there: {last}");
        let a = publish(&rooms, &room, deleted(1)).await;
        let b = publish(&rooms, &room, deleted(2)).await;
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

    /// An orderer that closes idle rooms, noting which.
    #[derive(Debug, Default)]
    struct Closing(Arc<Mutex<Vec<String>>>);

    impl Orderer for Closing {
        fn order<'a>(&'a self, room: &'a Room, chat: Chat, _: Millis) -> Giving<'a> {
            Giving::Now(room.give(chat))
        }

        fn closes_idle(&self) -> bool {
            true
        }

        fn closed(&self, rooms: &[Arc<Room>]) {
            let mut closed = self.0.lock().unwrap();
            closed.extend(rooms.iter().map(|r| r.id.to_string()));
        }
    }

    #[tokio::test]
    async fn a_room_no_shard_holds_is_closed_after_a_while_and_the_next_open_makes_a_new_one() {
        let limits = HistoryLimits::default();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (store, _) = MemoryStore::demo(DemoSize::SMALL, limits, Arc::clone(&clock));
        let closing = Closing::default();
        let closed = Arc::clone(&closing.0);
        let rooms = Rooms::new(Arc::new(store), Box::new(closing), clock, limits);
        let room = rooms.open("ch_u2").await.unwrap().unwrap();
        let held = room.hold().expect("an open room is held");
        assert_eq!(rooms.close_idle(0), 0, "a held room stays");
        assert_eq!(rooms.close_idle(0), 0);
        drop(held);
        assert_eq!(rooms.close_idle(0), 0, "the first look notes since when");
        let again = room.hold().expect("held again before it closed");
        assert_eq!(rooms.close_idle(0), 0, "held again: it stays");
        drop(again);
        assert_eq!(rooms.close_idle(0), 0);
        assert_eq!(rooms.close_idle(0), 1, "idle since the last look");
        assert_eq!(*closed.lock().unwrap(), ["ch_u2"]);
        assert!(room.hold().is_none(), "a closed room is never held again");
        assert!(rooms.get("ch_u2").is_none());
        let next = rooms.open("ch_u2").await.unwrap().unwrap();
        assert!(!Arc::ptr_eq(&room, &next), "a new room");
        assert_eq!(next.last_seq(), room.last_seq());
        assert!(next.hold().is_some());

        // On one node rooms stay (their seqs are theirs alone).
        let one = self::rooms(limits);
        let room = one.open("ch_u2").await.unwrap().unwrap();
        one.close_idle(0);
        assert_eq!(one.close_idle(0), 0);
        assert!(room.hold().is_some());
    }

    /// An orderer across nodes as a room's opening sees it: `ahead` seqs given past the
    /// store's last, those in `pending` not settled yet.
    #[derive(Debug)]
    struct Across {
        ahead: u64,
        pending: Vec<u64>,
    }

    impl Orderer for Across {
        fn order<'a>(&'a self, _: &'a Room, _: Chat, _: Millis) -> Giving<'a> {
            unreachable!("the test settles by hand")
        }

        fn watch<'a>(&'a self, _id: &'a str, floor: u64) -> StoreFuture<'a, Option<Given>> {
            let given = Given {
                last: floor + self.ahead,
                pending: self.pending.iter().map(|p| floor + p).collect(),
            };
            Box::pin(std::future::ready(Ok(Some(given))))
        }
    }

    #[tokio::test]
    async fn a_room_opened_far_behind_its_counter_starts_after_it_rather_than_walking_the_gap() {
        let limits = HistoryLimits::default();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (store, _) = MemoryStore::demo(DemoSize::SMALL, limits, Arc::clone(&clock));
        let last = store.tail("ch_u2", 10).await.unwrap().unwrap().last_seq;
        let orderer = Across {
            ahead: 1_000_000_000,
            pending: vec![3],
        };
        let rooms = Rooms::new(Arc::new(store), Box::new(orderer), clock, limits);
        let room = rooms.open("ch_u2").await.unwrap().unwrap();
        let top = last + 1_000_000_000;
        assert_eq!(room.last_seq(), top);
        assert_eq!(room.hole(), None, "nothing waits");
        assert!(matches!(room.since(last, rooms.now()), Ok(Replay::Lost(l)) if l == top));
        assert!(seqs(room.since(top, rooms.now()).unwrap()).is_empty());
    }

    #[tokio::test]
    async fn a_room_opened_across_nodes_waits_for_pending_seqs_and_voids_the_settled_ones_the_store_lacks(
    ) {
        let limits = HistoryLimits::default();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (store, _) = MemoryStore::demo(DemoSize::SMALL, limits, Arc::clone(&clock));
        let last = store.tail("ch_u2", 10).await.unwrap().unwrap().last_seq;
        // Given past the store's last: +1 and +3 settled (the store lacks them: voids),
        // +2 pending; +4 is given later.
        let orderer = Across {
            ahead: 3,
            pending: vec![2],
        };
        let rooms = Rooms::new(Arc::new(store), Box::new(orderer), clock, limits);
        let room = rooms.open("ch_u2").await.unwrap().unwrap();
        assert_eq!(room.last_seq(), last + 1, "waits at the pending seq");
        assert_eq!(room.highest_seq(), last + 3);
        let now = rooms.now();
        let late = Arc::new(ChatEvent::new(deleted(7)));
        assert!(room
            .settle(last + 4, Some(Arc::clone(&late)), now)
            .is_empty());
        let pending = Arc::new(ChatEvent::new(deleted(8)));
        let ready = room.settle(last + 2, Some(pending), now);
        assert_eq!(
            ready.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [last + 2, last + 4],
            "the pending one, then (past the void) the one that waited"
        );
        assert_eq!(seqs(room.since(last, now).unwrap()), [last + 2, last + 4]);
        assert!(
            room.settle(last + 3, Some(late), now).is_empty(),
            "a void stays one"
        );
    }

    #[tokio::test]
    async fn a_room_skipped_past_a_gap_it_cannot_fill_says_so_to_whoever_was_before_it() {
        let rooms = rooms(HistoryLimits::default());
        let room = rooms.open("ch_u3").await.unwrap().unwrap();
        let last = room.last_seq();
        let now = rooms.now();
        let waiting = Arc::new(ChatEvent::new(deleted(1)));
        assert!(room.settle(last + 12, Some(waiting), now).is_empty());
        assert!(
            room.skip_to(last, now).is_empty(),
            "not behind: nothing changes"
        );
        let ready = room.skip_to(last + 11, now);
        assert_eq!(ready.iter().map(|e| e.seq).collect::<Vec<_>>(), [last + 12]);
        assert_eq!(room.last_seq(), last + 12);
        assert!(matches!(room.since(last, now), Ok(Replay::Lost(l)) if l == last + 12));
        assert!(seqs(room.since(last + 11, now).unwrap()) == [last + 12]);
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
            publish(&rooms, &room, deleted(n)).await;
        }
        assert!(matches!(room.since(last, rooms.now()), Ok(Replay::Lost(l)) if l == last + 5));
        assert!(
            matches!(room.since(last + 2, rooms.now()), Ok(Replay::Events(e, _)) if e.len() == 3)
        );
    }
}
